"""Camera interface: identity, feature ranges, achieved frame rate, no dropped frames."""

from __future__ import annotations

import numpy as np
import pytest

from harness.devices.camera.bandwidth import GENTL_STREAM_INFO, STREAM_COUNTERS, statistics_delta
from harness.errors import FeatureError, MeasurementError

pytestmark = [pytest.mark.hil_requires("camera"), pytest.mark.hil_family("interface")]

REQUIRED_FEATURES = ("DeviceVendorName", "DeviceModelName", "DeviceSerialNumber",
                     "DeviceFirmwareVersion", "Width", "Height", "PixelFormat", "ExposureTime",
                     "Gain", "BlackLevel", "TriggerMode", "AcquisitionMode")


def test_identity(hil_station, hil_dut) -> None:  # type: ignore[no-untyped-def]
    """The camera reports a vendor, model, serial and firmware; the serial is the DUT's."""
    ident = hil_station.camera().identity()
    missing = [f for f in ("vendor", "model", "serial", "firmware") if not getattr(ident, f)]
    if missing:
        raise MeasurementError(f"the camera reports no {', '.join(missing)}")
    if hil_dut.expected_serial is not None and ident.serial != hil_dut.expected_serial:
        raise MeasurementError(f"the camera reports serial {ident.serial!r}, expected "
                               f"{hil_dut.expected_serial!r}")


@pytest.mark.hil_measures("exposure_min_us", "exposure_max_us", "gain_max_db")
def test_feature_ranges(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Every SFNC feature the suites rely on exists; exposure and gain ranges are wide enough."""
    camera = hil_session.camera
    missing = []
    for name in REQUIRED_FEATURES:
        try:
            camera.feature_info(name)
        except FeatureError:
            missing.append(name)
    if missing:
        raise MeasurementError(f"the camera lacks the features {', '.join(missing)}")
    exposure = camera.feature_info("ExposureTime")
    gain = camera.feature_info("Gain")
    hil_check("exposure_min_us", exposure.minimum, "us")
    hil_check("exposure_max_us", exposure.maximum, "us")
    hil_check("gain_max_db", gain.maximum, "dB")


def incomplete_count(stack) -> int:  # type: ignore[no-untyped-def]
    """Incomplete buffers in a stack: partial frames plus those the transport discarded."""
    counter = getattr(stack, "incomplete_count", None)
    if callable(counter):
        return int(counter())
    return sum(bool(m.incomplete) for m in stack.meta)


#: The transport's own counters (GenTL / GigE Vision stream statistics) recorded over the burst
#: where the camera's producer reports them (INFO figures, harness.devices.camera.bandwidth).
STREAM_FIGURES = {f"stream_{key}": ("packets" if "packet" in key or "request" in key
                                    else "buffers" if "buffer" in key else "frames")
                  for key in (*STREAM_COUNTERS, *GENTL_STREAM_INFO, "incomplete_discarded")}


def stream_statistics(camera) -> dict[str, int] | None:  # type: ignore[no-untyped-def]
    read = getattr(camera, "stream_statistics", None)
    return read() if callable(read) else None


@pytest.mark.hil_measures("frame_rate_hz", "dropped_frames", "incomplete_frames",
                          *STREAM_FIGURES)
def test_frame_rate_and_dropped_frames(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Achieved frame rate over a burst at a short exposure, frame-id continuity, and
    incomplete buffers (each judged: this is the test of the interface itself); the
    producer's own stream counters over the burst (dropped, resent, missed packets...) are
    recorded where it reports them."""
    cond = hil_session.condition("interface")
    frames = int(cond.get("frames", 30))
    exposure = float(cond.get("exposure_us", 1000))
    try:
        hil_session.camera.feature_info("ExposureTime")
    except FeatureError:
        hil_session.note("the camera has no ExposureTime feature: the frame rate is at its "
                         "own exposure", exposure_us=None)
    else:
        hil_session.camera.set("ExposureTime", exposure)
    before = stream_statistics(hil_session.camera)
    _, stack = hil_session.grab("interface_burst", frames, role="interface", strict=False)
    after = stream_statistics(hil_session.camera)
    if before is not None and after is not None:
        for key, value in statistics_delta(before, after).items():
            name = f"stream_{key}"
            if name in STREAM_FIGURES:
                hil_check(name, float(value), STREAM_FIGURES[name])
    stamps = np.array([m.timestamp_s for m in stack.meta])
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        raise MeasurementError(f"the burst's {len(stamps)} timestamps do not advance: no "
                               "frame rate can be measured", figure="frame_rate_hz")
    fps = (len(stamps) - 1) / float(stamps[-1] - stamps[0])
    hil_check("frame_rate_hz", fps, "Hz")
    hil_check("dropped_frames", float(sum(b - a - 1 for a, b in stack.frame_id_gaps())),
              "frames")
    hil_check("incomplete_frames", float(incomplete_count(stack)), "frames")
