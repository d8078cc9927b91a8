"""Stated standard uncertainties of MTF50, ΔE00 and the defect counts against the spread of
simulated repeats (issue 19: within 30 % of the observed standard deviation over >= 30 repeats
at 640 x 480).

Each repeat is the suite's measurement on the simulated golden module (fixtures/modules/
small.yaml, 640 x 480 RGGB) with a new noise seed (the module's fixed pattern is the same in
every repeat): a fresh 8-frame flat field, 2 chart frames (the spec's ``edge``/``colour``
``frames: 2``), the figure on their mean, its u by the suites' pipeline (the same replicate
function, :mod:`harness.analysis.uncertainty`, with the suites' flat-field correction and
plane preparation). The ground truth is the observed standard deviation of the figure over the
repeats, independent of the stated u.

Why 30 %, and why pooled: with 2 frames each u has one degree of freedom, so a single u is a
rough statement, but its mean square is unbiased (E[s^2] = sigma^2); over R repeats the RMS of
u scatters by about sqrt(1 / (2 R)) and the observed sd by sqrt(1 / (2 (R - 1))), together
~16 % (1 sigma) at R = 40 for one ROI. The flat field's temporal noise is common to both chart
frames: the frames' spread misses it (measured without it over 100 repeats: RMS u / sd 0.81 to
0.89 for ΔE00 and the WB gains, 1.0 to 1.19 with one flat for all repeats), so the suites add
the grouped jackknife over the flat stack (2 groups) in quadrature, as here. The test takes
R = 40 and asserts the ratio pooled over the ten edges (mean square u over mean square sd,
~6 % scatter) within 15 %, each centre ROI and the corner-to-centre ratio within 30 % (the
issue's bound); ΔE00 mean and the R/G gain within 30 %. Measured: MTF50 per ROI 0.90 to 1.34,
pooled 1.10; MTF at Nyquist/2 pooled 1.09; ratio 0.97; ΔE00 mean 1.11 (leave-one-out), 1.19
(in-sample); WB R/G 1.00.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator
from harness.analysis.charts import sample_patches
from harness.analysis.colour import locate_chart, measure_colour_patches
from harness.analysis.defects import DefectThresholds, measure_defects
from harness.analysis.edges import FIELD_POSITIONS, find_edge_rois
from harness.analysis.flatfield import flat_field_gain
from harness.analysis.sfr import measure_sfr_rois, summarise_full_field
from harness.analysis.uncertainty import (
    delete_one_means,
    jackknife_standard_uncertainty,
    mean_standard_uncertainty,
    measure_colour_uncertainty,
    measure_sfr_uncertainty,
    replicate_uncertainty,
    replicates_of,
)
from harness.errors import ConfigError
from harness.inputs.image_input import SfrPlane, prepare, rgb_image, sfr_plane

MODULE = "fixtures/modules/small.yaml"
BLACK, BITS, CFA = 64.0, 12, "RGGB"
FULL = 2**BITS - 1
FRAMES = 2
FLAT_GROUPS = 2  # tests_hil/test_focus.py FLAT_GROUPS
REPEATS = 40


# ---- the suites' preparation (tests_hil/test_focus.py _edge_plane, test_colour.py colour_rgb)

def _corrected(raw: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return np.rint(np.clip((raw - BLACK) * gain + BLACK, 0, FULL)).astype(np.uint16)


def edge_plane(raw: np.ndarray, gain: np.ndarray) -> SfrPlane:
    return sfr_plane(prepare(_corrected(raw, gain), "edge chart", bayer=CFA, bits=BITS), "G")


def colour_rgb(raw: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return rgb_image(prepare(_corrected(raw, gain), "colour chart", bayer=CFA, bits=BITS))


def repeats(chart: str) -> Iterator[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]]:
    """(flat-field gain, chart frames, replicate flat gains) of each repeat: a new camera seed, the same module; the
    flat at ~50 % and the chart's bright parts at ~70 % of full scale, as the spec's
    conditions (exposures scaled once from a pilot frame)."""
    from harness.sim.bench import Bench
    from harness.sim.camera import SimCamera
    from harness.sim.module import load_module

    module = load_module(MODULE)
    exposure: dict[str, float] = {}
    for seed in range(REPEATS + 1):
        bench = Bench()
        bench.set_light(True, 50.0, illuminant="D65")
        cam = SimCamera.standalone(module, seed=1000 + seed, bench=bench)
        cam.start()
        if not exposure:  # the pilot
            for name, level, stat in (("flat", 0.5, 50.0), (chart, 0.7, 99.5)):
                bench.set_chart(name)
                cam.set("ExposureTime", 2000.0)
                high = float(np.percentile(cam.grab(1).frames[0], stat)) - BLACK
                exposure[name] = 2000.0 * level * (FULL - BLACK) / high
            continue
        bench.set_chart("flat")
        cam.set("ExposureTime", exposure["flat"])
        flats = list(cam.grab(8).frames)
        bench.set_chart(chart)
        cam.set("ExposureTime", exposure[chart])
        frames = list(cam.grab(FRAMES).frames)
        cam.close()
        # the suites' flat component: the grouped jackknife (FLAT_GROUPS) over the flat stack
        reps = [flat_field_gain(f, BLACK, CFA) for f in replicates_of(flats, groups=FLAT_GROUPS)]
        yield flat_field_gain(np.mean(flats, axis=0), BLACK, CFA), frames, reps


def ratio(u: np.ndarray, values: np.ndarray) -> np.ndarray:
    """RMS of the stated u over the observed sd, per column."""
    return np.asarray(np.sqrt(np.mean(u**2, axis=0)) / np.std(values, axis=0, ddof=1))


# ---- the helpers -------------------------------------------------------------------------------

def test_mean_and_jackknife_uncertainty_agree_on_a_mean() -> None:
    """For the mean itself the jackknife equals s / sqrt(n) (Efron & Tibshirani 1993, 11.5);
    for n = 2 the delete-one means are the frames (swapped)."""
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, 7)
    loo = np.array([np.delete(x, i).mean() for i in range(x.size)])
    assert float(jackknife_standard_uncertainty(loo)) == pytest.approx(
        float(np.std(x, ddof=1) / math.sqrt(x.size)), rel=1e-12)
    assert float(mean_standard_uncertainty(x)) == pytest.approx(
        float(np.std(x, ddof=1) / math.sqrt(7)), rel=1e-12)
    frames = [np.full((2, 2), 3.0), np.full((2, 2), 5.0)]
    assert [float(m[0, 0]) for m in delete_one_means(frames)] == [5.0, 3.0]
    assert [float(m[0, 0]) for m in replicates_of(frames, "frames")] == [3.0, 5.0]
    with pytest.raises(ConfigError, match="scheme"):
        replicate_uncertainty(x, "bootstrap")
    with pytest.raises(ConfigError, match="at least 2"):
        list(delete_one_means(frames[:1]))


# ---- e-SFR -----------------------------------------------------------------------------------

def test_mtf50_uncertainty_matches_the_spread_of_repeats() -> None:
    """MTF50 and MTF at Nyquist/2 of the ten edges, and the corner-to-centre ratio."""
    m50, nq2, ratios, u50, unq, uratio = [], [], [], [], [], []
    for gain, frames, flat_gains in repeats("edge"):
        mean = np.mean(frames, axis=0)
        plane = edge_plane(mean, gain)
        rois = find_edge_rois(plane.plane, require=FIELD_POSITIONS)
        results = measure_sfr_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                                   channel=plane.channel, oversampling=plane.oversampling,
                                   phase_pitch=plane.phase_pitch)
        unc = measure_sfr_uncertainty((edge_plane(r, gain) for r in replicates_of(frames)),
                                      rois).combined(measure_sfr_uncertainty(
            (edge_plane(mean, g) for g in flat_gains), rois, label="flat"))
        labels = [r.label for r in results]
        m50.append([r.mtf50_cy_per_px for r in results])
        nq2.append([r.mtf_at_025 for r in results])
        ratios.append(summarise_full_field(results).corner_to_centre_mtf50_ratio)
        u50.append([unc.mtf50_cy_per_px[k] for k in labels])
        unq.append([unc.mtf_at_025[k] for k in labels])
        uratio.append(unc.corner_to_centre_mtf50_ratio)
    m50_a, u50_a = np.array(m50), np.array(u50)
    per_roi = ratio(u50_a, m50_a)
    pooled = math.sqrt(float(np.mean(u50_a**2)) / float(np.mean(np.var(m50_a, 0, ddof=1))))
    pooled_nq2 = math.sqrt(float(np.mean(np.array(unq)**2))
                           / float(np.mean(np.var(np.array(nq2), 0, ddof=1))))
    ratio_ratio = float(ratio(np.array(uratio), np.array(ratios)))
    print(f"MTF50 u/sd per ROI {np.round(per_roi, 2).tolist()}, pooled {pooled:.3f}; "
          f"MTF@Nyq/2 pooled {pooled_nq2:.3f}; ratio {ratio_ratio:.3f}; "
          f"typical u(MTF50) {float(np.sqrt(np.mean(u50_a**2))):.4f} cy/px")
    assert pooled == pytest.approx(1.0, abs=0.15)
    assert pooled_nq2 == pytest.approx(1.0, abs=0.15)
    for k, label in enumerate(labels):
        if label.startswith("centre"):
            assert per_roi[k] == pytest.approx(1.0, abs=0.30), label
    assert ratio_ratio == pytest.approx(1.0, abs=0.30)


# ---- colour ----------------------------------------------------------------------------------

def test_delta_e_uncertainty_matches_the_spread_of_repeats() -> None:
    """ΔE00 mean (leave-one-out, the judged method) and the R/G white-balance gain."""
    values, us = [], []
    for gain, frames, flat_gains in repeats("colour"):
        mean = np.mean(frames, axis=0)
        rgb = colour_rgb(mean, gain)
        location = locate_chart(rgb, illuminant="D65")
        black = BLACK / FULL
        res = measure_colour_patches(sample_patches(rgb, location), illuminant="D65",
                                     black_level=black, location=location)
        unc = measure_colour_uncertainty((colour_rgb(r, gain) for r in replicates_of(frames)),
                                         location, illuminant="D65", black_level=black)
        unc = unc.combined(measure_colour_uncertainty(
            (colour_rgb(mean, g) for g in flat_gains), location, illuminant="D65",
            black_level=black, label="flat"))
        values.append([res.delta_e_2000_mean_loo, res.delta_e_2000_mean_in_sample,
                       res.wb_gains[0] / res.wb_gains[1]])
        us.append([unc.delta_e_2000_mean["leave-one-out"], unc.delta_e_2000_mean["in-sample"],
                   unc.white_balance_gain["R"]])
    found = ratio(np.array(us), np.array(values))
    print(f"dE00 mean (loo, in-sample), WB R/G: u/sd {np.round(found, 3).tolist()}, "
          f"typical u {np.sqrt(np.mean(np.array(us)**2, axis=0)).round(5).tolist()}")
    for k in range(3):
        assert found[k] == pytest.approx(1.0, abs=0.30)


# ---- defect counts ---------------------------------------------------------------------------

H, W = 96, 128
DARK_FRAMES, FLAT_FRAMES = 16, 8
NOISE_DN, HOT_DN = 2.0, 10.0


def defect_stack(seed: int, hot: list[tuple[int, int, float]],
                 dead: list[tuple[int, int, float]]) -> Any:
    """A mono dark stack (offset 64 DN, temporal noise 2 DN) and flat stack (+1000 DN, shot
    noise 20 DN): ``hot`` pixels get a dark offset, ``dead`` pixels a relative flat response
    (both exact, so the truth is the generator's)."""
    rng = np.random.default_rng(seed)
    dark, flat = StackAccumulator(), StackAccumulator()
    offset = np.zeros((H, W))
    response = np.ones((H, W))
    for r, c, v in hot:
        offset[r, c] = v
    for r, c, v in dead:
        response[r, c] = v
    for _ in range(DARK_FRAMES):
        dark.add(np.rint(64.0 + offset + rng.normal(0, NOISE_DN, (H, W))).astype(np.uint16))
    for _ in range(FLAT_FRAMES):
        flat.add(np.rint(64.0 + offset + 1000.0 * response
                         + rng.normal(0, 20.0, (H, W))).astype(np.uint16))
    return dark.stats(), flat.stats()


def test_defect_count_uncertainty_matches_the_spread_of_repeats() -> None:
    """40 hot pixels with dark offsets spread over the threshold +- 1.5 standard errors
    (se = 2 DN / sqrt(16) = 0.5 DN) and 30 pixels with flat responses around the dead
    threshold (0.70 +- 1.5 se, se ~ 20 DN / sqrt(8) / 1000 = 0.7 %): each is found with a
    probability between 7 % and 93 %, each in its own row and column (no line, no cluster).
    Over 60 repeats the stated u of the hot count, the dead
    count and the zone totals (RMS) must match their observed sd within 30 % (the repeat
    scatter of both is ~9 %); a defect-free stack states ~0."""
    rng = np.random.default_rng(7)
    # distinct rows and columns: no cluster, no column or row defect
    cells = list(zip(rng.choice(np.arange(2, H - 2), 70, replace=False).tolist(),
                     rng.choice(np.arange(2, W - 2), 70, replace=False).tolist(), strict=True))
    hot = [(r, c, HOT_DN + float(rng.uniform(-0.75, 0.75))) for r, c in cells[:40]]
    dead = [(r, c, 0.70 + float(rng.uniform(-0.011, 0.011))) for r, c in cells[40:]]
    th = DefectThresholds(hot_dn=HOT_DN)
    counts, us = [], []
    for seed in range(60):
        result = measure_defects(*defect_stack(seed, hot, dead), thresholds=th)
        counts.append([result.counts["hot"], result.counts["dead"],
                       result.zone_total("centre"), result.zone_total("edge")])
        us.append([result.count_uncertainty["hot"], result.count_uncertainty["dead"],
                   result.zone_uncertainty["centre"], result.zone_uncertainty["edge"]])
        assert result.count_uncertainty["blinking"] is None
    found = ratio(np.array(us, dtype=float), np.array(counts, dtype=float))
    print(f"defect counts hot, dead, centre, edge: mean {np.mean(counts, 0).round(1).tolist()}"
          f" sd {np.std(counts, 0, ddof=1).round(2).tolist()} u/sd {found.round(2).tolist()}")
    for k in range(4):
        assert found[k] == pytest.approx(1.0, abs=0.30)
    clean = measure_defects(*defect_stack(99, [], []), thresholds=th)
    assert all(v is not None and v < 0.05 for k, v in clean.count_uncertainty.items()
               if k != "blinking")
