"""The protocol simulators on their own (state, physics, SCPI parsing) and coupled to the bench
and the SimCamera through a station file: what a driver does over its wire is what the camera
sees."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.analysis.colour import compare_illuminant, planckian_xy
from harness.errors import CameraDisconnected
from harness.sim.bench import Bench, BenchConfig
from harness.sim.faults import FaultState, InstrumentFault
from harness.sim.instruments.chart_wheel import ChartWheelSimulator, ChartWheelSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.cs100a import Cs100aSimulator, Cs100aSpec, chromaticity
from harness.sim.instruments.hub import SimulatorHub, start_simulators
from harness.sim.instruments.light_model import LightOutput, LightSpec, spectrum_xy
from harness.sim.instruments.motion import Axis
from harness.sim.instruments.scpi import compile_header
from harness.sim.instruments.scpi_led import ScpiLedSimulator
from harness.sim.instruments.scpi_psu import ScpiPsuSimulator, ScpiPsuSpec
from harness.sim.module import Power, load_module
from harness.station.station import Station

from .instrument_sim import no_leaks

STATIONS = Path(__file__).parent / "stations"
ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "fixtures" / "modules"


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_scpi_headers_short_long_optional_and_suffix() -> None:
    rx = compile_header("SOURce#:BRIGhtness[:LEVel]?")
    for header in ("SOUR1:BRIG?", "source1:brightness:level?", ":SOUR:BRIG?", "Sour2:Brig:Lev?"):
        assert rx.match(header), header
    for header in ("SOU1:BRIG?", "SOUR1:BRIG", "SOUR1:BRIGHT?", "SOUR1:BRIG:LEVEL:X?"):
        assert not rx.match(header), header
    assert rx.match("SOUR2:BRIG?").groups() == ("2",)  # type: ignore[union-attr]


def test_scpi_led_error_queue_and_chains() -> None:
    sim = ScpiLedSimulator("led")
    assert sim.handle("OUTP1:STAT ON;SOUR1:BRIG 25;SOUR1:BRIG?;OUTP1?") == "25.000;1"
    assert sim.handle("SOUR1:BRIG 101") is None
    assert sim.handle("FOO:BAR 1") is None
    assert sim.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert sim.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert sim.handle("SYST:ERR?") == '0,"No error"'
    assert sim.handle("*RST;OUTP1?") == "0"


def test_light_output_settles_first_order_and_warms_up() -> None:
    """s(t) = s_target + (s0 - s_target) exp(-t/tau); w(t) = 1 - w0 exp(-t/tau_w)."""
    clock = ManualClock()
    spec = LightSpec(max_lux=1000, gamma=2.0, tau_s=0.5, warmup_pct=2.0, warmup_tau_s=10.0)
    out = LightOutput(spec, clock)
    out.set_level(50)
    out.set_on(True)
    for dt in (0.0, 0.5, 1.0, 30.0):
        t = clock.t + dt
        settle = 0.25 * (1 - math.exp(-dt / 0.5))  # (50/100)**2 = 0.25 target
        warm = 1 - 0.02 * math.exp(-dt / 10.0)
        assert out.illuminance_lux(t) == pytest.approx(1000 * settle * warm, rel=1e-12)
    clock.t += 30.0
    out.set_level(100)  # restarts from the output now towards 1.0
    clock.t += 0.5
    start = 0.25 * (1 - math.exp(-60))
    expected = 1 + (start - 1) * math.exp(-1)
    assert out.relative_output() == pytest.approx(expected * (1 - 0.02 * math.exp(-3.05)),
                                                  rel=1e-9)


def test_light_drift_and_flicker_faults() -> None:
    clock = ManualClock()
    faults = FaultState([InstrumentFault(kind="drift", rate_pct_per_s=2.0)])
    out = LightOutput(LightSpec(max_lux=1000, tau_s=0, warmup_pct=0), clock, faults)
    out.set_level(100)
    out.set_on(True)
    assert out.illuminance_lux() == pytest.approx(1000)  # drift starts when first seen
    clock.t += 5
    assert out.illuminance_lux() == pytest.approx(1100)  # +2 %/s for 5 s
    faults.clear()
    faults.arm(InstrumentFault(kind="flicker", amplitude_pct=10, frequency_hz=1.0))
    clock.t = 0.25  # sin(2 pi * 1 Hz * 0.25 s) = 1
    assert out.illuminance_lux() == pytest.approx(1100)


def test_light_reports_the_cct_of_the_spectrum_it_renders() -> None:
    clock = ManualClock()
    a = LightOutput(LightSpec(illuminant="A"), clock)
    assert a.illuminant == "A"
    assert a.cct_k == pytest.approx(2856, abs=2)  # CIE A is 2856 K; McCamy's cubic +1.2 K
    a.set_cct(3000)
    assert (a.illuminant, a.cct_k) == ("3000K", 3000)
    plain = LightOutput(LightSpec(cct_k=4200), clock)  # no illuminant: a 4200 K blackbody
    assert (plain.illuminant, plain.cct_k) == ("4200K", 4200)
    mono = LightOutput(LightSpec(), clock)
    mono.power_up(True, 50.0, "mono:550")  # a line has no CCT
    assert mono.illuminant == "mono:550" and math.isnan(mono.cct_k)
    # the rendered D65 spectrum (5 nm, 380-780 nm) is D65's CIE 15 xy (0.31272, 0.32903)
    assert spectrum_xy("D65") == pytest.approx((0.31272, 0.32903), abs=2e-5)


def light_and_meter(bench_light: dict[str, object]) -> tuple[
        Bench, SimulatorHub, ScpiLedSimulator, Cs100aSimulator]:
    """A bench (D65 unless told), a SCPI LED and a CS-100A wired to it by the hub."""
    bench = Bench(BenchConfig.model_validate({"light": bench_light}))
    hub = start_simulators({"light": {"type": "scpi-led"},
                            "meter": {"type": "cs100a", "noise_pct": 0.0}}, bench)
    return bench, hub, hub.simulator("light"), hub.simulator("meter")


def meter_xy(meter: Cs100aSimulator) -> tuple[float, float]:
    code, _lv, x, y = meter.handle("MES").split(",")  # type: ignore[union-attr]
    assert code == "OK00"
    return float(x), float(y)


def test_bench_d65_light_reads_back_its_cct_and_the_meter_its_xy() -> None:
    with no_leaks():
        bench, hub, led, meter = light_and_meter({"enabled": True, "level_pct": 20.0})
        try:
            assert bench.illuminant == "D65" and led.output.illuminant == "D65"
            # D65's CCT is 6504 K (CIE 15); McCamy on the rendered spectrum gives 6503.7: +-2 K
            assert float(led.handle("SOUR1:CCT?") or "nan") == pytest.approx(6504, abs=2)
            assert led.describe()["cct_k"] == pytest.approx(6504, abs=2)
            # the meter reads the xy of that same spectrum (to its 4 decimals)
            xy = meter_xy(meter)
            assert xy == pytest.approx(spectrum_xy("D65"), abs=6e-5)
            assert compare_illuminant(xy, "D65").delta_u_prime_v_prime < 1e-4
        finally:
            hub.close()


def test_light_set_to_3000k_reads_back_3000k_and_the_meter_agrees() -> None:
    with no_leaks():
        bench, hub, led, meter = light_and_meter({"enabled": True, "level_pct": 20.0})
        try:
            assert led.handle("SOUR1:CCT 3000;SOUR1:CCT?") == "3000"
            assert bench.illuminant == "3000K"
            xy = meter_xy(meter)
            check = compare_illuminant(xy, "3000K")
            assert check.reference_xy == pytest.approx(planckian_xy(3000.0))
            # the meter's <CCT>K xy is Kang et al.'s (2002) Planckian-locus approximation, not
            # the rendered blackbody's own: 2.7e-4 apart in u'v' at 3000 K (3.8e-4 at 2700 K)
            assert check.delta_u_prime_v_prime < 5e-4
            assert check.measured_cct_k == pytest.approx(3000, abs=15)  # measured 3011.8
        finally:
            hub.close()


def test_meter_formula_and_codes() -> None:
    meter = Cs100aSimulator("m", Cs100aSpec(reflectance=0.5, noise_pct=0.0, max_cd_m2=100.0),
                            probe=lambda: (314.159, "D65"))
    code, lv, x, y = meter.handle("MES").split(",")  # type: ignore[union-attr]
    assert code == "OK00" and float(lv) == pytest.approx(0.5 * 314.159 / math.pi, abs=5e-4)
    assert (float(x), float(y)) == (0.3127, 0.329)  # CIE D65, 2 degree observer
    assert meter.handle("MDS,07") == "OK00" and meter.mode == "07"
    assert meter.handle("MDS,99") == "ER00"
    meter.probe = lambda: (1000.0, "3000K")
    assert meter.handle("MES").startswith("OK11,")  # type: ignore[union-attr]  # > 100 cd/m2
    assert chromaticity("3000K") == pytest.approx((0.4369, 0.4041), abs=2e-3)  # Planckian


def test_psu_constant_current_brown_out() -> None:
    psu = ScpiPsuSimulator("psu", ScpiPsuSpec(idle_a=0.2, module_min_v=3.0))
    psu.handle("VOLT 3.3;CURR 0.1;OUTP ON")
    volts, amps = psu.measure(1)
    assert amps == 0.1 and volts == pytest.approx(3.3 * 0.1 / 0.2)
    assert not psu.camera_powered()
    psu.handle("CURR 0.5")
    assert psu.measure(1) == (3.3, 0.2) and psu.camera_powered()
    psu.handle("INST:NSEL 2;:VOLT 12;OUTP ON")
    assert psu.measure(2) == (0.0, 0.0)  # 12 V > max_v 6: refused, channel 2 stays at 0 V
    assert psu.handle("SYST:ERR?") == '-222,"Data out of range"'


def cm12_limit(limit_id: str) -> float:
    spec = yaml.safe_load((ROOT / "tests_hil" / "limits" / "cm12.yaml").read_text())
    return float(next(lim["max"] for lim in spec["limits"] if lim["id"] == limit_id))


def psu_on_bench(module: str, **spec: Any) -> tuple[ScpiPsuSimulator, Bench]:
    bench = Bench(BenchConfig(powered=False))
    bench.set_module_power(load_module(MODULES / module).power)
    psu = ScpiPsuSimulator("psu", ScpiPsuSpec(**spec), link=BenchLink(bench))
    psu.handle("VOLT 3.3;CURR 0.8;OUTP ON")
    return psu, bench


@pytest.mark.parametrize(("module", "idle", "streaming"), [("golden.yaml", 0.12, 0.30),
                                                           ("small.yaml", 0.12, 0.30),
                                                           ("high-current.yaml", 0.32, 0.64)])
def test_psu_draws_the_module_files_currents(module: str, idle: float, streaming: float) -> None:
    psu, bench = psu_on_bench(module)
    assert bench.powered and psu.measure(1) == (3.3, idle)
    bench.camera_streaming = True
    assert psu.measure(1) == (3.3, streaming)
    # a reading carries the module's noise (golden: 2 mA rms), seeded
    readings = [float(psu.handle("MEAS:CURR?") or "nan") for _ in range(200)]
    assert abs(float(np.mean(readings)) - streaming) < 0.001
    assert float(np.std(readings)) == pytest.approx(0.002, rel=0.25)
    bench.camera_streaming = False
    assert psu.measure(1) == (3.3, idle)


def test_high_current_module_breaks_the_power_limits_golden_meets_them() -> None:
    idle_max, stream_max = cm12_limit("PWR-IDLE"), cm12_limit("PWR-STREAM")
    for module, fails in (("golden.yaml", False), ("high-current.yaml", True)):
        psu, bench = psu_on_bench(module)
        idle = psu.measure(1)[1]
        bench.camera_streaming = True
        streaming = psu.measure(1)[1]
        assert (idle > idle_max, streaming > stream_max) == (fails, fails), module
        assert psu.camera_powered(), module  # under the stations' 0.8 A limit: no brown-out


def test_psu_without_a_module_draws_the_spec_currents() -> None:
    psu = ScpiPsuSimulator("psu", ScpiPsuSpec(streaming_a=0.4), link=BenchLink(Bench()))
    psu.handle("VOLT 3.3;CURR 0.8;OUTP ON")
    assert psu.spec.idle_a == Power().idle_a and psu.measure(1) == (3.3, Power().idle_a)
    psu.link.bench.camera_streaming = True
    assert psu.measure(1) == (3.3, 0.4)
    assert psu.module_power().noise_a == 0.0


def test_psu_spec_currents_override_the_module() -> None:
    psu, bench = psu_on_bench("golden.yaml", idle_a=0.2)
    assert psu.measure(1) == (3.3, 0.2)
    bench.camera_streaming = True
    assert psu.measure(1) == (3.3, 0.30)  # not overridden: the module's
    psu.handle("CURR 0.1")  # constant current: the reading is the limit, without noise
    assert {psu.handle("MEAS:CURR?") for _ in range(5)} == {"0.1000"}


def test_station_psu_measures_its_modules_currents(tmp_path: Path) -> None:
    """Through the production PSU driver on a simulated station: the bench takes the currents
    from the station camera's module file."""
    text = (STATIONS / "sim-bench.yaml").read_text()
    text = text.replace("current_limit_a: 0.5", "current_limit_a: 0.8")
    for module, idle, streaming in (("small.yaml", 0.12, 0.30), ("high-current.yaml", 0.32, 0.64)):
        path = tmp_path / f"{module}.station.yaml"
        path.write_text(text.replace("../../fixtures/modules/small.yaml", str(MODULES / module)))
        with no_leaks():
            station = Station.load(path, lock_dir=tmp_path)
            station.open()
            try:
                power, camera = station.device("power"), station.camera()
                power.output(True)
                assert power.measure().current_a == pytest.approx(idle, abs=0.01)
                camera.start()
                camera.grab(1)
                assert power.measure().current_a == pytest.approx(streaming, abs=0.01)
                camera.stop()
            finally:
                station.close()


