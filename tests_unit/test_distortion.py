"""Radial and SMIA TV distortion from a dot-grid chart (harness/analysis/distortion.py).

Ground truth is the renderer's lens (tests_unit/dotgrid_synth.py): dots are drawn where the model
r_d = r_u (1 + k1 r_u^2 + k2 r_u^4) puts them, so D(r) = 100 (k1 r^2 + k2 r^4) exactly, the
rotation is the one drawn, and the SMIA TV distortion is computed from the dot positions the
renderer's lens gives for the rectangle the analysis chose (never from the analysis's fit).

Tolerances (issue 18): |ΔD| <= 0.05 percentage points at r = 0.5, 0.7, 0.9 and |Δrotation| <=
0.02°. Measured: |ΔD| <= 0.005 pp at 1008 x 756 (30 random lenses, k1 -0.08..+0.05, k2 ±0.02,
rotation ±1.5°, centre offset ±15 px, blur σ 1 px, noise 1 %), <= 0.001 pp at 12 MP; rotation
within 0.002°. SMIA TV: it uses the raw centroids of six dots (no fit), so its noise is that of
the centroids (~0.03 px at 1008 x 756 over heights of ~700 px: ~0.01 pp); allowed 0.04 pp at
1008 x 756 and 0.01 pp at 12 MP. Distortion centre: within 1 px where the distortion is strong
enough to locate it (|k1| >= 0.03; measured <= 0.45 px).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.analysis.distortion import RADII, DistortionResult, measure_distortion
from harness.cli import app
from harness.errors import ConfigError, MeasurementError
from tests_unit.dotgrid_synth import (
    DIAMETER_H,
    DotLens,
    distortion_centre,
    dot_positions,
    image_centre,
    render_dot_grid,
    truth_distortion_pct,
)

SMALL = (756, 1008)
FULL = (3024, 4032)
runner = CliRunner()


def smia_truth(shape: tuple[int, int], lens: DotLens, box: tuple[int, int]) -> float:
    """SMIA TV distortion 100 (A - B) / B of the renderer's dots at columns ±m, rows ±n."""
    m, n = box
    p = dot_positions(shape, lens, np.array([[-m, -n], [-m, n], [m, -n], [m, n], [0, -n],
                                             [0, n]], float))
    a = 0.5 * (math.dist(p[0], p[1]) + math.dist(p[2], p[3]))
    b = math.dist(p[4], p[5])
    return 100.0 * (a - b) / b


def check(res: DistortionResult, shape: tuple[int, int], lens: DotLens, smia_tol: float) -> None:
    for r in RADII:
        got = res.radial_distortion_pct[f"{r:g}"]
        assert abs(got - truth_distortion_pct(lens, r)) <= 0.05, (r, got, lens)
    assert abs(res.rotation_deg - lens.rotation_deg) <= 0.02
    # the analysis's dot (0, 0) is the renderer's: the SMIA rectangle is indexed alike
    origin = dot_positions(shape, lens, np.zeros((1, 2)))[0]
    assert math.dist(res.grid_origin_px, origin) < 1.0
    assert abs(res.smia_tv_distortion_pct - smia_truth(shape, lens, res.smia_box)) <= smia_tol
    # the rectangle is the largest the frame holds: a rectangle one dot wider or taller would
    # need a dot that lies within 2.5 dot radii of the frame's edge (too close to measure) or
    # outside it
    m, n = res.smia_box
    rad = 0.5 * DIAMETER_H * shape[0]
    for mm, nn in ((m + 1, n), (m, n + 1)):
        p = dot_positions(shape, lens, np.array([[-mm, -nn], [-mm, nn], [mm, -nn], [mm, nn],
                                                 [0, -nn], [0, nn]], float))
        edge = np.minimum(np.minimum(p[:, 0], shape[1] - 1 - p[:, 0]),
                          np.minimum(p[:, 1], shape[0] - 1 - p[:, 1]))
        assert edge.min() < 2.5 * rad, (mm, nn, edge)


