"""``make qualify`` timing: the qualification suite on the simulated 12 MP station.

Runs what ``make qualify`` runs, in subprocesses and into a scratch folder: ``tests_hil`` on
``stations/sim.yaml`` with the product's limit spec, the run record and Allure results, then
the report build. Reports the wall time of both (``wall_s``, the figure held against the
target) and of each, the per-test breakdown (from pytest's JUnit XML), the number of 12 MP
frames captured, and the time per captured frame as a ratio to one ``np.copyto`` of a 12 MP
frame measured in the same run. Target: the whole suite under 60 s on the 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from bench.timing import best_ms

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 60.0


def copyto_ms() -> float:
    src = np.random.default_rng(0).integers(0, 4096, (3024, 4032), dtype=np.uint16)
    dst = np.empty_like(src)
    return best_ms(lambda: np.copyto(dst, src), 7)


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        evidence = Path(tmp) / "evidence"
        allure = Path(tmp) / "allure-results"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        start = time.perf_counter()
        proc = subprocess.run(  # what `make qualify` runs, into a scratch folder
            [sys.executable, "-m", "pytest", "tests_hil", "-q", "-p", "no:cacheprovider",
             "--station=stations/sim.yaml", "--limits=tests_hil/limits/cm12.yaml",
             f"--evidence-dir={evidence}", f"--records={Path(tmp) / 'records.sqlite'}",
             f"--alluredir={allure}", "--clean-alluredir", f"--junitxml={junit}"],
            cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
        suite = time.perf_counter() - start
        report = subprocess.run(
            [str(Path(sys.executable).with_name("harness")), "report", str(allure),
             "--out", str(Path(tmp) / "report")],
            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        wall = time.perf_counter() - start
        report_s = wall - suite
        tests = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            tests[f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"] = round(
                float(case.get("time", 0.0)), 2)
        frames = 0
        for manifest in evidence.glob("*/captures/*/manifest.json"):
            frames += len(json.loads(manifest.read_text())["frames"])
    copy = copyto_ms()
    per_frame_ms = 1000.0 * wall / max(frames, 1)
    return {
        "suite_result": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
        "report_result": "built" if report.returncode == 0 else
        f"failed: {report.stderr.strip()[-200:]}",
        "suite_wall_s": round(suite, 1),
        "report_s": round(report_s, 1),
        "wall_s": round(wall, 1),
        "target_s": TARGET_S,
        "meets_target": wall <= TARGET_S,
        "frames_captured_12mp": frames,
        "wall_per_captured_frame_ms": round(per_frame_ms, 1),
        "np_copyto_12mp_ms": round(copy, 2),
        "wall_per_frame_vs_copyto": round(per_frame_ms / copy, 1),
        "per_test_s": dict(sorted(tests.items(), key=lambda kv: -kv[1])),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
