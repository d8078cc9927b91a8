"""EMVA 1288 analysis validated against a sensor model with known truth (tests_unit/emva_synth).

Tolerances (from the issue) and why they hold: the frames are 160x192 pixels and the sweep has
70 steps, so the photon-transfer fit averages ~1.4 M pixel variances (K's statistical error
~0.1 %, limit 0.5 %); dark noise uses 70 dark pairs (~0.2 %, limit 3 %); the saturation point
is one of the 1.9 %-spaced steps next to the model's continuous variance maximum (limit 2 %);
DSNU/PRNU come from 16-frame stacks of 30 k pixels (~0.5 %, limit 5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from harness.analysis.accumulators import (
    PairAccumulator,
    StackAccumulator,
    StackStats,
    frame_sum,
    frame_sum_squares,
    pair_diff_squares,
)
from harness.analysis.emva1288 import (
    EmvaData,
    EmvaReducer,
    find_saturation,
    measure_emva1288,
    spatial_variances,
)
from harness.errors import ConfigError, MeasurementError
from tests_unit.emva_synth import Sensor, exposure_sweep

SHAPE: dict[str, Any] = {"height": 160, "width": 192}


def reduce(sensor: Sensor, *, by_step: bool = True, photons: bool = True,
           **sweep: object) -> EmvaData:
    reducer = EmvaReducer(sensor.bits)
    for role, group, step, ns, ph, frame in exposure_sweep(sensor, **sweep):  # type: ignore[arg-type]
        reducer.add(frame, dark=role == "dark", spatial=group == "spatial", exposure_ns=ns,
                    photons=ph if photons else None, key=float(step) if by_step else None)
    return reducer.finish()


@pytest.fixture(scope="module")
def below_adc() -> tuple[Sensor, EmvaData]:
    """Full well 12 000 e- = 3000 DN, below the 12-bit ADC range: a plateau of ~25 % of the
    points (the case where the reference package's saturation search fails)."""
    sensor = Sensor(**SHAPE, seed=11, full_well_e=12000.0)
    return sensor, reduce(sensor, steps=70, max_electrons=1.3 * 12000.0)


@pytest.fixture(scope="module")
def above_adc() -> tuple[Sensor, EmvaData]:
    """Full well 20 000 e- = 5000 DN above the ADC range: the ADC clips at 4095."""
    sensor = Sensor(**SHAPE, seed=12, full_well_e=20000.0, dark_current_e_per_s=400.0)
    top = 1.3 * (sensor.max_dn - sensor.offset_dn) / sensor.k_dn_per_e
    return sensor, reduce(sensor, steps=70, max_electrons=top)


# ---- accumulators -------------------------------------------------------------------------

def test_frame_sums_are_exact_against_int64_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (257, 311), dtype=np.uint16)
    b = rng.integers(0, 65536, (257, 311), dtype=np.uint16)
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    assert frame_sum(a) == int(ai.sum())
    assert frame_sum_squares(a) == int((ai * ai).sum())
    assert pair_diff_squares(a, b) == int(((ai - bi) ** 2).sum())


def test_exactness_holds_beyond_2_pow_53_by_row_blocks() -> None:
    # 4096 x 1024 full-scale 16-bit pixels: sum of squares 1.8e16 > 2**53, so float64
    # accumulation alone would round; the row-block split keeps it exact.
    a = np.full((4096, 1024), 65535, np.uint16)
    a[0, 0] = 65534
    z = np.zeros_like(a)
    exact = (a.size - 1) * 65535**2 + 65534**2
    assert frame_sum_squares(a) == exact
    assert pair_diff_squares(a, z) == exact


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
def test_pair_diff_squares_is_exact_at_every_bit_depth(bits: int) -> None:
    # cv2.norm returns its float64 sum through a square root and back; the block bound and
    # the rounding must give the exact integer at every depth, also with extreme differences.
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, (613, 827), dtype=np.uint16)
    b = rng.integers(0, top + 1, (613, 827), dtype=np.uint16)
    a[::7] = top
    b[::7] = 0
    exact = int(((a.astype(np.int64) - b.astype(np.int64)) ** 2).sum())
    assert pair_diff_squares(a, b, top) == exact
    assert pair_diff_squares(a, b) == exact


