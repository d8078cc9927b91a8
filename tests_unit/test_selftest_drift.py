"""Station self-test (``pytest tests_hil -m selftest``): passes on the reference module,
fails on drift (a noisier module in the reference's place), and is left out of normal runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness.evidence.journal import rebuild
from harness.measurement import Outcome

ROOT = Path(__file__).resolve().parents[1]


def station(tmp_path: Path, module: str) -> Path:
    text = (ROOT / "stations" / "sim-small.yaml").read_text().replace(
        "module: ../fixtures/modules/small.yaml",
        f"module: {ROOT}/fixtures/modules/{module}.yaml, sensor_size: [640, 480]")
    path = tmp_path / "station.yaml"
    path.write_text(text + f"lock_dir: {tmp_path}\n")
    for suffix in (".light-cal.json", ".selftest.json"):
        (tmp_path / f"station{suffix}").write_bytes(
            (ROOT / "stations" / f"sim-small{suffix}").read_bytes())
    return path


def selftest(tmp_path: Path, module: str, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                                  Outcome, set[str]]:
    """Run the self-test; the outcome returned is the self-test's own (the run qualifies no
    product, so the run record is a characterisation run: INCOMPLETE at best)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests_hil"), "-q", "-p", "no:cacheprovider",
         f"--station={station(tmp_path, module)}", "--characterise",
         f"--evidence-dir={tmp_path / 'ev'}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    [journal] = (tmp_path / "ev").glob("*/journal.jsonl")
    record = rebuild(journal)
    assert record.characterisation and record.outcome.rank >= Outcome.INCOMPLETE.rank
    [test] = [t for t in record.tests if t.test_id.endswith("test_station_selftest")]
    return proc, test.outcome, {m.limit_id for m in record.measurements
                                if m.outcome is Outcome.FAIL}


def test_selftest_passes_on_the_reference_module(tmp_path: Path) -> None:
    proc, outcome, failed = selftest(tmp_path, "golden", "-m", "selftest")
    assert re.search(r"\b1 passed, \d+ deselected", proc.stdout), proc.stdout  # only the self-test
    assert outcome is Outcome.PASS and not failed


def test_selftest_fails_on_drift(tmp_path: Path) -> None:
    proc, outcome, failed = selftest(tmp_path, "noisy", "-m", "selftest")
    assert outcome is Outcome.FAIL, proc.stdout
    assert "SELFTEST-DARK_NOISE_DN" in failed
