"""Start the protocol simulators a station file names, and hand out their addresses.

``stations/sim.yaml`` has a ``simulators:`` section; :class:`~harness.station.station.Station`
starts them (the ``simulators`` service, :func:`start_simulators_service`) before it builds the
drivers, and drivers resolve addresses like ``sim:light`` through :meth:`SimulatorHub.address`::

    simulators:
      light: {type: scpi-led, light: {max_lux: 2000, gamma: 1.2}}
      psu:   {type: scpi-psu}
      meter: {type: cs100a, light: light}
      focus: {type: focus-stage}
      chart: {type: chart-wheel}
      pm:    {type: pm100}                # reads the bench's sensor-plane irradiance
    light: {driver: scpi-led, resource: "sim:light"}

Each entry's ``type`` picks the simulator (:data:`SIMULATOR_TYPES`), ``transport`` overrides its
default server (``pty`` or ``tcp``), ``faults`` scripts faults (:mod:`harness.sim.faults`).
The section and its service are registered in :mod:`harness.registry`: the station loader
checks every entry against its type's ``Spec`` when the station file loads
(:func:`simulator_specs`), so a typo stops ``harness station check`` and ``pytest --station``
at start-up, naming the line.

With :data:`STATE_FILE_ENV` set, :meth:`SimulatorHub.close` writes every simulator's final state
(:meth:`SimulatorHub.states`) to that file as JSON, so a test can check the safe state of a
station that ran in another process (the fault matrix, :mod:`harness.run.fault_matrix`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import ConfigError
from harness.registry import register_section, register_service
from harness.sim.faults import FaultPlan
from harness.sim.instruments.base import LineSimulator, PtyServer, SimSpec, TcpServer, serve
from harness.sim.instruments.chart_wheel import ChartWheelSimulator, ChartWheelSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.cs100a import Cs100aSimulator, Cs100aSpec
from harness.sim.instruments.focus_stage import FocusStageSimulator
from harness.sim.instruments.gardasoft import GardasoftSimulator
from harness.sim.instruments.pm100 import Pm100Simulator
from harness.sim.instruments.scpi_led import ScpiLedSimulator
from harness.sim.instruments.scpi_psu import ScpiPsuSimulator
from harness.sim.scene import SCENES
from harness.yamlio import LoadedYaml, close_matches, validate_model

STATE_FILE_ENV = "HARNESS_SIM_STATE_FILE"
"""Environment variable naming the JSON file the hub writes its simulators' final state to."""

SIMULATOR_TYPES: dict[str, type[Any]] = {
    "scpi-led": ScpiLedSimulator,
    "gardasoft": GardasoftSimulator,
    "scpi-psu": ScpiPsuSimulator,
    "cs100a": Cs100aSimulator,
    "focus-stage": FocusStageSimulator,
    "chart-wheel": ChartWheelSimulator,
    "pm100": Pm100Simulator,
}

LIGHT_TYPES: tuple[str, ...] = ("scpi-led", "gardasoft")
"""Simulator types with a light ``output`` that a meter (``cs100a``) can read."""


