"""Smoke test of the station lifecycle through the plugin's fixtures."""

from __future__ import annotations

import pytest

from harness.station.station import Station

pytestmark = pytest.mark.hil_family("station")


def test_station_opens_and_identifies_every_device(hil_station: Station) -> None:
    identities = hil_station.identities()
    assert identities, "the station has no devices"
    for role, ident in identities.items():
        assert ident.serial, f"{role} reports no serial"


def test_camera_grabs_a_stack_with_metadata(hil_session) -> None:  # type: ignore[no-untyped-def]
    cs, stack = hil_session.grab("smoke", 3)  # every grab of a run is on record
    assert len(stack) == 3 and len(cs.records()) == 3
    assert stack.frames.ndim in (3, 4)
    assert not stack.frame_id_gaps()


@pytest.mark.hil_requires("light")
def test_light_switches(hil_light) -> None:  # type: ignore[no-untyped-def]
    hil_light.on()
    assert hil_light.is_on()
    hil_light.off()
    assert not hil_light.is_on()
