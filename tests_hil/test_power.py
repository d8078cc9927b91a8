"""Module power: supply current idle and streaming, at the module's supply voltage."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.hil_requires("camera", "power"), pytest.mark.hil_family("power")]


def test_module_current(hil_suite, hil_power, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Current drawn while idle (acquisition stopped) and while streaming."""
    camera = hil_suite.camera
    camera.stop()
    idle = hil_power.measure()
    camera.start()
    camera.grab(2, timeout_s=10.0)
    streaming = hil_power.measure()
    hil_check("supply_voltage_v", idle.voltage_v, "V")
    hil_check("module_current_idle_a", idle.current_a, "A")
    hil_check("module_current_streaming_a", streaming.current_a, "A")
    if streaming.current_a <= idle.current_a:
        raise AssertionError(f"streaming current {streaming.current_a:.4f} A is not above idle "
                             f"{idle.current_a:.4f} A: is the module powered by this supply?")
