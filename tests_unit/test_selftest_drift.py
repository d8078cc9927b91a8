"""Station self-test (``pytest tests_hil -m selftest``): passes on the reference module,
fails on drift (a noisier module in the reference's place), and is left out of normal runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import MeasurementError
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
        target = tmp_path / f"station{suffix}"
        if not target.exists():  # a test may have put its own reference there
            target.write_bytes((ROOT / "stations" / f"sim-small{suffix}").read_bytes())
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


def test_a_reference_without_repeatability_is_refused_by_name(tmp_path: Path) -> None:
    """A reference recorded before the self-test kept each figure's repeatability cannot be
    judged by the guarded rule: ERROR naming the field, never a fallback to another rule."""
    path = station(tmp_path, "golden")
    ref = path.with_name("station.selftest.json")
    data = json.loads(ref.read_text())
    for fig in data["figures"].values():
        del fig["sd"]
    ref.write_text(json.dumps(data))
    proc, outcome, _ = selftest(tmp_path, "golden", "-m", "selftest")
    assert outcome is Outcome.ERROR
    assert "no repeatability sd" in proc.stdout and "figures.selftest_" in proc.stdout


class _Checks:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float | None]] = []

    def against(self, name: str, value: float, unit: str, *, limit_id: str,
                uncertainty: float | None = None) -> None:
        self.seen.append((name, value, uncertainty))


def test_recording_refuses_a_figure_too_noisy_to_see_its_drift(tmp_path: Path) -> None:
    """Groups spread so that 6 s exceeds 30 % of the ±2 % drift band of the dark mean: the
    self-test could not see that drift, so nothing is recorded."""
    from tests_hil.test_selftest import FIGURES, record

    groups = {name: [100.0, 100.1, 99.9, 100.0] for name in FIGURES}
    groups["selftest_dark_mean_dn"] = [100.0, 101.0, 99.0, 100.5]  # s = 0.85, band ±2
    ref = tmp_path / "ref.json"
    with pytest.raises(MeasurementError, match=r"selftest_dark_mean_dn.*could not see"):
        record(None, _Checks(), ref, groups)
    assert not ref.exists()
    groups["selftest_dark_mean_dn"] = [100.0, 100.01, 99.99, 100.0]

    class Session:
        class station:
            id = "st"

        class camera:
            @staticmethod
            def identity() -> Any:
                class Ident:
                    def as_dict(self) -> dict[str, str]:
                        return {"serial": "X"}
                return Ident()

    checks = _Checks()
    record(Session, checks, ref, groups)
    stored = json.loads(ref.read_text())["figures"]["selftest_dark_mean_dn"]
    assert stored["groups"] == 4 and stored["sd"] == pytest.approx(0.008165, rel=1e-3)
    assert all(u is not None and u > 0 for _, _, u in checks.seen)
