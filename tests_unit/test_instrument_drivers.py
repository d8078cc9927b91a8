"""Every production instrument driver against its protocol simulator over a real pty or socket.

Truth comes from the simulator's state (what the instrument "did"), never from the driver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import ConfigError, InstrumentError
from harness.sim.instruments.cs100a import chromaticity
from harness.sim.instruments.hub import SimulatorHub

from .instrument_sim import FAST, NO_WARMUP, driver, hub_of, no_leaks

SPECS: dict[str, dict[str, Any]] = {
    "led": {"type": "scpi-led", "serial": "LED-7", "light": {"max_lux": 1000, **NO_WARMUP}},
    "led_pty": {"type": "scpi-led", "transport": "pty"},
    "gs": {"type": "gardasoft", "serial": "GS42", "light": {"max_lux": 500, **NO_WARMUP}},
    "psu": {"type": "scpi-psu", "serial": "PSU-9"},
    "meter": {"type": "cs100a", "light": "led", "noise_pct": 0.0, "reflectance": 0.9},
    "focus": {"type": "focus-stage", "maximum": 1000, "home": 10, "speed_per_s": 20000},
    "vcm": {"type": "focus-stage", "unit": "code", "maximum": 1023},
    "chart": {"type": "chart-wheel", "slot_s": 0.01},
}


@pytest.fixture(scope="module")
def hub() -> Iterator[SimulatorHub]:
    with no_leaks(), hub_of(SPECS) as h:
        yield h


@pytest.fixture()
def opened(hub: SimulatorHub) -> Iterator[list[Any]]:
    drivers: list[Any] = []
    yield drivers
    for d in drivers:
        d.safe_state()
        d.close()


def _open(opened: list[Any], d: Any) -> Any:
    d.open()
    opened.append(d)
    return d


@pytest.mark.parametrize("sim", ["led", "led_pty"])
def test_scpi_led_over_tcp_socket_and_asrl(hub: SimulatorHub, opened: list[Any],
                                           sim: str) -> None:
    led = _open(opened, driver("light", "scpi-led", hub, resource=f"sim:{sim}", cct=True,
                               **FAST))
    state = hub.simulator(sim).output
    ident = led.identity()
    assert (ident.vendor, ident.model, ident.driver) == ("Harness", "LED-SCPI", "scpi-led")
    assert ident.extra["address"].startswith("TCPIP0::" if sim == "led" else "ASRL/")
    led.set_level(37.5)
    led.on()
    assert state.on and state.level == 37.5
    assert led.is_on() and led.level() == 37.5
    led.set_cct(3200)
    assert state.cct_k == 3200 and led.cct() == 3200
    led.set_illuminant("D50")
    assert state.cct_k == 5003 and state.illuminant == "5003K"
    with pytest.raises(ConfigError, match="illuminant 'F2' unknown; allowed: <CCT>K, D65"):
        led.set_illuminant("F2")
    led.off()
    assert not state.on and not led.is_on()


def test_scpi_led_refuses_bad_values_before_sending(hub: SimulatorHub, opened: list[Any]) -> None:
    led = _open(opened, driver("light", "scpi-led", hub, resource="sim:led", **FAST))
    sent = len(hub.simulator("led").log)
    with pytest.raises(ConfigError, match=r"light: light level 120 % outside 0\.\.100"):
        led.set_level(120)
    with pytest.raises(ConfigError, match="no settable CCT"):
        led.set_cct(4000)
    assert len(hub.simulator("led").log) == sent


def test_scpi_led_instrument_refusal_is_instrument_error(hub: SimulatorHub,
                                                         opened: list[Any]) -> None:
    led = _open(opened, driver("light", "scpi-led", hub, resource="sim:led", cct=True, **FAST))
    with pytest.raises(InstrumentError, match=r"instrument error -222 .*SOUR1:CCT 9000"):
        led.set_cct(9000)  # the simulator's CCT range is 2700..6500 K


def test_expected_serial_is_checked_at_open(hub: SimulatorHub) -> None:
    led = driver("light", "scpi-led", hub, resource="sim:led", serial="OTHER", **FAST)
    with pytest.raises(InstrumentError, match="serial 'LED-7' is not the station file's 'OTHER'"):
        led.open()
    assert led.transport is None  # closed again


def test_gardasoft(hub: SimulatorHub, opened: list[Any]) -> None:
    gs = _open(opened, driver("light", "gardasoft", hub, port="sim:gs", **FAST))
    sim = hub.simulator("gs")
    ident = gs.identity()
    assert (ident.vendor, ident.model, ident.serial, ident.firmware) == \
        ("Gardasoft", "RT220-20", "GS42", "3.21")
    gs.set_level(60)
    assert not sim.output.on  # remembered, not applied while off
    gs.on()
    assert sim.levels[0] == 60.0 and sim.output.on and gs.is_on()
    gs.set_level(25.5)
    assert sim.levels[0] == 25.5 and gs.level() == 25.5
    gs.off()
    assert sim.levels[0] == 0.0 and not gs.is_on() and gs.level() == 25.5
    assert sim.log[-1][0] == "ST1"


def test_scpi_psu(hub: SimulatorHub, opened: list[Any]) -> None:
    psu = _open(opened, driver("power", "scpi-psu", hub, resource="sim:psu", max_voltage_v=5.0,
                               max_current_a=1.0, voltage_v=3.3, current_limit_a=0.5, **FAST))
    sim = hub.simulator("psu")
    assert sim.channels[0].volts == 3.3 and sim.channels[0].limit_a == 0.5
    assert psu.identity().extra["channel"] == "1"
    psu.output(True)
    assert sim.channels[0].on and sim.camera_powered()
    reading = psu.measure()
    assert reading.voltage_v == pytest.approx(3.3)
    assert reading.current_a == pytest.approx(sim.spec.idle_a)
    # a current limit below the module's draw: constant current, the output sags, brown-out
    psu.set_current_limit(0.09)
    reading = psu.measure()
    assert reading.current_a == pytest.approx(0.09)
    assert reading.voltage_v == pytest.approx(0.09 * 3.3 / sim.spec.idle_a, rel=1e-3)
    assert not sim.camera_powered()
    psu.output(False)
    assert not sim.channels[0].on and psu.measure().current_a == 0.0


def test_scpi_psu_limits_refuse_with_one_line(hub: SimulatorHub, opened: list[Any]) -> None:
    psu = _open(opened, driver("power", "scpi-psu", hub, resource="sim:psu", max_voltage_v=3.6,
                               max_current_a=0.5, **FAST))
    with pytest.raises(ConfigError, match=r"power: 12 V outside 0\.\.3\.6 V") as info:
        psu.set_voltage(12)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"2 A outside 0\.\.0\.5 A"):
        psu.set_current_limit(2)
    assert hub.simulator("psu").channels[0].volts != 12


def test_scpi_psu_output_at_open(hub: SimulatorHub, opened: list[Any]) -> None:
    _open(opened, driver("power", "scpi-psu", hub, resource="sim:psu", max_voltage_v=5.0,
                         max_current_a=1.0, voltage_v=3.0, current_limit_a=0.4,
                         output_at_open=True, **FAST))
    ch = hub.simulator("psu").channels[0]
    assert (ch.volts, ch.limit_a, ch.on) == (3.0, 0.4, True)
    bad = driver("power", "scpi-psu", hub, resource="sim:psu", max_voltage_v=5.0,
                 max_current_a=1.0, output_at_open=True, **FAST)
    with pytest.raises(ConfigError, match="output_at_open needs voltage_v and current_limit_a"):
        bad.open()


def test_scpi_psu_settings_validated() -> None:
    from harness.devices.power import ScpiPsuSettings

    with pytest.raises(ValueError, match=r"voltage_v 5\.0 exceeds max_voltage_v 3\.6"):
        ScpiPsuSettings(resource="sim:psu", max_voltage_v=3.6, max_current_a=1, voltage_v=5.0)


def test_cs100a_reads_illuminance_of_the_light(hub: SimulatorHub, opened: list[Any]) -> None:
    """E = pi * Lv / rho (Lambert): the simulator emits Lv = rho * E / pi with rho = 0.9, the
    driver (told the same rho) must return the light's illuminance to the 3 decimals of Lv."""
    led = _open(opened, driver("light", "scpi-led", hub, resource="sim:led", cct=True, **FAST))
    meter = _open(opened, driver("meter", "cs100a", hub, port="sim:meter", reflectance=0.9,
                                 serial="KM-1", **FAST))
    led.set_level(40)
    led.on()
    led.set_cct(4000)
    truth = 1000 * 0.40  # max_lux * level (gamma 1, no warm-up, no settling)
    reading = meter.read()
    assert reading.unit == "lx"
    assert reading.value == pytest.approx(truth, abs=math.pi * 0.0005 / 0.9 + 1e-9)
    x, y = chromaticity("4000K")
    assert (reading.x, reading.y) == (round(x, 4), round(y, 4))
    ident = meter.identity()
    assert (ident.vendor, ident.model, ident.serial) == ("Konica Minolta", "CS-100A", "KM-1")
    lum = _open(opened, driver("meter", "cs100a", hub, port="sim:meter", quantity="luminance",
                               **FAST))
    assert lum.read().value == pytest.approx(0.9 * truth / math.pi, abs=0.0006)
    assert lum.read().unit == "cd/m2"
    led.off()
    assert meter.read().value == 0.0