class SimulatorHub:
    """The running simulators of one station, each with its server."""

    def __init__(self, bench: Any = None) -> None:
        self.link = BenchLink(bench)
        self._sims: dict[str, LineSimulator] = {}
        self._servers: dict[str, PtyServer | TcpServer] = {}

    def add(self, name: str, sim: LineSimulator, transport: str | None = None) -> None:
        self._sims[name] = sim
        self._servers[name] = serve(sim, transport)

    def names(self) -> list[str]:
        return list(self._sims)

    def address(self, name: str) -> str:
        """The pty path (a stable symlink) or ``TCPIP0::127.0.0.1::PORT::SOCKET`` of ``name``."""
        try:
            return self._servers[name].address
        except KeyError:
            raise ConfigError(f"no simulator {name!r}; simulators: "
                              f"{', '.join(self._sims) or 'none'}", field="sim:" + name) from None

    def simulator(self, name: str) -> Any:
        return self._sims[name]

    def server(self, name: str) -> PtyServer | TcpServer:
        return self._servers[name]

    def apply(self, plan: FaultPlan) -> None:
        """Arm the plan's instrument faults (the camera faults are the SimCamera's)."""
        for name, faults in plan.instruments.items():
            sim = self._sims.get(name)
            if sim is None:
                raise ConfigError(f"fault plan names no simulator {name!r}; simulators: "
                                  f"{', '.join(self._sims) or 'none'}")
            for fault in faults:
                sim.faults.arm(fault)

    def states(self) -> dict[str, dict[str, Any]]:
        """Every simulator's :meth:`describe` plus its type and the faults that fired."""
        out: dict[str, dict[str, Any]] = {}
        for name, sim in self._sims.items():
            try:
                state: dict[str, Any] = dict(sim.describe())
            except Exception as exc:  # a state we cannot read is reported, not hidden
                state = {"name": name, "describe_error": f"{type(exc).__name__}: {exc}"}
            state["type"] = getattr(getattr(sim, "spec", None), "type", "")
            state["faults_fired"] = list(sim.faults.fired)
            out[name] = state
        return out

    def close(self) -> None:
        target = os.environ.get(STATE_FILE_ENV)
        if target and self._servers:
            with contextlib.suppress(OSError):
                Path(target).write_text(json.dumps(self.states(), default=str, indent=1))
        self.link.close()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                server.close()
        self._servers.clear()

    def __enter__(self) -> SimulatorHub:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _bench_probe(bench: Any) -> Any:
    """Illuminance and illuminant of the bench's own light (no light simulator on the station)."""
    return lambda: (float(bench.illuminance_lux()), str(bench.illuminant))


def _irradiance_probe(bench: Any) -> Any:
    """Sensor-plane irradiance (W/m2) and spectrum of the bench's light now (a PM100 head
    beside the sensor); ``None`` without a bench (the head then reads 0)."""
    if bench is None:
        return None

    def probe() -> tuple[float, str]:
        from harness.sim.colour_response import irradiance_w_m2

        state = bench.state()
        return irradiance_w_m2(state.photons_per_um2_s, state.illuminant), str(state.illuminant)

    return probe


def _light_probe(hub: SimulatorHub, name: str, spec: Cs100aSpec, source: str) -> Any:
    lights = {n: s for n, s in hub._sims.items() if hasattr(s, "output")}
    target = spec.light or next(iter(lights), None)
    if target is None:
        return _bench_probe(hub.link.bench) if hub.link.bench is not None else None
    sim = lights.get(target)
    if sim is None:
        raise ConfigError(f"no light simulator {target!r}; light simulators: "
                          f"{', '.join(lights) or 'none'}", source=source,
                          field=f"simulators.{name}.light")
    output = sim.output
    return lambda: (output.illuminance_lux(), output.illuminant)


