"""Module power: supply current idle and streaming, at the module's supply voltage."""

from __future__ import annotations

import pytest

from harness.errors import MeasurementError

pytestmark = [pytest.mark.hil_requires("camera", "power"), pytest.mark.hil_family("power")]


@pytest.mark.hil_measures("supply_voltage_v", "module_current_idle_a",
                          "module_current_streaming_a")
def test_module_current(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Current drawn while idle (acquisition stopped) and while streaming, at the supply
    voltage the spec's conditions name (a station that does not supply it is an ERROR: the
    voltage is a test condition, not a property of the module)."""
    camera = hil_session.camera
    camera.stop()
    idle = hil_session.measure_supply()
    camera.start()
    hil_session.grab("power_streaming", 2)
    streaming = hil_session.measure_supply()
    if streaming.current_a <= idle.current_a:
        raise MeasurementError(f"streaming current {streaming.current_a:.4f} A is not above "
                               f"idle {idle.current_a:.4f} A: is the module powered by this "
                               f"supply?", figure="module_current_streaming_a")
    cond = hil_session.condition("power")
    if "supply_v" in cond:
        wanted, tolerance = float(cond["supply_v"]), float(cond.get("supply_tolerance_v", 0.1))
        if abs(idle.voltage_v - wanted) > tolerance:
            raise MeasurementError(f"the station supplies {idle.voltage_v:.3f} V; the spec's "
                                   f"condition is {wanted:g} +- {tolerance:g} V",
                                   figure="supply_voltage_v")
    hil_check("supply_voltage_v", idle.voltage_v, "V")
    hil_check("module_current_idle_a", idle.current_a, "A")
    hil_check("module_current_streaming_a", streaming.current_a, "A")