def test_axis_moves_at_speed_and_stalls() -> None:
    clock = ManualClock()
    axis = Axis(clock, 0.0, speed=100.0, settle_s=0.1)
    axis.move(50.0)
    clock.t += 0.25
    assert axis.now() == pytest.approx(25.0) and axis.moving()
    clock.t += 0.3  # arrived at 0.5 s, settled at 0.6 s
    assert axis.now() == 50.0 and axis.moving()
    clock.t += 0.06
    assert not axis.moving()
    axis.move(150.0, stall_at=0.4)
    clock.t += 10
    assert axis.now() == pytest.approx(90.0) and axis.moving() and axis.stalled
    axis.stop()
    assert not axis.moving() and axis.now() == pytest.approx(90.0)


def test_chart_wheel_is_moving_between_slots() -> None:
    clock = ManualClock()
    wheel = ChartWheelSimulator("w", ChartWheelSpec(slot_s=0.1), clock=clock)
    assert wheel.handle("SEL colour") == "OK" and wheel.handle("SEL?") == "MOVING"
    clock.t += 0.31
    assert wheel.handle("SEL?") == "colour"
    assert wheel.handle("SEL siemens") == "ERR 2 unknown chart"
    assert wheel.handle("JUMP") == "ERR 1 unknown command"


