"""Lens and cover-glass effects of the simulator (issue 18): particle shadows, decentre,
distortion, lateral colour, the dot-grid chart; and that modules without them render exactly
as before.

Each effect is measured on the rendered image by a method that does not use the simulator's own
formulas, and compared with ``harness sim truth``. Renders are noise-free: the module's PRNU is
set to zero and :meth:`SensorModel.expected_response` is the mean signal per photon (what an
infinite average of frames gives), so the tolerances below are those of the measurement
methods, stated in each test.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.sim import sensor as sensor_module
from harness.sim.bench import Bench
from harness.sim.blemish import particle_shadows
from harness.sim.module import Module, _merge, load_module
from harness.sim.scene import DOT_DARK, DOT_LIGHT, check_scene, layout
from harness.sim.sensor import Operating, Roi, SensorModel
from harness.sim.truth import lens_geometry_truth, particles_truth

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "fixtures" / "modules"
# sha256 of the uint16 frames below, computed from the simulator BEFORE issue 18's lens effects
# existed (git HEAD 2026-12-06, `git archive HEAD harness fixtures` into a scratch folder and
# _frame_hash run there with PYTHONPATH at it); the new code must reproduce them bit for bit.
BEFORE = {
    "golden/flat": "6b9c31e442ded8f75a43d3aa3618c59469b895b7e1aca68935bda7428581df05",
    "golden/edge": "9f05575e1b6fdbea2a782def7ab686c7387b08bee991d1658f059f4a1aab84b2",
    "golden/colour": "3deb18dafd7b8659aeb3b9e8775068edcc0c52f27ac6ec7738581310d11b71ff",
    "small-mono/flat": "d938bbabadb4b73df8a21e37af2b5332a6502e011b5d00aa8449a2e9f142f2ec",
    "small-mono/edge": "3109bf943b566645eb9b9fbd7a7a58e32c5e397da64e6923cb162c9a815cf07c",
    "small-mono/colour": "e8d28dc4f51e7975c2d96b8922041022095afc12a7038b3b2b8fd97d33866d21",
}


def _frame_hash(model: SensorModel, chart: str) -> str:
    s = model.module.sensor
    out = np.empty((s.height, s.width), np.uint16)
    model.frame(layout(chart, s.width, s.height), "D65", 0.0, 2.0e6,
                Operating(2000.0, 0.0, s.black_level_dn, 25.0), Roi(0, 0, s.width, s.height),
                np.random.default_rng(18), out)
    return hashlib.sha256(out.tobytes()).hexdigest()


def clean(name: str, size: tuple[int, int] | None = None, **over: Any) -> Module:
    """A module file without PRNU (a noise-free response is then smooth), + overrides."""
    m = load_module(MODULES / f"{name}.yaml")
    if size is not None:
        m = m.with_sensor_size(*size)
    data = _merge(m.model_dump(by_alias=True),
                  {"sensor": {"prnu_pct": {"pixel": 0.0, "row": 0.0, "column": 0.0}}, **over})
    return Module.model_validate({**data, "source": m.source})


def response(m: Module, chart: str, roi: Roi | None = None) -> np.ndarray:
    s = m.sensor
    return SensorModel(m).expected_response(layout(chart, s.width, s.height), "D65", 0.0,
                                            roi or Roi(0, 0, s.width, s.height))


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


# -- defaults: nothing changes ------------------------------------------------------------------


def test_modules_without_the_effects_render_bit_for_bit_as_before() -> None:
    """Golden (12 MP, colour) and small-mono frames of the flat, edge and colour charts at a
    fixed seed hash to what the code before the lens effects produced (see BEFORE)."""
    for name in ("golden", "small-mono"):
        model = SensorModel(load_module(MODULES / f"{name}.yaml"))
        for chart in ("flat", "edge", "colour"):
            assert _frame_hash(model, chart) == BEFORE[f"{name}/{chart}"], (name, chart)


def test_default_modules_never_enter_the_new_code_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """At default parameters the remap and the shadows are skipped, not applied as identity:
    they cost nothing."""
    def boom(*_: object, **__: object) -> None:
        raise AssertionError("a lens-effect code path ran for a module without the effect")

    monkeypatch.setattr(sensor_module, "render_through_lens", boom)
    monkeypatch.setattr(sensor_module, "apply_shadows", boom)
    for name in sorted(p.stem for p in MODULES.glob("*.yaml")):
        m = load_module(MODULES / f"{name}.yaml")
        if name in ("dusty", "distorted", "lateral-ca"):
            continue
        assert not m.optics.has_geometry and not m.optics.particles, name
    small = load_module(MODULES / "small.yaml")
    for chart in ("flat", "edge", "dotgrid"):
        assert response(small, chart).shape == (480, 640)


# -- module files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("optics", "message"), [
    ({"distortion": {"k1": -0.5}}, "fold the image over"),
    ({"particles": [{"x_px": 700, "y_px": 10, "diameter_um": 5, "distance_um": 50}]},
     "optics.particles[0]: (700.0, 10.0) px outside the 640x480 sensor"),
    ({"lateral_ca": {"R": 0.5}}, "optics.lateral_ca.R"),
    ({"particles": [{"x_px": 7, "y_px": 10, "diameter_um": 0, "distance_um": 50}]},
     "diameter_um"),
])
def test_bad_lens_effect_parameters_give_one_line_errors(tmp_path: Path, optics: dict[str, Any],
                                                         message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {MODULES / 'small.yaml'}\n"
                    + yaml.safe_dump({"optics": optics}, default_flow_style=False))
    with pytest.raises(ConfigError) as err:
        load_module(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_smaller_sensor_scales_the_decentre_and_particle_positions() -> None:
    """with_sensor_size scales the lens with the sensor (as the normalised RI and distortion
    do): positions scale by the size ratio, the shadows' size in pixels does not."""
    dec = load_module(MODULES / "decentred.yaml").with_sensor_size(640, 480)
    assert lens_geometry_truth(dec)["optical_centre_px"] == {
        "x": pytest.approx(319.5 + 60 * 640 / 4032), "y": pytest.approx(239.5 - 40 * 480 / 3024)}
    big, small = (particle_shadows(m) for m in (
        load_module(MODULES / "dusty.yaml"),
        load_module(MODULES / "dusty.yaml").with_sensor_size(2016, 1512)))
    for a, b in zip(big, small, strict=True):
        assert (b.x_px, b.y_px) == pytest.approx(((a.x_px + 0.5) / 2 - 0.5,
                                                  (a.y_px + 0.5) / 2 - 0.5))
        assert (b.fwhm_px, b.contrast) == (a.fwhm_px, a.contrast)


