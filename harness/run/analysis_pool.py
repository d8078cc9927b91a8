"""Worker processes that analyse the slots' capture sets while the station captures on.

On a multi-up station every slot captures a step at once (:mod:`harness.run.slots`); the
analysis of what they captured is pure (numpy in, figures out) and needs no instrument, so it
runs in worker processes: while the first slot's tests go on to the next capture step, the
other slots' analyses of the steps already captured proceed on the other cores, and when the
tests of those slots come, their figures are ready.

The workers start from a fork server (a clean process, not a fork of the run with its device
threads and open ports) the first time a slot asks; they touch no device, so an abort only
has to drop the queued work (:meth:`AnalysisPool.close`): the station's safe state does not
depend on them. They run at a lower scheduling priority than the run: the capture has
deadlines (frame timeouts, settle windows), the analysis has none.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Modules each worker imports once, before it takes work (the fork server preloads them).
PRELOAD = ("harness.run.capture_analyses",)


#: How much nicer than the run the workers are (``os.nice`` increment).
NICENESS = 10


def _lower_priority() -> None:
    """Worker initialiser: yield the cores to the capture when both want them."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)


def default_workers(slots: int) -> int:
    """One worker per slot, at most one per core."""
    return max(1, min(slots, os.cpu_count() or 1))


class AnalysisPool:
    """A lazily started pool of ``workers`` analysis processes."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"an analysis pool needs at least one worker, not {workers}")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self.submitted = 0

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``fn(*args, **kwargs)`` in a worker: ``fn`` is a module-level function and its
        arguments pickle (paths and plain parameters, never frames or devices)."""
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOAD))
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 initializer=_lower_priority)
        self.submitted += 1
        return self._executor.submit(fn, *args, **kwargs)

    def close(self, *, cancel: bool = False) -> None:
        """Stop the workers: after the work queued (``cancel``: dropping what has not
        started, as on an abort)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=not cancel, cancel_futures=cancel)


__all__ = ["NICENESS", "PRELOAD", "AnalysisPool", "default_workers"]
