"""Station light calibration: the light's level -> illuminance (and CCT) curve, measured.

``harness station calibrate FILE`` steps the light through its range, waits at each level until
the meter is stable (:func:`harness.station.stability.wait_stable`), and stores the curve next
to the station file as ``<station>.light-cal.json`` (``stations/sim.yaml`` ->
``stations/sim.light-cal.json``) with the date and the light's and meter's identities.
Sequences then ask :meth:`LightCalibration.level_for_lux` for the level that gives a requested
illuminance: monotone piecewise-cubic (PCHIP, Fritsch & Carlson 1980) interpolation of the
inverse curve, which cannot overshoot between points, so a monotone curve stays monotone.

``harness station check`` reports a calibration that is missing, unreadable, older than
``light_calibration_max_age_days`` (station ``settings:``, default 30), or made with another
light or meter (driver or serial number) through :func:`calibration_problem`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.devices.base import DeviceIdentity
from harness.errors import ConfigError, InstrumentError
from harness.station.schema import DEFAULT_LIGHT_CALIBRATION_MAX_AGE_DAYS
from harness.station.stability import StabilityTrace, wait_stable

SUFFIX = ".light-cal.json"
DEFAULT_MAX_AGE_DAYS = DEFAULT_LIGHT_CALIBRATION_MAX_AGE_DAYS
FORMAT_VERSION = 1


class CalPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level_pct: float = Field(ge=0.0, le=100.0)
    lux: float = Field(ge=0.0)
    cct_k: float | None = None
    x: float | None = None
    y: float | None = None
    spread_pct: float = Field(0.0, ge=0.0)


class InstrumentRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str
    vendor: str
    model: str
    serial: str

    @classmethod
    def of(cls, ident: DeviceIdentity) -> InstrumentRef:
        return cls(driver=ident.driver, vendor=ident.vendor, model=ident.model,
                   serial=ident.serial)


class LightCalibration(BaseModel):
    """A stored light calibration (the JSON file's schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    station: str
    created: dt.datetime
    light: InstrumentRef
    meter: InstrumentRef
    unit: str = "lx"
    points: tuple[CalPoint, ...] = Field(min_length=2)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(levels, lux) sorted by level."""
        pts = sorted(self.points, key=lambda p: p.level_pct)
        return (np.array([p.level_pct for p in pts]), np.array([p.lux for p in pts]))

    def check_monotone(self, source: str = "light calibration") -> None:
        levels, lux = self.curve()
        if np.any(np.diff(levels) <= 0) or np.any(np.diff(lux) <= 0):
            raise ConfigError("illuminance does not rise strictly with level; recalibrate",
                              source=source, field="points")

    def lux_for_level(self, level_pct: float) -> float:
        from scipy.interpolate import PchipInterpolator

        levels, lux = self.curve()
        if not levels[0] <= level_pct <= levels[-1]:
            raise ConfigError(f"level {level_pct} % outside the calibrated "
                              f"{levels[0]:g}..{levels[-1]:g} %", field="level")
        return float(PchipInterpolator(levels, lux)(level_pct))

    def level_for_lux(self, lux: float) -> float:
        """The level that gives ``lux`` (monotone interpolation of the measured curve)."""
        from scipy.interpolate import PchipInterpolator

        self.check_monotone()
        levels, values = self.curve()
        if not values[0] <= lux <= values[-1]:
            raise ConfigError(f"{lux:g} {self.unit} outside the calibrated range "
                              f"{values[0]:.4g}..{values[-1]:.4g} {self.unit} (calibrated "
                              f"levels {levels[0]:g}..{levels[-1]:g} %)", field="lux")
        return float(np.clip(PchipInterpolator(values, levels)(lux), levels[0], levels[-1]))

    def cct_for_level(self, level_pct: float) -> float | None:
        pts = [p for p in self.points if p.cct_k is not None]
        if not pts:
            return None
        pts.sort(key=lambda p: p.level_pct)
        return float(np.interp(level_pct, [p.level_pct for p in pts],
                               [float(p.cct_k or 0.0) for p in pts]))

    def age_days(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (now - self.created).total_seconds() / 86400.0

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n",
                       encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LightCalibration:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("light calibration not found (run 'harness station calibrate')",
                              source=str(path)) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"unreadable light calibration: {exc}", source=str(path)) from None
        try:
            cal = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(err["msg"], source=str(path),
                              field=".".join(str(p) for p in err["loc"]) or None) from None
        cal.check_monotone(str(path))
        return cal


def calibration_path(station_file: str | Path) -> Path:
    """``stations/sim.yaml`` -> ``stations/sim.light-cal.json``."""
    path = Path(station_file)
    return path.with_name(path.stem + SUFFIX)


def xy_to_cct(x: float, y: float) -> float:
    """CCT from CIE 1931 xy (Hernandez-Andres et al. 1999, via colour-science)."""
    from colour.temperature import xy_to_CCT

    return float(xy_to_CCT(np.array([x, y]), method="Hernandez 1999"))


def default_levels(points: int, lowest: float = 5.0, highest: float = 100.0) -> list[float]:
    if points < 2:
        raise ConfigError(f"--points {points}: need at least 2", field="points")
    if not 0.0 < lowest < highest <= 100.0:
        raise ConfigError(f"levels {lowest}..{highest} %: need 0 < lowest < highest <= 100",
                          field="levels")
    return [round(float(v), 3) for v in np.linspace(lowest, highest, points)]


def calibrate(light: Any, meter: Any, *, station: str, levels: Sequence[float],
              tolerance_pct: float = 0.5, window_s: float = 0.3, timeout_s: float = 10.0,
              interval_s: float = 0.05, clock: Callable[[], float] | None = None,
              sleep: Callable[[float], None] | None = None,
              traces: list[StabilityTrace] | None = None) -> LightCalibration:
    """Step ``light`` through ``levels``, read ``meter`` when stable; the light ends off.

    Raises :class:`~harness.station.stability.StabilityError` when a level does not settle and
    :class:`~harness.errors.InstrumentError` when the measured curve is not monotone.
    """
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    if sleep is not None:
        kwargs["sleep"] = sleep
    light_id, meter_id = light.identity(), meter.identity()
    points: list[CalPoint] = []
    unit = "lx"
    last: dict[str, Any] = {}

    def read() -> float:
        reading = meter.read()
        last["r"] = reading
        return float(reading.value)

    try:
        light.set_level(float(levels[0]))
        light.on()
        for level in sorted(float(v) for v in levels):
            light.set_level(level)
            trace = wait_stable(read, tolerance_pct, window_s, timeout_s, interval_s=interval_s,
                                device=getattr(meter, "name", None),
                                what=f"illuminance at {level:g} %", **kwargs)
            if traces is not None:
                traces.append(trace)
            reading = last["r"]
            unit = reading.unit
            x, y = reading.x, reading.y
            cct = xy_to_cct(x, y) if x is not None and y is not None and y > 0 else None
            points.append(CalPoint(level_pct=level, lux=trace.mean, cct_k=cct, x=x, y=y,
                                   spread_pct=min(trace.spread_pct, 1e9)))
    finally:
        light.off()
    cal = LightCalibration(station=station, created=dt.datetime.now(dt.UTC).replace(microsecond=0),
                           light=InstrumentRef.of(light_id), meter=InstrumentRef.of(meter_id),
                           unit=unit, points=tuple(points))
    lux = [p.lux for p in cal.points]
    if any(b <= a for a, b in itertools.pairwise(lux)):
        raise InstrumentError(f"illuminance does not rise with level: {lux} (light or meter "
                              f"faulty?)", device=getattr(meter, "name", None))
    return cal


def set_illuminance(light: Any, calibration: LightCalibration, lux: float) -> float:
    """Set ``light`` to the calibrated level for ``lux``; returns that level."""
    level = calibration.level_for_lux(lux)
    light.set_level(level)
    return level


def _expected_serial(config: Any, role: str) -> tuple[str | None, str | None]:
    spec = config.device(role)
    if spec is None:
        return None, None
    return spec.driver, getattr(spec.settings, "serial", None)


def calibration_problem(config: Any, *, now: dt.datetime | None = None,
                        max_age_days: float | None = None,
                        identities: Mapping[str, DeviceIdentity] | None = None) -> str | None:
    """Why the station's light calibration cannot be trusted, or ``None`` when it can.

    Stations without both a light and a meter have nothing to calibrate (``None``).
    """
    if config.device("light") is None or config.device("meter") is None:
        return None
    path = calibration_path(config.source)
    if max_age_days is None:
        max_age_days = config.settings.light_calibration_max_age_days
    if not path.exists():
        return f"light calibration missing ({path}); run 'harness station calibrate " \
               f"{config.source}'"
    try:
        cal = LightCalibration.load(path)
    except ConfigError as exc:
        return f"light calibration unusable: {exc}"
    age = cal.age_days(now)
    if age > max_age_days:
        return (f"light calibration is stale: made {cal.created.date().isoformat()}, "
                f"{math.floor(age)} days ago (max {max_age_days:g}); recalibrate")
    for role, ref in (("light", cal.light), ("meter", cal.meter)):
        driver, serial = _expected_serial(config, role)
        live = (identities or {}).get(role)
        if live is not None:
            driver, serial = live.driver, live.serial
        if driver is not None and driver != ref.driver:
            return f"light calibration was made with {role} driver {ref.driver!r}, the station " \
                   f"now has {driver!r}; recalibrate"
        if serial is not None and serial != ref.serial:
            return f"light calibration was made with {role} s/n {ref.serial}, the station now " \
                   f"has s/n {serial}; recalibrate"
    return None


def load_for_station(config: Any) -> LightCalibration:
    """The station's calibration; ConfigError when missing, unreadable, stale or mismatched."""
    problem = calibration_problem(config)
    if problem is not None:
        raise ConfigError(problem, source=str(config.source))
    return LightCalibration.load(calibration_path(config.source))


__all__ = ["DEFAULT_MAX_AGE_DAYS", "SUFFIX", "CalPoint", "InstrumentRef", "LightCalibration",
           "calibrate", "calibration_path", "calibration_problem", "default_levels",
           "load_for_station", "set_illuminance", "xy_to_cct"]