def test_serial_focus(hub: SimulatorHub, opened: list[Any]) -> None:
    focus = _open(opened, driver("focus", "serial-focus", hub, port="sim:focus", **FAST))
    sim = hub.simulator("focus")
    assert (focus.minimum, focus.maximum) == (0.0, 1000.0)
    focus.move_to(750.25)
    focus.wait_settled(2.0)
    assert sim.axis.now() == pytest.approx(750.25)
    assert focus.position() == pytest.approx(750.25)
    with pytest.raises(ConfigError, match=r"focus position 1200 um outside 0\.\.1000"):
        focus.move_to(1200)
    focus.home()
    focus.wait_settled(2.0)
    assert focus.position() == 10.0
    focus.move_to(500)
    focus.safe_state()  # parks at HOME and waits
    assert sim.axis.now() == 10.0 and not sim.axis.moving()


def test_serial_focus_vcm_codes_and_unit_check(hub: SimulatorHub, opened: list[Any]) -> None:
    vcm = _open(opened, driver("focus", "serial-focus", hub, port="sim:vcm", unit="code",
                               **FAST))
    vcm.move_to(512)
    vcm.wait_settled(2.0)
    assert vcm.position() == 512
    wrong = driver("focus", "serial-focus", hub, port="sim:vcm", unit="um", **FAST)
    with pytest.raises(InstrumentError, match="device works in 'CODE', the station file says 'um'"):
        wrong.open()


