"""Repeatability and crossed gauge R&R (harness.analysis.grr) against published examples,
synthetic studies of known variance components, the pooling and clamping rules, one-sided
limits and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.grr import (
    AnovaRow,
    GaugeRR,
    capability_of,
    crossed_array,
    gauge_rr_long,
    measure_gauge_rr,
    measure_repeatability,
)
from harness.errors import ConfigError

# Cano, Moguerza & Redchuk, "Six Sigma with R" (Springer, 2012), chapter 5: the paper-helicopter
# gauge R&R, data set ss.data.rr of the R package SixSigma (column time1; 3 prototypes x
# 3 operators x 3 runs), in the row order of the package's data/ss.data.rr.rda.
SS_TIME1 = [1.27, 0.90, 1.09, 1.12, 1.09, 1.15, 1.73, 1.28, 1.77,
            1.34, 1.32, 1.27, 1.24, 1.00, 1.14, 1.64, 1.65, 1.77,
            1.09, 1.26, 1.09, 1.48, 1.15, 1.15, 1.64, 1.44, 1.68]
SS_PROTOTYPE = ["prot #1"] * 3 + ["prot #2"] * 3 + ["prot #3"] * 3
SS_PARTS = SS_PROTOTYPE * 3
SS_OPERATORS = ["op #1"] * 9 + ["op #2"] * 9 + ["op #3"] * 9

# Houf & Berman (1988), thermal impedance (degC/W x 100) of a power module: 10 parts x
# 3 operators x 3 tests; Montgomery, Introduction to Statistical Quality Control, gauge R&R
# example. One row per part: operator 1 tests 1-3, operator 2 tests 1-3, operator 3 tests 1-3.
HOUF = """37 38 37 41 41 40 41 42 41
42 41 43 42 42 42 43 42 43
30 31 31 31 31 31 29 30 28
42 43 42 43 43 43 42 42 42
28 30 29 29 30 29 31 29 29
42 42 43 45 45 45 44 46 45
25 26 27 28 28 30 29 27 27
40 40 40 43 42 42 43 43 41
25 25 25 27 29 28 26 26 26
35 34 34 35 35 34 35 34 35"""


def _row(rows: tuple[AnovaRow, ...], source: str) -> AnovaRow:
    (found,) = [r for r in rows if r.source == source]
    return found


def _published(x: float, digits: int) -> object:
    """``x`` as printed with ``digits`` decimals: equal within half a unit of the last digit
    (plus float noise)."""
    return pytest.approx(x, abs=0.5 * 10.0 ** -digits + 1e-12)


def test_six_sigma_with_r_helicopter_example() -> None:
    """Reproduces the published output of ``ss.rr(time1, prototype, operator, data =
    ss.data.rr, lsl = 0.7, usl = 1.8, alphaLim = 0.05, errorTerm = "interaction")``:
    Cano, Moguerza & Redchuk, *Six Sigma with R* (Springer, 2012), chapter 5, as printed in the
    example of the SixSigma package reference, https://github.com/emilopezcano/SixSigma
    docs/reference/ss.rr.html (SixSigma 0.11.0).

    Published and checked here: the complete ANOVA table (Df; Sum Sq and Mean Sq to 4
    decimals, F to 3, p to 5; main effects tested against the interaction, as AIAG appendix A
    and this module do); the interaction not significant (p 0.446), so pooled (at the
    package's alpha 0.05 and at AIAG's 0.25 alike); the reduced table (pooled error 22 df);
    VarComp to 10 decimals; StdDev to 8; %StudyVar and %Tolerance (6 sigma over USL - LSL =
    1.1) to 2; ndc 2. Tolerance of each comparison: half a unit of the last printed digit;
    p-values printed with 3 significant digits to half a unit of the third digit.
    """
    g = gauge_rr_long(SS_PARTS, SS_OPERATORS, SS_TIME1, low=0.7, high=1.8)
    assert (g.parts, g.appraisers, g.repeats) == (3, 3, 3)
    full = g.anova_full
    assert [r.df for r in full] == [2, 2, 4, 18, 26]
    assert [r.ss for r in full] == [_published(x, 4) for x in
                                    (1.2007, 0.0529, 0.0834, 0.3854, 1.7225)]
    assert [r.ms for r in full[:4]] == [_published(x, 4) for x in
                                        (0.6004, 0.0265, 0.0208, 0.0214)]
    assert [r.f for r in full[:3]] == [_published(x, 3) for x in (28.797, 1.270, 0.974)]
    assert [r.p for r in full[:3]] == [_published(x, 5) for x in (0.00422, 0.37415, 0.44619)]
    assert g.p_interaction == _published(0.44619, 5)
    assert g.interaction_pooled and g.var_interaction == 0.0
    reduced = g.anova
    assert [r.source for r in reduced] == ["part", "appraiser", "repeatability", "total"]
    assert [r.df for r in reduced] == [2, 2, 22, 26]
    assert reduced[2].ss == _published(0.4688, 4) and reduced[2].ms == _published(0.0213, 4)
    assert reduced[0].f == _published(28.174, 3) and reduced[1].f == _published(1.242, 3)
    assert reduced[0].p == pytest.approx(8.56e-07, abs=0.005e-07)
    assert reduced[1].p == _published(0.308, 3)
    assert g.var_grr == _published(0.0218822671, 10)
    assert g.var_repeatability == _published(0.0213087542, 10)
    assert g.var_reproducibility == _published(0.0005735129, 10)
    assert g.var_appraiser == _published(0.0005735129, 10)
    assert g.var_part == _published(0.0643389450, 10)
    assert g.var_total == _published(0.0862212121, 10)
    assert 100 * g.var_grr / g.var_total == _published(25.38, 2)  # %Contrib
    assert (g.sd_grr, g.sd_repeatability, g.sd_reproducibility, g.sd_part, g.sd_total) == (
        _published(0.14792656, 8), _published(0.14597518, 8), _published(0.02394813, 8),
        _published(0.25365123, 8), _published(0.29363449, 8))
    assert g.pct_grr_total == _published(50.38, 2)  # %StudyVar of the total Gage R&R
    assert g.pct_grr_tolerance == _published(80.69, 2)  # %Tolerance
    assert g.ndc == 2
    assert g.capability == "not capable" and g.reference == "tolerance"
    at_005 = gauge_rr_long(SS_PARTS, SS_OPERATORS, SS_TIME1, low=0.7, high=1.8, alpha=0.05)
    assert at_005.var_grr == g.var_grr and at_005.interaction_pooled


def test_houf_berman_thermal_impedance_anova() -> None:
    """The Houf & Berman (1988) thermal-impedance study (Montgomery, *Introduction to
    Statistical Quality Control*, gauge R&R example): the "GRR Analysis of Variance" table of
    SAS/STAT's PROC VARCOMP example "Using the GRR Method" (Example 94.2 of the SAS/STAT 9.22
    User's Guide; https://support.sas.com/documentation/cdl/en/statug/63033/HTML/default/
    statug_varcomp_sect021.htm), which prints for parts (a), operators (b) and their
    interaction: DF 9, 2, 18; sums of squares 3935.955556, 39.266667, 48.511111; mean squares
    437.328395, 19.633333, 2.695062. Tolerance: half a unit of the 6th decimal printed. The
    data are the same as Vidakovic, *Statistics for Bioengineering Sciences* (Springer, 2011),
    Example 11.14. The interaction is significant (F = MS_ab/MS_E = 5.27), so not pooled.
    """
    y = np.array([[float(v) for v in row.split()] for row in HOUF.splitlines()])
    g = measure_gauge_rr(y.reshape(10, 3, 3), low=18, high=58)
    rows = {r.source: r for r in g.anova}
    published = {"part": (9, 3935.955556, 437.328395), "appraiser": (2, 39.266667, 19.633333),
                 "part x appraiser": (18, 48.511111, 2.695062)}
    for source, (df, ss, ms) in published.items():
        assert rows[source].df == df
        assert rows[source].ss == _published(ss, 6)
        assert rows[source].ms == _published(ms, 6)
    assert not g.interaction_pooled and g.p_interaction < 0.001
    # the components follow from the published mean squares by the AIAG formulas
    ms_e = rows["repeatability"].ms
    assert ms_e is not None
    assert g.var_interaction == pytest.approx((2.695062 - ms_e) / 3, abs=1e-6)
    assert g.var_appraiser == pytest.approx((19.633333 - 2.695062) / 30, abs=1e-6)
    assert g.var_part == pytest.approx((437.328395 - 2.695062) / 9, abs=1e-6)


def _simulate(rng: np.random.Generator, p: int, a: int, r: int, sd: dict[str, float]
              ) -> np.ndarray:
    part = rng.normal(0, sd["part"], (p, 1, 1))
    appr = rng.normal(0, sd["appraiser"], (1, a, 1))
    inter = rng.normal(0, sd["interaction"], (p, a, 1))
    return 50.0 + part + appr + inter + rng.normal(0, sd["repeatability"], (p, a, r))


def test_synthetic_components_within_their_standard_errors() -> None:
    """A study simulated from known components (σ part 2, appraiser 0.5, interaction 0.3,
    repeatability 0.4; 60 parts x 25 appraisers x 4 repeats). Each ANOVA estimator is a linear
    combination of mean squares, each MS a scaled χ² with Var = 2·E[MS]²/df; its standard error
    follows from the true components alone (not from the code). Every estimate must be within
    4 standard errors of the truth (fixed seed; a 4-SE miss has probability < 1e-4). %GRR
    against the tolerance within 25 % of the true one: σ²_appraiser, half of σ²_GRR, has a
    relative standard error of about 30 % with 25 appraisers (measured here: +9.6 %)."""
    sd = {"part": 2.0, "appraiser": 0.5, "interaction": 0.3, "repeatability": 0.4}
    p, a, r = 60, 25, 4
    g = measure_gauge_rr(_simulate(np.random.default_rng(19), p, a, r, sd), low=40, high=60,
                         alpha=0.25)
    v = {k: s * s for k, s in sd.items()}
    e_ms_e = v["repeatability"]
    e_ms_pa = e_ms_e + r * v["interaction"]
    e_ms_a = e_ms_pa + p * r * v["appraiser"]
    e_ms_p = e_ms_pa + a * r * v["part"]
    df_p, df_a, df_pa, df_e = p - 1, a - 1, (p - 1) * (a - 1), p * a * (r - 1)

    def var_ms(e: float, df: int) -> float:
        return 2 * e * e / df

    se = {"repeatability": math.sqrt(var_ms(e_ms_e, df_e)),
          "interaction": math.sqrt(var_ms(e_ms_pa, df_pa) + var_ms(e_ms_e, df_e)) / r,
          "appraiser": math.sqrt(var_ms(e_ms_a, df_a) + var_ms(e_ms_pa, df_pa)) / (p * r),
          "part": math.sqrt(var_ms(e_ms_p, df_p) + var_ms(e_ms_pa, df_pa)) / (a * r)}
    got = {"repeatability": g.var_repeatability, "interaction": g.var_interaction,
           "appraiser": g.var_appraiser, "part": g.var_part}
    assert not g.interaction_pooled
    for k in got:
        assert abs(got[k] - v[k]) < 4 * se[k], (k, got[k], v[k], se[k])
    true_grr = math.sqrt(v["repeatability"] + v["interaction"] + v["appraiser"])
    assert g.pct_grr_tolerance == pytest.approx(100 * 6 * true_grr / 20, rel=0.25)


def test_pooling_rule() -> None:
    """No interaction in the model (σ_PA = 0): its F test is not significant at α = 0.25 for
    this seed, so it is pooled: the error becomes (SS_PA + SS_E)/(df_PA + df_E) of the full
    table and σ²_interaction = 0. A strong interaction is kept. α = 0 always pools, α = 1
    never does."""
    sd = {"part": 1.0, "appraiser": 0.2, "interaction": 0.0, "repeatability": 0.3}
    y = _simulate(np.random.default_rng(7), 10, 3, 3, sd)
    g = measure_gauge_rr(y, low=None, high=None)
    assert g.p_interaction > 0.25 and g.interaction_pooled and g.var_interaction == 0.0
    pa, e = _row(g.anova_full, "part x appraiser"), _row(g.anova_full, "repeatability")
    assert g.var_repeatability == pytest.approx((pa.ss + e.ss) / (pa.df + e.df), rel=1e-12)
    assert _row(g.anova, "repeatability").df == pa.df + e.df
    assert "part x appraiser" not in [r.source for r in g.anova]
    assert not measure_gauge_rr(y, low=None, high=None, alpha=1.0).interaction_pooled
    strong = _simulate(np.random.default_rng(8), 10, 3, 3, {**sd, "interaction": 1.0})
    kept = measure_gauge_rr(strong, low=None, high=None)
    assert kept.p_interaction < 0.01 and not kept.interaction_pooled
    assert kept.var_interaction > 0 and kept.anova == kept.anova_full
    assert measure_gauge_rr(strong, low=None, high=None, alpha=0.0).interaction_pooled
    # no limit: capability judged against the total variation
    assert g.pct_grr_tolerance is None and g.reference == "total variation"
    assert g.capability == capability_of(g.pct_grr_total)


def test_negative_components_are_clamped() -> None:
    """Appraisers with exactly equal means but a part-by-appraiser interaction: MS_A = 0 <
    MS_PA, so (MS_A − MS_PA)/(p·r) < 0 and is reported as 0 (and named)."""
    parts = np.array([10.0, 12.0, 14.0, 16.0])[:, None]
    inter = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])  # zero row/col sums
    cells = parts + inter
    y = np.stack([cells - 0.1, cells + 0.1], axis=2)  # 2 repeats
    g = measure_gauge_rr(y, low=0.0, high=30.0)
    assert _row(g.anova_full, "appraiser").ss == pytest.approx(0.0, abs=1e-12)
    assert g.var_appraiser == 0.0 and "appraiser" in g.clamped
    assert g.var_interaction == pytest.approx((4 * 4 / 3 - 0.02) / 2, rel=1e-9)
    assert g.var_grr == pytest.approx(g.var_repeatability + g.var_interaction)


def test_repeatability_two_sided_and_one_sided() -> None:
    """sd = 0.158114 (ddof 1) of five values around 10. Two-sided [9, 11]: %GRR =
    100·6·sd/2 = 47.43 %, ndc = floor(1.41·(2/6)/sd) = 2. One-sided min 9: tolerance =
    mean − 9 = 1, %GRR = 100·3·sd/1 = 47.43 %, ndc None; max 10.5 the same with 0.5."""
    values = [10.0, 10.2, 9.8, 10.1, 9.9]
    sd = math.sqrt(0.1 / 4)
    two = measure_repeatability(values, low=9.0, high=11.0)
    assert (two.n, two.sides, two.tolerance) == (5, "two-sided", 2.0)
    assert two.mean == pytest.approx(10.0) and two.sd == pytest.approx(sd)
    assert two.pct_grr == pytest.approx(100 * 6 * sd / 2)
    assert two.ndc == math.floor(1.41 * (2 / 6) / sd) == 2
    assert two.capability == "not capable"
    low = measure_repeatability(values, low=9.0, high=None)
    assert (low.sides, low.ndc) == ("min", None)
    assert low.tolerance == pytest.approx(1.0) and low.pct_grr == pytest.approx(300 * sd)
    high = measure_repeatability(values, low=None, high=10.5)
    assert high.sides == "max" and high.pct_grr == pytest.approx(300 * sd / 0.5)
    wide = measure_repeatability(values, low=7.0, high=13.0)  # 15.8 %
    assert wide.pct_grr == pytest.approx(100 * 6 * sd / 6) and wide.capability == "conditional"
    none = measure_repeatability(values, low=None, high=None)
    assert (none.sides, none.pct_grr, none.ndc, none.capability) == (
        "none", None, None, "undetermined")
    flat = measure_repeatability([5.0, 5.0, 5.0], low=4.0, high=6.0)
    assert flat.pct_grr == 0.0 and flat.capability == "acceptable" and math.isinf(flat.ndc or 0)


def test_one_sided_gauge_rr() -> None:
    """One limit: the tolerance is the distance from the grand mean to it and %GRR is
    100·3σ_GRR over it."""
    y = _simulate(np.random.default_rng(3), 10, 3, 3, {"part": 1.0, "appraiser": 0.2,
                                                       "interaction": 0.1,
                                                       "repeatability": 0.3})
    g = measure_gauge_rr(y, low=45.0, high=None)
    tolerance = float(y.mean()) - 45.0
    assert g.sides == "min" and g.tolerance == pytest.approx(tolerance)
    assert g.pct_grr_tolerance == pytest.approx(100 * 3 * g.sd_grr / tolerance)
    assert g.capability == capability_of(g.pct_grr_tolerance)
    assert isinstance(g, GaugeRR)


def test_capability_thresholds() -> None:
    """AIAG: < 10 % acceptable, 10 to 30 % conditional, > 30 % not capable."""
    assert [capability_of(x) for x in (0.0, 9.99, 10.0, 30.0, 30.01, math.inf)] == [
        "acceptable", "acceptable", "conditional", "conditional", "not capable",
        "not capable"]
    assert capability_of(None) == capability_of(math.nan) == "undetermined"


def test_long_form_and_its_balance_check() -> None:
    """Long form gives the same study as the array; a missing or extra observation names the
    cell."""
    arr, parts, ops = crossed_array(SS_PARTS, SS_OPERATORS, SS_TIME1)
    assert arr.shape == (3, 3, 3) and parts == ("prot #1", "prot #2", "prot #3")
    assert ops == ("op #1", "op #2", "op #3")
    assert arr[1, 2].tolist() == [1.48, 1.15, 1.15]
    with pytest.raises(ConfigError, match=r"prot #3.*op #3.*2 value"):
        gauge_rr_long(SS_PARTS[:-1], SS_OPERATORS[:-1], SS_TIME1[:-1], low=None, high=None)
    with pytest.raises(ConfigError, match="one part and one appraiser per value"):
        gauge_rr_long(SS_PARTS, SS_OPERATORS[:-1], SS_TIME1, low=None, high=None)
    with pytest.raises(ConfigError, match="no values"):
        gauge_rr_long([], [], [], low=None, high=None)


@pytest.mark.parametrize(("shape", "field"), [((1, 3, 3), "parts"), ((3, 1, 3), "appraisers"),
                                              ((3, 3, 1), "repeats")])
def test_too_small_studies(shape: tuple[int, int, int], field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}: .*at least 2") as info:
        measure_gauge_rr(np.ones(shape), low=None, high=None)
    assert "\n" not in str(info.value)


def test_bad_inputs() -> None:
    good = np.arange(12.0).reshape(2, 2, 3)
    nan = good.copy()
    nan[0, 1, 2] = math.nan
    with pytest.raises(ConfigError, match=r"data: 1 value\(s\) are NaN"):
        measure_gauge_rr(nan, low=None, high=None)
    with pytest.raises(ConfigError, match=r"data: shape \(2, 6\)"):
        measure_gauge_rr(good.reshape(2, 6), low=None, high=None)
    with pytest.raises(ConfigError, match=r"high: low 5.0 is not below high 5.0"):
        measure_gauge_rr(good, low=5.0, high=5.0)
    with pytest.raises(ConfigError, match="low: nan"):
        measure_gauge_rr(good, low=math.nan, high=None)
    with pytest.raises(ConfigError, match=r"alpha: 1.5"):
        measure_gauge_rr(good, low=None, high=None, alpha=1.5)
    with pytest.raises(ConfigError, match=r"values: 1 value.*at least 2 repeats"):
        measure_repeatability([1.0], low=0.0, high=2.0)
    with pytest.raises(ConfigError, match=r"values: 1 value.*NaN"):
        measure_repeatability([1.0, math.inf], low=0.0, high=2.0)