def test_pair_diff_squares_recounts_values_above_the_stated_range() -> None:
    # a frame with values above max_value breaks the block bound: the histogram recounts it
    a = np.full((300, 400), 65535, np.uint16)
    z = np.zeros_like(a)
    assert pair_diff_squares(a, z, 4095) == a.size * 65535**2


def test_pair_diff_squares_falls_back_when_norm_is_not_integral(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.analysis.accumulators as acc_mod

    rng = np.random.default_rng(3)
    a = rng.integers(0, 4096, (64, 64), dtype=np.uint16)
    b = rng.integers(0, 4096, (64, 64), dtype=np.uint16)
    exact = int(((a.astype(np.int64) - b.astype(np.int64)) ** 2).sum())
    real_norm = acc_mod.cv2.norm

    class Cv2Shim:
        def __getattr__(self, name: str) -> object:
            return getattr(cv2, name)

        @staticmethod
        def norm(*args: object) -> float:
            return float(real_norm(*args)) + 0.5

    monkeypatch.setattr(acc_mod, "cv2", Cv2Shim())
    assert pair_diff_squares(a, b, 4095) == exact


def test_pair_variance_removes_the_mean_difference() -> None:
    # Release 4.0 Eq. 18: a brightness step between the two frames must not count as noise.
    rng = np.random.default_rng(1)
    base = rng.normal(1000, 10, (200, 200))
    a = np.rint(base + rng.normal(0, 5, base.shape)).astype(np.uint16)
    b = np.rint(base + 50 + rng.normal(0, 5, base.shape)).astype(np.uint16)
    acc = PairAccumulator()
    acc.add(a)
    acc.add(b)
    stats = acc.stats()
    expected = np.var(a.astype(np.float64) - b.astype(np.float64)) / 2.0
    assert stats.var_dn2 == pytest.approx(expected, rel=1e-12)
    assert stats.var_dn2 == pytest.approx(25.0 + 1 / 12, rel=0.05)
    assert stats.mean_dn == pytest.approx((a.mean() + b.mean()) / 2, rel=1e-12)


def test_pair_accumulator_rejects_odd_frames_and_bad_types() -> None:
    acc = PairAccumulator()
    acc.add(np.zeros((4, 4), np.uint16))
    with pytest.raises(ConfigError, match="odd number"):
        acc.stats()
    with pytest.raises(ConfigError, match="differs"):
        acc.add(np.zeros((4, 5), np.uint16))
    with pytest.raises(ConfigError, match="not supported"):
        PairAccumulator().add(np.zeros((4, 4), np.float32))


def stack_of(frames: np.ndarray) -> StackStats:
    acc = StackAccumulator()
    for f in frames:
        acc.add(f)
    return acc.stats()


def test_stack_accumulator_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 4096, (7, 30, 40), dtype=np.uint16)
    st = stack_of(frames)
    assert np.array_equal(st.sum_img, frames.astype(np.int64).sum(axis=0))
    assert np.array_equal(st.sumsq_img, (frames.astype(np.int64) ** 2).sum(axis=0))
    assert np.allclose(st.var_img(), frames.astype(np.float64).var(axis=0, ddof=1), rtol=1e-12)


def test_variance_image_is_exact_on_both_paths_and_cached_read_only() -> None:
    # float64 path while L * max(sum y^2) < 2**53; int64 beyond (2000 full-scale 16-bit frames)
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 65536, (5, 20, 30), dtype=np.uint16)
    st = stack_of(frames)
    wide = frames.astype(np.int64)
    numerator = 5 * (wide**2).sum(axis=0) - wide.sum(axis=0) ** 2
    assert np.array_equal(st.var_img(), numerator / 20.0)
    assert st.var_img() is st.var_img()
    assert not st.var_img().flags.writeable
    view = (slice(1, None, 2), slice(0, None, 2))
    assert np.array_equal(st.var_img(view), (numerator / 20.0)[view])
    big = StackStats(np.full((4, 4), 2000 * 65535, np.int32),
                     np.full((4, 4), 2000.0 * 65535**2), 2000)
    big.sumsq_img[0, 0] -= 65535**2 - 65534**2  # one frame at 65534 on pixel (0, 0)
    big.sum_img[0, 0] -= 1
    var = big.var_img()
    assert var[0, 0] == (2000 * (2000 * 65535**2 - 65535**2 + 65534**2)
                         - (2000 * 65535 - 1) ** 2) / (2000 * 1999.0)
    assert np.all(var.ravel()[1:] == 0.0)