CASES = {
    "barrel, vignetting, offset centre": (
        DotLens(k1=-0.08, k2=0.01, rotation_deg=1.2, centre_offset_px=(6.0, -4.0)),
        {"corner_ri": 0.6}),
    "pincushion": (DotLens(k1=0.05, k2=-0.01, rotation_deg=-1.5,
                           centre_offset_px=(-9.0, 5.0)), {}),
    "moustache": (DotLens(k1=-0.05, k2=0.04, rotation_deg=0.4), {}),
    "light dots, grid off centre": (
        DotLens(k1=-0.03, k2=0.0, rotation_deg=0.7, grid_offset_px=(5.0, 3.0)),
        {"dark_dots": False, "corner_ri": 0.5}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_distortion_rotation_and_smia_match_the_lens(name: str) -> None:
    lens, extra = CASES[name]
    img = render_dot_grid(SMALL, lens, blur_sigma=1.0, noise_sigma=0.01,
                          rng=np.random.default_rng(3), **extra)  # type: ignore[arg-type]
    res = measure_distortion(img)
    check(res, SMALL, lens, smia_tol=0.04)
    assert res.polarity == ("light" if extra.get("dark_dots") is False else "dark")
    assert math.dist(res.centre_px, distortion_centre(SMALL, lens)) < 1.0
    assert res.warnings == ()
    assert res.dots_used == res.dots_detected > 400
    assert res.rms_residual_px < 0.1


def test_12mp_frame() -> None:
    """One full 12 MP frame (4032 x 3024): the chart's dots are 45 px across, pitch 151 px."""
    lens = DotLens(k1=-0.06, k2=0.008, rotation_deg=-0.8, centre_offset_px=(20.0, -12.0))
    img = render_dot_grid(FULL, lens, blur_sigma=1.0, noise_sigma=0.01, corner_ri=0.7,
                          rng=np.random.default_rng(5))
    res = measure_distortion(img)
    check(res, FULL, lens, smia_tol=0.01)
    assert math.dist(res.centre_px, distortion_centre(FULL, lens)) < 1.0
    assert res.max_radius > 0.95


def test_centre_fixed_at_the_image_centre() -> None:
    lens = DotLens(k1=-0.06, k2=0.0, rotation_deg=0.9, grid_offset_px=(-4.0, 2.0))
    img = render_dot_grid(SMALL, lens, noise_sigma=0.01, rng=np.random.default_rng(7))
    res = measure_distortion(img, centre="image", dots="dark")
    check(res, SMALL, lens, smia_tol=0.04)
    assert res.centre_px == image_centre(SMALL) and res.centre_mode == "image"
    assert res.centre_sigma_px == 0.0


def test_no_distortion_keeps_the_centre_and_says_it_is_undetermined() -> None:
    lens = DotLens(rotation_deg=-0.3)
    img = render_dot_grid(SMALL, lens, noise_sigma=0.01, rng=np.random.default_rng(11))
    res = measure_distortion(img)
    check(res, SMALL, lens, smia_tol=0.04)
    assert math.dist(res.centre_px, image_centre(SMALL)) < 5.0
    assert any("centre poorly determined" in w for w in res.warnings)


def test_as_dict_is_json_ready() -> None:
    img = render_dot_grid(SMALL, DotLens(k1=-0.02), rng=np.random.default_rng(1))
    data = measure_distortion(img).as_dict()
    assert set(data["radial_distortion_pct"]) == {"0.5", "0.7", "0.9"}
    assert {"k1", "k2", "centre_px", "rotation_deg", "smia_tv_distortion_pct", "smia_box",
            "dots_used", "rms_residual_px", "warnings"} <= set(data)
    json.dumps(data)


@pytest.mark.parametrize(("image", "kwargs", "error", "message"), [
    (np.zeros((100, 100, 3)), {}, ConfigError, "image: expected a 2-D image"),
    (np.zeros((20, 20)), {}, ConfigError, "image: image 20x20 is too small"),
    (np.full((100, 100), np.nan), {}, ConfigError, "image: the image holds NaN"),
    (np.ones((100, 100)), {"centre": "middle"}, ConfigError,
     "centre: 'middle' is not one of fit, image"),
    (np.ones((100, 100)), {"dots": "grey"}, ConfigError,
     "dots: 'grey' is not one of auto, dark, light"),
    (np.full((300, 400), 0.5), {}, MeasurementError, "no dot grid found: the image has no "
     "contrast"),
    ("crop", {}, MeasurementError, "no dot grid found: 8 dot-like blobs"),
    ("noise", {}, MeasurementError, "too few dots measured"),
])
def test_bad_input_is_one_line(image: object, kwargs: dict[str, str], error: type[Exception],
                               message: str) -> None:
    if isinstance(image, str) and image == "crop":  # a 160 x 120 piece of the chart: 8 whole dots
        image = render_dot_grid(SMALL, DotLens(k1=-0.05))[300:420, 400:560]
    elif isinstance(image, str):
        image = np.random.default_rng(0).normal(0.5, 0.05, (1000, 1300))
    assert isinstance(image, np.ndarray)
    with pytest.raises(error) as info:
        measure_distortion(image, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- command line


def u16(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 65535), 0, 65535).astype(np.uint16)


def test_cli_writes_the_figures(tmp_path: Path) -> None:
    lens = DotLens(k1=-0.07, k2=0.01, rotation_deg=1.0)
    tifffile.imwrite(tmp_path / "dots.tif",
                     u16(render_dot_grid(SMALL, lens, noise_sigma=0.01,
                                         rng=np.random.default_rng(2))))
    res = runner.invoke(app, ["analyze", "distortion", str(tmp_path / "dots.tif"), "--json",
                              str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    assert "SMIA TV distortion" in res.output
    data = json.loads((tmp_path / "d.json").read_text())
    for r in RADII:
        assert abs(data["radial_distortion_pct"][f"{r:g}"] - truth_distortion_pct(lens, r)) <= 0.05
    assert abs(data["rotation_deg"] - 1.0) <= 0.02
    assert data["image"] == str(tmp_path / "dots.tif") and data["centre_mode"] == "fit"
    assert abs(data["smia_tv_distortion_pct"]
               - smia_truth(SMALL, lens, (data["smia_box"]["columns"],
                                          data["smia_box"]["rows"]))) <= 0.04


@pytest.mark.parametrize(("args", "code", "message"), [
    (["{d}/missing.tif"], 2, "file not found"),
    (["{d}/dots.tif", "--centre", "middle"], 2, "--centre: 'middle' is not one of fit, image"),
    (["{d}/dots.tif", "--dots", "grey"], 2, "--dots: 'grey' is not one of auto, dark, light"),
    (["{d}/dots.tif", "--bayer", "XYZW"], 2, "--bayer"),
    (["{d}/flat.tif"], 3, "no dot grid found"),
    (["{d}/small.tif"], 2, "small.tif: image 40x30 is too small"),
])
def test_cli_bad_input_is_one_line(tmp_path: Path, args: list[str], code: int,
                                   message: str) -> None:
    tifffile.imwrite(tmp_path / "dots.tif", u16(render_dot_grid((240, 320), DotLens())))
    tifffile.imwrite(tmp_path / "flat.tif", np.full((120, 160), 30000, np.uint16))
    tifffile.imwrite(tmp_path / "small.tif", np.full((30, 40), 30000, np.uint16))
    res = runner.invoke(app, ["analyze", "distortion", *[a.format(d=tmp_path) for a in args]])
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
