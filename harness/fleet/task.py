"""One run re-judged on a Dask worker: :func:`rejudge_on_worker`.

The worker finds the run's evidence folder on the shared file system, re-judges it by the
same code path as ``harness rejudge RUN`` (:func:`harness.run.rejudge.rejudge`: the run's
suites in a pytest child on a replay station; the new run's journal goes beside the others in
the evidence folder, but the child writes no records database) and sends back only the new
run's record (figures, verdicts, the names and hashes of its files: never a frame) and the
changes. Nothing is raised to the client: a run that cannot be re-analysed comes back as a
:class:`TaskResult` with its error, so the other runs go on.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from harness.errors import one_line
from harness.evidence.model import RunRecord
from harness.measurement import Outcome
from harness.run.rejudge import VerdictChange, rejudge

JOURNAL = "journal.jsonl"
FAILED_REANALYSIS = (Outcome.ERROR, Outcome.ABORTED)
OUTPUT_TAIL = 15


@dataclass(frozen=True)
class RejudgeTask:
    """What a worker needs to re-judge one run (paths on the shared file system)."""

    run_id: str
    folders: tuple[str, ...]
    """Where the run's evidence may be, tried in order (``<evidence dir>/<run id>``, then the
    folder its stored capture sets name)."""
    limits: str
    evidence_dir: str
    """Where the new run's evidence folder goes."""
    rootdir: str
    """The checkout holding the suites (``tests_hil``)."""


@dataclass(frozen=True)
class TaskResult:
    """A run re-judged (``record`` set, ``error`` empty) or not (``error`` says why)."""

    run_id: str
    record: RunRecord | None
    original_outcome: Outcome | None
    changes: tuple[VerdictChange, ...]
    error: str
    seconds: float
    worker: str

    @property
    def ok(self) -> bool:
        """Re-judged: the new run is to be stored."""
        return self.record is not None and not self.error


def _error_of(record: RunRecord) -> str:
    messages = [t.message for t in record.tests if t.outcome in FAILED_REANALYSIS and t.message]
    return one_line("; ".join(messages) or record.reason or f"the run ended {record.outcome}")


def rejudge_on_worker(task: RejudgeTask) -> TaskResult:
    """Re-judge ``task``'s run (see the module docstring). A re-judged run that ends ERROR or
    ABORTED while the original did not is a failed re-analysis (a corrupt or missing capture
    set, a replay out of sync): an error, whose new run is not to be stored."""
    start = time.perf_counter()
    where = f"{socket.gethostname()}:{os.getpid()}"

    def result(record: RunRecord | None, original: Outcome | None,
               changes: tuple[VerdictChange, ...], error: str) -> TaskResult:
        return TaskResult(task.run_id, record, original, changes, error,
                          round(time.perf_counter() - start, 3), where)

    folder = next((f for f in task.folders if f and (Path(f) / JOURNAL).is_file()), None)
    if folder is None:
        return result(None, None, (), f"no evidence of run {task.run_id}: no {JOURNAL} in "
                                      f"{', '.join(f for f in task.folders if f)}")
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-fleet-") as work:
            done = rejudge(folder, Path(task.limits), evidence_dir=Path(task.evidence_dir),
                           rootdir=Path(task.rootdir), work=Path(work), echo=tail.append)
    except Exception as exc:  # any fault of this run is its result, never the client's
        return result(None, None, (), one_line(f"{type(exc).__name__}: {exc}"))
    original = done.original.outcome
    new = done.rejudged
    if new is None:
        shown = " | ".join(line for line in tail if line.strip())
        return result(None, original, (), one_line(
            f"no re-judged run was recorded (pytest exit {done.returncode}): {shown}"))
    if new.outcome in FAILED_REANALYSIS and original not in FAILED_REANALYSIS:
        return result(new, original, done.changes,
                      f"re-analysis failed ({new.run_id} {new.outcome}): {_error_of(new)}")
    return result(new, original, done.changes, "")


__all__ = ["FAILED_REANALYSIS", "RejudgeTask", "TaskResult", "rejudge_on_worker"]
