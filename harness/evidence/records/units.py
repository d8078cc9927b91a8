"""Which stored run stands for which attempt of which unit, for the per-unit statistics.

A unit is a product and a DUT serial; a run without a serial is a unit of its own. Each
attempt of a unit is one stored run (numbered by :mod:`.attempts`). A re-judged run is not an
attempt: it is left out, unless ``rejudged`` is asked for, and then it stands in for the
attempt it re-judged, at that attempt's station (the newest re-judging wins; one whose source
run is not among the selected runs is left out).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from harness.errors import ConfigError
from harness.evidence.records.tables import T
from harness.measurement import Outcome


class Pick(StrEnum):
    """Which attempt of a unit a statistic takes."""

    FIRST = "first"
    LATEST = "latest"

    @classmethod
    def parse(cls, text: str | Pick) -> Pick:
        try:
            return cls(str(text).lower())
        except ValueError:
            raise ConfigError(f"{text!r} is not an attempt; allowed: first, latest",
                              field="--attempt") from None


@dataclass(frozen=True)
class UnitRun:
    """One attempt of one unit: the stored run that stands for it."""

    pk: int
    run_id: str
    product: str
    station: str
    dut_serial: str
    attempt: int
    outcome: Outcome
    limits_hash: str
    label: str
    """The unit as shown: its serial, or ``run <id>`` for a run without one."""

    @property
    def unit(self) -> tuple[str, str]:
        """``(product, label)``: what one unit is."""
        return (self.product, self.label)

    @property
    def passed(self) -> bool:
        """A unit passes an attempt whose run is PASS or MARGINAL; INCOMPLETE, FAIL, ERROR
        and ABORTED runs are tested but not passing."""
        return self.outcome.ok


def unit_runs(conn: Connection, where: list[Any], *, rejudged: bool = False
              ) -> list[UnitRun]:
    """The attempts of the selected runs (``where`` on ``runs``), in store order."""
    runs = T["runs"]
    rows = conn.execute(select(runs.c.id, runs.c.run_id, runs.c.product, runs.c.station,
                               runs.c.dut_serial, runs.c.attempt, runs.c.outcome,
                               runs.c.limits_hash, runs.c.rejudged_from)
                        .where(*where).order_by(runs.c.id)).all()
    chosen: dict[tuple[tuple[str, str], int], UnitRun] = {}
    by_run_id: dict[str, UnitRun] = {}
    for pk, run_id, product, station, serial, attempt, outcome, limits_hash, source in rows:
        if int(attempt) == 0 and not source:
            continue  # a characterisation run: not a qualification attempt
        run = UnitRun(int(pk), run_id, product, station, serial, int(attempt),
                      Outcome(outcome), limits_hash, serial or f"run {run_id}")
        if not source:
            chosen[(run.unit, run.attempt)] = by_run_id[run_id] = run
        elif rejudged and source in by_run_id:
            stands_for = by_run_id[source]  # same unit, attempt and station; new verdict
            chosen[(stands_for.unit, stands_for.attempt)] = replace(
                stands_for, pk=run.pk, run_id=run.run_id, outcome=run.outcome,
                limits_hash=run.limits_hash)
    return sorted(chosen.values(), key=lambda r: r.pk)


def pick(attempts: list[UnitRun], which: Pick) -> UnitRun:
    """The first or the latest of one unit's attempts."""
    ordered = sorted(attempts, key=lambda r: (r.attempt, r.pk))
    return ordered[0] if which is Pick.FIRST else ordered[-1]


__all__ = ["Pick", "UnitRun", "pick", "unit_runs"]
