"""The simulated optical bench: the physical state every simulated part shares.

One :class:`Bench` per simulated station. Instrument simulators (light, meter, focus actuator,
chart changer, PSU) *set* this state from the commands they receive over their real protocols;
the simulated camera *reads* it when it renders a frame. The state is:

* light: ``light_on``, ``level_pct`` (0-100 % of full output), ``illuminant`` (a name from
  :data:`harness.sim.colour_response.ILLUMINANT_NAMES`, ``<CCT>K`` or ``mono:<nm>``) and
  ``full_scale_photons_per_um2_s``: the photon flux at the sensor centre, through the lens, from
  a perfect white (reflectance 1) target at 100 %; :meth:`Bench.photons_per_um2_s` is the flux
  now, :meth:`Bench.irradiance_w_m2` and :meth:`Bench.illuminance_lux` the same in radiometric
  and photometric units (what a meter at the sensor plane would read);
* ``chart``: the scene in front of the camera (``dark``, ``flat``, ``edge``, ``colour``,
  ``focus``, ``dotgrid``; :mod:`harness.sim.scene`);
* ``focus_um``: lens focus position in micrometres (image side; best focus is in the module file);
* ``ambient_c``: ambient temperature (the camera's die temperature follows it plus self-heating);
* ``powered``: the PSU output feeding the module (off: the camera vanishes; default True when no
  PSU is simulated);
* a simulated clock (:class:`SimClock`) that frames advance, so tests never sleep;
* ``camera_streaming``: set by the SimCamera while it acquires (a PSU simulator draws more
  current then);
* ``module_power``: the supply currents of the module on the bench (the ``power`` section of its
  module file, :class:`harness.sim.module.Power`), which a PSU simulator draws; ``None`` (no
  module known) leaves the PSU at the schema's defaults. :func:`build_bench` takes it from the
  station's simulated camera; a bench built by hand gets it from :meth:`Bench.set_module_power`.

Every setter takes the bench lock and bumps :attr:`Bench.version`, so readers can cache what
they derived from a state; :meth:`Bench.state` returns a consistent frozen snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import ConfigError
from harness.registry import register_section, register_service
from harness.sim.colour_response import check_illuminant, illuminance_lux, irradiance_w_m2
from harness.sim.module import Power, load_module
from harness.sim.scene import SCENES, check_scene
from harness.yamlio import LoadedYaml, validate_model


class LightConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    level_pct: float = Field(50.0, ge=0.0, le=100.0)
    full_scale_photons_per_um2_s: float = Field(2.0e6, gt=0.0, le=1e12)
    illuminant: str = "D65"

    @field_validator("illuminant")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            return check_illuminant(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class BenchConfig(BaseModel):
    """The ``bench:`` section of a station file (initial state); registered with
    :func:`harness.registry.register_section`, so the station loader checks it at load."""

    model_config = ConfigDict(extra="forbid")

    light: LightConfig = LightConfig()
    chart: str = "flat"
    focus_um: float = 0.0
    ambient_c: float = Field(25.0, ge=-40.0, le=100.0)
    powered: bool = True

    @field_validator("chart")
    @classmethod
    def _chart(cls, value: str) -> str:
        if value not in SCENES:
            raise ValueError(f"unknown chart {value!r}; allowed: {', '.join(SCENES)}")
        return value


class SimClock:
    """Simulated seconds: advanced by the camera frame by frame, never by the wall clock."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward (never back); returns the new time."""
        if seconds < 0:
            raise ValueError("time cannot run backwards")
        with self._lock:
            self._now += seconds
            return self._now


@dataclass(frozen=True)
class BenchState:
    """A consistent snapshot of the bench."""

    light_on: bool
    level_pct: float
    full_scale_photons_per_um2_s: float
    illuminant: str
    chart: str
    focus_um: float
    ambient_c: float
    powered: bool
    version: int

    @property
    def photons_per_um2_s(self) -> float:
        if not self.light_on or self.chart == "dark":
            return 0.0
        return self.full_scale_photons_per_um2_s * self.level_pct / 100.0


