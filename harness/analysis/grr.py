"""Measurement system analysis: repeatability of one DUT and crossed gauge R&R (ANOVA method).

* :func:`measure_repeatability`: one DUT measured ``n`` times on one station (a type-1-like
  study). The repeatability is the sample standard deviation of the repeats; %GRR compares
  its 6σ spread with the tolerance (two-sided) or 3σ with the distance from the mean to the
  one limit (one-sided).
* :func:`measure_gauge_rr`: several parts, each measured ``r`` times by each of several
  appraisers (stations or operators). AIAG *Measurement Systems Analysis*, 4th edition (2010),
  chapter III section B, ANOVA method, and its appendix A: a two-way crossed random-effects
  ANOVA with interaction, the variance components from the expected mean squares, the
  interaction pooled into the error when it is not significant.

Acceptance (AIAG MSA 4th ed., its guidelines for %GRR): under 10 % acceptable, 10 to 30 %
conditionally acceptable, over 30 % not acceptable; the number of distinct categories
ndc = 1.41·σ_part/σ_GRR truncated to an integer (AIAG MSA 4th ed., chapter III section B),
at least 5 wanted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError

ACCEPTABLE_PCT = 10.0
NOT_CAPABLE_PCT = 30.0
NDC_FACTOR = 1.41
"""√2 rounded as AIAG prints it: ndc = 1.41·PV/GRR (AIAG MSA 4th ed., chapter III B)."""
DEFAULT_ALPHA = 0.25
"""Interaction pooled when its p-value exceeds this (AIAG MSA 4th ed., appendix A)."""


def capability_of(pct_grr: float | None) -> str:
    """AIAG's verdict on a %GRR: ``acceptable`` (< 10 %), ``conditional`` (10 to 30 %),
    ``not capable`` (> 30 %), ``undetermined`` when there is no %GRR."""
    if pct_grr is None or math.isnan(pct_grr):
        return "undetermined"
    if pct_grr < ACCEPTABLE_PCT:
        return "acceptable"
    if pct_grr <= NOT_CAPABLE_PCT:
        return "conditional"
    return "not capable"


def _sides(low: float | None, high: float | None) -> str:
    for name, bound in (("low", low), ("high", high)):
        if bound is not None and not math.isfinite(bound):
            raise ConfigError(f"{bound!r}: a limit must be a finite number or None", field=name)
    if low is not None and high is not None:
        if not low < high:
            raise ConfigError(f"low {low} is not below high {high}", field="high")
        return "two-sided"
    if low is not None:
        return "min"
    if high is not None:
        return "max"
    return "none"


def _tolerance(sides: str, low: float | None, high: float | None, mean: float) -> float | None:
    """high − low for a two-sided limit; |limit − mean| for a one-sided one (the room the
    process has on its one side, as a one-sided Cpk counts it)."""
    if sides == "two-sided":
        assert low is not None and high is not None
        return high - low
    if sides == "min":
        assert low is not None
        return abs(mean - low)
    if sides == "max":
        assert high is not None
        return abs(high - mean)
    return None


def _pct_of_tolerance(sigma: float, tolerance: float | None, sides: str) -> float | None:
    """100·6σ/(USL − LSL), or 100·3σ/|limit − mean| for one side (AIAG MSA 4th ed.,
    chapter III B, %GRR against the tolerance; one side: half the spread against half)."""
    if tolerance is None:
        return None
    spread = (6.0 if sides == "two-sided" else 3.0) * sigma
    if tolerance <= 0:
        return math.inf if spread > 0 else math.nan
    return 100.0 * spread / tolerance


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _finite(values: np.ndarray, field: str) -> None:
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ConfigError(f"{bad} value(s) are NaN or infinite; allowed: finite numbers only",
                          field=field)


@dataclass(frozen=True)
class Repeatability:
    """One DUT measured ``n`` times on one station.

    ``sd`` is the sample standard deviation (ddof = 1) of the repeats: the repeatability
    (equipment variation, AIAG MSA 4th ed., chapter III B). ``tolerance`` is high − low for a
    two-sided limit and |limit − mean| for a one-sided one (``sides`` "min" or "max");
    ``pct_grr`` is 100·6·sd/(high − low), or 100·3·sd/|limit − mean| one-sided.

    There is no part-to-part variation in a one-DUT study, so ndc is taken against the
    tolerance instead: ndc = 1.41·(tolerance/6)/sd truncated to an integer, i.e. AIAG's
    1.41·PV/GRR with the process standard deviation replaced by the one a process just filling
    the tolerance (±3σ) would have. It is given for a two-sided limit only (None one-sided).
    ``capability`` follows %GRR (:func:`capability_of`).
    """

    n: int
    mean: float
    sd: float
    tolerance: float | None
    sides: str
    pct_grr: float | None
    ndc: float | None
    capability: str
    low: float | None = None
    high: float | None = None


def measure_repeatability(values: Sequence[float] | np.ndarray, *, low: float | None,
                          high: float | None) -> Repeatability:
    """Repeatability of one DUT from its ``values`` (at least 2, finite) against the limits
    ``low`` / ``high`` (either may be None); see :class:`Repeatability`."""
    y = np.asarray(values, dtype=float).ravel()
    if y.size < 2:
        raise ConfigError(f"{y.size} value(s): a repeatability needs at least 2 repeats",
                          field="values")
    _finite(y, "values")
    sides = _sides(low, high)
    mean = float(np.mean(y))
    sd = float(np.std(y, ddof=1))
    tolerance = _tolerance(sides, low, high, mean)
    pct = _pct_of_tolerance(sd, tolerance, sides)
    ndc: float | None = None
    if sides == "two-sided" and tolerance is not None:
        ndc = _floor(NDC_FACTOR * _ratio(tolerance / 6.0, sd))
    return Repeatability(int(y.size), mean, sd, tolerance, sides, pct, ndc,
                         capability_of(pct), low, high)


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


@dataclass(frozen=True)
class AnovaRow:
    """One row of an ANOVA table; ``ms``, ``f`` and ``p`` are None where they do not exist
    (the total row; F and p of the error row)."""

    source: str
    df: int
    ss: float
    ms: float | None
    f: float | None
    p: float | None


@dataclass(frozen=True)
class GaugeRR:
    """A crossed gauge R&R study: ``parts`` × ``appraisers`` × ``repeats``.

    Variance components (AIAG MSA 4th ed., chapter III B, ANOVA method; expected mean squares
    of the two-way random model, Montgomery, *Introduction to Statistical Quality Control*,
    section on gauge R&R):

    * σ²_repeatability = MS_E
    * σ²_interaction = (MS_PA − MS_E)/r
    * σ²_appraiser = (MS_A − MS_PA)/(p·r)
    * σ²_part = (MS_P − MS_PA)/(a·r)

    each set to 0 when negative (named in ``clamped``). When the interaction is not
    significant (``p_interaction`` > ``alpha``) it is pooled into the error: MS_E becomes
    (SS_PA + SS_E)/(df_PA + df_E), σ²_interaction = 0 and MS_E takes MS_PA's place in the
    other two formulas (``interaction_pooled``).

    σ²_GRR = σ²_repeatability + σ²_appraiser + σ²_interaction (reproducibility is
    σ²_appraiser + σ²_interaction); σ²_total = σ²_GRR + σ²_part. %GRR against the tolerance is
    100·6σ_GRR/(USL − LSL), one-sided 100·3σ_GRR/|limit − grand mean|; against the total
    variation 100·σ_GRR/σ_total. ``capability`` judges the tolerance figure when there is a
    limit, else the total-variation one (``reference`` says which). ``ndc`` is
    1.41·σ_part/σ_GRR truncated (``ndc_exact`` before truncation).

    ``anova`` is the table the components come from (the reduced one, error pooled, when the
    interaction was pooled); ``anova_full`` always the model with interaction. In the model
    with interaction the main effects are tested against MS_PA and the interaction against
    MS_E (AIAG MSA 4th ed., appendix A); in the reduced model against the pooled error.
    """

    parts: int
    appraisers: int
    repeats: int
    var_repeatability: float
    var_appraiser: float
    var_interaction: float
    var_part: float
    var_grr: float
    var_total: float
    interaction_pooled: bool
    p_interaction: float
    pct_grr_tolerance: float | None
    pct_grr_total: float
    ndc: float
    capability: str
    anova: tuple[AnovaRow, ...]
    anova_full: tuple[AnovaRow, ...] = ()
    mean: float = math.nan
    tolerance: float | None = None
    sides: str = "none"
    low: float | None = None
    high: float | None = None
    alpha: float = DEFAULT_ALPHA
    ndc_exact: float = math.nan
    reference: str = "total variation"
    clamped: tuple[str, ...] = ()

    @property
    def var_reproducibility(self) -> float:
        return self.var_appraiser + self.var_interaction

    @property
    def sd_repeatability(self) -> float:
        return math.sqrt(self.var_repeatability)

    @property
    def sd_reproducibility(self) -> float:
        return math.sqrt(self.var_reproducibility)

    @property
    def sd_part(self) -> float:
        return math.sqrt(self.var_part)

    @property
    def sd_grr(self) -> float:
        return math.sqrt(self.var_grr)

    @property
    def sd_total(self) -> float:
        return math.sqrt(self.var_total)


def _f_sf(f: float, dfn: int, dfd: int) -> float:
    """P(F > f) for an F(dfn, dfd) variable."""
    if math.isnan(f):
        return math.nan
    if math.isinf(f):
        return 0.0
    from scipy.special import fdtrc  # heavy: loaded only when a study is computed

    return float(fdtrc(dfn, dfd, f))


def _test(ms: float, ms_den: float, dfn: int, dfd: int) -> tuple[float, float]:
    f = _ratio(ms, ms_den)
    return f, _f_sf(f, dfn, dfd)


def measure_gauge_rr(data: np.ndarray | Sequence[Sequence[Sequence[float]]], *,
                     low: float | None, high: float | None,
                     alpha: float = DEFAULT_ALPHA) -> GaugeRR:
    """Crossed gauge R&R of ``data`` shaped (parts, appraisers, repeats), each at least 2, all
    finite, against the limits ``low`` / ``high`` (either may be None); see :class:`GaugeRR`.
    ``alpha``: the interaction is pooled when its p-value exceeds it (AIAG: 0.25)."""
    y = np.asarray(data, dtype=float)
    if y.ndim != 3:
        raise ConfigError(f"shape {y.shape}: expected (parts, appraisers, repeats)",
                          field="data")
    for axis, name in enumerate(("parts", "appraisers", "repeats")):
        if y.shape[axis] < 2:
            raise ConfigError(f"{y.shape[axis]}: a crossed study needs at least 2 {name}",
                              field=name)
    _finite(y, "data")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"{alpha}: allowed 0 to 1", field="alpha")
    sides = _sides(low, high)
    p, a, r = (int(n) for n in y.shape)
    grand = float(y.mean())
    part_means = y.mean(axis=(1, 2))
    appr_means = y.mean(axis=(0, 2))
    cell_means = y.mean(axis=2)
    ss_p = float(a * r * np.sum((part_means - grand) ** 2))
    ss_a = float(p * r * np.sum((appr_means - grand) ** 2))
    ss_pa = float(r * np.sum((cell_means - part_means[:, None] - appr_means[None, :]
                              + grand) ** 2))
    ss_e = float(np.sum((y - cell_means[:, :, None]) ** 2))
    ss_t = float(np.sum((y - grand) ** 2))
    df_p, df_a, df_pa, df_e = p - 1, a - 1, (p - 1) * (a - 1), p * a * (r - 1)
    ms_p, ms_a, ms_pa, ms_e = ss_p / df_p, ss_a / df_a, ss_pa / df_pa, ss_e / df_e

    f_p, p_p = _test(ms_p, ms_pa, df_p, df_pa)
    f_a, p_a = _test(ms_a, ms_pa, df_a, df_pa)
    f_pa, p_pa = _test(ms_pa, ms_e, df_pa, df_e)
    full = (AnovaRow("part", df_p, ss_p, ms_p, f_p, p_p),
            AnovaRow("appraiser", df_a, ss_a, ms_a, f_a, p_a),
            AnovaRow("part x appraiser", df_pa, ss_pa, ms_pa, f_pa, p_pa),
            AnovaRow("repeatability", df_e, ss_e, ms_e, None, None),
            AnovaRow("total", p * a * r - 1, ss_t, None, None, None))

    pooled = math.isnan(p_pa) or p_pa > alpha
    raw: dict[str, float]
    table: tuple[AnovaRow, ...]
    if pooled:
        df_pool = df_pa + df_e
        ms_pool = (ss_pa + ss_e) / df_pool
        fr_p, pr_p = _test(ms_p, ms_pool, df_p, df_pool)
        fr_a, pr_a = _test(ms_a, ms_pool, df_a, df_pool)
        table = (AnovaRow("part", df_p, ss_p, ms_p, fr_p, pr_p),
                 AnovaRow("appraiser", df_a, ss_a, ms_a, fr_a, pr_a),
                 AnovaRow("repeatability", df_pool, ss_pa + ss_e, ms_pool, None, None),
                 AnovaRow("total", p * a * r - 1, ss_t, None, None, None))
        raw = {"repeatability": ms_pool, "interaction": 0.0,
               "appraiser": (ms_a - ms_pool) / (p * r), "part": (ms_p - ms_pool) / (a * r)}
    else:
        table = full
        raw = {"repeatability": ms_e, "interaction": (ms_pa - ms_e) / r,
               "appraiser": (ms_a - ms_pa) / (p * r), "part": (ms_p - ms_pa) / (a * r)}
    clamped = tuple(k for k, v in raw.items() if v < 0)
    var = {k: max(v, 0.0) for k, v in raw.items()}
    var_grr = var["repeatability"] + var["appraiser"] + var["interaction"]
    var_total = var_grr + var["part"]
    sd_grr = math.sqrt(var_grr)
    tolerance = _tolerance(sides, low, high, grand)
    pct_tol = _pct_of_tolerance(sd_grr, tolerance, sides)
    pct_total = 100.0 * _ratio(sd_grr, math.sqrt(var_total))
    ndc_exact = NDC_FACTOR * _ratio(math.sqrt(var["part"]), sd_grr)
    reference = "tolerance" if pct_tol is not None else "total variation"
    judged = pct_tol if pct_tol is not None else pct_total
    return GaugeRR(p, a, r, var["repeatability"], var["appraiser"], var["interaction"],
                   var["part"], var_grr, var_total, pooled, p_pa, pct_tol, pct_total,
                   _floor(ndc_exact), capability_of(judged), table, full, grand, tolerance,
                   sides, low, high, alpha, ndc_exact, reference, clamped)


def crossed_array(parts: Sequence[str], appraisers: Sequence[str],
                  values: Sequence[float] | np.ndarray
                  ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Long-form observations as a (parts, appraisers, repeats) array, the repeats of a cell
    in the order given, with the part and appraiser labels in order of first appearance.
    ConfigError naming the first cell whose count differs (a study must be balanced)."""
    y = np.asarray(values, dtype=float).ravel()
    if not len(parts) == len(appraisers) == y.size:
        raise ConfigError(f"{len(parts)} parts, {len(appraisers)} appraisers, {y.size} values: "
                          "one part and one appraiser per value", field="values")
    if y.size == 0:
        raise ConfigError("no values: a crossed study needs at least 2 parts x 2 appraisers x "
                          "2 repeats", field="values")
    part_ids = tuple(dict.fromkeys(parts))
    appr_ids = tuple(dict.fromkeys(appraisers))
    cells: dict[tuple[str, str], list[float]] = {(pp, aa): [] for pp in part_ids
                                                 for aa in appr_ids}
    for pp, aa, v in zip(parts, appraisers, y.tolist(), strict=True):
        cells[(pp, aa)].append(v)
    counts = {k: len(v) for k, v in cells.items()}
    most = max(counts.values(), key=list(counts.values()).count)
    for (pp, aa), n in counts.items():
        if n != most:
            raise ConfigError(f"unbalanced: cell part {pp!r} x appraiser {aa!r} has {n} "
                              f"value(s), the others {most}; allowed: the same number of "
                              "repeats in every cell", field="values")
    arr = np.array([[cells[(pp, aa)] for aa in appr_ids] for pp in part_ids], dtype=float)
    return arr, part_ids, appr_ids


def gauge_rr_long(parts: Sequence[str], appraisers: Sequence[str],
                  values: Sequence[float] | np.ndarray, *, low: float | None,
                  high: float | None, alpha: float = DEFAULT_ALPHA) -> GaugeRR:
    """:func:`measure_gauge_rr` of long-form observations (one part label, one appraiser label
    and one value per observation); the study must be balanced (:func:`crossed_array`)."""
    arr, _, _ = crossed_array(parts, appraisers, values)
    return measure_gauge_rr(arr, low=low, high=high, alpha=alpha)


__all__ = ["ACCEPTABLE_PCT", "DEFAULT_ALPHA", "NDC_FACTOR", "NOT_CAPABLE_PCT", "AnovaRow",
           "GaugeRR", "Repeatability", "capability_of", "crossed_array", "gauge_rr_long",
           "measure_gauge_rr", "measure_repeatability"]
