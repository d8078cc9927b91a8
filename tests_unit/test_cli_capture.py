"""``harness capture`` from a viky station (a real GenTL producer) and from the fake camera."""

from __future__ import annotations

import os
from pathlib import Path

import genicam
import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.inputs.captureset import CaptureSet

VIKY = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")


def _station(tmp_path: Path, camera: str) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(f"id: cap-{tmp_path.name[-8:]}\nlock_dir: .\ncamera: {camera}\n")
    return path


@pytest.mark.skipif(not os.path.isfile(VIKY), reason="viky.cti not in this wheel")
def test_capture_from_viky(tmp_path: Path) -> None:
    station = _station(tmp_path, f"{{driver: genicam, cti: ['{VIKY}'], serial: '2', features: "
                                 f"{{PixelFormat: Mono8, Width: 160, Height: 120, "
                                 f"AcquisitionFrameRate: 200}}}}")
    out = tmp_path / "set"
    result = CliRunner().invoke(app, ["capture", str(station), "--out", str(out),
                                      "--frames", "20"])
    assert result.exit_code == 0, result.output
    assert "wrote 20 frames (120x160) from camera" in result.stdout
    cs = CaptureSet.open(out)
    m = cs.manifest
    assert len(m.frames) == 20 and (m.width, m.height, m.bits) == (160, 120, 8)
    assert m.camera["serial"] == "2" and m.camera["role"] == "camera"
    assert m.node_map["PixelFormat"] == "Mono8"
    ids = [r.frame_id or 0 for r in cs.records()]
    assert ids == sorted(ids) and ids[0] > 0 and all(r.timestamp_s for r in cs.records())
    frame = cs.load(cs.records()[0])
    assert frame.shape == (120, 160) and frame.dtype == np.uint8


def test_capture_from_fake_camera_with_exposure(tmp_path: Path) -> None:
    station = _station(tmp_path, "{driver: fake, width: 32, height: 24}")
    out = tmp_path / "set"
    result = CliRunner().invoke(app, ["capture", str(station), "-o", str(out), "-n", "3",
                                      "--exposure-us", "2500", "--camera", "camera"])
    assert result.exit_code == 0, result.output
    cs = CaptureSet.open(out)
    assert [r.exposure_us_set for r in cs.records()] == [2500.0] * 3
    assert [r.exposure_us for r in cs.records()] == [2500.0] * 3  # read back from the camera
    assert cs.manifest.bits == 12 and cs.load(cs.records()[2]).shape == (24, 32)


def test_capture_bad_input_is_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["capture", str(tmp_path / "none.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "none.yaml: station file not found" in result.output
    station = _station(tmp_path, "{driver: fake}")
    result = runner.invoke(app, ["capture", str(station), "--out", str(tmp_path / "s"),
                                 "--camera", "left"])
    assert result.exit_code == 2
    assert "--camera: no camera 'left' on station" in " ".join(result.output.split())
    result = runner.invoke(app, ["capture", str(station), "--out", str(tmp_path / "s"),
                                 "--frames", "0"])
    assert result.exit_code == 2
    first = runner.invoke(app, ["capture", str(station), "--out", str(tmp_path / "t"), "-n", "1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["capture", str(station), "--out", str(tmp_path / "t"), "-n", "1"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert "Traceback" not in again.output


def test_capture_named_sequence_on_the_simulated_station(tmp_path: Path) -> None:
    """``harness capture --sequence`` runs a sequence with the spec's conditions and overrides."""
    from harness.inputs.captureset import CaptureSet

    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(app, [
        "capture", str(root / "stations" / "sim-small.yaml"), "--sequence", "dark_stack",
        "--limits", str(root / "tests_hil" / "limits" / "cm12.yaml"), "--param", "frames=3",
        "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    # the same session as a run: the probe frame, the black and saturation levels, then the
    # sequence, numbered in capture order
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "01-camera_probe", "02-saturation_level", "03-dark_stack"]
    cs = CaptureSet.open(tmp_path / "out" / "03-dark_stack")
    darks = cs.records(role="dark")
    assert len(darks) == 3  # --param overrides the spec's 8 frames
    assert darks[0].exposure_us_set == 20000.0  # from the spec's conditions
    bad = CliRunner().invoke(app, ["capture", str(root / "stations" / "sim-small.yaml"),
                                   "--sequence", "dark_stack", "--param", "frames",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'frames' is not key=value" in bad.output


def test_a_capture_cut_short_keeps_the_frames_taken(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.devices import fakes
    from harness.errors import CameraTimeout

    real = fakes.FakeCamera.grab
    calls = {"n": 0}

    def second_burst_fails(self: fakes.FakeCamera, n: int = 1,
                           timeout_s: float = 5.0) -> object:
        calls["n"] += 1
        if calls["n"] > 1:
            raise CameraTimeout("no frame within 5 s (unplugged)", device=self.name)
        return real(self, n, timeout_s)

    monkeypatch.setattr(fakes.FakeCamera, "grab", second_burst_fails)
    station = _station(tmp_path, "{driver: fake, width: 32, height: 24}")
    out = tmp_path / "set"
    result = CliRunner().invoke(app, ["capture", str(station), "-o", str(out), "-n", "20"])
    assert result.exit_code != 0 and "unplugged" in result.output
    cs = CaptureSet.open(out)  # the first burst of 16, on disk and in the manifest
    assert len(cs.records()) == 16
    assert all(cs.load(r).shape == (24, 32) for r in cs.records())
