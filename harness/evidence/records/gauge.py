"""Crossed gauge R&R from the runs already in the records database.

Per limit (and condition, and limit bounds) of one selection of runs: the parts are the DUT
serials, the appraisers the stations or the operators (``by``), and each run of a part by an
appraiser is one repeat. Only measured finite values of figures that were judged (PASS,
MARGINAL, FAIL) or recorded (INFO, e.g. a characterisation run) enter; an ERROR figure (no
value, or one flagged physically impossible) never does. A run without a DUT serial, or
without the appraiser's name, cannot be placed in the study and is left out.

A crossed study needs every part measured by every appraiser the same number of times:

* a part not measured by every appraiser is left out (and named in the study's notes);
* a cell with more runs than the smallest cell keeps its earliest runs (by start time), so
  every cell holds ``repeats`` = the smallest count (said in the notes);
* a run holding more than one value of the same figure (the same limit at the same condition)
  is ambiguous and left out.

A limit left with fewer than 2 parts, 2 appraisers or 2 repeats is reported as
``not enough data: ...`` instead of a study. The statistics are
:func:`harness.analysis.grr.measure_gauge_rr` (AIAG MSA 4th ed., chapter III B, ANOVA method).

Re-judged runs re-judge the same frames: they are no new measurement, so they are left out,
unless ``rejudged`` is asked for, and then the newest re-judging of a run stands in for it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from harness.analysis.grr import GaugeRR, measure_gauge_rr
from harness.errors import ConfigError
from harness.evidence.records.chain import canonical_json
from harness.evidence.records.filters import parse_until, run_filters
from harness.evidence.records.stats import _chunked, _sort_key
from harness.evidence.records.tables import T
from harness.measurement import Outcome

if TYPE_CHECKING:
    from harness.evidence.records.store import RecordStore

BY = ("station", "operator")
CHARACTERISATION = ("include", "only", "exclude")
MEASURED = (Outcome.PASS.value, Outcome.MARGINAL.value, Outcome.FAIL.value, Outcome.INFO.value)


@dataclass(frozen=True)
class GaugeStudy:
    """The gauge R&R of one figure (limit id, name, unit, condition, bounds) of a selection.

    ``result`` is None when there was not enough data; ``problem`` then says why
    (``not enough data: ...``). ``notes`` say what was left out or trimmed to balance the
    study. ``parts`` and ``appraisers`` are the labels that entered it.
    """

    product: str
    limit_id: str
    name: str
    unit: str
    condition: Mapping[str, Any]
    low: float | None
    high: float | None
    by: str
    parts: tuple[str, ...]
    appraisers: tuple[str, ...]
    repeats: int
    result: GaugeRR | None
    problem: str = ""
    notes: tuple[str, ...] = ()

    @property
    def pct_grr(self) -> float | None:
        """The %GRR the capability judges: against the tolerance if there is a limit, else
        against the total variation."""
        if self.result is None:
            return None
        r = self.result
        return r.pct_grr_tolerance if r.pct_grr_tolerance is not None else r.pct_grr_total

    @property
    def not_capable(self) -> bool:
        """%GRR over 30 %: the station (measurement system) is not capable of this limit."""
        return self.result is not None and self.result.capability == "not capable"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--json`` (non-finite floats are left for the caller to null)."""
        out: dict[str, Any] = {
            "product": self.product, "limit_id": self.limit_id, "name": self.name,
            "unit": self.unit, "condition": dict(self.condition), "low": self.low,
            "high": self.high, "by": self.by, "parts": list(self.parts),
            "appraisers": list(self.appraisers), "repeats": self.repeats,
            "problem": self.problem, "notes": list(self.notes),
            "not_capable": self.not_capable, "result": None}
        r = self.result
        if r is not None:
            out["result"] = {
                "parts": r.parts, "appraisers": r.appraisers, "repeats": r.repeats,
                "mean": r.mean, "tolerance": r.tolerance, "sides": r.sides,
                "var_repeatability": r.var_repeatability, "var_appraiser": r.var_appraiser,
                "var_interaction": r.var_interaction, "var_reproducibility":
                r.var_reproducibility, "var_part": r.var_part, "var_grr": r.var_grr,
                "var_total": r.var_total, "sd_repeatability": r.sd_repeatability,
                "sd_reproducibility": r.sd_reproducibility, "sd_part": r.sd_part,
                "sd_grr": r.sd_grr, "sd_total": r.sd_total,
                "interaction_pooled": r.interaction_pooled, "p_interaction": r.p_interaction,
                "alpha": r.alpha, "pct_grr_tolerance": r.pct_grr_tolerance,
                "pct_grr_total": r.pct_grr_total, "ndc": r.ndc, "ndc_exact": r.ndc_exact,
                "capability": r.capability, "reference": r.reference,
                "clamped": list(r.clamped),
                "anova": [{"source": a.source, "df": a.df, "ss": a.ss, "ms": a.ms, "f": a.f,
                           "p": a.p} for a in r.anova]}
        return out