def test_spatial_split_recovers_row_column_and_pixel_variances() -> None:
    # Release 4.0 row/column/pixel split (docs/standards.md#emva-dsnu-and-prnu): known row, column, pixel patterns.
    rng = np.random.default_rng(3)
    rows, cols, frames = 200, 300, 8
    pattern = (1000 + rng.normal(0, 3, (rows, 1)) + rng.normal(0, 2, (1, cols))
               + rng.normal(0, 4, (rows, cols)))
    acc = StackAccumulator()
    for _ in range(frames):
        acc.add(np.rint(pattern + rng.normal(0, 6, pattern.shape)).astype(np.uint16))
    sv = spatial_variances(acc.stats())
    assert sv.row_dn2 == pytest.approx(9.0, rel=0.25)
    assert sv.column_dn2 == pytest.approx(4.0, rel=0.25)
    assert sv.pixel_dn2 == pytest.approx(16.0, rel=0.05)
    assert sv.temporal_dn2 == pytest.approx(36.0 + 1 / 12, rel=0.03)


# ---- photon transfer, saturation, dark ----------------------------------------------------

@pytest.mark.parametrize("case", ["below_adc", "above_adc"])
def test_gain_dark_noise_and_saturation_match_truth(case: str,
                                                    request: pytest.FixtureRequest) -> None:
    sensor, data = request.getfixturevalue(case)
    res = measure_emva1288(data)
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.005)
    assert res.temporal_dark_noise_e == pytest.approx(sensor.read_noise_e, rel=0.03)
    assert res.quantum_efficiency_pct == pytest.approx(100 * sensor.qe, rel=0.005)
    truth = sensor.true_saturation_e()
    assert res.saturation_capacity_e == pytest.approx(truth, rel=0.02)
    assert res.saturation_reached
    assert res.snr_max_db == pytest.approx(20 * math.log10(math.sqrt(truth)), abs=0.1)
    # the plateau level: full well, or the ADC clip expressed in electrons
    clip = min(sensor.full_well_e, (sensor.max_dn - sensor.offset_dn) / sensor.k_dn_per_e)
    assert res.full_well_e == pytest.approx(clip, rel=0.01)
    # dynamic range follows from its definition (exact SNR = 1 threshold)
    var_e2 = res.dark_var_dn2 / res.system_gain_dn_per_e**2
    assert res.sensitivity_threshold_e == pytest.approx(0.5 + math.sqrt(0.25 + var_e2))
    assert res.dynamic_range == pytest.approx(res.saturation_capacity_e
                                              / res.sensitivity_threshold_e)


def test_dark_current_from_the_dark_mean_slope(above_adc: tuple[Sensor, EmvaData]) -> None:
    sensor, data = above_adc
    res = measure_emva1288(data)
    # 400 e-/s over 1..50 ms: 0.4..20 e-; the slope of 70 dark means of 30 k pixels.
    assert res.dark_current_e_per_s == pytest.approx(sensor.dark_current_e_per_s, rel=0.03)
    # the zero-exposure intercept removes dark-current shot noise from the dark noise
    assert res.temporal_dark_noise_e == pytest.approx(sensor.read_noise_e, rel=0.03)


def test_saturation_on_a_plateau_is_the_variance_maximum() -> None:
    var = np.array([1, 2, 3, 4, 5, 6, 0.01, 0.004, 0.006, 0.005, 0.0041, 0.0042])
    assert find_saturation(var) == (5, True)
    assert find_saturation(np.arange(1.0, 6.0)) == (4, False)


def test_linearity_error_matches_the_injected_nonlinearity() -> None:
    # A gain that rises by 3 % towards full well; truth = the standard's weighted fit applied
    # to the model's noise-free mean signal at the same photon counts and range.
    sensor = Sensor(**SHAPE, seed=21, nonlinearity=0.03, full_well_e=14000.0)
    data = reduce(sensor, steps=40, max_electrons=1.2 * 14000.0)
    res = measure_emva1288(data)
    lo, hi = res.linearity_fit_range
    x = np.array([p.photons for p in res.points])[lo:hi + 1]
    g = sensor.prnu_map.ravel()
    m = sensor.qe * x[:, None] * g[None, :]
    y = sensor.k_dn_per_e * (m + sensor.nonlinearity * (m * m + m) / sensor.full_well_e).mean(1)
    b0, a1 = np.polynomial.polynomial.polyfit(x, y, 1, w=1 / y)
    truth = 100 * (y - (a1 * x + b0)) / (a1 * x + b0)
    assert truth.max() - truth.min() > 0.5  # the nonlinearity is visible
    assert res.linearity_error_min_pct == pytest.approx(truth.min(), abs=0.05)
    assert res.linearity_error_max_pct == pytest.approx(truth.max(), abs=0.05)


