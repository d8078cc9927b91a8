"""Colour accuracy (harness.analysis.colour) on ColorCheckers rendered through a known camera,
and a measured light's chromaticity against a named illuminant.

Truth: camera RGB = black + exposure * gains * (M @ reference linear RGB) with a known 3x3 M
(tests_unit/optics_synth.py, its own path to the reference). White balance + CCM must invert
exposure * gains * M, and on noise-free data the corrected patches must match the reference
(ΔE00 <= 0.5 by the brief; measured ~1e-13 now that RGB -> XYZ is the exact inverse of the
target's XYZ -> RGB). Illuminant truth: tabulated CIE xy and the u'v' formula written out here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import colour
import numpy as np
import pytest

from harness.analysis.charts import PatchSamples, sample_patches
from harness.analysis.colour import (
    chart_reference,
    compare_illuminant,
    locate_chart,
    measure_colour,
    measure_colour_patches,
)
from harness.errors import ConfigError, MeasurementError
from tests_unit.optics_synth import CAMERA_MATRIX, reference_linear_rgb, render_colour_checker

GAINS = (0.6, 1.0, 0.8)


def test_reference_matches_published_check_values() -> None:
    # docs/standards.md#colorchecker-reference-data: dark skin and white 9.5 under D50 (the chart's own white).
    ref = chart_reference("D50")
    assert ref.names[0] == "dark skin" and ref.names[18].startswith("white 9.5") and len(ref.names) == 24
    assert np.allclose(ref.lab[0], [37.54, 14.37, 14.92], atol=0.01)
    assert np.allclose(ref.lab[18], [95.19, -1.03, 2.93], atol=0.01)
    # D65 target is linear sRGB: 8-bit encoded dark skin (116, 79, 65), same section
    enc = colour.cctf_encoding(np.clip(chart_reference("D65").rgb[0], 0, 1), function="sRGB")
    assert np.allclose(np.round(enc * 255), [116, 79, 65], atol=1)


@pytest.mark.parametrize("illuminant", ["D65", "A"])
def test_known_camera_matrix_is_recovered(illuminant: str) -> None:
    img, _ = render_colour_checker((420, 640), gains=GAINS, black=0.02, exposure=0.8,
                                   angle_deg=3.0, illuminant=illuminant)
    res = measure_colour(img, illuminant=illuminant, black_level=0.02)
    truth = 0.8 * np.diag(GAINS) @ CAMERA_MATRIX
    assert np.allclose(res.camera_matrix, truth, rtol=1e-4, atol=1e-5)
    assert res.delta_e_2000_max_in_sample <= 0.5
    assert res.delta_e_2000_mean_in_sample < 1e-3  # measured ~1e-13
    assert res.delta_e_2000_max_loo < 1e-3  # a linear camera: any 23 patches give the same CCM
    assert (res.delta_e_2000_mean, res.delta_e_2000_max) == (
        res.delta_e_2000_mean_in_sample, res.delta_e_2000_max_in_sample)  # legacy names
    assert res.delta_e_2000_mean_production is None and res.ccm_production is None
    assert res.delta_e_2000_mean_before > 3  # the camera as delivered is far off
    assert res.white_balance_error_dc_ab > 3
    assert res.warnings == ()
    assert [p.name for p in res.patches][:2] == ["dark skin", "light skin"]


def test_delta_e_values_are_colour_sciences() -> None:
    img, _ = render_colour_checker((420, 640), gains=GAINS, noise_sigma=0.01,
                                   rng=np.random.default_rng(2))
    res = measure_colour(img)
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
    res = measure_colour(img)
    assert res.white_balance_error_dc_ab < 0.01
    assert res.delta_e_2000_max_before < 0.01
    assert np.allclose(res.wb_gains, 1 / 0.7, rtol=1e-4)


def test_patch_noise_is_estimated() -> None:
    sigma = 0.01
    img, _ = render_colour_checker((480, 720), noise_sigma=sigma, rng=np.random.default_rng(4))
    res = measure_colour(img)
    noise = np.array([p.noise_rgb for p in res.patches])
    # ~1400 px per patch: the estimate's own spread is ~3 %; allow 10 %.
    assert np.allclose(noise, sigma, rtol=0.1)
    assert res.delta_e_2000_mean < 0.2


def test_clipped_patches_are_left_out() -> None:
    img, _ = render_colour_checker((420, 640), camera_matrix=np.eye(3), exposure=1.3)
    res = measure_colour(np.minimum(img, 1.0), saturation=1.0)
    clipped = [p.name for p in res.patches if p.clipped]
    assert any(n.startswith("white 9.5") for n in clipped)
    assert any("clipped" in w for w in res.warnings)
    assert res.delta_e_2000_max < 0.5  # judged on unclipped patches only


def test_corners_give_the_same_answer() -> None:
    img, centres = render_colour_checker((420, 640), gains=GAINS, angle_deg=-5.0)
    corners = centres[[0, 5, 23, 18]].ravel()
    res = measure_colour(img, corners=list(corners))
    assert res.chart_method == "corners"
    assert np.allclose(res.chart_centres_px, centres, atol=1e-6)
    assert res.delta_e_2000_max <= 0.5


def test_bad_inputs() -> None:
    img, _ = render_colour_checker((420, 640))
    # errors name the parameter; the command line shows its options (test_cli_analyze_optics)
    with pytest.raises(ConfigError, match=r"^illuminant: unknown illuminant 'D66'"):
        measure_colour(img, illuminant="D66")
    with pytest.raises(ConfigError, match=r"^black_level: neutral patches at or below"):
        measure_colour(img, black_level=0.99)
    with pytest.raises(ConfigError, match=r"^corners: expected 8 numbers"):
        measure_colour(img, corners=[1.0, 2.0, 3.0])
    loc = locate_chart(img)
    samples = sample_patches(img[..., :2], loc)
    with pytest.raises(ConfigError, match="24 RGB patch means"):
        measure_colour_patches(samples)


# --------------------------------------------------------------------------- leave-one-out and
# production CCM on a synthetic camera: patch means = exposure * gains * (M @ reference RGB)


def synthetic(camera_matrix: np.ndarray = CAMERA_MATRIX, *, exposure: float = 0.8,
              noise: float = 0.0, seed: int = 0,
              distort: Callable[[np.ndarray], np.ndarray] | None = None) -> PatchSamples:
    """24 patch means of a camera with a known 3x3 response (no image, no chart finder)."""
    cam = exposure * (reference_linear_rgb("D65") @ camera_matrix.T) * np.array(GAINS)
    if distort is not None:
        cam = distort(cam)
    if noise > 0:
        cam = cam + np.random.default_rng(seed).normal(0.0, noise, cam.shape)
    return PatchSamples(mean=cam, noise=np.full_like(cam, noise), max_value=cam, pixels=1)


def independent_loo(samples: PatchSamples) -> np.ndarray:
    """ΔE00 of each patch by a 3x3 fitted with numpy on the other 23, straight from camera RGB
    (an unconstrained 3x3 absorbs any white-balance gains), reference from optics_synth."""
    ref = reference_linear_rgb("D65")
    wp = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    srgb = colour.RGB_COLOURSPACES["sRGB"]
    to_xyz = np.linalg.inv(srgb.matrix_XYZ_to_RGB)
    out = []
    for i in range(24):
        keep = np.arange(24) != i
        m, *_ = np.linalg.lstsq(samples.mean[keep], ref[keep], rcond=None)
        pred, truth = samples.mean[i] @ m @ to_xyz.T, ref[i] @ to_xyz.T
        out.append(colour.delta_E(colour.XYZ_to_Lab(pred, wp), colour.XYZ_to_Lab(truth, wp),
                                  method="CIE 2000"))
    return np.array(out)


def test_loo_matches_an_independent_leave_one_out() -> None:
    samples = synthetic(noise=0.01, seed=3)
    res = measure_colour_patches(samples, saturation=None)
    loo = np.array([p.delta_e_2000_loo for p in res.patches])
    assert np.allclose(loo, independent_loo(samples), rtol=1e-6, atol=1e-9)
    assert res.delta_e_2000_mean_loo == pytest.approx(loo.mean())
    assert res.delta_e_2000_max_loo == pytest.approx(loo.max())


@pytest.mark.parametrize("seed", range(5))
def test_in_sample_is_optimistic_under_noise(seed: int) -> None:
    res = measure_colour_patches(synthetic(noise=0.01, seed=seed), saturation=None)
    assert res.delta_e_2000_mean_in_sample < res.delta_e_2000_mean_loo
    assert res.delta_e_2000_max_in_sample <= res.delta_e_2000_max_loo


def test_perfect_linear_camera_has_no_loo_error() -> None:
    res = measure_colour_patches(synthetic(), saturation=None)
    assert res.delta_e_2000_max_loo < 1e-3
    assert res.delta_e_2000_max_in_sample < 1e-3


def test_nonlinear_camera_loo_is_worse_than_in_sample() -> None:
    # a response that no 3x3 inverts: gamma 0.8 per channel (an unlinearised output)
    res = measure_colour_patches(synthetic(distort=lambda c: c**0.8), saturation=None)
    assert res.delta_e_2000_mean_loo > 1.05 * res.delta_e_2000_mean_in_sample
    assert res.delta_e_2000_mean_in_sample > 1.0  # measured 3.19 (LOO 3.57)


def test_production_ccm_equal_to_the_true_inverse_is_exact() -> None:
    samples = synthetic(noise=0.0)
    truth = np.linalg.inv(CAMERA_MATRIX)
    res = measure_colour_patches(samples, saturation=None, ccm=truth,
                                 wb_gains=[1 / g for g in GAINS])
    assert res.delta_e_2000_max_production is not None
    assert res.delta_e_2000_max_production < 1e-3  # exposure 0.8 is normalised away
    assert res.wb_gains_production == pytest.approx([1 / g for g in GAINS])
    assert np.allclose(res.ccm_production, truth)
    per_patch = [p.delta_e_2000_production for p in res.patches]
    assert all(d is not None and d < 1e-3 for d in per_patch)
    # gains from the neutral patches instead: those patches are not exactly neutral after M,
    # so the gains are off by < 0.3 % and the ΔE00 is small but not zero (measured 0.28 mean)
    auto = measure_colour_patches(samples, saturation=None, ccm=truth)
    assert auto.wb_gains_production == auto.wb_gains
    assert auto.delta_e_2000_mean_production is not None
    assert auto.delta_e_2000_mean_production < 0.5


def test_wrong_production_ccm_gives_large_delta_e() -> None:
    samples = synthetic(noise=0.0)
    gains = [1 / g for g in GAINS]
    for wrong in (np.eye(3), np.linalg.inv(CAMERA_MATRIX)[[1, 0, 2]]):
        res = measure_colour_patches(samples, saturation=None, ccm=wrong, wb_gains=gains)
        assert res.delta_e_2000_mean_production is not None
        assert res.delta_e_2000_mean_production > 3
        assert res.delta_e_2000_mean_in_sample < 1e-3  # the fitted figures are untouched


def test_production_inputs_are_checked() -> None:
    samples = synthetic()
    with pytest.raises(ConfigError, match=r"^ccm: must be a 3x3 matrix of finite numbers, got "
                                          r"shape \(2, 3\)$"):
        measure_colour_patches(samples, ccm=np.ones((2, 3)))
    with pytest.raises(ConfigError, match=r"^ccm: must be a 3x3 matrix of numbers"):
        measure_colour_patches(samples, ccm=[[1, 0, 0], [0, 1], [0, 0, 1]])
    with pytest.raises(ConfigError, match=r"^wb_gains: must be 3 positive finite numbers"):
        measure_colour_patches(samples, ccm=np.eye(3), wb_gains=[1.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match=r"^wb_gains: fixed gains need a fixed matrix"):
        measure_colour_patches(samples, wb_gains=[1.0, 1.0, 1.0])
    img, _ = render_colour_checker((420, 640))
    with pytest.raises(ConfigError, match=r"^ccm: "):
        measure_colour(img, ccm=np.eye(4))
    with pytest.raises(MeasurementError, match="neutral patches come out at or below zero"):
        measure_colour_patches(samples, ccm=-np.eye(3))


def test_json_record_holds_every_figure() -> None:
    res = measure_colour_patches(synthetic(noise=0.01), saturation=None, ccm=np.eye(3))
    d = res.as_dict()
    for key in ("delta_e_2000_mean_in_sample", "delta_e_2000_max_in_sample",
                "delta_e_2000_mean_loo", "delta_e_2000_max_loo",
                "delta_e_2000_mean_production", "delta_e_2000_max_production",
                "delta_e_2000_mean_before", "delta_e_2000_max_before"):
        assert d[key] == getattr(res, key), key
    assert d["delta_e_2000_mean"] == res.delta_e_2000_mean_in_sample
    assert d["ccm_production"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    patch = d["patches"][0]
    assert patch["delta_e_2000_loo"] == res.patches[0].delta_e_2000_loo
    assert patch["delta_e_2000"] == patch["delta_e_2000_in_sample"]
    assert patch["lab_production"] == list(res.patches[0].lab_production or ())


# --------------------------------------------------------------------------- illuminant check


def u_prime_v_prime(x: float, y: float) -> tuple[float, float]:
    """CIE 1976 UCS, written out: u' = 4x / (-2x + 12y + 3), v' = 9y / (-2x + 12y + 3)."""
    d = -2 * x + 12 * y + 3
    return 4 * x / d, 9 * y / d


def test_d50_light_against_d65_reference() -> None:
    # CIE 1931 2° xy as colour-science tabulates them (4 decimals)
    d65, d50 = (0.3127, 0.3290), (0.3457, 0.3585)
    (u1, v1), (u2, v2) = u_prime_v_prime(*d50), u_prime_v_prime(*d65)
    hand = math.hypot(u1 - u2, v1 - v2)  # 0.0227871
    res = compare_illuminant(d50, "D65")
    assert res.illuminant == "D65" and res.reference_xy == d65 and res.measured_xy == d50
    assert res.delta_u_prime_v_prime == pytest.approx(hand, abs=1e-12)
    assert res.delta_u_prime_v_prime == pytest.approx(0.022787, abs=1e-6)
    # McCamy 1992 from the tabulated xy: D65 6504 K and D50 5003 K nominal (CIE 15), +-2 K
    assert res.reference_cct_k == pytest.approx(6504, abs=2)
    assert res.measured_cct_k == pytest.approx(5003, abs=2)
    assert res.measured_duv == pytest.approx(0.0032, abs=2e-4)  # D50 lies above the locus
    assert res.warnings == ()
    same = compare_illuminant(d65, "d65")
    assert same.delta_u_prime_v_prime == 0 and same.measured_cct_k == same.reference_cct_k


def test_planckian_and_fluorescent_references() -> None:
    # Planckian 3000 K: x 0.43693, y 0.40407 (Wyszecki & Stiles, 1982, Table 1(3.11))
    res = compare_illuminant((0.43693, 0.40407), "3000k")
    assert res.illuminant == "3000K" and res.reference_cct_k == 3000
    assert res.reference_xy == pytest.approx((0.43693, 0.40407), abs=2e-5)
    assert res.delta_u_prime_v_prime < 3e-5
    assert res.measured_cct_k == pytest.approx(3000, abs=6)  # McCamy's cubic: +4.9 K here
    assert abs(res.measured_duv) < 1e-4
    a = compare_illuminant((0.44758, 0.40745), "A")  # CIE A, 2856 K
    assert a.measured_cct_k == pytest.approx(2856, abs=2)
    for alias in ("F11", "TL84", "FL11"):
        assert compare_illuminant((0.38, 0.38), alias).illuminant == "FL11"


def test_off_locus_light_has_no_cct() -> None:
    res = compare_illuminant((0.30, 0.50), "D65")  # green: Duv +0.074
    assert math.isnan(res.measured_cct_k) and res.measured_duv > 0.05
    assert res.delta_u_prime_v_prime > 0.05 and "no CCT" in res.warnings[0]


def test_illuminant_check_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"^illuminant: unknown illuminant 'D66'; allowed: "
                                          r"<N>K .*D50, .*D65, .*FL2, .*TL84"):
        compare_illuminant((0.31, 0.33), "D66")
    with pytest.raises(ConfigError, match=r"outside 1000\.\.25000 K"):
        compare_illuminant((0.31, 0.33), "500K")
    with pytest.raises(ConfigError, match=r"^xy: expected \(x, y\)"):
        compare_illuminant((0.31, 0.33, 0.36), "D65")
    with pytest.raises(MeasurementError, match="is not a colour"):
        compare_illuminant((0.7, 0.4), "D65")