# -- particles -----------------------------------------------------------------------------------


def test_particle_shadow_profile_is_the_particle_convolved_with_the_pupil_disc() -> None:
    """The truth's contrast and FWHM against a brute-force convolution (cv2.filter2D on a
    0.1 px grid) of the particle's disc with the normalised pupil disc of diameter d / N:
    within 0.05 % (contrast, absolute) and 0.1 px (FWHM), the grid's discretisation."""
    m = load_module(MODULES / "dusty.yaml")
    pitch, n_f = m.sensor.pixel_pitch_um, m.optics.f_number
    for p, truth in zip(m.optics.particles, particles_truth(m), strict=True):
        a, dd = p.diameter_um / pitch, p.distance_um / n_f / pitch
        step = 0.1
        n = int(((a + dd) / 2 + 2) / step)
        ax = np.arange(-n, n + 1) * step
        disc = (np.hypot(*np.meshgrid(ax, ax)) <= a / 2).astype(np.float32)
        k = np.arange(-int(dd / 2 / step) - 1, int(dd / 2 / step) + 2) * step
        kernel = (np.hypot(*np.meshgrid(k, k)) <= dd / 2).astype(np.float32)
        profile = cv2.filter2D(disc, -1, kernel / kernel.sum(),
                               borderType=cv2.BORDER_CONSTANT)[n, n:]
        half = float(np.interp(profile[0] / 2, profile[::-1], ax[n:][::-1]))
        assert truth["contrast_pct"] == pytest.approx(100 * profile[0], abs=0.05)
        assert truth["fwhm_px"] == pytest.approx(2 * half, abs=0.1)
    assert [round(t["contrast_pct"], 1) for t in particles_truth(m)] == [7.8, 4.0, 2.0, 4.8]


