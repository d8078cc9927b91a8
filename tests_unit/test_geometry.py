"""Optical centre of a flat field against flats rendered about a known centre.

Ground truth is the generator's centre (x0, y0) (tests_unit/geometry_synth.py): the relative
illumination is an analytic function of the distance from (x0, y0) (cos⁴ law, optionally times
the two-circle model of mechanical vignetting), with 1 % PRNU, shot noise, read noise, a black
level and, on a Bayer mosaic, per-colour gains and falloff (colour shading).

Tolerances: the issue asks for 2 px at 12 MP. Over 60 such 12 MP flats (mono and RGGB; cos⁴
alone, with vignetting to a corner RI of 0.23 and 0.17; decentres 0, ±40 and ±120 px in x and
y) the largest error measured was 0.071 px (docs/standards.md#optical-centre), so the tests
assert 0.5 px: a regression of the fit shows long before it would break the requirement, and
noise (standard error 0.02-0.04 px at 12 MP) cannot reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.analysis.geometry import measure_optical_centre
from harness.cli import app
from harness.errors import ConfigError, MeasurementError
from tests_unit.geometry_synth import H12, W12, focal_for_corner, render_flat

TOL_PX = 0.5
VIGNETTING = (1.3, 1.0)  # knee at 30 % of the half-diagonal, corner RI ~0.24 with cos⁴

runner = CliRunner()


def centre_of(shape: tuple[int, int], dx: float, dy: float) -> tuple[float, float]:
    h, w = shape
    return (w - 1) / 2 + dx, (h - 1) / 2 + dy


@pytest.mark.parametrize(("offset", "cfa", "vignetting"), [
    ((120.0, -120.0), "RGGB", None),
    ((-120.0, 40.0), "GRBG", VIGNETTING),
])
def test_12mp_centre_within_tolerance(offset: tuple[float, float], cfa: str | None,
                                      vignetting: tuple[float, float] | None) -> None:
    """12 MP (4032 x 3024) flats: the requirement's case. Tolerance 0.5 px (module docstring);
    the offset is the centre minus ((W-1)/2, (H-1)/2) exactly."""
    truth = centre_of((H12, W12), *offset)
    flat = render_flat(truth, cfa=cfa, vignetting=vignetting, seed=11)
    res = measure_optical_centre(flat, bayer=cfa)
    err = np.subtract(res.optical_centre_px, truth)
    assert np.hypot(*err) < TOL_PX, err
    assert res.image_centre_px == ((W12 - 1) / 2, (H12 - 1) / 2)
    assert res.optical_centre_offset_px == pytest.approx(
        np.subtract(res.optical_centre_px, res.image_centre_px), abs=1e-9)
    assert res.optical_centre_offset_px == pytest.approx(offset, abs=TOL_PX)
    assert max(res.centre_se_px) < 0.1  # noise alone moves the centre by hundredths of a px
    assert res.block_px % 2 == 0 if cfa else True


@pytest.mark.parametrize(("offset", "cfa"), [
    ((0.0, 0.0), "RGGB"), ((40.0, 0.0), None), ((-40.0, 0.0), "RGGB"), ((120.0, 0.0), None),
    ((-120.0, 0.0), "RGGB"), ((0.0, 40.0), None), ((0.0, -40.0), "RGGB"), ((0.0, 120.0), None),
    ((0.0, -120.0), "RGGB"), ((120.0, 120.0), None)])
def test_decentre_sweep_with_vignetting(offset: tuple[float, float], cfa: str | None) -> None:
    """3 MP flats (2016 x 1512; the same absolute decentres, so relatively twice as large),
    mono or RGGB with colour shading, cos⁴ with corner RI 0.4 times vignetting: within
    0.5 px."""
    shape = (H12 // 2, W12 // 2)
    truth = centre_of(shape, *offset)
    flat = render_flat(truth, shape=shape, cfa=cfa, vignetting=VIGNETTING, seed=3)
    res = measure_optical_centre(flat, bayer=cfa)
    assert np.hypot(*np.subtract(res.optical_centre_px, truth)) < TOL_PX
    assert res.optical_centre_offset_px == pytest.approx(offset, abs=TOL_PX)


def test_corner_relative_illumination_of_the_fitted_surface() -> None:
    """Noise-free cos⁴ flat, black level subtracted with a dark frame: the fitted surface at
    each image corner over its peak equals (1 + (r / f)²)⁻² at the corner's distance r from
    the true centre. Tolerance 0.003: the spline's misfit of the cos⁴ curve is below 0.05 %."""
    shape = (756, 1008)
    truth = centre_of(shape, 30.0, -20.0)
    flat = render_flat(truth, shape=shape, prnu=0.0, gain_dn_per_e=0.0, read_dn=0.0,
                       level_dn=20000.0)
    dark = np.full(shape, 64, dtype=np.uint16)
    res = measure_optical_centre(flat, dark=dark)
    f = focal_for_corner(0.4, shape)
    h, w = shape
    corners = {"top_left": (0, 0), "top_right": (w - 1, 0), "bottom_left": (0, h - 1),
               "bottom_right": (w - 1, h - 1)}
    for name, (px, py) in corners.items():
        r = np.hypot(px - truth[0], py - truth[1])
        assert res.relative_illumination_corners[name] == pytest.approx(
            (1 + (r / f) ** 2) ** -2, abs=0.003), name
    assert res.peak_value == pytest.approx(20000.0, rel=0.002)
    assert np.hypot(*np.subtract(res.optical_centre_px, truth)) < 0.05  # noise-free


