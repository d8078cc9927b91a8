"""The process-wide harvesters manager: one Harvester, one ImageAcquirer per device.

Why a singleton (traps numbered as in docs/standards.md#harvesters-and-genapi-traps):

* a second ``Harvester`` loading the same producer while the first lives silently sees 0
  devices (trap 1): so this process has exactly one, created on first use;
* ``h.create()`` twice on one device raises ``ResourceInUseException`` (trap 2) and destroyed
  acquirers leak (trap 7, harvesters #248): so an acquirer is created once per device and parked
  for reuse when its driver closes, never created and destroyed per test;
* ``h.update()`` destroys every live acquirer (harvesters #475, and ``Harvester.update``
  itself): so re-enumeration bumps :attr:`HarvesterManager.generation`, and a driver holding an
  acquirer of an older generation asks for a new one before using it;
* ``ImageAcquirer.__init__`` replaces the process's SIGINT handler with one that destroys the
  acquirer and swallows Ctrl-C: the manager puts the previous handler back, so Ctrl-C still
  aborts a run through the harness's own handler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.devices.camera.nodemap import GENAPI_LOCK
from harness.errors import CameraError, ConfigError

log = logging.getLogger(__name__)

GENTL_ENV = "GENICAM_GENTL64_PATH"
"""Folders (``os.pathsep``-separated) searched for ``*.cti`` producers, per the GenTL standard."""

_ACCESS_STATUS = {0: "unknown", 1: "available", 2: "read-only", 3: "no access", 4: "busy",
                  5: "open (read-write)", 6: "open (read-only)"}


def producers_from_env(env: dict[str, str] | None = None) -> list[str]:
    """Every ``*.cti`` file in the folders named by ``GENICAM_GENTL64_PATH`` (sorted per folder)."""
    value = (os.environ if env is None else env).get(GENTL_ENV, "")
    found: list[str] = []
    for folder in filter(None, value.split(os.pathsep)):
        path = Path(folder)
        if path.is_file() and path.suffix == ".cti":
            found.append(str(path.resolve()))
        elif path.is_dir():
            found.extend(str(p.resolve()) for p in sorted(path.glob("*.cti")))
    return found


def check_producers(paths: Iterable[str | Path], *, source: str = "cti") -> list[str]:
    """Absolute paths of existing ``.cti`` files; a one-line ConfigError for a missing one."""
    out: list[str] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise ConfigError(f"GenTL producer {str(p)!r} not found (a .cti file)", field=source)
        resolved = str(path.resolve())
        if resolved not in out:
            out.append(resolved)
    return out


@dataclass(frozen=True)
class DeviceEntry:
    """One device as its producer lists it (GenTL device info)."""

    index: int
    id: str
    vendor: str
    model: str
    serial: str
    user_name: str
    version: str
    tl_type: str
    access_status: str
    producer: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def label(self) -> str:
        return f"{self.vendor} {self.model} s/n {self.serial} ({self.id})"


def _info_value(props: dict[str, Any], key: str) -> str:
    value = props.get(key)
    return "" if value is None else str(value)


class HarvesterManager:
    """Owns the process's ``Harvester`` and hands out one ``ImageAcquirer`` per device."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._harvester: Any = None
        self._producers: list[str] = []
        self._entries: list[DeviceEntry] = []
        self._infos: list[Any] = []
        self._parked: dict[str, Any] = {}  # device id -> acquirer
        self._owners: dict[str, str] = {}  # device id -> owner name
        self.generation = 0

    @property
    def harvester(self) -> Any:
        """The one ``harvesters.core.Harvester`` of this process (created on first use)."""
        with self._lock:
            if self._harvester is None:
                from harvesters.core import Harvester

                self._harvester = Harvester()
            return self._harvester

    @property
    def producers(self) -> tuple[str, ...]:
        return tuple(self._producers)

    def add_producers(self, paths: Sequence[str]) -> bool:
        """Load producers not loaded yet; re-enumerate if any was new. Returns whether it did."""
        with self._lock:
            new = [p for p in paths if p not in self._producers]
            if not new:
                return False
            for path in new:
                self.harvester.add_file(path)
                self._producers.append(path)
            self.update()
            return True

    def update(self) -> None:
        """Re-enumerate every producer's devices.

        ``Harvester.update`` destroys every live acquirer (#475), so every parked or in-use
        acquirer is dropped and :attr:`generation` increases: drivers re-create theirs lazily.
        """
        with self._lock, GENAPI_LOCK:
            self.harvester.update()
            self._parked.clear()
            self.generation += 1
            self._infos = list(self.harvester.device_info_list)
            self._entries = [self._entry(i, info) for i, info in enumerate(self._infos)]

    def _entry(self, index: int, info: Any) -> DeviceEntry:
        props = info.property_dict
        producer = ""
        try:
            producer = str(info.parent.parent.module.path_name)
        except Exception:  # a producer that does not report its path
            producer = ""
        status = props.get("access_status")
        return DeviceEntry(
            index=index, id=_info_value(props, "id_"), vendor=_info_value(props, "vendor"),
            model=_info_value(props, "model"), serial=_info_value(props, "serial_number"),
            user_name=_info_value(props, "user_defined_name"),
            version=_info_value(props, "version"), tl_type=_info_value(props, "tl_type"),
            access_status=_ACCESS_STATUS.get(status, str(status)) if status is not None else "",
            producer=producer)

    def devices(self) -> list[DeviceEntry]:
        """The devices found at the last enumeration (see :meth:`update`)."""
        with self._lock:
            return list(self._entries)

    def acquire(self, entry: DeviceEntry, owner: str) -> Any:
        """The acquirer for ``entry``, created once and reused; ``owner`` marks it in use."""
        from harvesters.core import ParameterKey, ParameterSet

        with self._lock:
            holder = self._owners.get(entry.id)
            if holder is not None and holder != owner:
                raise CameraError(f"{entry.label()} is already open as {holder!r} in this process")
            ia = self._parked.get(entry.id)
            if ia is None or not ia.is_valid():
                info = self._find_info(entry)
                # Chunks are parsed by the driver under GENAPI_LOCK, not inside fetch().
                config = ParameterSet({ParameterKey.ENABLE_AUTO_CHUNK_DATA_UPDATE: False})
                main = threading.current_thread() is threading.main_thread()
                previous = signal.getsignal(signal.SIGINT) if main else None
                try:
                    with GENAPI_LOCK:
                        ia = self.harvester.create(info, config=config)
                except Exception as exc:
                    raise CameraError(f"cannot open {entry.label()}: "
                                      f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
                finally:
                    if main and previous is not None:
                        signal.signal(signal.SIGINT, previous)
                self._parked[entry.id] = ia
            self._owners[entry.id] = owner
            return ia

    def _find_info(self, entry: DeviceEntry) -> Any:
        for info, known in zip(self._infos, self._entries, strict=True):
            if known.id == entry.id and known.producer == entry.producer:
                return info
        raise CameraError(f"{entry.label()} is no longer listed by its producer")

    def release(self, entry: DeviceEntry, owner: str) -> None:
        """Give the device back: its acquirer stays parked (open) for the next user."""
        with self._lock:
            if self._owners.get(entry.id) == owner:
                del self._owners[entry.id]

    def discard(self, entry: DeviceEntry) -> None:
        """Destroy the acquirer of a device that vanished (before :meth:`update`)."""
        with self._lock:
            ia = self._parked.pop(entry.id, None)
            if ia is None:
                return
            try:
                with GENAPI_LOCK:
                    ia.destroy()
            except Exception as exc:  # the device is gone: its handles may be dead already
                log.debug("destroying the acquirer of %s: %s", entry.label(), exc)
            h = self.harvester
            if ia in h.image_acquirers:  # harvesters keeps destroyed ones (#248)
                h.image_acquirers.remove(ia)

    def in_use(self) -> dict[str, str]:
        with self._lock:
            return dict(self._owners)


_MANAGER: HarvesterManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_manager() -> HarvesterManager:
    """The process's one :class:`HarvesterManager`."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = HarvesterManager()
        return _MANAGER


__all__ = ["GENTL_ENV", "DeviceEntry", "HarvesterManager", "check_producers", "get_manager",
           "producers_from_env"]