@dataclass(frozen=True)
class _Run:
    pk: int
    part: str
    appraiser: str
    started: str


def _runs(conn: Connection, where: list[Any], by: str, rejudged: bool
          ) -> tuple[dict[int, _Run], list[str]]:
    """The selected runs that stand for a measurement, by primary key, and notes on those
    left out."""
    runs = T["runs"]
    rows = conn.execute(select(runs.c.id, runs.c.run_id, runs.c.dut_serial, runs.c.station,
                               runs.c.operator, runs.c.started, runs.c.rejudged_from)
                        .where(*where).order_by(runs.c.id)).all()
    chosen: dict[str, _Run] = {}
    no_serial = no_appraiser = 0
    for pk, run_id, serial, station, operator, started, source in rows:
        appraiser = station if by == "station" else operator
        if source:
            if rejudged and source in chosen:  # the newest re-judging stands in for its run
                was = chosen[source]
                chosen[source] = _Run(int(pk), was.part, was.appraiser, was.started)
            continue
        if not serial:
            no_serial += 1
            continue
        if not appraiser:
            no_appraiser += 1
            continue
        chosen[run_id] = _Run(int(pk), serial, appraiser, started)
    notes = []
    if no_serial:
        notes.append(f"{no_serial} run(s) without a DUT serial left out")
    if no_appraiser:
        notes.append(f"{no_appraiser} run(s) without a{'n' if by == 'operator' else ''} "
                     f"{by} left out")
    return {r.pk: r for r in chosen.values()}, notes


