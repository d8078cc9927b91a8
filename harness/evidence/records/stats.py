"""Statistics over stored runs, per unit: yield per product and station, failing units per
limit, Cpk per limit and condition; and the run trend per station and day.

Yield and Cpk count units, not rows (:mod:`.units`): each attempt of a unit is one run, a
re-judged run is left out unless asked for. A unit passes an attempt whose run is PASS or
MARGINAL; an INCOMPLETE, FAIL, ERROR or ABORTED run is a unit tested but not passing. INFO
figures (no limit) never enter yield or Cpk, nor do figures that were not judged (ERROR: no
value, or a value flagged as physically impossible).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, case, func, select

from harness.evidence.records.chain import canonical_json
from harness.evidence.records.tables import T
from harness.evidence.records.units import Pick, UnitRun, pick, unit_runs
from harness.measurement import Outcome

JUDGED = (Outcome.PASS.value, Outcome.MARGINAL.value, Outcome.FAIL.value)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class StationYield:
    """Units of one product tested on one station (``station`` None: on any station).

    ``first_pass`` counts units whose first attempt there passed, ``final_pass`` units whose
    latest attempt there passed. On a station, "first" is the unit's first attempt on that
    station within the selection; over all stations it is the unit's first attempt in the
    selection (its attempt 1 unless ``--since`` starts after it).
    """

    product: str
    station: str | None
    units: int
    first_pass: int
    final_pass: int

    @property
    def first_pass_yield(self) -> float | None:
        return _share(self.first_pass, self.units)

    @property
    def final_yield(self) -> float | None:
        return _share(self.final_pass, self.units)


@dataclass(frozen=True)
class LimitYield:
    """The units of one product that failed one limit (at any of its conditions), at their
    first and at their latest attempt, out of the units whose attempt judged it."""

    product: str
    limit_id: str
    name: str
    unit: str
    judged_first: int
    judged_latest: int
    failing_first: tuple[str, ...]
    failing_latest: tuple[str, ...]


@dataclass(frozen=True)
class YieldReport:
    stations: tuple[StationYield, ...]
    limits: tuple[LimitYield, ...]


@dataclass(frozen=True)
class CpkRow:
    """Process capability of one limit at one condition under one limit version, one value per
    unit (ISO 22514-2; AIAG SPC manual).

    ``Cp = (USL − LSL) / 6σ`` and ``Cpk = min(USL − μ, μ − LSL) / 3σ`` with μ and σ the mean and
    sample standard deviation (ddof = 1) of the units' values (each unit's latest, or first,
    attempt that judged it), so strictly the overall-σ index Ppk; with one limit only the
    one-sided index is given, with fewer than two values or no spread none. ``duplicates``
    counts units left out because that attempt holds more than one judged value of it.
    """

    product: str
    limit_id: str
    name: str
    unit: str
    condition: Mapping[str, Any]
    limits_hash: str
    low: float | None
    high: float | None
    n: int
    mean: float | None
    std: float | None
    cp: float | None
    cpk: float | None
    duplicates: int = 0
    attempt: str = Pick.LATEST.value


def cpk_of(values: np.ndarray, low: float | None, high: float | None
           ) -> tuple[float | None, float | None, float | None, float | None]:
    """``(mean, std, Cp, Cpk)`` of ``values`` against ``[low, high]`` (see :class:`CpkRow`);
    ``None`` where a figure does not exist (no values, one value, no spread)."""
    if values.size == 0:
        return None, None, None, None
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, None, None, None
    std = float(np.std(values, ddof=1))
    if not (std > 0 and math.isfinite(std)):
        return mean, std, None, None
    cp = (high - low) / (6 * std) if low is not None and high is not None else None
    sides = [s for s in ((high - mean) if high is not None else None,
                         (mean - low) if low is not None else None) if s is not None]
    return mean, std, cp, (min(sides) / (3 * std) if sides else None)


def _by_unit(attempts: Iterable[UnitRun], per: str) -> dict[tuple[Any, ...], list[UnitRun]]:
    groups: dict[tuple[Any, ...], list[UnitRun]] = defaultdict(list)
    for run in attempts:
        groups[(run.product, run.station if per == "station" else None, run.unit)].append(run)
    return groups


def unit_yield(conn: Connection, where: list[Any], *, rejudged: bool = False) -> YieldReport:
    """Units tested, first-pass and final yield per product and station (and over all
    stations), and per limit the units failing it (see :class:`StationYield`)."""
    attempts = unit_runs(conn, where, rejudged=rejudged)
    counts: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    for per in ("station", "all"):
        for (product, station, _unit), runs in _by_unit(attempts, per).items():
            c = counts[(product, station)]
            c[0] += 1
            c[1] += pick(runs, Pick.FIRST).passed
            c[2] += pick(runs, Pick.LATEST).passed
    stations = tuple(StationYield(p, s, *c) for (p, s), c in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or "")))
    return YieldReport(stations, _limit_yield(conn, attempts))


def _limit_yield(conn: Connection, attempts: list[UnitRun]) -> tuple[LimitYield, ...]:
    units = _by_unit(attempts, "all")
    first = {pick(r, Pick.FIRST).pk: r[0] for r in units.values()}
    latest = {pick(r, Pick.LATEST).pk: r[0] for r in units.values()}
    m = T["measurements"]
    # (product, limit_id) -> names, units; and per pick the unit labels judged / failing
    names: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    judged: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    failing: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for pk, limit_id, name, unit, outcome in _chunked(conn, select(
            m.c.run_pk, m.c.limit_id, m.c.name, m.c.unit, m.c.outcome)
            .where(m.c.limit_id != "", m.c.outcome.in_(JUDGED)), m.c.run_pk,
            sorted({*first, *latest})):
        for which, runs in (("first", first), ("latest", latest)):
            run = runs.get(pk)
            if run is None:
                continue
            names[(run.product, limit_id)].add((name, unit))
            judged[(run.product, limit_id, which)].add(run.label)
            if outcome == Outcome.FAIL.value:
                failing[(run.product, limit_id, which)].add(run.label)
    rows = []
    for product, limit_id in sorted(names):
        found = sorted(names[(product, limit_id)])
        rows.append(LimitYield(
            product, limit_id, ", ".join(sorted({n for n, _ in found})),
            ", ".join(sorted({u for _, u in found})),
            len(judged[(product, limit_id, "first")]),
            len(judged[(product, limit_id, "latest")]),
            tuple(sorted(failing[(product, limit_id, "first")])),
            tuple(sorted(failing[(product, limit_id, "latest")]))))
    return tuple(rows)


def _chunked(conn: Connection, query: Any, column: Any, keys: list[int],
             size: int = 500) -> Iterable[Any]:
    """``query`` restricted to ``column IN keys``, a chunk of keys at a time."""
    for i in range(0, len(keys), size):
        yield from conn.execute(query.where(column.in_(keys[i:i + size])))


def cpk(conn: Connection, where: list[Any], *, name: str | None = None,
        limit_id: str | None = None, attempt: Pick = Pick.LATEST,
        rejudged: bool = False) -> list[CpkRow]:
    """Cpk per product, limit, condition and limit version, one value per unit (its latest or
    first attempt that judged the limit at that condition); see :class:`CpkRow`."""
    attempts = {r.pk: r for r in unit_runs(conn, where, rejudged=rejudged)}
    m = T["measurements"]
    query = (select(m.c.run_pk, m.c.limit_id, m.c.name, m.c.unit, m.c.condition, m.c.low,
                    m.c.high, m.c.value)
             .where(m.c.limit_id != "", m.c.outcome.in_(JUDGED), m.c.value.is_not(None)))
    if name:
        query = query.where(m.c.name == name)
    if limit_id:
        query = query.where(m.c.limit_id == limit_id)
    # group -> unit -> attempt run -> values
    groups: dict[tuple[Any, ...], dict[tuple[str, str], dict[UnitRun, list[float]]]] = \
        defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    conditions: dict[str, Mapping[str, Any]] = {}
    for pk, limit_id_, name_, unit, condition, low, high, value in _chunked(
            conn, query, m.c.run_pk, sorted(attempts)):
        run = attempts[pk]
        key = canonical_json(dict(condition or {}))
        conditions[key] = dict(condition or {})
        group = (run.product, limit_id_, name_, unit, key, run.limits_hash, low, high)
        groups[group][run.unit][run].append(float(value))
    rows = []
    for group in sorted(groups, key=_sort_key):
        values: list[float] = []
        duplicates = 0
        for by_attempt in groups[group].values():
            chosen = by_attempt[pick(list(by_attempt), attempt)]
            if len(chosen) == 1:
                values.append(chosen[0])
            else:
                duplicates += 1
        product, limit_id_, name_, unit, key, limits_hash, low, high = group
        mean, std, cp, cpk_ = cpk_of(np.array(values), low, high)
        rows.append(CpkRow(product, limit_id_, name_, unit, conditions[key], limits_hash,
                           low, high, len(values), mean, std, cp, cpk_, duplicates,
                           attempt.value))
    return rows


def _sort_key(group: tuple[Any, ...]) -> tuple[Any, ...]:
    """A group key that sorts with None in it (None after every value, position by
    position)."""
    return tuple((x is None, x if x is not None else 0) for x in group)


@dataclass(frozen=True)
class TrendRow:
    station: str
    day: str
    runs: int
    passed: int
    marginal: int
    failed: int
    error: int
    aborted: int
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    n_values: int = 0

    @property
    def yield_(self) -> float | None:
        judged = self.passed + self.marginal + self.failed
        return (self.passed + self.marginal) / judged if judged else None



def trend(conn: Connection, where: list[Any], measurement: str | None = None
          ) -> list[TrendRow]:
    """Per station and UTC day: run outcomes, and a measurement's mean/min/max if named."""
    runs, m = T["runs"], T["measurements"]
    day = func.substr(runs.c.started, 1, 10)

    def count(outcome: Outcome) -> Any:
        return func.sum(case((runs.c.outcome == outcome.value, 1), else_=0))

    query = (select(runs.c.station, day, func.count(), count(Outcome.PASS),
                    count(Outcome.MARGINAL), count(Outcome.FAIL), count(Outcome.ERROR),
                    count(Outcome.ABORTED))
             .where(*where)
             .group_by(runs.c.station, day).order_by(runs.c.station, day))
    stats: dict[tuple[str, str], tuple[Any, ...]] = {}
    rows = list(conn.execute(query))
    if measurement:
        mq = (select(runs.c.station, day, func.avg(m.c.value), func.min(m.c.value),
                     func.max(m.c.value), func.count(m.c.value))
              .select_from(m.join(runs, m.c.run_pk == runs.c.id))
              .where(*where, m.c.name == measurement)
              .group_by(runs.c.station, day))
        stats = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(mq)}
    out = []
    for r in rows:
        s = stats.get((r[0], r[1]), (None, None, None, 0))
        n = [int(x or 0) for x in r[2:8]]
        out.append(TrendRow(r[0], r[1], n[0], n[1], n[2], n[3], n[4], n[5],
                            mean=None if s[0] is None else float(s[0]),
                            minimum=None if s[1] is None else float(s[1]),
                            maximum=None if s[2] is None else float(s[2]),
                            n_values=int(s[3] or 0)))
    return out


__all__ = ["JUDGED", "CpkRow", "LimitYield", "StationYield", "TrendRow", "YieldReport", "cpk",
           "cpk_of", "trend", "unit_yield"]
