"""The EMVA 1288 sensor model against its own theory (EMVA 1288 4.0, section 2).

Frames are 640 x 480 (or smaller); each tolerance below is a few standard errors of the
statistic for that pixel count, stated where it is used.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.sim.module import Module, _merge, load_module
from harness.sim.scene import layout
from harness.sim.sensor import Operating, Roi, SensorModel, fill_normal

MODULES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"


def make_module(overrides: dict[str, Any] | None = None, base: str = "sim-reference-small-mono.yaml") -> Module:
    """A clean variant of a module file: no defects, no shading, no nonlinearity, + overrides."""
    data = load_module(MODULES / base).model_dump(by_alias=True)
    clean = {"defects": {"seeded": {k: 0 for k in data["defects"]["seeded"]}, "listed": []},
             "optics": {"relative_illumination_corner": 1.0},
             "sensor": {"nonlinearity": {"strength_pct": 0.0}}}
    return Module.model_validate(_merge(_merge(data, clean), overrides or {}))


def frames(model: SensorModel, n: int, *, chart: str = "flat", exposure_us: float = 10_000.0,
           flux: float = 1e6, gain_db: float = 0.0, temp: float = 25.0, seed: int = 1,
           roi: Roi | None = None) -> np.ndarray:
    s = model.module.sensor
    roi = roi or Roi(0, 0, s.width, s.height)
    rng = np.random.default_rng(seed)
    out = np.empty((n, roi.height, roi.width), np.uint16)
    scene = layout(chart, s.width, s.height)
    op = Operating(exposure_us, gain_db, s.black_level_dn, temp)
    for i in range(n):
        model.frame(scene, "D65", 0.0, flux, op, roi, rng, out[i])
    return out.astype(np.float64)


def pair_stats(stack: np.ndarray) -> tuple[float, float]:
    """EMVA 1288 4.0 Eq. 18: mean and temporal variance var(A - B)/2 of a pair."""
    a, b = stack[0], stack[1]
    return float((a.mean() + b.mean()) / 2), float(np.var(a - b) / 2)


def test_fast_normal_generator_has_unit_variance_and_normal_shape() -> None:
    out = np.empty((1000, 1000), np.float32)
    fill_normal(np.random.default_rng(5), out)
    x = out.astype(np.float64)
    # 1e6 samples: SE of the mean 0.001, of the variance 0.0014, of the kurtosis ~0.005
    assert abs(x.mean()) < 0.005
    assert abs(x.var() - 1.0) < 0.006
    assert abs(np.mean(x**4) / x.var() ** 2 - 3.0) < 0.05
    assert abs(np.mean(np.abs(x) > 2.0) - 0.0455) < 0.002


def test_mean_signal_follows_photons_qe_gain_and_black_level() -> None:
    m = make_module()
    model = SensorModel(m)
    stack = frames(model, 2)
    eta = model.module.spectral  # QE is spectral; the truth function gives the effective one
    from harness.sim.colour_response import effective_qe

    qe = effective_qe(m, "D65")["Y"]
    mu_p = model.photons_per_pixel(1e6, 10_000.0)
    expected = model.system_gain(0.0) * (qe * mu_p + model.dark_current(25.0) * 0.01) + 64.0
    # PRNU 0.6 % averages over 307k pixels to < 0.002 %; temporal noise to < 0.01 DN
    assert eta is not None
    assert stack.mean() == pytest.approx(expected, rel=2e-4)


def test_photon_transfer_slope_is_the_system_gain() -> None:
    model = SensorModel(make_module())
    dark_mu, dark_var = pair_stats(frames(model, 2, chart="dark", exposure_us=5000.0))
    xs, ys = [], []
    for flux in (2e5, 5e5, 1e6, 1.5e6):
        mu, var = pair_stats(frames(model, 2, flux=flux, exposure_us=5000.0, seed=int(flux)))
        xs.append(mu - dark_mu)
        ys.append(var - dark_var)
    x, y = np.array(xs), np.array(ys)
    k = float(x @ y / (x @ x))  # zero-offset LSQ slope (EMVA 1288 4.0, photon transfer)
    # each variance has a relative SE of sqrt(2/307200) = 0.26 %: 1 % is ~4 SE
    assert k == pytest.approx(model.system_gain(0.0), rel=0.01)


@pytest.mark.parametrize("exact", [False, True])
def test_dark_variance_is_k2_sigma_d2_plus_quantisation_once(exact: bool) -> None:
    model = SensorModel(make_module(), exact_normal=exact)
    _, var = pair_stats(frames(model, 2, chart="dark", exposure_us=100.0))
    k = model.system_gain(0.0)
    expected = k**2 * (model.read_noise_e(0.0) ** 2 + model.dark_current(25.0) * 1e-4) + 1 / 12
    assert var == pytest.approx(expected, rel=0.012)  # SE 0.26 % of the variance


def test_quantisation_is_applied_once_not_twice() -> None:
    """sigma_d = sqrt(10) e- must read back as 3.16 e-, not inflated by a dither
    (docs/standards.md#emva-reference-implementation).

    K = 0.3 puts the dark noise at 0.95 DN, where rounding adds exactly 1/12 DN^2 (Sheppard's
    correction; its error term exp(-2 pi^2 sigma^2) is 2e-8); the double-dither simulator would
    give sqrt(0.9 + 1/6)/0.3 = 3.44 e- after subtracting 1/12. (At K = 0.1 the noise is
    0.32 DN and no rounding model adds exactly 1/12: the EMVA setup rule asks for > 0.5 DN.)
    """
    m = make_module({"sensor": {"system_gain_dn_per_e": 0.3, "read_noise_e": math.sqrt(10.0),
                                "adc_noise_dn": 0.0, "dark_current_e_per_s": 0.0,
                                "dsnu_e": {"pixel": 0.0, "row": 0.0, "column": 0.0}}})
    model = SensorModel(m, exact_normal=True)
    _, var = pair_stats(frames(model, 2, chart="dark"))
    sigma_d = math.sqrt(var - 1 / 12) / 0.3
    assert sigma_d == pytest.approx(math.sqrt(10.0), rel=0.01)  # SE of sigma 0.13 %
    assert sigma_d < 3.3


def test_low_signal_shot_noise_is_exactly_poisson() -> None:
    lam = 1.5
    m = make_module({"sensor": {"system_gain_dn_per_e": 1.0, "read_noise_e": 0.0,
                                "adc_noise_dn": 0.0, "dark_current_e_per_s": lam / 0.1,
                                "dark_ref_temp_c": 25.0,
                                "dsnu_e": {"pixel": 0.0, "row": 0.0, "column": 0.0}}})
    counts = frames(SensorModel(m), 1, chart="dark", exposure_us=100_000.0)[0] - 64.0
    assert np.all(counts == np.round(counts))
    # P(k) = exp(-lam) lam^k / k!: 307k pixels give an SE of <= 0.0009 per probability
    for k in range(4):
        p = math.exp(-lam) * lam**k / math.factorial(k)
        assert np.mean(counts == k) == pytest.approx(p, abs=0.004)


def test_prnu_matches_its_row_column_pixel_parts() -> None:
    m = make_module()
    model = SensorModel(m)
    n = 16
    stack = frames(model, n, flux=1e6)
    mean_img = stack.mean(axis=0)
    temporal = stack.var(axis=0, ddof=1).mean()
    spatial = mean_img.var(ddof=1) - temporal / n  # EMVA 1288 4.0 section 8.2
    dark = frames(model, n, chart="dark")
    dark_mean = dark.mean(axis=0)
    dark_spatial = dark_mean.var(ddof=1) - dark.var(axis=0, ddof=1).mean() / n
    prnu = 100 * math.sqrt(spatial - dark_spatial) / (mean_img.mean() - dark_mean.mean())
    p = m.sensor.prnu_pct
    assert prnu == pytest.approx(math.sqrt(p.pixel**2 + p.row**2 + p.column**2), rel=0.03)
    dsnu = math.sqrt(dark_spatial) / model.system_gain(0.0)
    d = m.sensor.dsnu_e
    assert dsnu == pytest.approx(math.sqrt(d.pixel**2 + d.row**2 + d.column**2), rel=0.03)
    # against the unit's realised maps the only error left is the estimate's own (~0.5 %)
    realised = model.realised_patterns()
    assert prnu == pytest.approx(realised["prnu_pct"]["total"], rel=0.015)
    assert dsnu == pytest.approx(realised["dsnu_e"]["total"], rel=0.015)


def test_dark_current_doubles_every_doubling_temperature() -> None:
    m = make_module({"sensor": {"dark_current_e_per_s": 200.0}})
    model = SensorModel(m)
    k = model.system_gain(0.0)

    def measured(temp: float) -> float:
        short = frames(model, 1, chart="dark", exposure_us=100_000.0, temp=temp).mean()
        long = frames(model, 1, chart="dark", exposure_us=1_000_000.0, temp=temp).mean()
        return float((long - short) / 0.9 / k)

    i25, i31 = measured(25.0), measured(25.0 + m.sensor.dark_doubling_k)
    assert i25 == pytest.approx(200.0, rel=0.01)
    assert i31 / i25 == pytest.approx(2.0, rel=0.01)


def test_gain_scales_k_and_lowers_input_referred_read_noise() -> None:
    model = SensorModel(make_module())
    assert model.system_gain(6.0) == pytest.approx(0.42 * 10 ** (6 / 20))
    assert model.read_noise_e(12.0) < model.read_noise_e(0.0)
    _, var = pair_stats(frames(model, 2, chart="dark", exposure_us=100.0, gain_db=12.0))
    k = model.system_gain(12.0)
    assert var == pytest.approx(k**2 * model.read_noise_e(12.0) ** 2 + 1 / 12, rel=0.015)


def test_full_well_below_adc_range_gives_a_plateau() -> None:
    low = SensorModel(make_module({"sensor": {"full_well_e": 5000.0}}))
    sat = frames(low, 1, flux=2e6, exposure_us=100_000.0)[0]
    assert sat.max() < 4095
    # the plateau sits at K x full well + black; read noise (1 DN) and DSNU stay on it
    assert sat.mean() == pytest.approx(0.42 * 5000 + 64, abs=1.0)
    golden = SensorModel(make_module())
    assert np.all(frames(golden, 1, flux=2e6, exposure_us=100_000.0)[0] == 4095)


def test_nonlinearity_compresses_the_top_of_the_range() -> None:
    m = make_module({"sensor": {"nonlinearity": {"onset": 0.6, "strength_pct": 6.0},
                                "full_well_e": 12000.0}})
    model = SensorModel(m)
    from harness.sim.colour_response import effective_qe

    qe = effective_qe(m, "D65")["Y"]
    exposure = 9000.0 / (qe * model.photons_per_pixel(1e6, 1.0))  # ~9000 e-
    y = frames(model, 1, exposure_us=exposure)[0]
    e = (y.mean() - 64) / 0.42
    x = (9000.0 - 0.6 * 12000) / (0.4 * 12000)
    expected = 9000.0 - 0.06 * 12000 * x**2  # noise adds < 0.1 e- to the mean loss
    assert e == pytest.approx(expected + model.dark_current(25.0) * exposure * 1e-6, abs=3.0)


def test_same_seed_same_frames_and_roi_sees_the_same_pattern() -> None:
    model = SensorModel(load_module(MODULES / "sim-reference-small.yaml"))
    a = frames(model, 2, chart="edge", seed=7)
    b = frames(SensorModel(load_module(MODULES / "sim-reference-small.yaml")), 2, chart="edge", seed=7)
    c = frames(model, 2, chart="edge", seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    m = make_module({"sensor": {"read_noise_e": 0.0, "adc_noise_dn": 0.0}})
    quiet = SensorModel(m)
    full = frames(quiet, 1, chart="dark", exposure_us=10.0)[0]
    part = frames(quiet, 1, chart="dark", exposure_us=10.0, roi=Roi(64, 100, 128, 64))[0]
    # no temporal noise to speak of (0.05 e- dark shot): the fixed pattern must coincide
    assert np.mean(full[100:164, 64:192] == part) > 0.99


def test_column_defect_offsets_its_whole_column() -> None:
    m = make_module({"defects": {"listed": [{"class": "column", "col": 101, "value": 40.0}]},
                     "sensor": {"dsnu_e": {"pixel": 0.0, "row": 0.0, "column": 0.0}}})
    dark = frames(SensorModel(m), 4, chart="dark", exposure_us=100.0).mean(axis=0)
    columns = dark.mean(axis=0)
    assert columns[101] - np.median(columns) == pytest.approx(0.42 * 40.0, abs=0.1)
    others = np.delete(columns, 101)
    assert np.ptp(others) < 0.2  # 480 x 4 samples per column: SE 0.023 DN


@pytest.mark.parametrize("cfa", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_cfa_pattern_puts_each_colour_where_it_belongs(cfa: str) -> None:
    from harness.sim.colour_response import colour_truth
    from harness.sim.scene import cfa_index

    m = make_module({"sensor": {"cfa": cfa}}, base="sim-reference-small.yaml")
    index = cfa_index(m, slice(0, 2), slice(0, 2))
    assert index is not None
    assert "".join("RGB"[int(i)] for i in index.ravel()) == cfa
    # a flat white field: each site gets its own channel's response (relative to green)
    flat = frames(SensorModel(m), 2, exposure_us=2000.0).mean(axis=0) - 64.0
    wb = colour_truth(m, "D65").white_balance  # response_G / response_c
    green = np.mean([flat[i // 2::2, i % 2::2].mean() for i in range(4) if cfa[i] == "G"])
    for i, letter in enumerate(cfa):
        # RI and PRNU average out alike on every site; shot noise SE < 0.1 %
        ratio = flat[i // 2::2, i % 2::2].mean() / green
        assert ratio == pytest.approx(1.0 / wb["RGB".index(letter)], rel=0.003)


def test_a_forked_child_renders_with_its_own_pool() -> None:
    # the render pool's threads do not survive a fork: without a fresh pool the child hangs
    import multiprocessing as mp

    from harness.sim import sensor

    if sensor.RENDER_THREADS < 2:
        pytest.skip("one render thread: no pool to lose across a fork")
    first = _small_frame()  # the parent's pool exists now
    with mp.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_small_frame).get(timeout=60)
    assert np.array_equal(child, first)


def _small_frame() -> np.ndarray:
    module = load_module(Path(__file__).resolve().parents[1] / "fixtures/modules/sim-reference.yaml")
    roi = Roi(0, 0, 64, 600)
    out = np.empty((roi.height, roi.width), np.uint16)
    SensorModel(module).frame(layout("flat", module.sensor.width, module.sensor.height), "D65",
                              0.0, 1e6, Operating(5000.0, 0.0, 64.0, 30.0), roi,
                              np.random.default_rng(3), out)
    return out