def gauge_studies(conn: Connection, where: list[Any], *, by: str = "station",
                  limit_id: str | None = None, rejudged: bool = False,
                  alpha: float = 0.25) -> list[GaugeStudy]:
    """One :class:`GaugeStudy` per product, figure (limit id, name, unit, condition) and
    limit bounds over the runs selected by ``where`` (see the module docstring)."""
    if by not in BY:
        raise ConfigError(f"{by!r}; allowed: {', '.join(BY)}", field="--by")
    selected, run_notes = _runs(conn, where, by, rejudged)
    products = dict(conn.execute(select(T["runs"].c.id, T["runs"].c.product)
                                 .where(*where)).all())
    m = T["measurements"]
    query = (select(m.c.run_pk, m.c.limit_id, m.c.name, m.c.unit, m.c.condition, m.c.low,
                    m.c.high, m.c.value)
             .where(m.c.limit_id != "", m.c.outcome.in_(MEASURED), m.c.value.is_not(None)))
    if limit_id:
        query = query.where(m.c.limit_id == limit_id)
    # group -> run pk -> values
    groups: dict[tuple[Any, ...], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    conditions: dict[str, Mapping[str, Any]] = {}
    for pk, lid, name, unit, condition, low, high, value in _chunked(
            conn, query, m.c.run_pk, sorted(selected)):
        if value is None or not math.isfinite(float(value)):
            continue
        key = canonical_json(dict(condition or {}))
        conditions[key] = dict(condition or {})
        group = (products[pk], lid, name, unit, key, low, high)
        groups[group][int(pk)].append(float(value))
    studies = []
    for group in sorted(groups, key=_sort_key):
        product, lid, name, unit, key, low, high = group
        studies.append(_study(product, lid, name, unit, conditions[key], low, high, by,
                              groups[group], selected, run_notes, alpha))
    return studies


def _study(product: str, limit_id: str, name: str, unit: str, condition: Mapping[str, Any],
           low: float | None, high: float | None, by: str, by_run: dict[int, list[float]],
           selected: dict[int, _Run], run_notes: list[str], alpha: float) -> GaugeStudy:
    notes = list(run_notes)
    cells: dict[tuple[str, str], list[tuple[str, int, float]]] = defaultdict(list)
    ambiguous = 0
    for pk, values in by_run.items():
        if len(values) != 1:
            ambiguous += 1
            continue
        run = selected[pk]
        cells[(run.part, run.appraiser)].append((run.started, pk, values[0]))
    if ambiguous:
        notes.append(f"{ambiguous} run(s) holding more than one value of this figure left out")
    appraisers = tuple(sorted({a for _, a in cells}))
    all_parts = sorted({p for p, _ in cells})
    parts = tuple(p for p in all_parts if all((p, a) in cells for a in appraisers))
    dropped = [p for p in all_parts if p not in parts]
    if dropped:
        notes.append(f"part(s) not measured on every {by} left out: {', '.join(dropped)}")
    counts = [len(cells[(p, a)]) for p in parts for a in appraisers]
    repeats = min(counts) if counts else 0
    if counts and max(counts) > repeats:
        notes.append(f"unequal repeats per cell ({min(counts)} to {max(counts)}): each cell "
                     f"keeps its earliest {repeats} run(s)")

    def study(result: GaugeRR | None, problem: str = "") -> GaugeStudy:
        return GaugeStudy(product, limit_id, name, unit, condition, low, high, by, parts,
                          appraisers, repeats, result, problem, tuple(notes))

    short = [f"{n} {what}" for n, what in ((len(parts), "part(s)"),
                                          (len(appraisers), f"{by}(s)"),
                                          (repeats, "repeat(s)")) if n < 2]
    if short:
        problem = (f"not enough data: {', '.join(short)}; a crossed study needs at least "
                   f"2 parts x 2 {by}s x 2 repeats")
        return study(None, problem)
    data = [[[v for _, _, v in sorted(cells[(p, a)])[:repeats]] for a in appraisers]
            for p in parts]
    return study(measure_gauge_rr(data, low=low, high=high, alpha=alpha))


def gauge_rr(store: RecordStore, *, product: str, since: str | None = None,
             until: str | None = None, station: str | None = None, by: str = "station",
             limit_id: str | None = None, rejudged: bool = False,
             characterisation: str = "include", alpha: float = 0.25) -> list[GaugeStudy]:
    """Gauge R&R per figure of ``product``'s runs in the selection (see the module docstring).
    ``characterisation``: ``include`` characterisation runs with the qualification runs,
    ``only`` them, or ``exclude`` them. ConfigError when no run of the product is selected."""
    if characterisation not in CHARACTERISATION:
        raise ConfigError(f"{characterisation!r}; allowed: {', '.join(CHARACTERISATION)}",
                          field="--characterisation")
    if by not in BY:
        raise ConfigError(f"{by!r}; allowed: {', '.join(BY)}", field="--by")
    runs = T["runs"]
    where = run_filters(product, station, since)
    if until:
        where.append(runs.c.started < parse_until(until))
    if characterisation == "only":
        where.append(runs.c.characterisation.is_(True))
    elif characterisation == "exclude":
        where.append(runs.c.characterisation.is_(False))
    with store.reading() as conn:
        if conn.execute(select(runs.c.id).where(*where).limit(1)).first() is None:
            known = sorted(p for (p,) in conn.execute(select(runs.c.product).distinct()))
            shown = ", ".join(repr(p) for p in known[:20]) or "none"
            raise ConfigError(f"no runs of product {product!r} in this selection; products "
                              f"in the records: {shown}", field="--product")
        return gauge_studies(conn, where, by=by, limit_id=limit_id, rejudged=rejudged,
                             alpha=alpha)


__all__ = ["BY", "CHARACTERISATION", "GaugeStudy", "gauge_rr", "gauge_studies"]
