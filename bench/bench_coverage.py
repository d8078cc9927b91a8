"""The limit-coverage map at 12 MP over three seeds (the slow run of issue Product §4).

Runs what ``harness limits coverage tests_hil/limits/cm12.yaml --seeds 3`` runs: the
qualification suites on every module of the product at full size, seeds 1-3, and reports
whether every module failed exactly what its file expects at every seed and every limit failed
on some module (``ok``), the modules or seeds that did not, and the time. Slow (tens of minutes
on the 2-core machine); ``make test`` runs the same map at 640 x 480, seed 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness.run.limit_coverage import ModuleRun, limit_coverage

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 3


def run() -> dict[str, object]:
    done: list[ModuleRun] = []

    def tick(r: ModuleRun) -> None:
        done.append(r)
        mark = "ok" if r.as_expected else "UNEXPECTED"
        print(f"   {len(done)} {r.module} seed {r.seed}: {r.outcome.value} {mark}", flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-coverage-") as work:
        report = limit_coverage(ROOT / "tests_hil" / "limits" / "cm12.yaml",
                                ROOT / "fixtures" / "modules",
                                template=ROOT / "stations" / "sim.yaml",
                                suite=ROOT / "tests_hil", work=Path(work), seeds=SEEDS,
                                jobs=2, progress=tick)
    return {
        "ok": report.ok,
        "size": "4032x3024",
        "seeds": SEEDS,
        "modules": len(report.modules),
        "runs": len(report.runs),
        "unfailed": report.unfailed,
        "unexpected": [{"module": r.module, "seed": r.seed, "fails": sorted(r.fails),
                        "expected": sorted(r.expected_fails), "problems": list(r.problems)}
                       for r in report.unexpected],
        "marginal": sorted({f"{lim.id}@{m}" for lim in report.spec for m in report.modules
                            if report.cell(lim.id, m) == "MARGINAL"}),
        "minutes": round((time.perf_counter() - start) / 60.0, 1),
    }