def test_linear_sensor_has_near_zero_linearity_error(below_adc: tuple[Sensor, EmvaData]) -> None:
    res = measure_emva1288(below_adc[1])
    assert abs(res.linearity_error_min_pct) < 0.05
    assert abs(res.linearity_error_max_pct) < 0.05


def test_flicker_between_pair_frames_does_not_bias_gain() -> None:
    # 1 % brighter second frame: without the Release-4 correction sigma^2 would gain
    # (0.01 mu)^2 / 2 and K would be ~10 % high at mid range.
    sensor = Sensor(**SHAPE, seed=5)
    res = measure_emva1288(reduce(sensor, steps=40, flicker=0.01))
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.005)


# ---- DSNU / PRNU --------------------------------------------------------------------------

def test_dsnu_prnu_match_truth(below_adc: tuple[Sensor, EmvaData]) -> None:
    sensor, data = below_adc
    res = measure_emva1288(data)
    assert res.dsnu_e == pytest.approx(sensor.true_dsnu_e(), rel=0.05)
    assert res.prnu_pct == pytest.approx(sensor.true_prnu_pct(), rel=0.05)
    assert res.spatial_fraction_of_saturation == pytest.approx(0.5, abs=0.1)
    assert res.nonuniformity is not None and res.nonuniformity.excluded_pixels == 0


def test_defects_excluded_from_dsnu_prnu_and_counted_apart() -> None:
    hot = {(10 + 7 * i, 20 + 9 * i): 3000.0 for i in range(12)}
    dead = {(100 + i, 50 + 5 * i): 0.2 for i in range(6)}
    sensor = Sensor(**SHAPE, seed=31, hot=hot, gain=dead)
    res = measure_emva1288(reduce(sensor, steps=30))
    assert res.defects is not None
    assert set(res.defects.pixels["hot"]) == set(hot)
    assert set(res.defects.pixels["dead"]) == set(dead)
    # all pixels: 12 hot pixels at +750 DN dominate the dark spatial variance
    assert res.dsnu_all_pixels_e is not None and res.dsnu_all_pixels_e > 5 * sensor.true_dsnu_e()
    assert res.dsnu_e == pytest.approx(sensor.true_dsnu_e(), rel=0.05)
    assert res.prnu_pct == pytest.approx(sensor.true_prnu_pct(), rel=0.05)
    assert res.nonuniformity is not None and res.nonuniformity.excluded_pixels == 18


def test_colour_sensor_nonuniformity_is_per_bayer_plane() -> None:
    # RGGB sites with responses 0.45 / 1 / 1 / 0.7: over the raw frame the colour filters alone
    # would read as ~30 % PRNU; per plane (pooled RMS) it is the model's 1 %.
    sensor = Sensor(**SHAPE, seed=33, plane_gain=(0.45, 1.0, 1.0, 0.7))
    data = reduce(sensor, steps=30)
    res = measure_emva1288(data, cfa="RGGB")
    assert res.nonuniformity_per_plane is not None
    assert set(res.nonuniformity_per_plane) == {"R", "Gr", "Gb", "B"}
    for name, nu in res.nonuniformity_per_plane.items():
        r0, c0 = {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}[name]
        g = sensor.prnu_map[r0::2, c0::2]
        assert nu.prnu_pct == pytest.approx(100 * g.std(ddof=1) / g.mean(), rel=0.05)
        assert nu.dsnu_e == pytest.approx(sensor.dsnu_map[r0::2, c0::2].std(ddof=1), rel=0.05)
    assert res.prnu_pct == pytest.approx(sensor.true_prnu_pct(), rel=0.05)
    assert res.dsnu_e == pytest.approx(sensor.true_dsnu_e(), rel=0.05)
    assert "Gr_prnu_pct" in res.as_dict()
    mono_view = measure_emva1288(data)  # the same data read as mono
    assert mono_view.prnu_pct is not None and mono_view.prnu_pct > 10


