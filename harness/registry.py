"""The registries that lower floors fill and the station reads (the idea of labgrid's
``factory.py``): drivers, station-file sections and station services.

This module is neutral ground: it imports only the ground floor. A driver registers here
without importing the station, the simulator registers its sections and services here without
importing the station, and the station finds all of them without importing the devices or the
simulator (the built-in owners are named below as strings and imported on first use, so a real
station never imports :mod:`harness.sim`).

**Drivers.** A driver class registers under a device kind and a name with
:func:`register_driver`; the station file then names it (``light: {driver: gardasoft, ...}``).
Built-in drivers live in the modules listed in :data:`BUILTIN_DRIVER_MODULES`; third-party
packages add theirs through the ``harness.drivers`` entry-point group (the entry point's value
is a module, or a driver class, that registers on import). A driver class has:

* ``kind: ClassVar[str]`` (one of :data:`DEVICE_KINDS`), set by the decorator;
* ``Settings: ClassVar[type[pydantic.BaseModel]]``: its station-file settings (``extra="forbid"``);
* ``__init__(self, name: str, settings: Settings, context: DriverContext)``.

**Sections.** The station loader (:mod:`harness.station.schema`) types the sections it owns
itself (``id``, devices, ``calibration``, ``settings``). A section that belongs to a lower floor,
such as the simulator's ``bench:`` and ``simulators:``, is typed by that floor: its module
registers a loader with :func:`register_section`, and the station loader calls it when the file
has the section, so a typo there is a start-up error with the same file:line line as any other.

**Services.** What a station runs for such a section while it is open (the simulated bench, the
protocol simulators) is built by the section's owner: it registers a builder with
:func:`register_service`, and :class:`harness.station.Station` builds each service before it
opens the devices, hands it to the drivers in :attr:`DriverContext.services`, puts it in its
safe state after the devices and closes it last.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError
from harness.yamlio import LoadedYaml

log = logging.getLogger(__name__)

T = TypeVar("T")

# ---- drivers -------------------------------------------------------------------------------

DEVICE_KINDS: tuple[str, ...] = ("power", "light", "meter", "radiometer", "focus", "chart",
                                 "camera")
"""Device kinds in the order a station opens them (power first, camera last)."""

ENTRY_POINT_GROUP = "harness.drivers"

BUILTIN_DRIVER_MODULES: tuple[str, ...] = (
    "harness.devices.fakes",
    "harness.devices.camera.genicam",
    "harness.replay.camera",
    "harness.replay.instruments",
    "harness.sim.camera",
    "harness.devices.light",
    "harness.devices.power",
    "harness.devices.meter",
    "harness.devices.optical_power",
    "harness.devices.focus",
    "harness.devices.chart",
)
"""The modules whose import registers the built-in drivers (imported by :func:`load_drivers`)."""

_drivers: dict[str, dict[str, type[Any]]] = {kind: {} for kind in DEVICE_KINDS}
_drivers_loaded = False


@dataclass
class DriverContext:
    """What a driver may need beyond its own settings."""

    station_id: str
    station_dir: Path
    bench: Any = None
    """The station's ``bench`` service (the simulated bench), or ``None``."""
    services: dict[str, Any] = field(default_factory=dict)
    """The station's services by section name (see :func:`register_service`); drivers may
    also share state here (the replay drivers keep their recording under ``replay``)."""

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
        existing = _drivers[kind].get(name)
        if existing is not None and existing is not cls:
            qual = f"{existing.__module__}.{existing.__qualname__}"
            if qual != f"{cls.__module__}.{cls.__qualname__}":
                raise ValueError(f"{kind} driver {name!r} is already registered by {qual}")
        if not hasattr(cls, "Settings"):
            raise TypeError(f"driver {cls.__qualname__} has no Settings model")
        cls.kind = kind  # type: ignore[attr-defined]
        cls.driver_name = name  # type: ignore[attr-defined]
        _drivers[kind][name] = cls
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
    global _drivers_loaded
    if _drivers_loaded:
        return
    _drivers_loaded = True
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
    return sorted(_drivers.get(kind, {}))


