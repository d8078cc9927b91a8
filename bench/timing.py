"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cache
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


@cache
def installed_env() -> dict[str, str]:
    """The environment of a timed process: bytecode cached as on an installed package.

    ``pip install`` compiles a package's modules, so the reference package starts from
    bytecode; a checkout installed in editable mode writes its own on first use, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (as on this CI machine), when every process compiles
    the harness again. The timed processes write their bytecode to a temporary prefix
    (``PYTHONPYCACHEPREFIX``), never into the checkout, removed when the bench exits."""
    prefix = tempfile.mkdtemp(prefix="bench_pycache_")
    atexit.register(shutil.rmtree, prefix, True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def process_s(argv: list[str], cwd: str | None = None) -> float:
    """Wall time of one whole process ``argv`` (start-up, imports, work, exit) in
    :func:`installed_env`, its output discarded; raises if it fails."""
    import subprocess

    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, env=installed_env())
    return time.perf_counter() - start


def side_by_side(commands: dict[str, list[str]], rounds: int = 5,
                 cwd: str | None = None) -> dict[str, list[float]]:
    """Each command's whole-process time, ``rounds`` times, the commands alternating within
    every round so that the load of a shared machine falls on all of them alike. Each runs
    once untimed first (bytecode written, files in the page cache), for both alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():
        process_s(argv, cwd)
    for _ in range(rounds):
        for name, argv in commands.items():
            times[name].append(process_s(argv, cwd))
    return times


def spread(values: list[float]) -> dict[str, float]:
    """Median, best and worst of timed runs (seconds, rounded to the millisecond)."""
    import statistics

    return {"median": round(statistics.median(values), 3), "best": round(min(values), 3),
            "worst": round(max(values), 3), "runs": len(values)}