def test_bench_coupling_through_the_production_drivers(tmp_path: Path) -> None:
    """Station with a bench, bench-coupled simulators and a 64 x 48 SimCamera."""
    with no_leaks():
        station = Station.load(STATIONS / "sim-bench.yaml", lock_dir=tmp_path)
        station.open()
        try:
            bench, camera = station.bench, station.camera()
            power, light = station.device("power"), station.device("light")
            meter, focus, chart = (station.device(r) for r in ("meter", "focus", "chart"))
            # the simulators start in the bench's state: chart flat, light off, no power
            assert hub_state(station) == {"chart": "flat", "light": False, "psu": False}
            # PSU output off: the module has no power and the camera is gone
            assert not bench.powered
            with pytest.raises(CameraDisconnected):
                camera.grab(1)
            power.output(True)
            assert bench.powered
            # the chart wheel picks the scene, the actuator moves the lens focus
            chart.select("flat")
            assert bench.chart == "flat"
            focus.move_to(-120.0)
            focus.wait_settled(2.0)
            time.sleep(0.05)  # one bench sync period or more
            assert bench.focus_um == pytest.approx(-120.0)
            # light level sets the bench's output (after settling, tau 50 ms)
            light.set_level(20)
            light.on()
            time.sleep(0.5)
            assert bench.light_on and bench.level_pct == pytest.approx(20.0, rel=1e-3)
            assert bench.illuminant == "D65"
            # the meter reads what the bench gives the camera
            reading = meter.read()
            assert reading.value == pytest.approx(bench.illuminance_lux(), rel=1e-3)
            assert (reading.x, reading.y) == (0.3127, 0.329)
            camera.start()
            dim = camera.grab(4).frames.astype(float).mean()
            camera.stop()
            light.set_level(60)
            time.sleep(0.5)
            camera.start()
            bright = camera.grab(4).frames.astype(float).mean()
            camera.stop()
            black = float(camera.get("BlackLevel"))
            ratio = (bright - black) / (dim - black)
            assert ratio == pytest.approx(3.0, rel=0.05)  # linear sensor, 3x the photons
            # the light's own settling (tau 50 ms) is visible on the bench: it passes through
            # intermediate levels on its way from 60 % to 10 %, never overshooting
            light.set_level(10)
            seen = []
            for _ in range(40):
                seen.append(bench.level_pct)
                time.sleep(0.01)
            assert any(11.0 < v < 55.0 for v in seen)
            assert all(b <= a + 1e-9 for a, b in itertools.pairwise(seen))
            assert min(seen) >= 10.0 - 1e-9
            power.output(False)
            with pytest.raises(CameraDisconnected):
                camera.grab(1)
        finally:
            report = station.close()
    assert report.ok
    assert not bench.light_on


