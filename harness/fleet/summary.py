"""What re-judging a selection changed: per limit, the units whose verdict changes (with the
figure's old and new value), the figures that moved without a verdict change, the runs whose
verdict changes, and the runs that could not be re-analysed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.fleet.selection import ArchivedRun
from harness.fleet.task import TaskResult
from harness.measurement import Outcome


@dataclass(frozen=True)
class UnitChange:
    """One figure of one unit's run, judged (or measured) differently by the new run."""

    limit_id: str
    name: str
    condition: str
    product: str
    unit: str
    run_id: str
    new_run_id: str
    old_outcome: str
    new_outcome: str
    old_value: float | None
    new_value: float | None

    @property
    def verdict_changed(self) -> bool:
        return self.old_outcome != self.new_outcome


@dataclass(frozen=True)
class LimitChanges:
    """The units whose verdict of one limit changes (``units`` counts each unit once)."""

    limit_id: str
    name: str
    units: int
    changes: tuple[UnitChange, ...]


@dataclass(frozen=True)
class RunChange:
    """A run whose overall verdict changes."""

    run_id: str
    new_run_id: str
    unit: str
    old_outcome: str
    new_outcome: str


@dataclass(frozen=True)
class RunError:
    """A run that could not be re-analysed (or stored), and why."""

    run_id: str
    unit: str
    error: str
    worker: str = ""


@dataclass(frozen=True)
class FleetSummary:
    """The outcome of one ``harness rejudge --all``."""

    selected: int
    skipped: int
    rejudged: int
    errors: tuple[RunError, ...]
    limits: tuple[LimitChanges, ...]
    moved: tuple[UnitChange, ...]
    runs_changed: tuple[RunChange, ...]
    seconds: float = 0.0
    """First task submitted to last result stored."""
    task_seconds: float = 0.0
    """The workers' time over every task (each a pytest process of its own)."""
    workers: int = 0
    """Workers that ran a task."""

    @property
    def submitted(self) -> int:
        return self.selected - self.skipped


def _outcome(o: Outcome | None) -> str:
    return o.value if o is not None else "—"


def unit_changes(run: ArchivedRun, result: TaskResult) -> list[UnitChange]:
    """The changes of one re-judged run as rows (conditions as canonical JSON)."""
    new_id = result.record.run_id if result.record is not None else ""
    return [UnitChange(c.limit_id, c.name, json.dumps(dict(c.condition), sort_keys=True,
                                                      default=str),
                       run.product, run.unit, run.run_id, new_id, _outcome(c.old_outcome),
                       _outcome(c.new_outcome), c.old_value, c.new_value)
            for c in result.changes]


def summarise(runs: Mapping[str, ArchivedRun], results: Iterable[TaskResult], *,
              skipped: int = 0, extra_errors: Iterable[RunError] = (),
              seconds: float = 0.0) -> FleetSummary:
    """Summarise the results of the re-judged runs among ``runs`` (by run id): a result with
    an error is listed as such, the others give their changes."""
    errors: list[RunError] = list(extra_errors)
    by_limit: dict[tuple[str, str], list[UnitChange]] = {}
    moved: list[UnitChange] = []
    runs_changed: list[RunChange] = []
    rejudged = 0
    failed = {e.run_id for e in errors}
    done = list(results)
    for result in done:
        run = runs[result.run_id]
        if result.run_id in failed:
            continue
        if not result.ok or result.record is None:
            errors.append(RunError(run.run_id, run.unit, result.error, result.worker))
            continue
        rejudged += 1
        if result.record.outcome is not run.outcome:
            runs_changed.append(RunChange(run.run_id, result.record.run_id, run.unit,
                                          run.outcome.value, result.record.outcome.value))
        for change in unit_changes(run, result):
            if change.verdict_changed:
                by_limit.setdefault((change.limit_id, change.name), []).append(change)
            else:
                moved.append(change)
    limits = tuple(LimitChanges(limit_id, name, len({(c.product, c.unit) for c in rows}),
                                tuple(sorted(rows, key=lambda c: (c.unit, c.run_id,
                                                                  c.condition))))
                   for (limit_id, name), rows in sorted(by_limit.items()))
    return FleetSummary(len(runs), skipped, rejudged,
                        tuple(sorted(errors, key=lambda e: e.run_id)), limits,
                        tuple(sorted(moved, key=lambda c: (c.limit_id, c.unit, c.run_id))),
                        tuple(sorted(runs_changed, key=lambda r: r.run_id)), seconds,
                        round(sum(r.seconds for r in done), 3),
                        len({r.worker for r in done if r.worker}))


__all__ = ["FleetSummary", "LimitChanges", "RunChange", "RunError", "UnitChange",
           "summarise", "unit_changes"]
