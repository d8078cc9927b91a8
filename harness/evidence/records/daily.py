"""Yield and first-pass yield per product, station and UTC day, per unit.

The unit rules are :mod:`.units`' (a re-judged run is not an attempt and is left out here; a
characterisation run is never one). On a day, at a station (or over all stations):

* ``units`` are the units with an attempt that day, ``passed`` those whose latest attempt of
  the day passed (PASS or MARGINAL) — the day's yield;
* ``new_units`` are the units whose attempt 1 (their first test ever, counted by the store)
  was that day, ``first_pass`` those of them whose attempt 1 passed — the day's first-pass
  yield. A unit first tested before the selection's ``since`` is not new on any day shown.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from harness.evidence.records.tables import T
from harness.evidence.records.units import Pick, UnitRun, pick, unit_runs


@dataclass(frozen=True)
class DayYield:
    """One product on one station (``station`` None: on any station) on one UTC day."""

    day: str
    product: str
    station: str | None
    units: int
    passed: int
    new_units: int
    first_pass: int

    @property
    def yield_(self) -> float | None:
        return self.passed / self.units if self.units else None

    @property
    def first_pass_yield(self) -> float | None:
        return self.first_pass / self.new_units if self.new_units else None


def daily_yield(conn: Connection, where: list[Any]) -> list[DayYield]:
    """Per product, station (and over all stations) and day, newest day first; see the module
    docstring."""
    runs = T["runs"]
    day_of = {int(pk): str(started)[:10] for pk, started in
              conn.execute(select(runs.c.id, runs.c.started).where(*where))}
    groups: dict[tuple[str, str, str | None], dict[tuple[str, str], list[UnitRun]]] = \
        defaultdict(lambda: defaultdict(list))
    for run in unit_runs(conn, where):
        for station in (run.station, None):
            groups[(day_of[run.pk], run.product, station)][run.unit].append(run)
    rows = []
    for (day, product, station), units in groups.items():
        first = [r for r in (pick(a, Pick.FIRST) for a in units.values()) if r.attempt == 1]
        rows.append(DayYield(day, product, station, len(units),
                             sum(pick(a, Pick.LATEST).passed for a in units.values()),
                             len(first), sum(r.passed for r in first)))
    return sorted(rows, key=lambda r: (_desc(r.day), r.product, r.station is None,
                                       r.station or ""))


def _desc(day: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in day)


__all__ = ["DayYield", "daily_yield"]