class Bench:
    """Thread-safe physical state of the simulated bench (see module docstring)."""

    def __init__(self, config: BenchConfig | None = None) -> None:
        cfg = config or BenchConfig()
        self.lock = threading.RLock()
        self.clock = SimClock()
        self.version = 0
        self.light_on = cfg.light.enabled
        self.level_pct = cfg.light.level_pct
        self.full_scale_photons_per_um2_s = cfg.light.full_scale_photons_per_um2_s
        self.illuminant = cfg.light.illuminant
        self.chart = cfg.chart
        self.focus_um = cfg.focus_um
        self.ambient_c = cfg.ambient_c
        self.powered = cfg.powered
        self.camera_streaming = False
        self.module_power: Power | None = None
        self.slot_power: dict[str, Power] = {}
        """Each slot's module supply currents on a multi-up bench (``slots:``)."""
        self.slot_powered: dict[str, bool] = {}
        """Each slot's supply, where a PSU channel feeds that slot (else ``powered``)."""
        self.slot_streaming: dict[str, bool] = {}
        self.closed = False

    def _bump(self) -> None:
        self.version += 1

    # -- setters (instrument simulators, tests and sequences) --------------------------------

    def set_light(self, on: bool | None = None, level_pct: float | None = None,
                  illuminant: str | None = None,
                  full_scale_photons_per_um2_s: float | None = None) -> None:
        """Change any of the light's properties (``None`` leaves one as it is)."""
        with self.lock:
            if level_pct is not None:
                if not 0.0 <= level_pct <= 100.0:
                    raise ValueError(f"light level {level_pct} % outside 0..100")
                self.level_pct = float(level_pct)
            if illuminant is not None:
                self.illuminant = check_illuminant(illuminant)
            if full_scale_photons_per_um2_s is not None:
                if full_scale_photons_per_um2_s <= 0:
                    raise ValueError("full-scale photon flux must be positive")
                self.full_scale_photons_per_um2_s = float(full_scale_photons_per_um2_s)
            if on is not None:
                self.light_on = bool(on)
            self._bump()

    def set_chart(self, chart: str) -> None:
        with self.lock:
            self.chart = check_scene(chart)
            self._bump()

    def set_focus(self, focus_um: float) -> None:
        with self.lock:
            self.focus_um = float(focus_um)
            self._bump()

    def set_ambient(self, celsius: float) -> None:
        with self.lock:
            self.ambient_c = float(celsius)
            self._bump()

    def set_powered(self, powered: bool) -> None:
        with self.lock:
            self.powered = bool(powered)
            self._bump()

    def set_slot_powered(self, slot: str, powered: bool) -> None:
        """The supply of ``slot``'s module (a PSU channel that feeds that slot)."""
        with self.lock:
            self.slot_powered[slot] = bool(powered)
            self._bump()

    def is_powered(self, slot: str | None) -> bool:
        """Whether ``slot``'s module has power (its own channel, else the bench's supply)."""
        with self.lock:
            if slot is not None and slot in self.slot_powered:
                return self.slot_powered[slot]
            return self.powered

    def set_module_power(self, power: Power | None) -> None:
        """The supply currents of the module now on the bench (``None``: unknown)."""
        with self.lock:
            self.module_power = power
            self._bump()

    # -- readers ------------------------------------------------------------------------------

    def state(self) -> BenchState:
        with self.lock:
            return BenchState(self.light_on, self.level_pct, self.full_scale_photons_per_um2_s,
                              self.illuminant, self.chart, self.focus_um, self.ambient_c,
                              self.powered, self.version)

    def photons_per_um2_s(self) -> float:
        """Photon flux at the sensor centre from a white target now (0 when off or capped)."""
        return self.state().photons_per_um2_s

    def irradiance_w_m2(self) -> float:
        s = self.state()
        return irradiance_w_m2(s.photons_per_um2_s, s.illuminant)

    def illuminance_lux(self) -> float:
        s = self.state()
        return illuminance_lux(s.photons_per_um2_s, s.illuminant)

    def as_dict(self) -> dict[str, Any]:
        s = self.state()
        return {"light_on": s.light_on, "level_pct": s.level_pct, "illuminant": s.illuminant,
                "full_scale_photons_per_um2_s": s.full_scale_photons_per_um2_s,
                "photons_per_um2_s": s.photons_per_um2_s, "chart": s.chart,
                "focus_um": s.focus_um, "ambient_c": s.ambient_c, "powered": s.powered,
                "time_s": self.clock.now()}

    # -- lifecycle ----------------------------------------------------------------------------

    def safe_state(self) -> None:
        """Light off (the PSU simulator, not the bench, decides about power)."""
        with self.lock:
            self.light_on = False
            self._bump()

    def close(self) -> None:
        self.safe_state()
        self.closed = True


