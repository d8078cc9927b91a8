"""Camera faults on the SimCamera (``camera: {driver: sim, faults: {...}}``): dropped frames
leave a frame-id gap, incomplete buffers are flagged, a timeout and a disconnect raise the
errors a real transport would, naming the device (harness.sim.faults.CameraFaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.capture.sequences import run_sequence
from harness.errors import CameraDisconnected, CameraError, CameraTimeout, ConfigError
from harness.sim.camera import SimCamera, SimCameraSettings
from harness.sim.faults import CameraFaults
from harness.station.schema import load_station_file
from tests_unit.test_sim_sensor import MODULES


def camera(**faults: int) -> SimCamera:
    cam = SimCamera.standalone(str(MODULES / "small-mono.yaml"), seed=1,
                               sensor_size=(64, 48), faults=faults)
    cam.start()
    return cam


def test_no_faults_gives_contiguous_ids() -> None:
    stack = camera().grab(6)
    assert stack.frame_id_gaps() == [] and not any(m.incomplete for m in stack.meta)


def test_dropped_frames_leave_a_gap_in_the_frame_ids() -> None:
    stack = camera(drop_every=3).grab(6)
    ids = [m.frame_id for m in stack.meta]
    assert ids == [1, 2, 4, 5, 6, 8]  # frames 3 and 7 were lost on the wire
    assert stack.frame_id_gaps() == [(2, 4), (6, 8)]


def test_incomplete_buffers_are_flagged() -> None:
    stack = camera(incomplete_every=2).grab(4)
    assert [m.incomplete for m in stack.meta] == [False, True, False, True]


def test_timeout_names_the_device_and_keeps_timing_out() -> None:
    cam = camera(timeout_after=2)
    cam.grab(2)
    for _ in range(2):
        with pytest.raises(CameraTimeout, match=r"^camera: no frame within 0.5 s \(injected"):
            cam.grab(1, timeout_s=0.5)


def test_disconnect_mid_grab_and_from_then_on() -> None:
    cam = camera(disconnect_after=3)
    with pytest.raises(CameraDisconnected, match=r"^camera: camera vanished .* after 3 frames"):
        cam.grab(5)
    with pytest.raises(CameraDisconnected, match="injected fault"):
        cam.grab(1)
    cam.safe_state()  # still callable: the station's safe state must not hang on it
    assert not cam.streaming


def test_a_sequence_refuses_a_stack_with_a_gap_or_an_incomplete_buffer(tmp_path: Path) -> None:
    """The capture sequences never store a stack the transport damaged."""
    from harness.capture.sequences import CaptureContext

    for faults, message in (({"drop_every": 2}, "dropped frames"),
                            ({"incomplete_every": 2}, "incomplete buffers")):
        cam = camera(**faults)
        ctx = CaptureContext(camera=cam, out_dir=tmp_path / message.replace(" ", "-"))
        with pytest.raises(CameraError, match=message):
            run_sequence("dark_stack", ctx, frames=4)


def test_fault_model_fates() -> None:
    faults = CameraFaults(drop_every=4, incomplete_every=3, timeout_after=7)
    assert [faults.fate(i) for i in range(8)] == [
        "ok", "ok", "incomplete", "drop", "ok", "incomplete", "ok", "timeout"]
    assert not CameraFaults().any and CameraFaults(incomplete_every=2).any


def test_bad_fault_spec_in_a_station_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "st.yaml"
    path.write_text("id: cam-fault\nbench: {}\n"
                    f"camera: {{driver: sim, module: {MODULES / 'small.yaml'}, "
                    "faults: {drop_every: 1}}\n")
    with pytest.raises(ConfigError) as info:
        load_station_file(path)
    assert "\n" not in str(info.value) and "drop_every" in str(info.value)
    assert SimCameraSettings(module="x", faults={"drop_every": 2}).faults is not None
