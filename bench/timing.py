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