# ---- variants and bad input ---------------------------------------------------------------

def test_without_photon_counts_qe_is_none_and_gain_still_right() -> None:
    sensor = Sensor(**SHAPE, seed=41)
    res = measure_emva1288(reduce(sensor, steps=40, photons=False))
    assert res.quantum_efficiency_pct is None
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.005)
    assert res.figure_json("quantum_efficiency_pct") is None


def test_photon_variation_with_one_dark_exposure() -> None:
    # fixed exposure, light varied: one dark pair for all points; no dark current.
    sensor = Sensor(height=96, width=128, seed=51)
    reducer = EmvaReducer(12)
    for ph in np.linspace(500, 30000, 25):
        for _ in range(2):
            reducer.add(sensor.frame(ph), dark=False, spatial=False, exposure_ns=1e6,
                        photons=float(ph))
    for _ in range(2):
        reducer.add(sensor.frame(0.0), dark=True, spatial=False, exposure_ns=1e6)
    res = measure_emva1288(reducer.finish())
    assert res.dark_current_e_per_s is None
    assert res.nonuniformity is None and res.figure_json("dsnu_e") is None
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.01)


def test_the_record_holds_every_figure_and_the_points(
        below_adc: tuple[Sensor, EmvaData]) -> None:
    # (the command line's --json keys are its own: test_cli_analyze_sensor)
    res = measure_emva1288(below_adc[1])
    out = res.as_dict()
    assert set(res.figures()) - {"dsnu_all_pixels_e", "prnu_all_pixels_pct"} <= set(out)
    assert set(out["points"][0]) == {"exposure_ns", "photons", "mean_dn", "mean_dark_dn",
                                      "var_dn2", "var_dark_dn2"}
    assert all(out[name] == res.figure_json(name) for name in res.figures() if name in out)
    assert len(out["points"]) == 70


def test_reducer_rejects_incomplete_sweeps() -> None:
    frame = np.zeros((8, 8), np.uint16)
    reducer = EmvaReducer(12)
    reducer.add(frame, dark=False, spatial=False, exposure_ns=1.0, photons=1.0)
    reducer.add(frame, dark=False, spatial=False, exposure_ns=1.0, photons=1.0)
    with pytest.raises(ConfigError, match="no dark temporal pairs"):
        reducer.finish()
    reducer.add(frame, dark=True, spatial=False, exposure_ns=2.0)
    reducer.add(frame, dark=True, spatial=False, exposure_ns=2.0)
    reducer.add(frame, dark=True, spatial=False, exposure_ns=3.0)
    reducer.add(frame, dark=True, spatial=False, exposure_ns=3.0)
    with pytest.raises(ConfigError, match="no dark pair at the same exposure"):
        reducer.finish()
    with pytest.raises(ConfigError, match="differs"):
        reducer.add(np.zeros((8, 9), np.uint16), dark=True, spatial=False, exposure_ns=2.0)
    with pytest.raises(ConfigError, match="bits"):
        EmvaReducer(17)
    only_bright_stack = EmvaReducer(12)
    for dark in (False, False, True, True):
        only_bright_stack.add(frame, dark=dark, spatial=False, exposure_ns=1.0,
                              photons=None if dark else 1.0)
    for _ in range(3):
        only_bright_stack.add(frame, dark=False, spatial=True, exposure_ns=1.0, photons=1.0)
    with pytest.raises(ConfigError, match="only a bright spatial stack"):
        only_bright_stack.finish()
    with pytest.raises(ConfigError, match="more than one exposure"):
        only_bright_stack.add(frame, dark=False, spatial=True, exposure_ns=2.0, photons=1.0)


def test_analyze_rejects_too_few_points_and_flat_data() -> None:
    sensor = Sensor(height=32, width=32, seed=61)
    with pytest.raises(ConfigError, match="needs >= 3"):
        measure_emva1288(reduce(sensor, steps=2, spatial_frames=0))
    dark = EmvaReducer(12)
    frame = np.full((16, 16), 40, np.uint16)
    for k in range(5):
        for d in (False, False, True, True):
            dark.add(frame, dark=d, spatial=False, exposure_ns=float(k + 1),
                     photons=None if d else float(k + 1))
    with pytest.raises(ConfigError):
        measure_emva1288(dark.finish())


