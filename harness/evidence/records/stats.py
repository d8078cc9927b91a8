"""Statistics over stored runs: yield per limit, Cpk per measurement, trend per station."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, case, func, select

from harness.evidence.model import Outcome
from harness.evidence.records.tables import T


@dataclass(frozen=True)
class YieldRow:
    """Outcome counts of one limit; yield = (PASS + MARGINAL) / (PASS + MARGINAL + FAIL)."""

    limit_id: str
    name: str
    unit: str
    passed: int
    marginal: int
    failed: int
    error: int

    @property
    def judged(self) -> int:
        return self.passed + self.marginal + self.failed

    @property
    def yield_(self) -> float | None:
        return (self.passed + self.marginal) / self.judged if self.judged else None


@dataclass(frozen=True)
class CpkRow:
    """Process capability of one measurement across DUTs (ISO 22514-2; AIAG SPC manual).

    ``Cp = (USL − LSL) / 6σ`` and ``Cpk = min(USL − μ, μ − LSL) / 3σ`` with μ and σ the mean and
    sample standard deviation (ddof = 1) of the DUTs' values (one DUT's latest run each), so
    strictly the overall-σ index Ppk; with one limit only the one-sided index is given.
    """

    name: str
    limit_id: str
    unit: str
    n: int
    mean: float
    std: float
    low: float | None
    high: float | None
    cp: float | None
    cpk: float | None


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


def cpk_of(values: np.ndarray, low: float | None, high: float | None
           ) -> tuple[float, float, float | None, float | None]:
    """``(mean, std, Cp, Cpk)`` of ``values`` against ``[low, high]`` (see :class:`CpkRow`)."""
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    if not std > 0:
        return mean, std, None, None
    cp = (high - low) / (6 * std) if low is not None and high is not None else None
    sides = [s for s in ((high - mean) if high is not None else None,
                         (mean - low) if low is not None else None) if s is not None]
    return mean, std, cp, (min(sides) / (3 * std) if sides else None)


def yield_by_limit(conn: Connection, where: list[Any]) -> list[YieldRow]:
    runs, m = T["runs"], T["measurements"]

    def count(outcome: Outcome) -> Any:
        return func.sum(case((m.c.outcome == outcome.value, 1), else_=0))

    query = (select(m.c.limit_id, m.c.name, m.c.unit, count(Outcome.PASS),
                    count(Outcome.MARGINAL), count(Outcome.FAIL), count(Outcome.ERROR))
             .select_from(m.join(runs, m.c.run_pk == runs.c.id))
             .where(*where)
             .group_by(m.c.limit_id, m.c.name, m.c.unit)
             .order_by(m.c.limit_id, m.c.name))
    return [YieldRow(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0), int(r[5] or 0),
                     int(r[6] or 0)) for r in conn.execute(query)]


def cpk(conn: Connection, where: list[Any], name: str | None = None) -> list[CpkRow]:
    """Cpk per measurement across DUTs, each DUT counted once (its latest run)."""
    runs, m = T["runs"], T["measurements"]
    where = [*where, m.c.value.is_not(None)]
    if name:
        where.append(m.c.name == name)
    query = (select(m.c.name, m.c.limit_id, m.c.unit, m.c.low, m.c.high, m.c.value,
                    runs.c.dut_serial, runs.c.started, runs.c.id)
             .select_from(m.join(runs, m.c.run_pk == runs.c.id)).where(*where)
             .order_by(runs.c.started, runs.c.id, m.c.position))
    latest: dict[tuple[str, str, str], dict[str, tuple[Any, list[float]]]] = \
        defaultdict(dict)
    limits: dict[tuple[str, str, str], tuple[float | None, float | None]] = {}
    for name_, limit_id, unit, low, high, value, dut, _started, run_pk in conn.execute(query):
        key = (name_, limit_id, unit)
        dut_key = dut or f"run-{run_pk}"
        seen = latest[key].get(dut_key)
        if seen is None or seen[0] != run_pk:
            latest[key][dut_key] = (run_pk, [])
        latest[key][dut_key][1].append(float(value))
        limits[key] = (low, high)
    rows = []
    for key in sorted(latest):
        values = np.array([v for _pk, vals in latest[key].values() for v in vals])
        low, high = limits[key]
        mean, std, cp, cpk_ = cpk_of(values, low, high)
        rows.append(CpkRow(key[0], key[1], key[2], int(values.size), mean, std, low, high,
                           cp, cpk_))
    return rows


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


__all__ = ["CpkRow", "TrendRow", "YieldRow", "cpk", "cpk_of", "trend", "yield_by_limit"]
