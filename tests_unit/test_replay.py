"""Replay camera: a recorded sequence replays frame for frame; drift is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.capture.sequences import CaptureContext, run_sequence
from harness.errors import CameraError, CameraTimeout, ConfigError
from harness.station.station import Station


def record(tmp_path: Path) -> Path:
    path = tmp_path / "rec.yaml"
    path.write_text(f"id: rec\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n"
                    "camera: {driver: fake, width: 16, height: 12, seed: 3}\n")
    with Station.load(path) as st:
        ctx = CaptureContext(camera=st.camera(), light=st.device("light"),
                             out_dir=tmp_path / "run" / "captures", header={"bits": 12})
        run_sequence("saturation_level", ctx)
        run_sequence("flat_stack", ctx, frames=3)
        run_sequence("exposure_sweep", ctx, steps=4, spatial_frames=2, exposure_max_us=4000.0)
    return tmp_path / "run" / "captures"


def replay_station(tmp_path: Path, captures: Path, extra: str = "") -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(f"id: rep\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n"
                    f"camera: {{driver: replay, captures: {captures}{extra}}}\n")
    return path


def test_replay_serves_the_recording_frame_for_frame(tmp_path: Path) -> None:
    captures = record(tmp_path)
    with Station.load(replay_station(tmp_path, captures)) as st:
        ctx = CaptureContext(camera=st.camera(), light=st.device("light"),
                             out_dir=tmp_path / "again", header={"bits": 12})
        run_sequence("saturation_level", ctx)
        flat = run_sequence("flat_stack", ctx, frames=3)
        sweep = run_sequence("exposure_sweep", ctx, steps=4, spatial_frames=2,
                             exposure_max_us=4000.0)
        assert st.camera().remaining == 0
    original = sorted(p.name for p in captures.iterdir())
    assert len(original) == 3
    from harness.inputs.captureset import CaptureSet

    for replayed, name in ((flat, original[1]), (sweep, original[2])):
        source = CaptureSet.open(captures / name)
        assert [r.sha256 for r in replayed.records()] == [r.sha256 for r in source.records()]
        a, b = replayed.records()[0], source.records()[0]
        assert np.array_equal(replayed.load(a), source.load(b))


def test_replay_out_of_sync_is_an_error(tmp_path: Path) -> None:
    captures = record(tmp_path)
    with Station.load(replay_station(tmp_path, captures)) as st:
        ctx = CaptureContext(camera=st.camera(), light=st.device("light"),
                             out_dir=tmp_path / "again", header={"bits": 12})
        run_sequence("saturation_level", ctx)
        run_sequence("flat_stack", ctx, frames=3)
        with pytest.raises(CameraError, match=r"replay out of sync at frame 14 .*: ExposureTime: the suite asked for 9999, the recording has 10"):
            run_sequence("exposure_sweep", ctx, steps=4, spatial_frames=2,
                         exposure_min_us=9999.0, exposure_max_us=20000.0)


def test_replay_exhausted(tmp_path: Path) -> None:
    captures = record(tmp_path)
    with Station.load(replay_station(tmp_path, captures, ", strict: false")) as st:
        cam = st.camera()
        cam.grab(cam.remaining)
        with pytest.raises(CameraTimeout, match="replay exhausted"):
            cam.grab(1)


def test_replay_without_captures(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no capture set"):
        Station.load(replay_station(tmp_path, tmp_path / "empty")).open()