def test_black_level_and_rgb_input_do_not_move_the_centre() -> None:
    """A constant black level is absorbed by the profile's constant term, so the centre with
    and without the dark frame agrees to 1e-6 px; an RGB image (the colours averaged) gives
    the same centre as its mono source (RI symmetric about the same point)."""
    shape = (756, 1008)
    truth = centre_of(shape, -25.0, 15.0)
    flat = render_flat(truth, shape=shape, vignetting=VIGNETTING, seed=5)
    with_dark = measure_optical_centre(flat, dark=np.full(shape, 64.0))
    without = measure_optical_centre(flat)
    assert with_dark.optical_centre_px == pytest.approx(without.optical_centre_px, abs=1e-6)
    rgb = np.stack([flat * 0.5, flat * 1.0, flat * 0.8], axis=2) / 65535.0
    assert measure_optical_centre(rgb).optical_centre_px == pytest.approx(
        without.optical_centre_px, abs=1e-6)
    assert np.hypot(*np.subtract(without.optical_centre_px, truth)) < TOL_PX


def test_bad_input_is_rejected() -> None:
    flat = render_flat((500.0, 380.0), shape=(756, 1008), seed=1)
    with pytest.raises(ConfigError, match="bayer: 'XYZW' not allowed"):
        measure_optical_centre(flat, bayer="XYZW")
    with pytest.raises(ConfigError, match="blocks"):
        measure_optical_centre(flat, blocks=4)
    with pytest.raises(ConfigError, match="flat: expected a 2-D image"):
        measure_optical_centre(flat[0])
    with pytest.raises(ConfigError, match="too small"):
        measure_optical_centre(flat[:12, :12])
    with pytest.raises(ConfigError, match="dark"):
        measure_optical_centre(flat, dark=flat[:-2])
    with pytest.raises(ConfigError, match="bayer: a Bayer mosaic is 2-D"):
        measure_optical_centre(np.ones((64, 64, 3)), bayer="RGGB")
    with pytest.raises(MeasurementError, match="no signal"):
        measure_optical_centre(np.zeros((756, 1008)))
    noise = np.random.default_rng(0).normal(1000.0, 3.0, (756, 1008))
    with pytest.raises(MeasurementError, match="centre is undefined"):
        measure_optical_centre(noise)


def test_cli_json_and_errors(tmp_path: Path) -> None:
    shape = (1008, 1344)
    truth = centre_of(shape, 40.0, -30.0)
    tifffile.imwrite(tmp_path / "flat.tif", render_flat(truth, shape=shape, cfa="RGGB"))
    out = tmp_path / "g.json"
    res = runner.invoke(app, ["analyze", "geometry", str(tmp_path / "flat.tif"), "--bayer",
                              "RGGB", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "optical centre" in res.stdout
    data = json.loads(out.read_text())
    assert data["optical_centre_px"] == pytest.approx(list(truth), abs=TOL_PX)
    assert data["optical_centre_offset_px"] == pytest.approx([40.0, -30.0], abs=TOL_PX)
    assert data["image_centre_px"] == [(shape[1] - 1) / 2, (shape[0] - 1) / 2]
    assert data["block_px"] % 2 == 0
    for args, expect in (
            ([str(tmp_path / "none.tif")], "none.tif"),
            ([str(tmp_path / "flat.tif"), "--bayer", "XYZW"], "--bayer"),
            ([str(tmp_path / "flat.tif"), "--blocks", "5"], "--blocks: 5 outside"),
            ([str(tmp_path / "flat.tif"), "--dark", str(tmp_path / "none.tif")], "none.tif")):
        bad = runner.invoke(app, ["analyze", "geometry", *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert bad.stderr.count("\n") == 1 and expect in bad.stderr, bad.stderr
    tifffile.imwrite(tmp_path / "uniform.tif", np.full(shape, 1000, dtype=np.uint16))
    flat_res = runner.invoke(app, ["analyze", "geometry", str(tmp_path / "uniform.tif")])
    assert flat_res.exit_code == 3 and "undefined" in flat_res.stderr
