"""Start-up: what a user feels is the whole process. ``harness --version``, ``harness --help``,
``harness analyze --help`` and a small ``harness analyze focus`` run, each as a fresh process,
beside ``python -c "import numpy"`` measured in the same run (the commands alternate, seven
rounds; median and best of each).

Target (issue "House", item 1): ``--version`` and ``--help`` within 3x ``import numpy``;
an analyze command pays only for what it uses (tests_unit/test_startup.py checks the imports).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from bench.timing import side_by_side, spread

HARNESS = str(Path(sys.executable).with_name("harness"))


def run(rounds: int = 7) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        stack = folder / "sweep.tif"  # three 64 x 64 frames: the analysis itself is instant
        rng = np.random.default_rng(0)
        tifffile.imwrite(stack, rng.integers(0, 4096, (3, 64, 64), dtype=np.uint16),
                         photometric="minisblack")
        times = side_by_side({
            "python_import_numpy": [sys.executable, "-c", "import numpy"],
            "harness_version": [HARNESS, "--version"],
            "harness_help": [HARNESS, "--help"],
            "harness_analyze_help": [HARNESS, "analyze", "--help"],
            "harness_analyze_focus_3x64x64": [HARNESS, "analyze", "focus", str(stack)],
        }, rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    numpy_s = statistics.median(times["python_import_numpy"])
    numpy_best = min(times["python_import_numpy"])
    out: dict[str, Any] = {}
    for name, values in times.items():
        out[f"{name}_s"] = spread(values)
        if name != "python_import_numpy":
            out[f"{name}_vs_import_numpy"] = {
                "median": round(statistics.median(values) / numpy_s, 2),
                "best": round(min(values) / numpy_best, 2)}
    return out
