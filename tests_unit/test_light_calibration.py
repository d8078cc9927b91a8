"""Light calibration against the simulated light and meter, whose level -> lux law is known:
E = max_lux * (level / 100) ** gamma (no warm-up, no noise in these tests)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError, InstrumentError
from harness.sim.instruments.hub import SimulatorHub
from harness.station.light_calibration import (
    LightCalibration,
    calibrate,
    calibration_path,
    calibration_problem,
    default_levels,
    load_for_station,
    set_illuminance,
)
from harness.station.schema import load_station_file

from .instrument_sim import FAST, driver, hub_of, no_leaks

MAX_LUX, GAMMA = 2000.0, 1.3
TOL_PCT = 0.05
"""Stability tolerance: a point is the mean of a window whose spread is within this, while the
light still settles (tau 10 ms), so each point may sit up to TOL_PCT % below the settled truth."""
LIGHT = {"max_lux": MAX_LUX, "gamma": GAMMA, "warmup_pct": 0.0, "tau_s": 0.01}

STATION = f"""\
id: cal-st
settings: {{light_calibration_max_age_days: 7}}
simulators:
  light: {{type: scpi-led, serial: LED-A, light: {{max_lux: {MAX_LUX}, gamma: {GAMMA},
           warmup_pct: 0, tau_s: 0.01}}}}
  meter: {{type: cs100a, noise_pct: 0}}