def driver_class(kind: str, name: str) -> type[Any]:
    """The class registered as ``name`` for ``kind``; ``KeyError`` if none."""
    load_drivers()
    return _drivers[kind][name]


# ---- station-file sections -----------------------------------------------------------------

SectionLoader = Callable[[LoadedYaml, Any], Any]
"""``(doc, raw) -> validated``: check a station file's section ``raw`` (``doc.data[name]``,
never ``None``) and return its typed value; raise one-line errors with ``doc.error`` or
:func:`harness.yamlio.validate_model`, which name the station file's line."""

BUILTIN_SECTIONS: dict[str, str] = {
    "bench": "harness.sim.bench",
    "simulators": "harness.sim.instruments.hub",
}
"""Section name -> the module that registers its loader (and its service) on import. The
order is the order in which their services are built: the simulators couple to the bench."""

_sections: dict[str, SectionLoader] = {}


def _registered_once(table: dict[str, Any], what: str, name: str, fn: Any) -> None:
    existing = table.get(name)
    if existing is not None and (existing.__module__, existing.__qualname__) != (
            fn.__module__, fn.__qualname__):
        raise ValueError(f"{what} {name!r} is already registered by "
                         f"{existing.__module__}.{existing.__qualname__}")
    table[name] = fn


def register_section(name: str) -> Callable[[SectionLoader], SectionLoader]:
    """Decorator: ``fn`` checks the station file's top-level section ``name``."""
    def decorate(fn: SectionLoader) -> SectionLoader:
        _registered_once(_sections, "station section", name, fn)
        return fn

    return decorate


def section_names() -> list[str]:
    """Every section a station file may have beside the station's own keys, sorted."""
    return sorted({*BUILTIN_SECTIONS, *_sections})


def _import_owner(name: str) -> None:
    if name not in _sections and name in BUILTIN_SECTIONS:
        importlib.import_module(BUILTIN_SECTIONS[name])


def section_loader(name: str) -> SectionLoader:
    """The loader of section ``name``, importing its owner on first use; ``KeyError`` if no
    module owns it."""
    _import_owner(name)
    return _sections[name]


# ---- station services ----------------------------------------------------------------------

ServiceBuilder = Callable[[Any, Mapping[str, Any], Any], Any]
"""``(section, services, config) -> service``: start what the station runs for its section
(``section`` is the value the section's loader returned, ``services`` the services built
before this one by name, ``config`` the :class:`harness.station.schema.StationConfig`).
The service may have ``safe_state()`` (called after the devices') and ``close()`` (called when
the station closes, services in reverse order)."""

_services: dict[str, ServiceBuilder] = {}


def register_service(name: str) -> Callable[[ServiceBuilder], ServiceBuilder]:
    """Decorator: ``fn`` builds the service of station-file section ``name``."""
    def decorate(fn: ServiceBuilder) -> ServiceBuilder:
        _registered_once(_services, "station service", name, fn)
        return fn

    return decorate


def service_builders(names: Iterable[str]) -> list[tuple[str, ServiceBuilder]]:
    """The builders of the sections in ``names`` that have a service, in build order: the
    built-in sections in :data:`BUILTIN_SECTIONS` order, then the others in the order they
    registered. A section without a service is left out."""
    wanted = set(names)
    for name in wanted:
        _import_owner(name)
    builtin = list(BUILTIN_SECTIONS)
    registered = list(_services)

    def order(name: str) -> tuple[int, int]:
        return (0, builtin.index(name)) if name in builtin else (1, registered.index(name))

    return [(name, _services[name]) for name in sorted(wanted & set(_services), key=order)]


__all__ = ["BUILTIN_DRIVER_MODULES", "BUILTIN_SECTIONS", "DEVICE_KINDS", "ENTRY_POINT_GROUP",
           "DriverContext", "SectionLoader", "ServiceBuilder", "driver_class", "load_drivers",
           "register_driver", "register_section", "register_service", "registered_drivers",
           "section_loader", "section_names", "service_builders"]
