"""Colour accuracy (harness.analysis.colour) on ColorCheckers rendered through a known camera.

Truth: camera RGB = black + exposure * gains * (M @ reference linear RGB) with a known 3x3 M
(tests_unit/optics_synth.py). White balance + CCM must invert exposure * gains * M, and on
noise-free data the corrected patches must match the reference (ΔE00 <= 0.5 by the brief; the
only residual is colour-science's own XYZ<->RGB round trip, ~0.002).
"""

from __future__ import annotations

import colour
import numpy as np
import pytest

from harness.analysis.charts import sample_patches
from harness.analysis.colour import (
    analyze_colour,
    analyze_colour_patches,
    chart_reference,
    locate_chart,
)
from harness.errors import ConfigError
from tests_unit.optics_synth import CAMERA_MATRIX, render_colour_checker

GAINS = (0.6, 1.0, 0.8)


def test_reference_matches_published_check_values() -> None:
    # REFERENCE 3: dark skin and white 9.5 under D50 (the chart's own white).
    ref = chart_reference("D50")
    assert ref.names[0] == "dark skin" and ref.names[18].startswith("white 9.5") and len(ref.names) == 24
    assert np.allclose(ref.lab[0], [37.54, 14.37, 14.92], atol=0.01)
    assert np.allclose(ref.lab[18], [95.19, -1.03, 2.93], atol=0.01)
    # D65 target is linear sRGB: 8-bit encoded dark skin (116, 79, 65) per REFERENCE 3
    enc = colour.cctf_encoding(np.clip(chart_reference("D65").rgb[0], 0, 1), function="sRGB")
    assert np.allclose(np.round(enc * 255), [116, 79, 65], atol=1)


@pytest.mark.parametrize("illuminant", ["D65", "A"])
def test_known_camera_matrix_is_recovered(illuminant: str) -> None:
    img, _ = render_colour_checker((420, 640), gains=GAINS, black=0.02, exposure=0.8,
                                   angle_deg=3.0, illuminant=illuminant)
    res = analyze_colour(img, illuminant=illuminant, black_level=0.02)
    truth = 0.8 * np.diag(GAINS) @ CAMERA_MATRIX
    assert np.allclose(res.camera_matrix, truth, rtol=1e-4, atol=1e-5)
    assert res.delta_e_2000_max <= 0.5
    assert res.delta_e_2000_mean < 0.01  # measured 0.0017
    assert res.delta_e_2000_mean_before > 3  # the camera as delivered is far off
    assert res.white_balance_error_dc_ab > 3
    assert res.warnings == ()
    assert [p.name for p in res.patches][:2] == ["dark skin", "light skin"]


def test_delta_e_values_are_colour_sciences() -> None:
    img, _ = render_colour_checker((420, 640), gains=GAINS, noise_sigma=0.01,
                                   rng=np.random.default_rng(2))
    res = analyze_colour(img)
    lab = np.array([p.lab for p in res.patches])
    lab_ref = np.array([p.lab_reference for p in res.patches])
    de = colour.delta_E(lab, lab_ref, method="CIE 2000")
    assert np.allclose([p.delta_e_2000 for p in res.patches], de)
    assert res.delta_e_2000_mean == pytest.approx(de.mean())
    assert np.allclose(lab_ref, chart_reference("D65").lab)
    # Sharma, Wu & Dalal (2005) pair through the same call: 2.0425
    assert colour.delta_E([50, 2.6772, -79.7751], [50, 0, -82.7485], method="CIE 2000") == (
        pytest.approx(2.0425, abs=1e-4))


def test_ideal_camera_has_no_error_before_correction() -> None:
    img, _ = render_colour_checker((420, 640), camera_matrix=np.eye(3), exposure=0.7)
    res = analyze_colour(img)
    assert res.white_balance_error_dc_ab < 0.01
    assert res.delta_e_2000_max_before < 0.01
    assert np.allclose(res.wb_gains, 1 / 0.7, rtol=1e-4)


def test_patch_noise_is_estimated() -> None:
    sigma = 0.01
    img, _ = render_colour_checker((480, 720), noise_sigma=sigma, rng=np.random.default_rng(4))
    res = analyze_colour(img)
    noise = np.array([p.noise_rgb for p in res.patches])
    # ~1400 px per patch: the estimate's own spread is ~3 %; allow 10 %.
    assert np.allclose(noise, sigma, rtol=0.1)
    assert res.delta_e_2000_mean < 0.2


def test_clipped_patches_are_left_out() -> None:
    img, _ = render_colour_checker((420, 640), camera_matrix=np.eye(3), exposure=1.3)
    res = analyze_colour(np.minimum(img, 1.0), saturation=1.0)
    clipped = [p.name for p in res.patches if p.clipped]
    assert any(n.startswith("white 9.5") for n in clipped)
    assert any("clipped" in w for w in res.warnings)
    assert res.delta_e_2000_max < 0.5  # judged on unclipped patches only


def test_corners_give_the_same_answer() -> None:
    img, centres = render_colour_checker((420, 640), gains=GAINS, angle_deg=-5.0)
    corners = centres[[0, 5, 23, 18]].ravel()
    res = analyze_colour(img, corners=list(corners))
    assert res.chart_method == "corners"
    assert np.allclose(res.chart_centres_px, centres, atol=1e-6)
    assert res.delta_e_2000_max <= 0.5


def test_bad_inputs() -> None:
    img, _ = render_colour_checker((420, 640))
    with pytest.raises(ConfigError, match="--illuminant: unknown illuminant 'D66'"):
        analyze_colour(img, illuminant="D66")
    with pytest.raises(ConfigError, match="black level"):
        analyze_colour(img, black_level=0.99)
    with pytest.raises(ConfigError, match="--corners: expected 8 numbers"):
        analyze_colour(img, corners=[1.0, 2.0, 3.0])
    loc = locate_chart(img)
    samples = sample_patches(img[..., :2], loc)
    with pytest.raises(ConfigError, match="24 RGB patch means"):
        analyze_colour_patches(samples)