def simulator_specs(raw: Any, *, doc: LoadedYaml | None = None,
                    bench: bool = False) -> dict[str, SimSpec]:
    """Validate a ``simulators:`` mapping (name -> spec): each entry by the ``Spec`` model of
    its ``type``, a meter's ``light`` must name a light simulator and, with a ``bench``, a
    chart wheel's charts must be scenes the simulated camera renders. Errors are one line,
    naming the station file's line when ``doc`` (the station file) is given."""
    where = doc or LoadedYaml(raw, "", {})
    allowed = ", ".join(SIMULATOR_TYPES)
    if not isinstance(raw, Mapping):
        raise where.error(("simulators",), "must be a mapping of name -> {type: ..., ...}; "
                                           f"types: {allowed}")
    specs: dict[str, SimSpec] = {}
    for name, entry in raw.items():
        path = ("simulators", str(name))
        if not isinstance(entry, Mapping):
            raise where.error(path, f"must be a mapping with a 'type' key; types: {allowed}")
        kind = entry.get("type")
        if kind is None:
            raise where.error(path, f"required key 'type' is missing; types: {allowed}")
        if not isinstance(kind, str) or kind not in SIMULATOR_TYPES:
            raise where.error((*path, "type"), f"unknown simulator type {kind!r}"
                                               f"{close_matches(str(kind), SIMULATOR_TYPES)}; "
                                               f"allowed: {allowed}")
        model: type[SimSpec] = SIMULATOR_TYPES[kind].Spec
        specs[str(name)] = validate_model(where, model, dict(entry), prefix=path)
    lights = [n for n, s in specs.items() if s.type in LIGHT_TYPES]
    for name, spec in specs.items():
        if isinstance(spec, Cs100aSpec) and spec.light is not None and spec.light not in lights:
            raise where.error(("simulators", name, "light"),
                              f"no light simulator {spec.light!r}"
                              f"{close_matches(spec.light, lights)}; light simulators: "
                              f"{', '.join(lights) or 'none'}")
        if bench and isinstance(spec, ChartWheelSpec):
            unknown = [c for c in spec.charts if c not in SCENES]
            if unknown:
                raise where.error(("simulators", name, "charts"),
                                  f"chart(s) {', '.join(unknown)} are not scenes the simulated "
                                  f"camera can render; allowed: {', '.join(SCENES)}")
    return specs


@register_section("simulators")
def load_simulators_section(doc: LoadedYaml, raw: Any) -> dict[str, SimSpec]:
    """The station file's ``simulators:`` section, checked when the station file loads (a
    ``bench:`` beside it makes the chart wheel's charts scenes of the simulated camera)."""
    has_bench = isinstance(doc.data, dict) and doc.data.get("bench") is not None
    return simulator_specs(raw, doc=doc, bench=has_bench)


def start_simulators(specs: Mapping[str, SimSpec | Mapping[str, Any]], bench: Any = None,
                     station_config: Any = None) -> SimulatorHub:
    """Start every simulator of ``specs`` (name -> spec), wire meters to lights. The Station
    passes the specs its loader validated; raw mappings are validated here first."""
    source = str(getattr(station_config, "source", "") or "simulators")
    validated: dict[str, SimSpec]
    if all(isinstance(s, SimSpec) for s in specs.values()):
        validated = {name: s for name, s in specs.items() if isinstance(s, SimSpec)}
    else:
        validated = simulator_specs(specs, bench=bench is not None)
    hub = SimulatorHub(bench)
    try:
        clock = hub.link.clock
        meters: list[tuple[str, Cs100aSimulator, Cs100aSpec]] = []
        for name, spec in validated.items():
            cls = SIMULATOR_TYPES[spec.type]
            sim = cls(name, spec, clock=clock, link=hub.link)
            if isinstance(sim, Cs100aSimulator):
                assert isinstance(spec, Cs100aSpec)
                meters.append((name, sim, spec))
            if isinstance(sim, Pm100Simulator) and (probe := _irradiance_probe(bench)):
                sim.probe = probe
            hub.add(name, sim, spec.transport)
        for name, meter, spec in meters:
            probe = _light_probe(hub, name, spec, source)
            if probe is not None:
                meter.probe = probe
        hub.link.start()
    except BaseException:
        hub.close()
        raise
    return hub


@register_service("simulators")
def start_simulators_service(section: Mapping[str, SimSpec], services: Mapping[str, Any],
                             config: Any) -> SimulatorHub | None:
    """The station's ``simulators`` service: the hub of its ``simulators:`` section, coupled
    to the ``bench`` service when there is one (none for an empty section)."""
    return start_simulators(section, services.get("bench"), config) if section else None


__all__ = ["LIGHT_TYPES", "SIMULATOR_TYPES", "STATE_FILE_ENV", "SimulatorHub",
           "load_simulators_section", "simulator_specs", "start_simulators",
           "start_simulators_service"]
