"""``harness rejudge --all``: re-judge a selection of the archive on a Dask cluster.

The client selects the runs (:mod:`.selection`), leaves out those already re-judged with this
spec and software, and submits one task per run (:func:`.task.rejudge_on_worker`); as the
results arrive (``distributed.as_completed``) it stores each new run in the records database
itself, linked to its original by ``rejudged_from``: one writer, so SQLite sees no concurrent
writes and the hash chain of ``<station>.rejudge`` stays intact. A run whose re-analysis fails
is reported and not stored, so the next invocation tries it again; a worker that dies is
reported as the error of the run it held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError, EvidenceError, one_line
from harness.evidence.records import RecordStore, run_filters
from harness.evidence.records.signing import resolve_signer
from harness.evidence.run import run_software
from harness.fleet.selection import (
    ArchivedRun,
    Selection,
    already_rejudged,
    select_runs,
    software_key,
)
from harness.fleet.summary import FleetSummary, RunError, summarise
from harness.fleet.task import RejudgeTask, TaskResult, rejudge_on_worker
from harness.limits import load_limits

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class Plan:
    """The selected runs, those already re-judged (skipped), and the tasks to submit."""

    runs: dict[str, ArchivedRun]
    skipped: frozenset[str]
    tasks: tuple[RejudgeTask, ...]
    limits_hash: str
    software_key: str


@dataclass(frozen=True)
class Progress:
    """Where a re-judging is, after each result."""

    done: int
    total: int
    failures: int
    last: TaskResult


def plan(store: RecordStore, selection: Selection, limits: Path, *, evidence_dir: Path,
         rootdir: Path) -> Plan:
    """What to submit (see the module docstring). ConfigError for a spec that does not load,
    and for a selection without runs (naming the filters)."""
    run_filters(selection.product, selection.station, selection.since,
                until=selection.until, outcome=selection.outcome)  # bad values first
    if not limits.is_file():
        raise ConfigError("limit spec not found", source=str(limits), field="--limits")
    spec = load_limits(limits)
    runs = select_runs(store, selection)
    if not runs:
        shown = ", ".join(f"--{k} {v}" for k, v in vars(selection).items() if v) or "none"
        raise ConfigError(f"no stored qualification run matches the filters ({shown})",
                          source=store.display)
    key = software_key(run_software(spec.sha256))
    skipped = already_rejudged(store, [r.run_id for r in runs], spec.sha256, key)
    evidence, root, spec_path = (str(p.resolve()) for p in (evidence_dir, rootdir, limits))
    tasks = tuple(RejudgeTask(r.run_id, (str(Path(evidence) / r.run_id), r.stored_folder),
                              spec_path, evidence, root)
                  for r in runs if r.run_id not in skipped)
    return Plan({r.run_id: r for r in runs}, frozenset(skipped), tasks, spec.sha256, key)


def _store(store: RecordStore, result: TaskResult) -> str:
    """Store a re-judged run and give it to the outputs; the error, or ""."""
    from harness.evidence.outputs import publish

    assert result.record is not None
    try:
        store.add_run(result.record, signer=resolve_signer(None))
    except (EvidenceError, ConfigError) as exc:
        return one_line(f"re-judged as {result.record.run_id}, but not stored: {exc}")
    publish(store, result.record)
    return ""


def run_plan(store: RecordStore, work: Plan, client: Client, *,
             progress: Callable[[Progress], None] | None = None,
             task_fn: Callable[[RejudgeTask], TaskResult] = rejudge_on_worker
             ) -> FleetSummary:
    """Submit ``work``'s tasks to ``client``'s cluster (``task_fn`` on each), store the results
    as they come and summarise them."""
    from distributed import as_completed

    start = time.perf_counter()
    futures = {client.submit(task_fn, task, key=f"rejudge-{task.run_id}-"
                             f"{work.limits_hash[:12]}-{work.software_key[:12]}",
                             pure=False): task for task in work.tasks}
    results: list[TaskResult] = []
    store_errors: list[RunError] = []
    failures = 0
    for future in as_completed(futures):
        task = futures[future]
        try:
            result: TaskResult = future.result()
        except Exception as exc:  # the worker died (KilledWorker), or the task was lost
            result = TaskResult(task.run_id, None, None, (), one_line(
                f"worker lost: {type(exc).__name__}: {exc}"), 0.0, "")
        finally:
            future.release()
        error = _store(store, result) if result.ok else ""
        if error:
            store_errors.append(RunError(task.run_id, work.runs[task.run_id].unit, error,
                                         result.worker))
        failures += (not result.ok) or bool(error)
        results.append(result)
        if progress is not None:
            progress(Progress(len(results), len(futures), failures, result))
    return summarise(work.runs, results, skipped=len(work.skipped), extra_errors=store_errors,
                     seconds=round(time.perf_counter() - start, 3))


__all__ = ["Plan", "Progress", "plan", "run_plan"]
