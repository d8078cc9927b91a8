"""Attempt numbers: which test of a unit (product + DUT serial) a stored run was.

A unit's runs are numbered 1, 2, 3, ... in the order they were stored; a retest is a new
attempt of the same serial and never overwrites an earlier one. A re-judged run (its frames
judged again, ``rejudged_from`` set) is not an attempt: it carries the number of the run it
re-judged (0 if that run is not in the store). A characterisation run (no limits judged) is
not a qualification attempt either: it is attempt 0, so it never takes a unit's first pass.
A run without a DUT serial is attempt 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunKey:
    """What numbering a run needs, in store order."""

    pk: int
    run_id: str
    product: str
    dut_serial: str
    rejudged_from: str = ""
    characterisation: bool = False


def number_attempts(runs: Iterable[RunKey]) -> dict[int, int]:
    """Attempt number by run primary key; ``runs`` in the order they were stored."""
    counts: dict[tuple[str, str], int] = {}
    by_run_id: dict[str, int] = {}
    out: dict[int, int] = {}
    for run in runs:
        if run.rejudged_from:
            attempt = by_run_id.get(run.rejudged_from, 0)
        elif run.characterisation:
            attempt = 0
        elif not run.dut_serial:
            attempt = 1
        else:
            unit = (run.product, run.dut_serial)
            attempt = counts[unit] = counts.get(unit, 0) + 1
        out[run.pk] = by_run_id[run.run_id] = attempt
    return out


__all__ = ["RunKey", "number_attempts"]
