"""Every injected fault ends in the right error class (an ERROR outcome, never a FAIL) and the
instrument still reaches its safe state, asserted on the simulator's state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError, InstrumentError
from harness.sim.faults import CameraFaults, CameraFaultSpec, FaultPlan, InstrumentFault
from harness.sim.instruments.hub import SimulatorHub
from harness.station.schema import load_station_file
from harness.station.stability import StabilityError, wait_stable
from harness.station.station import Station

from .instrument_sim import FAST, NO_WARMUP, driver, hub_of, is_error_outcome, no_leaks

SPECS: dict[str, dict[str, Any]] = {
    "led": {"type": "scpi-led", "light": {"max_lux": 1000, **NO_WARMUP}},
    "gs": {"type": "gardasoft"},
    "psu": {"type": "scpi-psu"},
    "meter": {"type": "cs100a", "light": "led", "noise_pct": 0.0},
    "focus": {"type": "focus-stage", "maximum": 1000, "home": 0, "speed_per_s": 20000},
    "chart": {"type": "chart-wheel", "slot_s": 0.005},
}


@pytest.fixture(scope="module")
def hub() -> Iterator[SimulatorHub]:
    with no_leaks(), hub_of(SPECS) as h:
        yield h


@pytest.fixture()
def devs(hub: SimulatorHub) -> Iterator[dict[str, Any]]:
    d = {
        "led": driver("light", "scpi-led", hub, resource="sim:led", **FAST),
        "gs": driver("light", "gardasoft", hub, port="sim:gs", **FAST),
        "psu": driver("power", "scpi-psu", hub, resource="sim:psu", max_voltage_v=5,
                      max_current_a=1, **FAST),
        "meter": driver("meter", "cs100a", hub, port="sim:meter", **FAST),
        "focus": driver("focus", "serial-focus", hub, port="sim:focus", **FAST),
        "chart": driver("chart", "serial-chart", hub, port="sim:chart", **FAST),
    }
    for dev in d.values():
        dev.open()
    yield d
    for name, dev in d.items():
        hub.simulator(name).faults.clear()
        dev.close()


def arm(hub: SimulatorHub, name: str, **fault: Any) -> None:
    hub.simulator(name).faults.arm(InstrumentFault(**fault))


def test_delay_past_timeout(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    led = devs["led"]
    led.set_level(50)
    led.on()
    # later than all three attempts and the reconnect, even on a loaded machine
    arm(hub, "led", kind="delay", delay_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(InstrumentError, match=r"light: no reply within 0\.2 s after 3 attempts "
                                              r"\(command 'SOUR1:BRIG\?'\)") as info:
        led.level()
    assert time.monotonic() - t0 < 5.0  # bounded (3 x 0.2 s and a reconnect), not a hang
    assert is_error_outcome(info.value)
    hub.simulator("led").faults.clear()  # the instrument recovers ...
    time.sleep(2.0)  # ... once its busy spell is over
    led.safe_state()
    assert not hub.simulator("led").output.on


def test_transient_delay_recovers_by_retry(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    arm(hub, "psu", kind="delay", delay_s=0.3, count=1)
    assert devs["psu"].output_enabled() is False


def test_dropped_connection_tcp_and_pty(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    psu, gs = devs["psu"], devs["gs"]
    arm(hub, "psu", kind="drop", count=1)
    psu.set_voltage(3.3)  # the write is lost with the connection; read-back sees it, re-sent
    assert hub.simulator("psu").channels[0].volts == 3.3
    assert psu.transport.reconnects == 1
    arm(hub, "gs", kind="drop", count=1)
    gs.set_level(20)
    gs.on()
    assert hub.simulator("gs").levels[0] == 20.0
    assert gs.transport.reconnects == 1
    arm(hub, "meter", kind="drop", count=1)  # 7E2 framing on a fresh pty after the hang-up
    assert devs["meter"].read().unit == "lx"
    assert devs["meter"].transport.reconnects == 1
    # a connection that keeps dropping: give up with InstrumentError, then safe state.
    # pyvisa-py sees a socket closed by the peer only as a read timeout; a pty hang-up is EIO.
    psu.output(True)
    arm(hub, "psu", kind="drop")
    with pytest.raises(InstrumentError, match=r"power: no reply within 0\.2 s after 3") as info:
        psu.measure()
    assert is_error_outcome(info.value)
    arm(hub, "gs", kind="drop")
    with pytest.raises(InstrumentError, match=r"light: connection lost: .*'ST1'") as info:
        gs.is_on()
    assert is_error_outcome(info.value)
    hub.simulator("psu").faults.clear()
    hub.simulator("gs").faults.clear()
    psu.safe_state()
    assert not hub.simulator("psu").channels[0].on
    gs.safe_state()
    assert hub.simulator("gs").levels[0] == 0.0


def test_garbage_reply(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    psu, meter = devs["psu"], devs["meter"]
    psu.output(True)
    arm(hub, "psu", kind="garbage", text="#?!", count=1)
    with pytest.raises(InstrumentError, match=r"reply is not a number \(command 'MEAS:VOLT\?', "
                                              r"reply '#\?!'\)") as info:
        psu.measure()
    assert is_error_outcome(info.value)
    psu.safe_state()
    assert not hub.simulator("psu").channels[0].on
    arm(hub, "meter", kind="garbage", count=1)  # non-ASCII bytes
    with pytest.raises(InstrumentError, match=r"meter: undecodable reply \(command 'MES'"):
        meter.read()
    arm(hub, "meter", kind="garbage", text="OK0O,12", count=1)
    with pytest.raises(InstrumentError, match="reply has no check code"):
        meter.read()
    assert meter.read().unit == "lx"  # recovered


@pytest.mark.parametrize(("name", "action", "message"), [
    ("led", lambda d: d.set_level(30), r"instrument error -310 \"System error\" after "
                                       r"'SOUR1:BRIG 30\.000'"),
    ("gs", lambda d: d.command("ST1"), r"controller error 'Err 5'"),
    ("meter", lambda d: d.read(), r"meter error ER30"),
    ("focus", lambda d: d.move_to(100), r"device error '3 motor fault'"),
    ("chart", lambda d: d.select("edge"), r"device error '3 motor fault'"),
    ("psu", lambda d: d.output(True), r"instrument error -310"),
])
def test_instrument_error_state(hub: SimulatorHub, devs: dict[str, Any], name: str,
                                action: Any, message: str) -> None:
    dev = devs[name]
    if name == "gs":
        dev.set_level(40)
        dev.on()
    arm(hub, name, kind="error", count=1)
    with pytest.raises(InstrumentError, match=message) as info:
        action(dev)
    assert is_error_outcome(info.value)
    dev.safe_state()
    sim = hub.simulator(name)
    safe = {"led": lambda: not sim.output.on, "gs": lambda: sim.levels[0] == 0.0,
            "meter": lambda: True, "focus": lambda: sim.axis.now() == 0.0,
            "chart": lambda: sim.current == "dark", "psu": lambda: not sim.channels[0].on}
    assert safe[name]()


@pytest.mark.parametrize("fault", [
    {"kind": "drift", "rate_pct_per_s": 8.0},
    {"kind": "flicker", "amplitude_pct": 4.0, "frequency_hz": 7.0},
])
def test_light_drift_and_flicker_fail_the_stability_wait(hub: SimulatorHub,
                                                         devs: dict[str, Any],
                                                         fault: dict[str, Any]) -> None:
    led, meter = devs["led"], devs["meter"]
    led.set_level(50)
    led.on()
    trace = wait_stable(lambda: meter.read().value, 0.5, 0.1, 1.0, interval_s=0.02)
    assert trace.stable and trace.mean == pytest.approx(500, abs=0.01)  # steady before
    arm(hub, "led", **fault)
    with pytest.raises(StabilityError, match=r"not stable within 0\.5 % over 0\.15 s") as info:
        wait_stable(lambda: meter.read().value, 0.5, 0.15, 0.5, interval_s=0.02,
                    device="meter")
    assert is_error_outcome(info.value)
    assert len(info.value.trace.samples) >= 10 and not info.value.trace.stable
    led.safe_state()
    assert not hub.simulator("led").output.on


def test_meter_over_range(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    arm(hub, "meter", kind="over_range", count=1)
    with pytest.raises(InstrumentError, match=r"meter: meter over range \(OK11\)") as info:
        devs["meter"].read()
    assert is_error_outcome(info.value)


def test_actuator_stall(hub: SimulatorHub, devs: dict[str, Any]) -> None:
    focus = devs["focus"]
    arm(hub, "focus", kind="stall", at_fraction=0.5, count=1)
    focus.move_to(800)
    with pytest.raises(InstrumentError, match=r"did not settle at 800 um within 0\.3 s "
                                              r"\(stalled at 400 um\)") as info:
        focus.wait_settled(0.3)
    assert is_error_outcome(info.value)
    sim = hub.simulator("focus")
    assert not sim.axis.moving()  # the driver sent STOP
    focus.safe_state()
    assert sim.axis.now() == 0.0 and not sim.axis.moving()


def test_fault_plan_applies_to_named_simulators(hub: SimulatorHub,
                                                devs: dict[str, Any]) -> None:
    plan = FaultPlan.model_validate({"instruments": {"chart": [{"kind": "error", "after": 1,
                                                                "count": 1}]}})
    hub.apply(plan)
    devs["chart"].current()  # the first command is answered normally
    with pytest.raises(InstrumentError, match="motor fault"):
        devs["chart"].current()
    with pytest.raises(ConfigError, match="fault plan names no simulator 'lamp'"):
        hub.apply(FaultPlan.model_validate({"instruments": {"lamp": [{"kind": "drop"}]}}))


def test_faults_from_the_station_file(tmp_path: Path) -> None:
    """A station file scripts the fault; the Station still reaches its safe state."""
    station_file = tmp_path / "st.yaml"
    station_file.write_text(
        "id: fault-st\n"
        "simulators:\n"
        "  light: {type: scpi-led, faults: [{kind: error, after: 4, count: 1}]}\n"
        "  psu: {type: scpi-psu}\n"
        "power: {driver: scpi-psu, resource: 'sim:psu', max_voltage_v: 5, max_current_a: 1,"
        " timeout_s: 0.2}\n"
        "light: {driver: scpi-led, resource: 'sim:light', timeout_s: 0.2}\n")
    config = load_station_file(station_file)
    station = Station(config, lock_dir=tmp_path)
    with no_leaks():
        station.open()
        light_sim = station.simulators.simulator("light")
        psu_sim = station.simulators.simulator("psu")
        try:
            station.device("power").set_voltage(3.3)
            station.device("power").output(True)
            station.device("light").on()  # commands 3 and 4 after *IDN?, *CLS, SYST:ERR?
            with pytest.raises(InstrumentError, match="instrument error -310"):
                station.device("light").set_level(20)
        finally:
            report = station.close()
    assert report.ok and report.reached == ("light", "power")
    assert not light_sim.output.on and not psu_sim.channels[0].on


def test_simulator_specs_are_validated_with_one_line_errors(tmp_path: Path) -> None:
    from harness.sim.instruments.hub import start_simulators

    cases = [
        ({"x": {"type": "laser"}}, "simulators.x.type: unknown simulator type 'laser'; "
                                   "allowed: scpi-led, gardasoft"),
        ({"x": {"type": "scpi-ledd"}}, "simulators.x.type: unknown simulator type 'scpi-ledd' "
                                       "(did you mean 'scpi-led'?); allowed: scpi-led"),
        ({"x": {"type": "scpi-led", "colour": 1}}, "simulators.x.colour: unknown key 'colour'; "
                                                   "allowed: cct_max_k, cct_min_k, faults, light"),
        ({"x": {"type": "scpi-led", "light": {"max_lux": -1}}},
         "simulators.x.light.max_lux: Input should be greater than 0"),
        ({"x": {"type": "gardasoft", "faults": [{"kind": "explode"}]}},
         "simulators.x.faults[0].kind: Input should be"),
        ({"m": {"type": "cs100a", "light": "sun"}}, "simulators.m.light: no light simulator "
                                                    "'sun'"),
    ]
    for specs, message in cases:
        with no_leaks(), pytest.raises(ConfigError) as info:
            start_simulators(specs)
        assert message in str(info.value)
        assert "\n" not in str(info.value)


def test_outcome_helper_tells_error_from_fail() -> None:
    assert is_error_outcome(InstrumentError("x", device="light"))
    assert not is_error_outcome(AssertionError("DUT out of spec"))


def test_camera_fault_model() -> None:
    faults = CameraFaults.from_spec({"drop_every": 3, "timeout_after": 7})
    fates = [faults.fate(i) for i in range(9)]
    assert fates == ["ok", "ok", "drop", "ok", "ok", "drop", "ok", "timeout", "timeout"]
    gone = CameraFaults.from_spec(CameraFaultSpec(disconnect_after=2, timeout_after=1))
    assert [gone.fate(i) for i in range(4)] == ["ok", "timeout", "disconnect", "disconnect"]
    assert not CameraFaults.from_spec(None).any
    with pytest.raises(ValueError, match="drop_every"):
        CameraFaults.from_spec({"drop_every": 1})
