"""The station lifecycle: build drivers, open them in order, hold the lock, reach safe state.

Drivers open in :data:`~harness.registry.DEVICE_KINDS` order (power before camera)
and are put in their safe state in reverse order on every exit path: normal end, assertion
failure, exception, ``KeyboardInterrupt`` and SIGTERM (turned into :class:`Aborted`). A
``safe_state`` that raises is recorded and does not stop the others.

Sections a lower floor owns (the simulator's ``bench:`` and ``simulators:``) bring services
that the station starts before the devices and stops after them; their owners register the
builders in :mod:`harness.registry` (:func:`~harness.registry.register_service`).
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from harness.devices.base import DeviceIdentity
from harness.errors import Aborted, DeviceError
from harness.registry import DriverContext, service_builders
from harness.station.lease import Held, station_leases
from harness.station.lock import StationLock
from harness.station.schema import StationConfig, load_station_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafeStateReport:
    """What happened when the station was put in its safe state."""

    reached: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return not self.failed


class Station:
    """A station: its drivers, its lock and its safe state.

    Use as a context manager::

        with Station.load("stations/sim.yaml") as station:
            camera = station.device("camera")
    """

    def __init__(self, config: StationConfig, *, allow_expired_calibration: bool = False,
                 lock_dir: Path | None = None) -> None:
        self.config = config
        self.allow_expired_calibration = allow_expired_calibration
        self.lock = StationLock(config.id, lock_dir or config.lock_dir)
        self.devices: dict[str, Any] = {}
        self.services: dict[str, Any] = {}
        """What the station runs for its sections while open (the simulated bench, the
        protocol simulators), by section name, in the order they were started."""
        self._opened: list[str] = []
        self._is_open = False
        self._safe_lock = threading.RLock()
        self.last_safe_state: SafeStateReport | None = None
        self.camera_throughput: dict[str, Any] = {}
        """What the GigE cameras use of their shared link (``settings.camera_link_mbps``)."""
        self.leases: Held | None = None
        """The leases on the shared instruments (``settings.lease``); ``waited_s`` is the
        time open() waited for other holders."""

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Station:
        return cls(load_station_file(path), **kwargs)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def is_open(self) -> bool:
        return self._is_open

    def has(self, role: str) -> bool:
        return self.config.device(role) is not None

    def device(self, role: str) -> Any:
        """The open driver for ``role`` (``camera``, ``light``, ``camera.<name>``, ...)."""
        if role not in self.devices:
            raise KeyError(f"station {self.id} has no open device {role!r}; "
                           f"it has: {', '.join(self.devices) or 'none'}")
        return self.devices[role]

    def camera(self) -> Any:
        """The station's camera: ``camera``, else the first of ``cameras``."""
        for role in self.devices:
            if role == "camera" or role.startswith("camera."):
                return self.devices[role]
        raise KeyError(f"station {self.id} has no camera")

    @property
    def bench(self) -> Any:
        """The simulated bench (the ``bench`` service), or ``None``."""
        return self.services.get("bench")

    @property
    def simulators(self) -> Any:
        """The protocol simulators' hub (the ``simulators`` service), or ``None``."""
        return self.services.get("simulators")

    def _start_services(self) -> None:
        """Start the services of the file's sections (their owners registered the builders in
        :mod:`harness.registry`, so the station needs no import of :mod:`harness.sim`)."""
        for name, build in service_builders(self.config.sections):
            service = build(self.config.sections[name], dict(self.services), self.config)
            if service is not None:
                self.services[name] = service

    def open(self) -> Station:
        """Check calibration, take the lock, open every device; undo all on failure."""
        self.config.check_calibration(allow_expired=self.allow_expired_calibration)
        self.lock.acquire()
        try:
            self.leases = station_leases(self.config, self.lock.path.parent)
            self._start_services()
            context = DriverContext(self.config.id, self.config.source.parent, self.bench,
                                    dict(self.services))
            for spec in self.config.devices:
                driver = spec.cls(spec.role, spec.settings, context)
                self.devices[spec.role] = driver
                self._opened.append(spec.role)  # a half-opened device is made safe too
                driver.open()
            link = self.config.settings.camera_link_mbps
            if link is not None:
                from harness.devices.camera.bandwidth import check_station_cameras

                self.camera_throughput = check_station_cameras(
                    {r: d for r, d in self.devices.items()
                     if r == "camera" or r.startswith("camera.")}, link)
            self._is_open = True
            atexit.register(self._atexit)
        except BaseException:
            self.close()
            raise
        return self

    def safe_state(self) -> SafeStateReport:
        """Put every opened device in its safe state, in reverse order; never raises."""
        with self._safe_lock:
            reached: list[str] = []
            failed: list[tuple[str, str]] = []
            for role in reversed(self._opened):
                try:
                    self.devices[role].safe_state()
                    reached.append(role)
                except BaseException as exc:
                    failed.append((role, f"{type(exc).__name__}: {exc}"))
                    log.error("safe state of %s failed: %s", role, exc)
            for name, service in reversed(self.services.items()):
                if hasattr(service, "safe_state"):
                    try:
                        service.safe_state()
                    except Exception as exc:
                        failed.append((name, f"{type(exc).__name__}: {exc}"))
            report = SafeStateReport(tuple(reached), tuple(failed))
            self.last_safe_state = report
            return report

    def close(self) -> SafeStateReport:
        """Safe state, close every device (reverse order), release the lock."""
        with self._safe_lock:
            report = self.safe_state()
            for role in reversed(self._opened):
                try:
                    self.devices[role].close()
                except BaseException as exc:
                    log.error("closing %s failed: %s", role, exc)
            self._opened.clear()
            self.devices.clear()
            for name, service in reversed(self.services.items()):
                if hasattr(service, "close"):
                    try:
                        service.close()
                    except Exception as exc:
                        log.error("stopping the %s service failed: %s", name, exc)
            self.services.clear()
            self._is_open = False
            if self.leases is not None:
                self.leases.release()
            self.lock.release()
            atexit.unregister(self._atexit)
            return report

    def _atexit(self) -> None:
        if self._is_open:
            self.close()

    def identities(self) -> dict[str, DeviceIdentity]:
        return {role: dev.identity() for role, dev in self.devices.items()}

    def __enter__(self) -> Station:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        report = self.close()
        if exc is None and not report.ok:
            raise DeviceError("safe state not reached for " +
                              ", ".join(f"{r} ({m})" for r, m in report.failed))


def _raise_aborted(signum: int, frame: FrameType | None) -> None:
    raise Aborted(f"received {signal.Signals(signum).name}")


@contextmanager
def sigterm_aborts() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Aborted` in the main thread (like Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["SafeStateReport", "Station", "sigterm_aborts"]
