"""ColorChecker finding and patch sampling (harness.analysis.charts) on rendered charts."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.charts import checker_from_corners, sample_patches
from harness.analysis.colour import locate_chart
from harness.errors import ConfigError
from tests_unit.optics_synth import render_colour_checker, texture


@pytest.mark.parametrize(
    "angle, centre",
    [(0.0, None), (4.0, (300.0, 200.0)), (-7.0, None), (183.0, None), (92.0, None),
     (-88.0, (330.0, 260.0))],
)
def test_detects_chart_in_any_orientation(angle: float, centre: tuple[float, float] | None) -> None:
    img, truth = render_colour_checker((480, 720), angle_deg=angle, centre=centre, pitch=62.0,
                                       gains=(0.7, 1.0, 0.9), noise_sigma=0.005,
                                       rng=np.random.default_rng(1))
    loc = locate_chart(img)
    assert loc.method == "detected" and loc.swatches_found >= 20
    # centres in reference order (so orientation is right) within 1 px (pitch 62 px)
    assert np.abs(loc.centres_px - truth).max() < 1.0
    assert loc.pitch_px == pytest.approx(62.0, rel=0.02)


def test_detects_chart_in_heavy_noise() -> None:
    img, truth = render_colour_checker((480, 720), noise_sigma=0.03, rng=np.random.default_rng(5))
    loc = locate_chart(img)
    assert np.abs(loc.centres_px - truth).max() < 1.5


def test_no_chart_is_a_clear_error() -> None:
    tex = texture((300, 400), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="no ColorChecker"):
        locate_chart(np.dstack([tex, tex, tex]))
    with pytest.raises(ConfigError, match="no ColorChecker"):
        locate_chart(np.full((300, 400, 3), 0.5))
    with pytest.raises(ConfigError, match="RGB image"):
        locate_chart(np.zeros((300, 400)))


def test_trimmed_mean_ignores_defects() -> None:
    img, truth = render_colour_checker((420, 640), noise_sigma=0.0)
    loc = checker_from_corners(truth[[0, 5, 23, 18]].ravel())
    clean = sample_patches(img, loc)
    x, y = truth[7].round().astype(int)
    img[y - 3 : y + 3, x - 3 : x + 3] = 1.0  # a hot blob inside patch 8 (< 10 % of its pixels)
    dirty = sample_patches(img, loc)
    assert np.allclose(dirty.mean, clean.mean, atol=1e-12)
    assert np.allclose(dirty.noise[7], 0.0, atol=1e-12)


def test_corners_outside_image_rejected() -> None:
    with pytest.raises(ConfigError, match="inside the 640x420 image"):
        checker_from_corners([0, 0, 700, 0, 700, 300, 0, 300], (420, 640))
    with pytest.raises(ConfigError, match="too close"):
        checker_from_corners([10, 10, 11, 10, 11, 11, 10, 11])


def test_simulator_colour_chart_is_found() -> None:
    """The simulator's ColorChecker (harness.sim.scene 'colour': axis-aligned patches of 0.10 H,
    gap 0.025 H, black surround, so black 2 is invisible) seen through an RGGB module."""
    from harness.inputs.image_input import prepare, rgb_image
    from harness.sim.module import load_module
    from harness.sim.scene import layout, render

    m = load_module("fixtures/modules/small.yaml")
    w, h = m.sensor.width, m.sensor.height
    raw = render(m, layout("colour", w, h), "D65", 0.0, slice(0, h), slice(0, w))
    rgb = rgb_image(prepare(raw.astype(np.float64) / float(raw.max()), "sim", bayer="RGGB"))
    loc = locate_chart(rgb)
    pitch = 0.125 * h
    x0, y0 = w / 2 - 2.5 * pitch, h / 2 - 1.5 * pitch  # scene coordinates (pixel edge = 0)
    expected = np.array([[x0 + (k % 6) * pitch, y0 + (k // 6) * pitch] for k in range(24)])
    expected = (expected - 1.0) / 2.0  # superpixel grid: 2x2 cells, centres at +0.5 px
    assert np.abs(loc.centres_px - expected).max() < 0.5