light: {{driver: scpi-led, resource: "sim:light", serial: LED-A, timeout_s: 0.3}}
meter: {{driver: cs100a, port: "sim:meter", serial: KM-1, timeout_s: 0.3}}
"""


def true_level(lux: float) -> float:
    return 100.0 * (lux / MAX_LUX) ** (1.0 / GAMMA)


@pytest.fixture(scope="module")
def cal() -> Iterator[tuple[LightCalibration, SimulatorHub, Any, Any]]:
    specs = {"light": {"type": "scpi-led", "serial": "LED-A", "light": LIGHT},
             "meter": {"type": "cs100a", "noise_pct": 0.0, "serial": "KM-1"}}
    with no_leaks(), hub_of(specs) as hub:
        light = driver("light", "scpi-led", hub, resource="sim:light", **FAST)
        meter = driver("meter", "cs100a", hub, port="sim:meter", serial="KM-1", **FAST)
        light.open()
        meter.open()
        result = calibrate(light, meter, station="cal-st", levels=default_levels(11),
                           tolerance_pct=TOL_PCT, window_s=0.05, timeout_s=2.0, interval_s=0.01)
        yield result, hub, light, meter
        light.close()
        meter.close()


def test_calibration_points_follow_the_light_law(cal: Any) -> None:
    result, hub, _, _ = cal
    assert [p.level_pct for p in result.points] == default_levels(11)
    for p in result.points:
        truth = MAX_LUX * (p.level_pct / 100) ** GAMMA
        assert truth * (1 - TOL_PCT / 100) - 2e-3 <= p.lux <= truth + 2e-3  # Lv has 3 decimals
        assert p.cct_k == pytest.approx(5000, abs=25)  # xy to 4 decimals, Hernandez inverse
    assert (result.light.serial, result.meter.serial) == ("LED-A", "KM-1")
    assert not hub.simulator("light").output.on  # the light ends off


def test_level_for_lux_hits_the_true_level(cal: Any) -> None:
    """PCHIP through 11 points of E ~ level**1.3 (5..100 %): the interpolation error of the
    inverse, computed for this curve, is at most 0.155 %-points (at the low end); the points'
    TOL_PCT lux error adds at most TOL_PCT/1.3 % of the level (< 0.04 %-points); 0.2 allowed."""
    result, *_ = cal
    for lux in (50.0, 200.0, 777.0, 1500.0, 1990.0):
        assert result.level_for_lux(lux) == pytest.approx(true_level(lux), abs=0.2)
    for p in result.points:
        assert result.level_for_lux(p.lux) == pytest.approx(p.level_pct, abs=1e-6)
    with pytest.raises(ConfigError, match=r"5000 lx outside the calibrated range"):
        result.level_for_lux(5000)


def test_set_illuminance_gives_the_requested_lux_on_the_meter(cal: Any) -> None:
    result, _, light, meter = cal
    light.on()
    level = set_illuminance(light, result, 1000.0)
    assert light.level() == pytest.approx(level, abs=1e-3)
    import time

    time.sleep(0.05)  # five settling time constants
    assert meter.read().value == pytest.approx(1000.0, rel=0.004)
    light.off()


def test_save_load_and_station_problems(cal: Any, tmp_path: Path) -> None:
    result, *_ = cal
    station = tmp_path / "cal-st.yaml"
    station.write_text(STATION)
    config = load_station_file(station)
    path = calibration_path(station)
    assert path == tmp_path / "cal-st.light-cal.json"
    assert calibration_problem(config) is not None and "missing" in str(
        calibration_problem(config))
    with pytest.raises(ConfigError, match="missing"):
        load_for_station(config)
    result.save(path)
    assert calibration_problem(config) is None
    assert load_for_station(config) == result
    later = result.created + dt.timedelta(days=8)
    assert "stale: made" in str(calibration_problem(config, now=later))
    assert calibration_problem(config, now=later, max_age_days=10) is None
    other = STATION.replace("serial: KM-1", "serial: KM-2")
    station.write_text(other)
    assert "meter s/n KM-1, the station now has s/n KM-2" in str(
        calibration_problem(load_station_file(station)))
    data = json.loads(path.read_text())
    data["points"][3]["lux"] = 1e6  # no longer monotone
    path.write_text(json.dumps(data))
    station.write_text(STATION)
    assert "does not rise strictly" in str(calibration_problem(config))
    path.write_text("{")
    assert "unreadable light calibration" in str(calibration_problem(config))
    no_meter = tmp_path / "nometer.yaml"
    no_meter.write_text("id: x\nlight: {driver: fake}\n")
    assert calibration_problem(load_station_file(no_meter)) is None


def test_default_levels_validation() -> None:
    assert default_levels(3, 10, 90) == [10.0, 50.0, 90.0]
    with pytest.raises(ConfigError, match="need at least 2"):
        default_levels(1)
    with pytest.raises(ConfigError, match="0 < lowest < highest <= 100"):
        default_levels(3, 50, 20)


def test_cli_calibrate_then_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path))
    station = tmp_path / "cal-st.yaml"
    station.write_text(STATION)
    runner = CliRunner()
    result = runner.invoke(app, ["station", "calibrate", str(station), "--points", "4",
                                 "--window-s", "0.1", "--tolerance-pct", "0.3"])
    assert result.exit_code == 0, result.output
    cal = LightCalibration.load(calibration_path(station))
    assert [p.level_pct for p in cal.points] == [5.0, 36.667, 68.333, 100.0]
    assert cal.points[-1].lux == pytest.approx(MAX_LUX, rel=0.003)  # --tolerance-pct 0.3
    check = runner.invoke(app, ["station", "check", str(station)])
    assert check.exit_code == 0, check.output
    data = json.loads(calibration_path(station).read_text())
    data["created"] = "2020-01-01T00:00:00Z"
    calibration_path(station).write_text(json.dumps(data))
    check = runner.invoke(app, ["station", "check", str(station)])
    assert check.exit_code == 1 and "light calibration is stale: made 2020-01-01" in check.output


def test_cli_calibrate_bad_input_and_instrument_fault(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path))
    runner = CliRunner()
    no_meter = tmp_path / "nometer.yaml"
    no_meter.write_text("id: x\nlight: {driver: fake}\n")
    result = runner.invoke(app, ["station", "calibrate", str(no_meter)])
    assert result.exit_code == 2 and "no meter on this station" in result.output
    faulty = tmp_path / "faulty.yaml"
    faulty.write_text(STATION.replace("meter: {type: cs100a, noise_pct: 0}",
                                      "meter: {type: cs100a, noise_pct: 0, faults: "
                                      "[{kind: error, after: 5, code: ER30}]}"))
    result = runner.invoke(app, ["station", "calibrate", str(faulty), "--points", "3",
                                 "--window-s", "0.1"])
    assert result.exit_code == 3 and "meter error ER30" in result.output
    assert not calibration_path(faulty).exists()


def test_cli_calibrate_settles_by_the_station_light_settle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibration judges stability by the station's ``settings.light_settle``, the criterion
    its captures use; an option overrides that part of it, and a bad one is a one-line error
    naming the option (a window of one reading would always look stable)."""
    import harness.station.light_calibration as light_calibration

    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path))
    seen: list[dict[str, Any]] = []

    def fake_calibrate(*_: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(light_calibration, "calibrate", fake_calibrate)
    station = tmp_path / "settle-st.yaml"
    station.write_text(STATION.replace(
        "settings: {light_calibration_max_age_days: 7}",
        "settings: {light_settle: {tolerance_pct: 0.2, window_s: 0.4, timeout_s: 12, "
        "interval_s: 0.1}}"))
    runner = CliRunner()
    assert runner.invoke(app, ["station", "calibrate", str(station)]).exit_code == 2
    assert runner.invoke(app, ["station", "calibrate", str(station), "--window-s", "0.6",
                               "--timeout-s", "3"]).exit_code == 2
    criteria = [(k["tolerance_pct"], k["window_s"], k["timeout_s"], k["interval_s"])
                for k in seen]
    assert criteria == [(0.2, 0.4, 12.0, 0.1), (0.2, 0.6, 3.0, 0.1)]
    bad = runner.invoke(app, ["station", "calibrate", str(station), "--window-s", "0.1"])
    assert bad.exit_code == 2 and len(seen) == 2
    line = bad.output.strip()
    assert "\n" not in line and "--window-s: window_s 0.1 holds fewer than three" in line
    assert "allowed: window_s >= 2 x interval_s" in line
    bad = runner.invoke(app, ["station", "calibrate", str(station), "--tolerance-pct", "0"])
    assert bad.exit_code == 2 and "--tolerance-pct: Input should be greater than 0" in bad.output


def test_calibrate_refuses_a_non_monotone_curve() -> None:
    class Light:
        name = "light"

        def identity(self) -> Any:
            from harness.devices.base import DeviceIdentity
            return DeviceIdentity("light", "fake", "H", "L", "1")

        def set_level(self, v: float) -> None:
            self.v = v

        def on(self) -> None: ...

        def off(self) -> None: ...

    class Meter:
        name = "meter"

        def __init__(self, light: Light) -> None:
            self.light = light

        def identity(self) -> Any:
            from harness.devices.base import DeviceIdentity
            return DeviceIdentity("meter", "fake", "H", "M", "2")

        def read(self) -> Any:
            from harness.devices.protocols import MeterReading
            return MeterReading(500.0 if self.light.v > 50 else 100.0 + self.light.v, "lx")

    light = Light()
    with pytest.raises(InstrumentError, match="illuminance does not rise with level"):
        calibrate(light, Meter(light), station="x", levels=[10, 50, 60, 90], window_s=0.01,
                  interval_s=0.005, timeout_s=1)
