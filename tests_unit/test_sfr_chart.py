"""Slanted-edge ROI finding (harness.analysis.edges) on a rendered slanted-square chart."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.analysis.edges import (
    FIELD_POSITIONS,
    find_edge_rois,
    missing_rois,
    parse_roi,
    require_field,
)
from harness.analysis.sfr import (
    field_gaps,
    measure_sfr_rois,
    summarise_field,
    summarise_full_field,
)
from harness.errors import ConfigError, MeasurementError
from tests_unit.optics_synth import render_edge, render_square_chart


@pytest.mark.parametrize("angle", [5.0, -4.0, 8.0])
def test_finds_centre_and_corner_edges_and_measures_them(angle: float) -> None:
    img, _ = render_square_chart((600, 800), sigma=1.0, angle_deg=angle, noise_sigma=0.005,
                                       rng=np.random.default_rng(3))
    rois = find_edge_rois(img)
    labels = {r.label for r in rois}
    assert labels == {f"{p}_{o}" for p in FIELD_POSITIONS for o in ("vertical", "horizontal")}
    results = measure_sfr_rois(img, rois)
    for roi, res in zip(rois, results, strict=True):
        assert res.orientation == roi.orientation
        assert abs(abs(res.edge_angle_deg) - abs(angle)) < 0.2
        # 50x50 ROIs at SNR 120: single-edge error spread ~0.5 %; allow 2 %.
        assert abs(res.mtf50_cy_per_px / 0.18739 - 1) < 0.02, res.label
        assert res.warnings == ()


def test_light_squares_on_dark_ground() -> None:
    img, _ = render_square_chart((450, 600), sigma=0.7, angle_deg=5.0)
    rois = find_edge_rois(1.0 - img)
    assert len(rois) == 10
    res = measure_sfr_rois(1.0 - img, rois)
    assert all(abs(r.mtf50_cy_per_px / (0.18739 / 0.7) - 1) < 0.02 for r in res)


def test_single_edge_image_is_one_roi() -> None:
    img = render_edge((120, 100))
    rois = find_edge_rois(img)
    assert len(rois) == 1 and rois[0].xywh == (0, 0, 100, 120)
    assert find_edge_rois(img, whole_image_fallback=False) == []


def test_parse_roi_accepts_and_rejects() -> None:
    roi = parse_roi("10,20,40,50", (100, 100))
    assert roi.xywh == (10, 20, 40, 50)
    for bad in ("10,20,40", "a,b,c,d", "90,0,40,40", "0,0,8,8", "-1,0,20,20"):
        with pytest.raises(ConfigError, match=r"^roi: "):
            parse_roi(bad, (100, 100))


@pytest.mark.parametrize("module, channel, tol", [("small-mono", "Y", 0.005),
                                                  ("small", "G", 0.02)])
def test_simulator_edge_chart_matches_its_lens_truth(module: str, channel: str,
                                                     tol: float) -> None:
    """Cross-check with the simulator's independent renderer (harness.sim.scene, its PSF x pixel
    aperture truth in harness.sim.truth). Luminance on the mono module: measured <= 0.1 %; the
    G plane of the RGGB module in 33 px ROIs (sparse samples alias, see sfr_plane): <= 1.3 %."""
    from harness.inputs.image_input import gray_image, prepare, sfr_plane
    from harness.sim.module import load_module
    from harness.sim.scene import layout, render
    from harness.sim.truth import lens_truth

    m = load_module(f"fixtures/modules/{module}.yaml")
    w, h = m.sensor.width, m.sensor.height
    raw = render(m, layout("edge", w, h), "D65", 0.0, slice(0, h), slice(0, w))
    img = prepare(raw.astype(np.float64) / float(raw.max()), "sim", bayer=m.sensor.cfa)
    plane = sfr_plane(img, channel)
    rois = find_edge_rois(gray_image(img))
    assert len(rois) == 10
    results = measure_sfr_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                               oversampling=plane.oversampling, phase_pitch=plane.phase_pitch)
    truth = {t["field_point"].replace("-", "_"): t["mtf50_cy_px"] for t in lens_truth(m, 0.0)}
    for r in results:
        expected = truth[r.label.removesuffix(f"_{r.orientation}")]
        assert abs(r.mtf50_cy_per_px / expected - 1) < tol, r.label


def test_field_summary_finds_the_soft_corner() -> None:
    sharp, _ = render_square_chart((450, 600), sigma=0.7)
    soft, _ = render_square_chart((450, 600), sigma=1.4)
    img = sharp.copy()
    img[225:, 300:] = soft[225:, 300:]  # bottom-right quadrant blurred twice as much
    results = measure_sfr_rois(img, find_edge_rois(img))
    summary = summarise_field(results)
    assert summary is not None
    assert summary.worst_corner.startswith("bottom_right")
    assert summary.corner_to_centre_mtf50_ratio == pytest.approx(0.5, rel=0.02)
    assert summary.centre_mtf50_cy_per_px == pytest.approx(0.18739 / 0.7, rel=0.01)
    assert summarise_field(results[:2]) is None  # centre only


def chart_without(corner: str, shape: tuple[int, int] = (450, 600)) -> np.ndarray:
    """The slanted-square chart with the square at ``corner`` painted over with the ground."""
    img, squares = render_square_chart(shape, sigma=0.7)
    sq = squares[FIELD_POSITIONS.index(corner)]
    r = 0.8 * sq.side  # beyond the rotated square's half-diagonal (0.71 side) and its blur
    y0, x0 = max(0, round(sq.cy - r)), max(0, round(sq.cx - r))
    img[y0 : round(sq.cy + r), x0 : round(sq.cx + r)] = 0.75
    return img


def test_full_chart_meets_the_field_requirement() -> None:
    img, _ = render_square_chart((450, 600), sigma=0.7)
    rois = find_edge_rois(img, require=FIELD_POSITIONS)
    assert len(rois) == 10 and missing_rois(rois) == [] and require_field(rois) is rois
    results = measure_sfr_rois(img, rois)
    assert field_gaps(results).complete
    summary = summarise_full_field(results)
    assert summary.missing == () and summary == summarise_field(results)


@pytest.mark.parametrize("corner", FIELD_POSITIONS[1:])
def test_a_corner_the_finder_misses_is_an_error_naming_its_two_rois(corner: str) -> None:
    img = chart_without(corner)
    named = f"{corner} vertical, {corner} horizontal"
    expected = f"edge ROI not found: {named}"
    with pytest.raises(MeasurementError) as exc:
        find_edge_rois(img, require=FIELD_POSITIONS)
    assert str(exc.value) == expected and exc.value.figure == named
    # permissive finding still works (the CLI), and the field check names the same two ROIs
    rois = find_edge_rois(img)
    assert len(rois) == 8 and missing_rois(rois) == named.split(", ")
    with pytest.raises(MeasurementError, match=f"^{expected}$"):
        require_field(rois)
    assert require_field(rois, ["centre"]) is rois
    results = measure_sfr_rois(img, rois)
    with pytest.raises(MeasurementError, match=f"^{expected}$"):
        summarise_full_field(results)
    partial = summarise_field(results)  # permissive: the three corners it has, the gap listed
    assert partial is not None and partial.missing == tuple(named.split(", "))


def test_no_square_found_with_a_requirement_is_no_fallback_roi() -> None:
    with pytest.raises(MeasurementError, match=r"not found: centre vertical, centre horizontal, "
                                               r"top_left vertical, .*bottom_right horizontal$"):
        find_edge_rois(render_edge((120, 100)), require=FIELD_POSITIONS)
    with pytest.raises(ConfigError, match=r"require: unknown field position 'middle'"):
        find_edge_rois(render_edge((120, 100)), require=["middle"])


def test_an_roi_without_a_finite_mtf50_counts_as_missing() -> None:
    img, _ = render_square_chart((450, 600), sigma=0.7)
    results = measure_sfr_rois(img, find_edge_rois(img))
    bad = [replace(r, mtf50_cy_per_px=float("nan")) if r.label == "bottom_right_horizontal"
           else r for r in results]
    gaps = field_gaps(bad)
    assert gaps.not_found == () and gaps.no_finite_mtf50 == ("bottom_right horizontal",)
    with pytest.raises(MeasurementError,
                       match=r"^edge ROI without a finite MTF50: bottom_right horizontal$"):
        summarise_full_field(bad)
    partial = summarise_field(bad)  # the NaN edge is left out, not taken as the worst
    assert partial is not None and np.isfinite(partial.corner_mtf50_min_cy_per_px)
    assert partial.missing == ("bottom_right horizontal",)
    both = field_gaps([r for r in bad if not r.label.startswith("top_right")])
    assert both.message() == ("edge ROI not found: top_right vertical, top_right horizontal; "
                              "edge ROI without a finite MTF50: bottom_right horizontal")