def test_dusty_flat_field_shows_each_shadow_as_its_truth() -> None:
    """Dusty / golden flat (noise-free, no PRNU) around each truth centre: the depth of the
    pixel at the centre (column x, row y) equals the truth contrast (it lies on the shadow's
    flat core: 0.001 % absolute); the diameter of the disc with the area of the pixels deeper than
    half of it equals the truth FWHM within 0.6 px (pixel counting: the area is quantised to
    whole pixels, +-0.4 px measured)."""
    dusty, golden = clean("dusty"), clean("golden")
    for truth in particles_truth(dusty):
        x, y = truth["x_px"], truth["y_px"]
        reach = int(truth["shadow_diameter_px"]) // 2 + 8
        roi = Roi(int(x) - reach, int(y) - reach, 2 * reach, 2 * reach)
        depth = 1.0 - response(dusty, "flat", roi) / response(golden, "flat", roi)
        centre = float(depth[round(y) - roi.offset_y, round(x) - roi.offset_x])
        assert 100 * centre == pytest.approx(truth["contrast_pct"], abs=0.001)
        width = 2 * math.sqrt(float((depth >= centre / 2).sum()) / math.pi)
        assert width == pytest.approx(truth["fwhm_px"], abs=0.6)
        assert float(depth[0].max()) < 1e-6  # nothing beyond the shadow's reach


# -- decentre --------------------------------------------------------------------------------------


def test_decentred_flat_peaks_at_the_truth_optical_centre() -> None:
    """Decentred module at 640 x 480 (decentre scaled to (9.5, -6.3) px), green sites of a
    noise-free flat: the brightest point of the smoothed image is within 1 px of the truth
    centre (the green grid is 2 px), and a least-squares paraboloid fit of G^-1/2 (exactly
    quadratic in x, y for a cos^4 falloff, whatever the centre) finds it within 0.05 px."""
    m = clean("decentred", (640, 480))
    truth = lens_geometry_truth(m)["optical_centre_px"]
    assert (truth["x"], truth["y"]) != (319.5, 239.5)
    g = response(m, "flat")[0::2, 1::2].astype(np.float64)  # RGGB: Gr at (2p, 2q + 1)
    rows, cols = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    x, y = 2.0 * cols + 1.0, 2.0 * rows
    _, _, _, (col, row) = cv2.minMaxLoc(cv2.GaussianBlur(g, (0, 0), 3))
    assert math.hypot(2 * col + 1.0 - truth["x"], 2 * row - truth["y"]) <= 1.0
    z = (g / g.max()) ** -0.5
    design = np.column_stack([(x**2 + y**2).ravel(), x.ravel(), y.ravel(), np.ones(x.size)])
    a, b, c, _ = np.linalg.lstsq(design, z.ravel(), rcond=None)[0]
    assert (-b / (2 * a), -c / (2 * a)) == pytest.approx((truth["x"], truth["y"]), abs=0.05)


# -- distortion and the dot grid -------------------------------------------------------------------