def bench_config(data: Any, *, source: str = "bench",
                 doc: LoadedYaml | None = None) -> BenchConfig:
    """Validate a ``bench:`` mapping; errors name the station file line when ``doc`` is given."""
    where = doc or LoadedYaml(data, source, {})
    light = data.get("light") if isinstance(data, dict) else None
    if isinstance(light, dict) and any(isinstance(k, bool) for k in light):
        raise where.error(("bench", "light"), "YAML reads 'on' as true: write enabled: true "
                                              "(or false) to switch the light")
    return validate_model(where, BenchConfig, {} if data is None else data, prefix=("bench",))


@register_section("bench")
def load_bench_section(doc: LoadedYaml, raw: Any) -> BenchConfig:
    """The station file's ``bench:`` section, checked when the station file loads."""
    return bench_config(raw, doc=doc)


def build_bench(bench_cfg: BenchConfig | Mapping[str, Any] | None,
                station_config: Any = None) -> Bench:
    """The bench of a station's ``bench:`` section (the station's ``bench`` service passes the
    :class:`BenchConfig` its loader validated; a mapping is validated here)."""
    cfg = bench_cfg if isinstance(bench_cfg, BenchConfig) else bench_config(
        None if bench_cfg is None else dict(bench_cfg))
    bench = Bench(cfg)
    bench.set_module_power(_station_module_power(station_config))
    bench.slot_power = _slot_module_power(station_config)
    return bench


@register_service("bench")
def start_bench(section: BenchConfig, services: Mapping[str, Any], config: Any) -> Bench:
    """The station's ``bench`` service: the simulated bench of its ``bench:`` section."""
    return build_bench(section, config)


def _slot_module_power(station_config: Any) -> dict[str, Power]:
    """The ``power`` of each slot's simulated module (``camera.<slot>`` with ``driver: sim``)."""
    out: dict[str, Power] = {}
    for spec in getattr(station_config, "devices", ()):
        if spec.kind == "camera" and spec.driver == "sim" and "." in spec.role:
            path = Path(spec.settings.module).expanduser()
            if not path.is_absolute():
                path = Path(station_config.source).parent / path
            out[spec.role.split(".", 1)[1]] = load_module(path).power
    return out


def _station_module_power(station_config: Any) -> Power | None:
    """The ``power`` of the station's simulated camera module, when a PSU simulator feeds it
    (the first ``driver: sim`` camera: the PSU simulator powers one module, on channel 1)."""
    sims = getattr(station_config, "simulators", None) or {}
    if not any(getattr(s, "type", None) == "scpi-psu" for s in sims.values()):
        return None
    for spec in getattr(station_config, "devices", ()):
        if spec.kind == "camera" and spec.driver == "sim":
            path = Path(spec.settings.module).expanduser()
            if not path.is_absolute():  # as DriverContext.resolve_path: the station's folder
                path = Path(station_config.source).parent / path
            return load_module(path).power
    return None


__all__ = ["Bench", "BenchConfig", "BenchState", "LightConfig", "SimClock", "bench_config",
           "build_bench", "load_bench_section", "start_bench"]