def test_serial_chart(hub: SimulatorHub, opened: list[Any]) -> None:
    chart = _open(opened, driver("chart", "serial-chart", hub, port="sim:chart", **FAST))
    sim = hub.simulator("chart")
    assert chart.charts() == ("dark", "flat", "edge", "colour")
    t0 = time.monotonic()
    chart.select("colour")  # three slots at 10 ms each: select must wait for it
    assert time.monotonic() - t0 >= 0.03
    assert sim.current == "colour" and chart.current() == "colour"
    with pytest.raises(ConfigError, match="no chart 'siemens'; charts: dark, flat, edge, colour"):
        chart.select("siemens")
    chart.safe_state()
    assert sim.current == "dark"
    bad_park = driver("chart", "serial-chart", hub, port="sim:chart", park="grey", **FAST)
    with pytest.raises(ConfigError, match="park chart 'grey' is not on the wheel"):
        bad_park.open()


def test_safe_state_is_idempotent_and_harmless_before_open(hub: SimulatorHub,
                                                           opened: list[Any]) -> None:
    led = driver("light", "scpi-led", hub, resource="sim:led", **FAST)
    led.safe_state()  # never opened: nothing to do, no error
    _open(opened, led)
    led.on()
    led.safe_state()
    led.safe_state()
    assert not hub.simulator("led").output.on


def test_unknown_simulator_name_is_one_line_config_error(hub: SimulatorHub) -> None:
    led = driver("light", "scpi-led", hub, resource="sim:nope", **FAST)
    with pytest.raises(ConfigError, match="no simulator 'nope'; simulators: led, led_pty"):
        led.open()
