"""Driver registry (the idea of labgrid's ``target_factory``).

A driver class registers under a device kind and a name with :func:`register_driver`; the
station file then names it (``light: {driver: gardasoft, ...}``). Built-in drivers live in the
modules listed in :data:`BUILTIN_DRIVER_MODULES`; third-party packages add theirs through the
``harness.drivers`` entry-point group (the entry point's value is a module, or a driver class,
that registers on import).

A driver class has:

* ``kind: ClassVar[str]`` (one of :data:`DEVICE_KINDS`), set by the decorator;
* ``Settings: ClassVar[type[pydantic.BaseModel]]``: its station-file settings (``extra="forbid"``);
* ``__init__(self, name: str, settings: Settings, context: DriverContext)``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_KINDS: tuple[str, ...] = ("power", "light", "meter", "focus", "chart", "camera")
"""Device kinds in the order a station opens them (power first, camera last)."""

ENTRY_POINT_GROUP = "harness.drivers"

BUILTIN_DRIVER_MODULES: tuple[str, ...] = (
    "harness.devices.fakes",
    "harness.devices.camera.genicam",
    "harness.devices.replay.camera",
    "harness.devices.replay.instruments",
    "harness.sim.camera",
    "harness.devices.light",
    "harness.devices.power",
    "harness.devices.meter",
    "harness.devices.focus",
    "harness.devices.chart",
)

_registry: dict[str, dict[str, type[Any]]] = {kind: {} for kind in DEVICE_KINDS}
_loaded = False

T = TypeVar("T")


@dataclass
class DriverContext:
    """What a driver may need beyond its own settings."""

    station_id: str
    station_dir: Path
    bench: Any = None
    services: dict[str, Any] = field(default_factory=dict)

    def resolve_address(self, value: str) -> str:
        """An instrument address; ``sim:<name>`` asks the station's simulator hub for one.

        ``stations/sim.yaml`` starts protocol simulators (``simulators:`` section) on ptys and
        loopback ports chosen at run time; drivers name them as ``sim:light`` and so on.
        """
        if not value.startswith("sim:"):
            return value
        hub = self.services.get("simulators")
        if hub is None:
            raise ConfigError(f"address {value!r} names a simulator, but the station file has "
                              f"no 'simulators:' section", source=str(self.station_dir))
        return str(hub.address(value.removeprefix("sim:")))

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the station file, relative to the station file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.station_dir / path)


def register_driver(kind: str, name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make ``cls`` available to station files as ``driver: name``."""
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device kind {kind!r}; allowed: {', '.join(DEVICE_KINDS)}")

    def decorate(cls: type[T]) -> type[T]:
        existing = _registry[kind].get(name)
        if existing is not None and existing is not cls:
            qual = f"{existing.__module__}.{existing.__qualname__}"
            if qual != f"{cls.__module__}.{cls.__qualname__}":
                raise ValueError(f"{kind} driver {name!r} is already registered by {qual}")
        if not hasattr(cls, "Settings"):
            raise TypeError(f"driver {cls.__qualname__} has no Settings model")
        cls.kind = kind  # type: ignore[attr-defined]
        cls.driver_name = name  # type: ignore[attr-defined]
        _registry[kind][name] = cls
        return cls

    return decorate


def _import_builtin(module: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the module exists but a dependency of it is missing
            raise
        log.debug("built-in driver module %s not present", module)


def load_drivers() -> None:
    """Import built-in driver modules and entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_DRIVER_MODULES:
        _import_builtin(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plug-in must not break every station
            log.warning("driver entry point %s (%s) failed to load: %s", ep.name, ep.value, exc)


def registered_drivers(kind: str) -> list[str]:
    """Names registered for ``kind``, sorted."""
    load_drivers()
    return sorted(_registry.get(kind, {}))


def driver_class(kind: str, name: str) -> type[Any]:
    """The class registered as ``name`` for ``kind``; ``KeyError`` if none."""
    load_drivers()
    return _registry[kind][name]
