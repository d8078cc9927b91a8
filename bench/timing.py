"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_s(fn: Callable[[], Any], repeat: int = 3, number: int = 1) -> float:
    """Seconds per call of ``fn()``: the best of ``repeat`` runs of ``number`` calls each (the
    least disturbed run; ``number`` > 1 for calls too short to time one by one)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_ms(fn: Callable[[], Any], repeat: int = 3, number: int = 1) -> float:
    """:func:`best_s` in milliseconds."""
    return best_s(fn, repeat, number) * 1e3


def process_s(argv: list[str], cwd: str | None = None) -> float:
    """Wall time of one whole process ``argv`` (start-up, imports, work, exit), its output
    discarded; raises if it fails."""
    import subprocess

    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def side_by_side(commands: dict[str, list[str]], rounds: int = 5,
                 cwd: str | None = None) -> dict[str, list[float]]:
    """Each command's whole-process time, ``rounds`` times, the commands alternating within
    every round so that the load of a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            times[name].append(process_s(argv, cwd))
    return times


def spread(values: list[float]) -> dict[str, float]:
    """Median, best and worst of timed runs (seconds, rounded to the millisecond)."""
    import statistics

    return {"median": round(statistics.median(values), 3), "best": round(min(values), 3),
            "worst": round(max(values), 3), "runs": len(values)}
