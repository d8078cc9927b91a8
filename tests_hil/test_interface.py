"""Camera interface: identity, feature ranges, achieved frame rate, no dropped frames."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.hil_requires("camera"), pytest.mark.hil_family("interface")]

REQUIRED_FEATURES = ("DeviceVendorName", "DeviceModelName", "DeviceSerialNumber",
                     "DeviceFirmwareVersion", "Width", "Height", "PixelFormat", "ExposureTime",
                     "Gain", "BlackLevel", "TriggerMode", "AcquisitionMode")


def test_identity(hil_station, hil_dut) -> None:  # type: ignore[no-untyped-def]
    """The camera reports a vendor, model, serial and firmware; the serial is the DUT's."""
    ident = hil_station.camera().identity()
    for field in ("vendor", "model", "serial", "firmware"):
        assert getattr(ident, field), f"the camera reports no {field}"
    if hil_dut.expected_serial is not None:
        assert ident.serial == hil_dut.expected_serial


def test_feature_ranges(hil_suite, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Every SFNC feature the suites rely on exists; exposure and gain ranges are wide enough."""
    camera = hil_suite.camera
    missing = []
    for name in REQUIRED_FEATURES:
        try:
            camera.feature_info(name)
        except Exception:
            missing.append(name)
    assert not missing, f"features missing: {', '.join(missing)}"
    exposure = camera.feature_info("ExposureTime")
    gain = camera.feature_info("Gain")
    hil_check("exposure_min_us", exposure.minimum, "us")
    hil_check("exposure_max_us", exposure.maximum, "us")
    hil_check("gain_max_db", gain.maximum, "dB")


def test_frame_rate_and_dropped_frames(hil_suite, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Achieved frame rate over a burst at a short exposure, and frame-id continuity."""
    camera = hil_suite.camera
    frames = int(hil_suite.condition("interface").get("frames", 30))
    camera.set("ExposureTime", float(hil_suite.condition("interface").get("exposure_us", 1000)))
    stack = camera.grab(frames, timeout_s=30.0)
    stamps = np.array([m.timestamp_s for m in stack.meta])
    fps = (len(stamps) - 1) / float(stamps[-1] - stamps[0]) if stamps[-1] > stamps[0] else 0.0
    hil_check("frame_rate_hz", fps, "Hz")
    hil_check("dropped_frames", float(sum(b - a - 1 for a, b in stack.frame_id_gaps())),
              "frames")
    hil_check("incomplete_frames", float(sum(m.incomplete for m in stack.meta)), "frames")
