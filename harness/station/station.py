"""The station lifecycle: build drivers, open them in order, hold the lock, reach safe state.

Drivers open in :data:`~harness.registry.DEVICE_KINDS` order (power before camera)
and are put in their safe state in reverse order on every exit path: normal end, assertion
failure, exception, ``KeyboardInterrupt`` and SIGTERM (turned into :class:`Aborted`). A
``safe_state`` that raises is recorded and does not stop the others.
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
from harness.errors import Aborted, DeviceError, HarnessError
from harness.registry import DriverContext
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
        self.bench: Any = None
        self.simulators: Any = None
        self._opened: list[str] = []
        self._is_open = False
        self._safe_lock = threading.RLock()
        self.last_safe_state: SafeStateReport | None = None

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

    def _build_bench(self) -> dict[str, Any]:
        """Build the simulated bench and start protocol simulators, if the station has them."""
        services: dict[str, Any] = {}
        if self.config.bench is not None:
            from harness.sim.bench import build_bench  # lazy: only simulated stations need it

            self.bench = build_bench(self.config.bench, self.config)
        if self.config.simulators:
            from harness.sim.instruments.hub import start_simulators

            self.simulators = start_simulators(self.config.simulators, self.bench, self.config)
            services["simulators"] = self.simulators
        return services

    def open(self) -> Station:
        """Check calibration, take the lock, open every device; undo all on failure."""
        self.config.check_calibration(allow_expired=self.allow_expired_calibration)
        self.lock.acquire()
        try:
            services = self._build_bench()
            context = DriverContext(self.config.id, self.config.source.parent, self.bench,
                                    services)
            for spec in self.config.devices:
                driver = spec.cls(spec.role, spec.settings, context)
                self.devices[spec.role] = driver
                self._opened.append(spec.role)  # a half-opened device is made safe too
                driver.open()
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
            if self.bench is not None and hasattr(self.bench, "safe_state"):
                try:
                    self.bench.safe_state()
                except Exception as exc:
                    failed.append(("bench", f"{type(exc).__name__}: {exc}"))
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
            if self.simulators is not None:
                try:
                    self.simulators.close()
                except Exception as exc:
                    log.error("stopping the simulators failed: %s", exc)
                self.simulators = None
            if self.bench is not None and hasattr(self.bench, "close"):
                try:
                    self.bench.close()
                except Exception as exc:
                    log.error("closing the bench failed: %s", exc)
            self.bench = None
            self._is_open = False
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


__all__ = ["HarnessError", "SafeStateReport", "Station", "sigterm_aborts"]