# ---- flags: physically impossible or unsupported figures ----------------------------------

@dataclass
class DriftingSensor(Sensor):
    """The dark level (black-level clamp) falls by ``drift_dn`` per frame: over a sweep whose
    exposures rise with time the dark mean falls with exposure, as in a real 8-bit CMOS data
    set whose dark-current fit gave -5.8e5 e-/s."""

    drift_dn: float = 0.0

    def frame(self, photons: float, exposure_s: float = 0.01, *,
              illumination: float = 1.0) -> np.ndarray:
        out = super().frame(photons, exposure_s, illumination=illumination)
        self.offset_map -= self.drift_dn
        return out


def drifting(seed: int = 71) -> EmvaData:
    # 40 steps x 4 temporal frames, 0.02 DN/frame: the dark level falls by 3.2 DN over 1-50 ms
    sensor = DriftingSensor(**SHAPE, seed=seed, offset_dn=60.0, drift_dn=0.02)
    return reduce(sensor, steps=40, spatial_frames=4)


def test_healthy_data_have_no_flags_and_require_gives_the_values(
        below_adc: tuple[Sensor, EmvaData], above_adc: tuple[Sensor, EmvaData]) -> None:
    # below_adc has no dark current: its dark slope scatters around 0 and must not be flagged
    for _, data in (below_adc, above_adc):
        res = measure_emva1288(data)
        assert res.flags == {}
        assert res.flag("dark_current_e_per_s") is None
        for name in ("system_gain_dn_per_e", "saturation_capacity_e", "snr_max_db",
                     "dynamic_range_db", "dark_current_e_per_s", "quantum_efficiency_pct",
                     "dsnu_e", "prnu_pct", "dsnu_row_e", "linearity_error_max_pct"):
            assert res.require(name) == res.figures()[name]
        assert res.as_dict()["flags"] == {}
        assert all(not isinstance(res.figure_json(k), dict) for k in res.figures())


def test_a_drifting_dark_level_flags_the_negative_dark_current() -> None:
    res = measure_emva1288(drifting())
    assert res.dark_current_e_per_s is not None and res.dark_current_e_per_s < -100.0
    reason = res.flag("dark_current_e_per_s")
    assert reason is not None and reason.startswith("negative dark current")
    with pytest.raises(MeasurementError, match=r"dark_current_e_per_s.*negative dark current") \
            as info:
        res.require("dark_current_e_per_s")
    assert info.value.figure == "dark_current_e_per_s"
    # the drift is the same in the bright and the dark pair of a step: the rest is sound
    assert res.require("system_gain_dn_per_e") == pytest.approx(0.25, rel=0.01)
    assert set(res.flags) == {"dark_current_e_per_s"}
    assert res.figure_json("dark_current_e_per_s") == {
        "value": res.dark_current_e_per_s, "flagged": reason}


def test_a_sweep_that_never_saturates_flags_saturation_and_what_follows_from_it() -> None:
    sensor = Sensor(**SHAPE, seed=72)
    res = measure_emva1288(reduce(sensor, steps=30, max_electrons=0.7 * sensor.full_well_e))
    assert res.saturation_index == len(res.points) - 1
    reason = res.flag("saturation_mean_dn")
    assert reason is not None and "last of the 30 steps" in reason
    for name in ("saturation_capacity_e", "snr_max", "snr_max_db", "dynamic_range",
                 "dynamic_range_db", "linearity_error_min_pct", "linearity_error_max_pct"):
        assert res.flag(name) == f"from flagged saturation_mean_dn: {reason}", name
        with pytest.raises(MeasurementError, match="saturation_mean_dn"):
            res.require(name)
    assert res.saturation_capacity_e > 0  # kept for the record
    # K needs only the linear range: it stays a measurement
    assert res.flag("system_gain_dn_per_e") is None
    assert res.require("system_gain_dn_per_e") == pytest.approx(0.25, rel=0.01)
    assert res.flag("temporal_dark_noise_e") is None and res.flag("dsnu_e") is None
    # a saturation step given by the caller is taken as is
    assert measure_emva1288(reduce(sensor, steps=30, max_electrons=0.7 * sensor.full_well_e),
                   saturation_index=29).flag("saturation_mean_dn") is None


