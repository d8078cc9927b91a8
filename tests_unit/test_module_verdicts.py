"""The qualification suite on the simulated station: the golden module passes, and each faulty
module fails exactly the limits of the one physical property it changes (issue: Suites §6).

Each module runs the whole of ``tests_hil`` in its own pytest process on the small (640 x 480)
simulated station with the product's limit spec; the failing limit ids are read back from the
run's journal, the same evidence a sign-off would use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.evidence.journal import rebuild
from harness.evidence.model import Outcome

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"

EXPECTED: dict[str, set[str]] = {
    "golden": set(),
    "hot-cluster": {"DEF-CLUSTERS", "DEF-CLUSTER-SIZE"},
    "soft-corner": {"MTF50-CORNER", "MTF-NQ2-CORNER", "MTF50-RATIO", "FOCUS-TILT"},
    "colour-cast": {"COLOUR-DE-MEAN", "COLOUR-DE-MAX", "COLOUR-WB"},
    "nonlinear": {"EMVA-LE-MIN", "EMVA-LE-MAX"},
    "low-full-well": {"EMVA-SAT", "EMVA-SNR-MAX", "EMVA-DR"},
    "noisy": {"EMVA-DARK-NOISE", "EMVA-DR"},
    "high-current": {"PWR-IDLE", "PWR-STREAM"},
    "blinking": {"DEF-BLINKING"},
}


def station_for(module: str, folder: Path) -> Path:
    """stations/sim-small.yaml with ``module`` on its 640 x 480 sensor."""
    text = (ROOT / "stations" / "sim-small.yaml").read_text()
    old = "camera: {driver: sim, module: ../fixtures/modules/small.yaml, seed: 1}"
    assert old in text, "stations/sim-small.yaml changed: update this test"
    text = text.replace(old, f"camera: {{driver: sim, module: {ROOT}/fixtures/modules/"
                             f"{module}.yaml, seed: 1, sensor_size: [640, 480]}}")
    text = text.replace("id: sim-small-01", f"id: verdict-{module}")
    text += f"lock_dir: {folder}\n"
    path = folder / f"{module}.yaml"
    path.write_text(text)
    (folder / f"{module}.light-cal.json").write_bytes(
        (ROOT / "stations" / "sim-small.light-cal.json").read_bytes())
    return path


def run_suite(module: str, folder: Path) -> tuple[str, subprocess.CompletedProcess[str], Path]:
    evidence = folder / f"evidence-{module}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests_hil"), "-q", "-p", "no:cacheprovider",
         f"--station={station_for(module, folder)}", f"--limits={LIMITS}",
         f"--evidence-dir={evidence}", f"--rootdir={ROOT}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    return module, proc, evidence


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outcome, set[str], str]]:
    folder = tmp_path_factory.mktemp("modules")
    out: dict[str, tuple[Outcome, set[str], str]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for module, proc, evidence in pool.map(lambda m: run_suite(m, folder), EXPECTED):
            journals = list(evidence.glob("*/journal.jsonl"))
            assert len(journals) == 1, f"{module}: no journal\n{proc.stdout[-3000:]}"
            record = rebuild(journals[0])
            failed = {m.limit_id for m in record.measurements if m.outcome is Outcome.FAIL}
            out[module] = (record.outcome, failed, proc.stdout[-3000:] + proc.stderr[-2000:])
    return out


@pytest.mark.parametrize("module", list(EXPECTED))
def test_module_fails_exactly_its_limits(verdicts, module: str) -> None:  # type: ignore[no-untyped-def]
    outcome, failed, output = verdicts[module]
    assert failed == EXPECTED[module], output
    assert outcome is (Outcome.PASS if not EXPECTED[module] else Outcome.FAIL), output
