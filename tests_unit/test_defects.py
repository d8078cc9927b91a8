"""Defect-pixel classes, clusters, lines and zones on a sensor model with injected defects.

Truth is the set of injected coordinates. Injected defects sit well above their thresholds
(hot +100 DN against a ~4 DN threshold, dead -60 %, bright +50 %, weak -15 %); the clean
sensors carry DSNU (2 e-), PRNU (1 %) and temporal noise, and must give no defect at all: the
8-sigma and chi-square rules put the expected false alarms far below one per sensor.

The simulated module's telegraph pixels (harness.sim.sensor: 12 e- steps in 2.3 e- of dark
noise, switching with probability 0.3 per frame) are checked against the simulator's defect
truth with the recommended dark stack, 32 frames: 8 frames find ~1 in 5 of them (the chi-square
limit is above their variance, see harness.analysis.defects), 32 frames ~99.6 %.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator, StackStats
from harness.analysis.defects import (
    DefectThresholds,
    bayer_planes,
    measure_defects,
    zone_of,
)
from harness.errors import ConfigError
from harness.sim.module import Module, _merge, load_module
from tests_unit.emva_synth import Sensor
from tests_unit.test_sim_sensor import MODULES

H, W = 128, 160
FLAT_PHOTONS = 12000.0  # 6000 e-: ~50 % of the 12 000 e- full well
#: The dark stack that finds the simulated telegraph pixels (harness.analysis.defects,
#: "blinking"): 32 frames; the exposure only has to show the hot pixels.
DARK_FRAMES = 32
DARK_EXPOSURE_US = 20_000.0


def stacks(sensor: Sensor, frames: int = 16) -> tuple[StackStats, StackStats]:
    out = []
    for photons in (0.0, FLAT_PHOTONS):
        acc = StackAccumulator()
        for frame in sensor.stack(frames, photons):
            acc.add(frame)
        out.append(acc.stats())
    return out[0], out[1]


def test_bayer_planes_name_the_greens_by_their_row() -> None:
    assert [p[0] for p in bayer_planes("RGGB")] == ["R", "Gr", "Gb", "B"]
    assert [p[0] for p in bayer_planes("GBRG")] == ["Gb", "B", "R", "Gr"]
    assert bayer_planes(None) == [("Y", 0, 0, 1)]
    with pytest.raises(ConfigError, match="allowed: RGGB"):
        bayer_planes("RGBG")


@pytest.mark.parametrize("cfa", [None, "RGGB"])
def test_clean_sensor_has_no_defects(cfa: str | None) -> None:
    gains = (0.45, 1.0, 1.0, 0.7) if cfa else None
    sensor = Sensor(height=H, width=W, seed=3, plane_gain=gains)
    result = measure_defects(*stacks(sensor), cfa=cfa)
    assert result.total == 0, result.counts
    assert result.clusters == ()
    assert result.lines == ()


def test_every_injected_defect_is_found_in_its_class() -> None:
    hot = {(11, 21): 400.0, (60, 91): 400.0, (101, 140): 400.0}
    cluster = {(40, 40): 400.0, (40, 42): 400.0, (42, 42): 400.0}  # same-colour neighbours
    dead = {(20, 100): 0.4, (90, 33): 0.4}
    bright = {(70, 120): 1.5}
    weak = {(30, 60): 0.85, (110, 12): 0.85}
    stuck = {(50, 70): 0, (80, 150): 4095}
    blink = {(15, 130): 60.0}
    column_run = {(20 + 2 * i, 77): 0.3 for i in range(12)}  # 12 dead pixels in one column
    sensor = Sensor(height=H, width=W, seed=4, plane_gain=(0.45, 1.0, 1.0, 0.7),
                    hot=hot | cluster, gain=dead | bright | weak | column_run, stuck=stuck,
                    blink=blink, column_offset_dn={120: 3.0})
    result = measure_defects(*stacks(sensor), cfa="RGGB",
                             conditions={"exposure_us": 10000.0, "gain_db": 0.0,
                                         "temperature_c": 25.0})
    assert set(result.pixels["hot"]) == set(hot) | set(cluster)
    # the run's pixels count as the column defect, not as 12 dead pixels or a cluster
    assert set(result.pixels["dead"]) == set(dead)
    assert not any(c == 77 for pix in result.pixels.values() for _, c in pix)
    assert set(result.pixels["bright"]) == set(bright)
    assert set(result.pixels["weak"]) == set(weak)
    assert set(result.pixels["stuck"]) == set(stuck)
    assert set(result.pixels["blinking"]) == set(blink)
    big = [c for c in result.clusters if c.size == 3]
    assert len(big) == 1 and (big[0].top, big[0].left, big[0].bottom, big[0].right) == (
        40, 40, 42, 42)
    assert big[0].plane == "R"
    lines = {(ln.axis, ln.index, ln.kind) for ln in result.lines}
    assert ("column", 77, "run") in lines
    assert ("column", 120, "dark_offset") in lines
    assert {ln.index for ln in result.lines} == {77, 120}
    assert result.conditions["temperature_c"] == 25.0
    payload = result.as_dict()
    assert payload["counts"]["hot"] == 6 and payload["total"] == result.total
    assert [40, 42] in payload["pixels"]["hot"]


def test_zone_counts_split_centre_and_edge() -> None:
    hot = {(64, 80): 400.0, (63, 78): 400.0, (2, 3): 400.0}
    sensor = Sensor(height=H, width=W, seed=5, hot=hot)
    result = measure_defects(*stacks(sensor))
    assert result.zone_counts["centre"]["hot"] == 2
    assert result.zone_counts["edge"]["hot"] == 1
    assert zone_of(0, 0, H, W, DefectThresholds().zones) == "edge"
    assert zone_of(H // 2, W // 2, H, W, DefectThresholds().zones) == "centre"


def test_thresholds_are_configurable() -> None:
    sensor = Sensor(height=H, width=W, seed=6, hot={(30, 30): 100.0}, gain={(60, 60): 0.8})
    dark, flat = stacks(sensor, frames=8)
    default = measure_defects(dark, flat)
    assert (30, 30) in default.pixels["hot"] and (60, 60) in default.pixels["weak"]
    strict = measure_defects(dark, flat, thresholds=DefectThresholds(hot_dn=50.0, weak_rel=0.25))
    assert strict.pixels["hot"] == () and strict.pixels["weak"] == ()
    assert strict.hot_threshold_dn == {"Y": 50.0}


@pytest.mark.parametrize("kwargs, field", [
    ({"median_size": 7}, "median_size"),
    ({"dead_rel": 0.0}, "dead_rel"),
    ({"hot_dn": -1.0}, "hot_dn"),
    ({"weak_rel": 0.5}, "weak_rel"),
    ({"zones": (("centre", 0.5),)}, "zones"),
])
def test_bad_thresholds_are_rejected(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DefectThresholds(**kwargs)  # type: ignore[arg-type]


def test_mismatched_or_signal_free_stacks_are_rejected() -> None:
    a, b = StackAccumulator(), StackAccumulator()
    for _ in range(2):
        a.add(np.zeros((16, 16), np.uint16))
        b.add(np.zeros((16, 17), np.uint16))
    with pytest.raises(ConfigError, match="must match"):
        measure_defects(a.stats(), b.stats())
    with pytest.raises(ConfigError, match="no signal"):
        measure_defects(a.stats(), a.stats())


def test_clusters_sizes_boxes_and_members_per_plane() -> None:
    from harness.analysis.defects import _clusters

    mask = np.zeros((20, 20), bool)
    mask[2, 2] = mask[2, 4] = mask[4, 4] = True  # R plane (even, even): 3, 8-connected
    mask[10, 10] = mask[12, 12] = True  # R plane diagonal couplet
    mask[11, 11] = True  # B plane, alone: not a cluster
    mask[3, 3] = True  # B plane neighbour of nothing on its own plane
    mask[15, 15] = True  # B plane
    found = _clusters(mask, bayer_planes("RGGB"))
    assert [(c.plane, c.size) for c in found] == [("R", 3), ("R", 2)]
    assert (found[0].top, found[0].left, found[0].bottom, found[0].right) == (2, 2, 4, 4)
    assert set(found[0].pixels) == {(2, 2), (2, 4), (4, 4)}
    assert set(found[1].pixels) == {(10, 10), (12, 12)}
    mono = _clusters(mask, bayer_planes(None))  # full-frame neighbours
    assert sorted(c.size for c in mono) == [3, 4]  # (3, 3) joins the first, (11, 11) the second


def test_zone_totals_sum_to_the_class_totals() -> None:
    # hot pixels in both zones and dead pixels: zone_counts[zone] holds the classes and their
    # "total"; summing the dict would count every pixel twice
    hot = {(64, 80): 400.0, (63, 78): 400.0, (2, 3): 400.0, (120, 150): 400.0}
    dead = {(60, 90): 0.4, (5, 140): 0.4}
    sensor = Sensor(height=H, width=W, seed=7, hot=hot, gain=dead)
    result = measure_defects(*stacks(sensor))
    assert result.counts["hot"] == 4 and result.counts["dead"] == 2
    zones = [name for name, _ in result.thresholds.zones]
    assert sum(result.zone_total(z) for z in zones) == result.total == 6
    for cls, n in result.counts.items():
        assert sum(result.zone_counts[z][cls] for z in zones) == n, cls
    for zone in zones:
        per_class = result.zone_class_counts(zone)
        assert "total" not in per_class
        assert sum(per_class.values()) == result.zone_total(zone)
    assert (result.zone_total("centre"), result.zone_total("edge")) == (3, 3)
    with pytest.raises(ConfigError, match="unknown zone 'corner'; allowed: centre, edge"):
        result.zone_total("corner")


def test_telegraph_pixel_sitting_mostly_high_is_blinking_not_hot() -> None:
    # 32 dark frames, 1 DN of noise: a telegraph of 6 DN high in 26 frames raises the mean by
    # 4.9 DN (hot) and the variance by ~6 DN^2; its inferred duty cycle m^2 / (m^2 + v) is
    # ~0.8. A steady hot pixel (400 e- at K = 0.5) has shot noise only: duty 0.997, hot.
    rng = np.random.default_rng(8)
    high = np.zeros(32, bool)
    high[rng.permutation(32)[:26]] = True
    dark, flat = StackAccumulator(), StackAccumulator()
    for i in range(32):
        frame = 100.0 + rng.normal(0.0, 1.0, (H, W))
        frame[20, 30] += 6.0 * high[i]
        frame[90, 100] += 0.5 * rng.poisson(400.0)
        frame[50, 60] += 12.0  # a steady offset: hot, with no extra noise
        dark.add(np.rint(frame).astype(np.uint16))
        flat.add(np.rint(frame + 1000.0 + rng.normal(0.0, 20.0, (H, W))).astype(np.uint16))
    result = measure_defects(dark.stats(), flat.stats())
    assert result.pixels["blinking"] == ((20, 30),)
    assert set(result.pixels["hot"]) == {(50, 60), (90, 100)}
    strict = measure_defects(dark.stats(), flat.stats(),
                             thresholds=DefectThresholds(blink_max_duty=0.5))
    assert (20, 30) in strict.pixels["hot"] and strict.pixels["blinking"] == ()


def _sim_stacks(module: Module, seed: int, frames: int = DARK_FRAMES,
                exposure_us: float = DARK_EXPOSURE_US) -> tuple[StackStats, StackStats, Any]:
    """A dark and a flat stack (8 frames near 50 % of saturation) from SimCamera."""
    from harness.sim.bench import Bench
    from harness.sim.camera import SimCamera

    bench = Bench()
    cam = SimCamera.standalone(module, bench=bench, seed=seed, sensor_size=(640, 480))
    cam.start()
    out = []
    for chart, exposure, n in (("dark", exposure_us, frames), ("flat", 16_000.0, 8)):
        bench.set_chart(chart)
        cam.set("ExposureTime", exposure)
        acc = StackAccumulator()
        for frame in cam.grab(n).frames:
            acc.add(frame)
        out.append(acc.stats())
    return out[0], out[1], cam


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_blinking_pixels_are_found_exactly_at_the_recommended_dark_stack(
        seed: int) -> None:
    """The golden module's 4 seeded telegraph pixels (12 e-, switching with probability 0.3
    per frame; small.yaml is the golden on 640 x 480) in a 32-frame dark stack at 20 ms: all
    four as blinking, nothing else as blinking, every true defect found."""
    dark, flat, cam = _sim_stacks(load_module(MODULES / "small.yaml"), seed)
    result = measure_defects(dark, flat, cfa="RGGB")
    truth = {(p.row, p.col): p.cls for p in cam.sensor.defects}
    blinking = {rc for rc, cls in truth.items() if cls == "blinking"}
    assert len(blinking) == 4
    assert set(result.pixels["blinking"]) == blinking
    found = {rc for cls in result.counts for rc in result.pixels[cls]}
    assert found == set(truth)


def test_no_blinking_pixel_is_found_on_a_module_without_any() -> None:
    data = load_module(MODULES / "small.yaml").model_dump(by_alias=True)
    module = Module.model_validate(_merge(data, {"defects": {"seeded": {"blinking": 0}}}))
    for seed in (1, 2):
        dark, flat, cam = _sim_stacks(module, seed)
        result = measure_defects(dark, flat, cfa="RGGB")
        assert result.pixels["blinking"] == ()
        assert {rc for cls in result.counts for rc in result.pixels[cls]} == {
            (p.row, p.col) for p in cam.sensor.defects}


def test_chi2_quantiles_and_running_median_match_scipy() -> None:
    """The blinking test's chi-square quantiles and the line offsets' running median are
    computed without scipy (its stats and ndimage take ~0.8 s to import, longer than a whole
    `harness analyze emva1288`): they must agree with scipy's to double precision."""
    from scipy.ndimage import median_filter
    from scipy.stats import chi2

    from harness.analysis.defects import _running_median, chi2_isf

    for dof in (1, 2, 3, 7, 31, 49, 199, 1000, 5000):
        for p in (0.999, 0.5, 1e-3, 1e-6, 2e-9, 1e-15):
            assert chi2_isf(p, dof) == pytest.approx(chi2.isf(p, dof), rel=1e-11), (p, dof)
        assert chi2_isf(0.5, dof) == pytest.approx(chi2.median(dof), rel=1e-11)
    assert chi2_isf(1.0, 5) == 0.0 and chi2_isf(0.0, 5) == float("inf")
    rng = np.random.default_rng(3)
    for window in (3, 5, 9):
        values = rng.standard_normal(57)
        assert np.array_equal(_running_median(values, window),
                              median_filter(values, size=window, mode="nearest"))
