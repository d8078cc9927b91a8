"""Every limit proves itself (issue: Product §3): the qualification suite on every simulated
module of CM12 at 640 x 480, seed 1.

The golden unit passes with no limit unjudged; each faulty module fails exactly the limits its
file says (``expect: {product: cm12, fails: [...]}``, one physical property each); and every
limit of the spec fails on at least one module. This is ``harness limits coverage
tests_hil/limits/cm12.yaml --size 640x480``; the verdicts come from each run's journal, the
same evidence a sign-off uses. (The 12 MP run over three seeds is ``python -m bench coverage``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.measurement import Outcome
from harness.run.limit_coverage import CoverageReport, limit_coverage, product_modules

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"
MODULES = ROOT / "fixtures" / "modules"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> CoverageReport:
    return limit_coverage(LIMITS, MODULES, template=ROOT / "stations" / "sim.yaml",
                          suite=ROOT / "tests_hil", work=tmp_path_factory.mktemp("coverage"),
                          seeds=1, size=(640, 480), jobs=2)


MODULE_NAMES = [name for name, _ in product_modules(MODULES, "cm12")]


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_module_fails_exactly_its_limits(report: CoverageReport, module: str) -> None:
    [run] = [r for r in report.runs if r.module == module]
    assert not run.problems, run.problems
    assert sorted(run.fails) == sorted(run.expected_fails)
    assert run.outcome is (Outcome.FAIL if run.expected_fails else Outcome.PASS)


def test_every_limit_fails_on_some_module(report: CoverageReport) -> None:
    assert report.unfailed == []
    assert report.ok


def test_the_golden_unit_passes_everything(report: CoverageReport) -> None:
    [golden] = [r for r in report.runs if r.module == "golden"]
    assert golden.outcome is Outcome.PASS and not golden.problems
    assert {lim.id for lim in report.spec} <= set(golden.verdicts)