def dot_centres(m: Module) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (pixel indices) and areas (px^2) of the dot-grid's dots wholly in the frame:
    the chart's reflectance is dotgrid / flat (noise-free), each dot weighted by its darkness
    (0 white .. 1 black), found as connected components of the half-dark mask."""
    s = m.sensor
    refl = response(m, "dotgrid") / response(m, "flat")
    dark = np.clip((DOT_LIGHT - refl) / (DOT_LIGHT - DOT_DARK), 0.0, 1.0)
    n, _, stats, _ = cv2.connectedComponentsWithStats((dark > 0.5).astype(np.uint8))
    found = []
    for x, y, w, h, _ in stats[1:n]:
        if x < 4 or y < 4 or x + w + 4 > s.width or y + h + 4 > s.height:
            continue
        weight = dark[y - 3:y + h + 3, x - 3:x + w + 3]
        yy, xx = np.mgrid[y - 3:y + h + 3, x - 3:x + w + 3]
        total = float(weight.sum())
        found.append(((weight * xx).sum() / total, (weight * yy).sum() / total, total))
    out = np.array(found)
    return out[:, :2], out[:, 2]


def grid_points(m: Module, k1: float, k2: float) -> np.ndarray:
    """The chart's dot centres as the docs define them, moved by r_d = r_u (1 + k1 r_u^2 +
    k2 r_u^4) about the truth optical centre (r normalised to the half-diagonal)."""
    w, h = m.sensor.width, m.sensor.height
    centre = lens_geometry_truth(m)["optical_centre_px"]
    cx, cy = centre["x"], centre["y"]
    pitch = h / 20.0
    steps = np.arange(-30, 31)
    x, y = np.meshgrid((w - 1) / 2.0 + steps * pitch, (h - 1) / 2.0 + steps * pitch)
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (w**2 / 4 + h**2 / 4)
    f = 1.0 + k1 * r2 + k2 * r2**2
    return np.column_stack([(cx + (x - cx) * f).ravel(), (cy + (y - cy) * f).ravel()])


def _nearest(found: np.ndarray, points: np.ndarray) -> np.ndarray:
    d = np.hypot(found[:, None, 0] - points[None, :, 0], found[:, None, 1] - points[None, :, 1])
    return np.asarray(d.min(axis=1))


def test_dot_grid_chart_is_as_documented() -> None:
    """Golden at 640 x 480: every dot wholly in the frame sits on the documented grid (pitch
    H/20, a dot at the image centre) within 0.001 px (noise-free, symmetric dots), and its
    darkness integral, pi (0.35 pitch / 2)^2 for any blur, gives the diameter within 2 %
    (the half-dark cut leaves a little of the blur's tail outside the window)."""
    m = clean("small")
    found, area = dot_centres(m)
    assert len(found) >= 19 * 27
    assert _nearest(found, grid_points(m, 0.0, 0.0)).max() < 1e-3
    assert np.min(np.hypot(found[:, 0] - 319.5, found[:, 1] - 239.5)) < 1e-3
    diameter = 2.0 * np.sqrt(area / math.pi) / (480 / 20)
    assert np.allclose(diameter, 0.35, rtol=0.02)
    assert check_scene("dotgrid") == "dotgrid"
    bench = Bench()
    bench.set_chart("dotgrid")
    assert bench.state().chart == "dotgrid"
    wheel = yaml.safe_load((ROOT / "stations" / "sim.yaml").read_text())["simulators"]["chart"]
    assert wheel["charts"] == ["dark", "flat", "edge", "colour", "focus", "dotgrid"]


def test_distorted_dot_grid_follows_the_truth_radial_model() -> None:
    """Distorted module at 640 x 480: each dot's centroid lies within 0.1 px of the grid point
    moved by the truth's k1, k2 (measured: <= 0.06 px, bicubic remap and the dot's own
    distortion), while the undistorted grid misses the corner dots by > 10 px; the truth's
    D(r) is 100 (k1 r^2 + k2 r^4)."""
    m = clean("distorted", (640, 480))
    truth = lens_geometry_truth(m)["distortion"]
    assert truth["D_pct"] == {"0.5": -1.5, "0.7": pytest.approx(-2.94), "0.9": -4.86}
    found, _ = dot_centres(m)
    assert len(found) >= 500
    assert _nearest(found, grid_points(m, truth["k1"], truth["k2"])).max() < 0.1
    assert _nearest(found, grid_points(m, 0.0, 0.0)).max() > 10.0


# -- lateral colour ----------------------------------------------------------------------------------


def _edge_u50(norm: np.ndarray, xs: np.ndarray, ys: np.ndarray, slope: float) -> float:
    """Where the supersampled edge profile of these samples crosses 0.5, in u = x - slope y
    (the slanted-edge projection of ISO 12233:2017 6.2, 0.1 px bins)."""
    u = (xs[None, :] - slope * ys[:, None]).ravel()
    bins = np.floor((u - u.min()) / 0.1).astype(int)
    count = np.bincount(bins)
    ok = count > 0
    prof = np.bincount(bins, norm.ravel())[ok] / count[ok]
    centres = (np.arange(count.size)[ok] + 0.5) * 0.1 + u.min()
    k = int(np.nonzero((prof[:-1] >= 0.5) & (prof[1:] < 0.5))[0][0])
    return float(centres[k] + (prof[k] - 0.5) / (prof[k] - prof[k + 1])
                 * (centres[k + 1] - centres[k]))


@pytest.mark.parametrize("roi", [Roi(180, 330, 200, 250), Roi(3700, 2500, 250, 250)],
                         ids=["top-left-square", "bottom-right-square"])
def test_red_and_blue_edges_move_by_the_truth_magnification(roi: Roi) -> None:
    """Lateral-CA module at 12 MP, a near-vertical slanted edge of a corner square (noise-free
    edge / flat): the R and B edge positions relative to G, each channel's samples projected
    along the edge, equal m (x_G(c_y) - c_x) (a magnification about the centre moves a
    straight edge by m times its distance from the centre along the row) within 0.03 px
    (measured: <= 0.014 px; golden gives <= 0.005 px)."""
    m = clean("lateral-ca")
    truth = lens_geometry_truth(m)
    ca, centre = truth["lateral_ca"], truth["optical_centre_px"]
    norm = (response(m, "edge", roi) / response(m, "flat", roi) - 0.2) / 0.6
    if norm[0, 0] < norm[0, -1]:
        norm = 1.0 - norm  # light to dark along the row
    xs = np.arange(roi.offset_x, roi.offset_x + roi.width, dtype=np.float64)
    ys = np.arange(roi.offset_y, roi.offset_y + roi.height, dtype=np.float64)
    green_x = []
    for i, row in enumerate(norm):  # RGGB: green at odd columns of even rows and vice versa
        sub, sx = row[(i + 1) % 2::2], xs[(i + 1) % 2::2]
        k = int(np.nonzero((sub[:-1] >= 0.5) & (sub[1:] < 0.5))[0][0])
        green_x.append(sx[k] + (sub[k] - 0.5) / (sub[k] - sub[k + 1]) * 2.0)
    slope = float(np.polyfit(ys, green_x, 1)[0])
    u = {site: _edge_u50(norm[a::2, b::2], xs[b::2], ys[a::2], slope)
         for site, (a, b) in {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}.items()}
    u_green = (u["Gr"] + u["Gb"]) / 2
    lever = u_green + slope * centre["y"] - centre["x"]
    assert abs(lever) > 1500
    assert u["R"] - u_green == pytest.approx(ca["m_R"] * lever, abs=0.03)
    assert u["B"] - u_green == pytest.approx(ca["m_B"] * lever, abs=0.03)
    assert ca["R_G_corner_px"] == pytest.approx(0.0012 * 2520) and ca["B_G_pct"] == -0.1


# -- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfa", ["RGGB", "GBRG", None])
def test_a_window_renders_as_the_same_part_of_the_whole_frame(cfa: str | None) -> None:
    """All four effects at once (640 x 480): a camera ROI at odd offsets renders the same
    pixels as the full frame (the remap grids follow the CFA sites of the absolute position),
    for two Bayer phases and a mono sensor, to float32 rounding of the remap coordinates
    (< 1e-6 of a response of ~0.1; measured 4.5e-8)."""
    m = clean("small", optics={
        "decentre_px": {"x": 7.0, "y": -5.0}, "distortion": {"k1": -0.05, "k2": 0.01},
        "lateral_ca": {"R": 0.004, "B": -0.003},
        "particles": [{"x_px": 300, "y_px": 200, "diameter_um": 10.0, "distance_um": 60.0}]},
        sensor={"cfa": cfa})
    full = response(m, "edge")
    roi = Roi(101, 57, 333, 211)
    part = response(m, "edge", roi)
    assert float(np.abs(part - full[57:57 + 211, 101:101 + 333]).max()) < 1e-6
    assert float(np.abs(full - response(clean("small", sensor={"cfa": cfa}), "edge")).max()) > 0.01


# -- truth CLI -------------------------------------------------------------------------------------


def test_truth_reports_the_new_effects() -> None:
    """``harness sim truth`` (JSON) of the new modules; the geometry and particle parts of the
    truth of golden and a mono module."""
    runner = CliRunner()
    data = {}
    for name in ("dusty", "lateral-ca"):
        result = runner.invoke(app, ["sim", "truth", name, "--json"])
        assert result.exit_code == 0, result.output
        data[name] = json.loads(result.stdout)
    for name in ("golden", "decentred", "distorted", "small-mono"):
        m = load_module(MODULES / f"{name}.yaml")
        data[name] = {**lens_geometry_truth(m), "particles": particles_truth(m)}
    golden = data["golden"]
    assert golden["optical_centre_px"] == {"x": 2015.5, "y": 1511.5}
    assert golden["particles"] == [] and golden["distortion"]["k1"] == 0.0
    assert golden["lateral_ca"]["R_G_corner_px"] == 0.0
    assert data["small-mono"]["lateral_ca"] is None
    assert data["decentred"]["optical_centre_px"] == {"x": 2075.5, "y": 1471.5}
    assert data["decentred"]["decentre_px"]["radial"] > 50.0
    dust = data["dusty"]["particles"]
    assert len(dust) == 4 and all(2.0 <= p["contrast_pct"] <= 8.0 for p in dust)
    assert all(15.0 <= p["fwhm_px"] <= 60.0 for p in dust)
    assert data["distorted"]["distortion"]["D_pct"]["0.9"] == -4.86
    assert data["lateral-ca"]["lateral_ca"]["R_G_corner_px"] == pytest.approx(3.024)