def hub_state(station: Station) -> dict[str, object]:
    sims = station.simulators
    return {"chart": sims.simulator("chart").current, "light": sims.simulator("light").output.on,
            "psu": sims.simulator("psu").channels[0].on}


def test_simulators_adopt_the_bench_state_at_power_up() -> None:
    """A station's ``bench:`` section still sets the scene when instruments are simulated."""
    from harness.sim.bench import Bench, BenchConfig
    from harness.sim.instruments.hub import start_simulators

    bench = Bench(BenchConfig.model_validate({
        "light": {"enabled": True, "level_pct": 25.0, "illuminant": "D50"},
        "chart": "edge", "focus_um": 12.5, "powered": True}))
    specs = {"light": {"type": "scpi-led", "light": {"gamma": 2.0}},
             "psu": {"type": "scpi-psu", "power_up_v": 3.6},
             "focus": {"type": "focus-stage", "minimum": -50, "maximum": 50},
             "chart": {"type": "chart-wheel"}}
    with no_leaks():
        hub = start_simulators(specs, bench)
        try:
            light = hub.simulator("light").output
            assert light.on and light.level == pytest.approx(50.0)  # 0.5 ** 2 = 25 % output
            assert light.illuminant == "D50"
            assert bench.level_pct == pytest.approx(25.0) and bench.light_on
            psu = hub.simulator("psu")
            assert psu.channels[0].volts == 3.6 and bench.powered
            assert psu.measure(1) == (3.6, psu.spec.idle_a)
            bench.camera_streaming = True  # the contract: the SimCamera sets it in start/stop
            assert psu.measure(1) == (3.6, psu.spec.streaming_a)
            assert hub.simulator("focus").axis.now() == 12.5
            assert hub.simulator("chart").current == "edge" and bench.chart == "edge"
        finally:
            hub.close()


def test_hub_leaves_no_threads_or_fds() -> None:
    from harness.sim.instruments.hub import start_simulators

    with no_leaks():
        hub = start_simulators({"a": {"type": "gardasoft"}, "b": {"type": "scpi-psu"},
                                "c": {"type": "scpi-led", "transport": "pty"}})
        assert hub.address("b").startswith("TCPIP0::127.0.0.1::")
        link = Path(hub.address("a"))
        assert link.resolve().as_posix().startswith("/dev/pts/")
        hub.close()
    assert not link.exists()
