"""``harness analyze sfr | colour | focus`` end to end on rendered images written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import colour
import cv2
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.cli import app
from tests_unit.optics_synth import (
    CAMERA_MATRIX,
    defocus_sweep,
    render_colour_checker,
    render_edge,
    render_square_chart,
    texture,
)

runner = CliRunner()


def u16(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 65535), 0, 65535).astype(np.uint16)


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["analyze", *args])
    return res.exit_code, res.output


def test_sfr_on_chart_finds_ten_rois(tmp_path: Path) -> None:
    img, _ = render_square_chart((450, 600), sigma=0.7, angle_deg=5.0)
    tifffile.imwrite(tmp_path / "chart.tif", u16(img))
    code, out = run("sfr", str(tmp_path / "chart.tif"), "--json", str(tmp_path / "o.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "o.json").read_text())
    assert len(data["rois"]) == 10
    for r in data["rois"]:
        assert abs(r["mtf50_cy_per_px"] / (0.18739 / 0.7) - 1) < 0.02
        assert {"edge_angle_deg", "mtf_at_0125", "mtf_at_025", "mtf_at_05", "frequencies",
                "mtf"} <= set(r)
    assert data["summary"]["corner_to_centre_mtf50_ratio"] == pytest.approx(1.0, abs=0.02)
    assert data["missing_rois"] == {"not_found": [], "no_finite_mtf50": []}
    assert "incomplete field" not in out


def test_sfr_on_chart_with_a_corner_missing_reports_it(tmp_path: Path) -> None:
    from tests_unit.test_sfr_chart import chart_without

    tifffile.imwrite(tmp_path / "chart.tif", u16(chart_without("bottom_left")))
    code, out = run("sfr", str(tmp_path / "chart.tif"), "--json", str(tmp_path / "o.json"))
    assert code == 0, out  # permissive on arbitrary images: the rest is measured
    assert ("incomplete field: edge ROI not found: bottom_left vertical, bottom_left "
            "horizontal") in " ".join(out.split())
    data = json.loads((tmp_path / "o.json").read_text())
    assert len(data["rois"]) == 8
    assert data["missing_rois"]["not_found"] == ["bottom_left vertical", "bottom_left horizontal"]
    assert data["summary"]["missing"] == data["missing_rois"]["not_found"]


def test_sfr_single_edge_srgb_png_and_explicit_roi(tmp_path: Path) -> None:
    lin = render_edge((120, 140), sigma=1.0, angle_deg=6.0)
    enc = colour.cctf_encoding(lin, function="sRGB")
    cv2.imwrite(str(tmp_path / "edge.png"), u16(enc))
    code, out = run("sfr", str(tmp_path / "edge.png"), "--encoding", "srgb", "--json",
                    str(tmp_path / "e.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "e.json").read_text())
    (r,) = data["rois"]
    assert r["roi"] == [0, 0, 140, 120] and data["missing_rois"] is None  # one edge, no chart
    assert abs(r["mtf50_cy_per_px"] / 0.18739 - 1) < 0.01
    code, out = run("sfr", str(tmp_path / "edge.png"), "--encoding", "srgb", "--roi",
                    "20,10,100,100", "--json", str(tmp_path / "r.json"))
    assert code == 0, out
    (r,) = json.loads((tmp_path / "r.json").read_text())["rois"]
    assert r["roi"] == [20, 10, 100, 100] and abs(r["mtf50_cy_per_px"] / 0.18739 - 1) < 0.01


def test_sfr_bits_sets_clip_level(tmp_path: Path) -> None:
    lin = render_edge((100, 100), lo=0.2, hi=1.3)
    tifffile.imwrite(tmp_path / "e12.tif", np.round(np.clip(lin, 0, 1) * 4095).astype(np.uint16))
    code, out = run("sfr", str(tmp_path / "e12.tif"), "--bits", "12", "--json",
                    str(tmp_path / "b.json"))
    assert code == 0, out
    (r,) = json.loads((tmp_path / "b.json").read_text())["rois"]
    assert any("clipped" in w for w in r["warnings"])
    tifffile.imwrite(tmp_path / "e16.tif", u16(np.clip(lin, 0, 1)))
    code, out = run("sfr", str(tmp_path / "e16.tif"), "--bits", "12")
    assert code == 2 and "exceed 12-bit full scale 4095" in out


def test_sfr_bayer_green_channel(tmp_path: Path) -> None:
    lin = render_edge((200, 200), sigma=1.5, angle_deg=5.0)
    tifffile.imwrite(tmp_path / "raw.tif", u16(lin))  # grey scene: every CFA pixel alike
    code, out = run("sfr", str(tmp_path / "raw.tif"), "--bayer", "RGGB", "--channel", "G",
                    "--json", str(tmp_path / "g.json"))
    assert code == 0, out
    (r,) = json.loads((tmp_path / "g.json").read_text())["rois"]
    assert r["channel"] == "G" and abs(r["mtf50_cy_per_px"] / (0.18739 / 1.5) - 1) < 0.01


def test_colour_rgb_tiff_and_bayer(tmp_path: Path) -> None:
    img, centres = render_colour_checker((420, 640), gains=(0.6, 1.0, 0.8), black=0.02,
                                         exposure=0.7)
    tifffile.imwrite(tmp_path / "cc.tif", u16(img), photometric="rgb")
    code, out = run("colour", str(tmp_path / "cc.tif"), "--black-level", str(0.02 * 65535),
                    "--json", str(tmp_path / "c.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "c.json").read_text())
    assert len(data["patches"]) == 24 and data["patches"][0]["name"] == "dark skin"
    assert {"rgb", "lab", "delta_e_2000"} <= set(data["patches"][0])
    assert data["delta_e_2000_max"] < 0.5  # 16-bit quantisation only
    assert data["white_balance_error"] > 3 and len(data["ccm"]) == 3
    # the same scene as a raw RGGB mosaic
    raw = np.zeros(img.shape[:2])
    for k, c in enumerate("RGGB"):
        raw[k // 2 :: 2, k % 2 :: 2] = img[k // 2 :: 2, k % 2 :: 2, "RGB".index(c)]
    tifffile.imwrite(tmp_path / "raw.tif", u16(raw))
    corners = ",".join(f"{v:.2f}" for v in centres[[0, 5, 23, 18]].ravel())
    code, out = run("colour", str(tmp_path / "raw.tif"), "--bayer", "RGGB", "--corners",
                    corners, "--black-level", str(0.02 * 65535), "--json",
                    str(tmp_path / "b.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["delta_e_2000_max"] < 0.5
    assert np.allclose(data["chart_centres_px"], centres, atol=1.0)
    assert CAMERA_MATRIX.shape == (3, 3)


def test_focus_folder_and_multipage(tmp_path: Path) -> None:
    base = texture((128, 128), np.random.default_rng(0))
    pos = np.arange(-2.0, 2.01, 0.5)
    frames = defocus_sweep(base, pos, 0.3)
    folder = tmp_path / "sweep"
    folder.mkdir()
    for z, fr in zip(pos, frames, strict=True):
        tifffile.imwrite(folder / f"z_{z:+.2f}.tif", u16(fr))
    code, out = run("focus", str(folder), "--json", str(tmp_path / "f.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["positions_from"] == "file names"
    assert abs(data["best_position"] - 0.3) < 0.05
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([u16(f) for f in frames]),
                     photometric="minisblack")
    code, out = run("focus", str(tmp_path / "stack.tif"), "--positions",
                    ",".join(str(p * 10) for p in pos), "--metric", "brenner", "--json",
                    str(tmp_path / "m.json"))
    assert code == 0, out
    assert abs(json.loads((tmp_path / "m.json").read_text())["best_position"] - 3.0) < 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["sfr", "{d}/missing.tif"], "file not found"),
        (["sfr", "{d}/edge.tif", "--channel", "X"], "--channel: 'X' is not one of Y, R, G, B"),
        (["sfr", "{d}/edge.tif", "--roi", "1,2,3"], "--roi: expected x,y,w,h"),
        (["sfr", "{d}/edge.tif", "--roi", "0,0,8,8"], "--roi: ROI '0,0,8,8' must be at least 16x16"),
        (["sfr", "{d}/edge.tif", "--fit-order", "9"], "--fit-order: fit order must be 1..5"),
        (["colour", "{d}/edge.tif"], "colour analysis needs an RGB image"),
        (["colour", "{d}/rgb.tif", "--illuminant", "X1"],
         "--illuminant: unknown illuminant 'X1'"),
        (["colour", "{d}/rgb.tif", "--corners", "1,2"], "--corners: expected 8"),
        (["colour", "{d}/rgb.tif", "--corners", "0,0,70,0,70,60,0,60"],
         "--corners: corner points must lie inside the 64x64 image"),
        (["colour", "{d}/rgb.tif", "--corners", "5,5,58,5,58,58,5,58", "--black-level", "40000"],
         "--black-level: neutral patches at or below the black level"),
        (["colour", "{d}/rgb.tif", "--black-level", "-3"], "--black-level: must be in"),
        (["colour", "{d}/rgb.tif"], "no ColorChecker found"),
        (["focus", "{d}/edge.tif"], "at least 3 frames"),
        (["focus", "{d}/three.tif", "--positions", "1,2"], "2 positions given for 3 frames"),
        # the analysis names its parameters (metric, model); the command shows its options
        (["focus", "{d}/three.tif", "--metric", "fft"], "--metric: 'fft' is not one of tenengrad"),
        (["focus", "{d}/three.tif", "--fit", "cubic"], "--fit: 'cubic' is not one of parabola"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    tifffile.imwrite(tmp_path / "edge.tif", u16(render_edge((64, 64))))
    tifffile.imwrite(tmp_path / "rgb.tif", np.full((64, 64, 3), 30000, np.uint16),
                     photometric="rgb")
    tifffile.imwrite(tmp_path / "three.tif", np.zeros((3, 32, 32), np.uint16),
                     photometric="minisblack")
    code, out = run(*[a.format(d=tmp_path) for a in args])
    assert code == 2, out
    assert message in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