def test_fits_with_too_few_points_are_flagged() -> None:
    # 4 steps at 2, 35, 67, 100 % of 1.3 x full well: saturation at step 2, so the gain fit
    # (<= 70 % of saturation) has 2 points and the linearity fit (5-95 %) has 1
    sensor = Sensor(**SHAPE, seed=73)
    res = measure_emva1288(reduce(sensor, steps=4, spatial_frames=4))
    assert res.saturation_index == 2 and res.flag("saturation_mean_dn") is None
    assert res.gain_fit_range == (0, 1)
    assert res.flag("system_gain_dn_per_e") == (
        "the photon-transfer fit has 2 point(s) below 70 % of saturation; at least 3 are needed")
    assert "fit has 2 point(s)" in (res.flag("responsivity_dn_per_photon") or "")
    assert "at least 4 are needed" in (res.flag("linearity_error_max_pct") or "")
    assert math.isnan(res.linearity_error_max_pct)
    assert res.figure_json("linearity_error_max_pct")["value"] is None
    # everything in electrons comes from K
    for name in ("temporal_dark_noise_e", "saturation_capacity_e", "quantum_efficiency_pct",
                 "sensitivity_threshold_e", "dynamic_range_db", "dsnu_e", "dsnu_row_e",
                 "dsnu_all_pixels_e", "dark_current_e_per_s"):
        assert "from flagged system_gain_dn_per_e" in (res.flag(name) or ""), name
    assert res.flag("temporal_dark_noise_dn") is None and res.flag("prnu_pct") is None
    # 3 exposure times: the dark-current line has one degree of freedom
    res3 = measure_emva1288(reduce(Sensor(**SHAPE, seed=74, dark_current_e_per_s=400.0), steps=3,
                          spatial_frames=0))
    assert "has 3 exposure times; at least 4" in (res3.flag("dark_current_e_per_s") or "")


def test_quantum_efficiency_above_100_pct_is_flagged(below_adc: tuple[Sensor, EmvaData]) -> None:
    from dataclasses import replace

    data = below_adc[1]
    # photon counts 2.5x too low (a calibration error): QE reads 125 %
    fewer = tuple(replace(p, photons=(p.photons or 0.0) / 2.5) for p in data.points)
    res = measure_emva1288(replace(data, points=fewer))
    assert res.quantum_efficiency_pct == pytest.approx(125.0, rel=0.01)
    assert "above 100 %" in (res.flag("quantum_efficiency_pct") or "")
    # mu_e.sat = eta mu_p.sat with photon counts; the threshold in photons too
    assert "from flagged quantum_efficiency_pct" in (res.flag("saturation_capacity_e") or "")
    assert "from flagged quantum_efficiency_pct" in (
        res.flag("sensitivity_threshold_photons") or "")
    assert res.flag("system_gain_dn_per_e") is None


def test_variance_that_does_not_grow_with_the_signal_flags_the_gain(
        below_adc: tuple[Sensor, EmvaData]) -> None:
    from dataclasses import replace

    data = below_adc[1]
    flat = tuple(replace(p, var_dn2=p.var_dark_dn2 * (1.0 - 1e-4 * i))
                 for i, p in enumerate(data.points))
    res = measure_emva1288(replace(data, points=flat))
    assert res.system_gain_dn_per_e <= 0
    assert "photon-transfer slope" in (res.flag("system_gain_dn_per_e") or "")
    assert "from flagged system_gain_dn_per_e" in (res.flag("temporal_dark_noise_e") or "")
    with pytest.raises(MeasurementError, match="system_gain_dn_per_e"):
        res.require("system_gain_dn_per_e")


def test_require_names_absent_and_unknown_figures() -> None:
    sensor = Sensor(**SHAPE, seed=41)
    res = measure_emva1288(reduce(sensor, steps=40, photons=False, spatial_frames=0))
    assert res.flags == {}
    with pytest.raises(MeasurementError, match="no photon counts") as info:
        res.require("quantum_efficiency_pct")
    assert info.value.figure == "quantum_efficiency_pct"
    with pytest.raises(MeasurementError, match="no spatial stacks"):
        res.require("dsnu_e")
    with pytest.raises(ConfigError, match="unknown EMVA 1288 figure 'gain'"):
        res.require("gain")
