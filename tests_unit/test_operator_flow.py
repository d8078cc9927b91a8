"""Operator flow: DUT serial from the camera, label confirmation with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.evidence.journal import rebuild
from harness.measurement import Outcome

SUITE = """\
import pytest

@pytest.mark.hil_measures("serial_matches")
def test_dut(hil_dut, hil_check):
    hil_check("serial_matches", float(hil_dut.serial == 'SN-9'), "1")
"""
LIMITS = """\
product: op
version: 1
limits:
  - {id: SERIAL, measurement: serial_matches, unit: "1", min: 1}
"""


def run(tmp_path: Path, *args: str, stdin: str | None = None, confirm: bool = True
        ) -> subprocess.CompletedProcess[str]:
    settings = "settings: {confirm_label: true, label_timeout_s: 1.0}\n" if confirm else ""
    (tmp_path / "st.yaml").write_text(
        f"id: op\nlock_dir: {tmp_path}\ncamera: {{driver: fake, serial: SN-9}}\n{settings}")
    (tmp_path / "test_op.py").write_text(SUITE)
    (tmp_path / "limits.yaml").write_text(LIMITS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--station=st.yaml", "--limits=limits.yaml", "--evidence-dir=ev", *args],
                          cwd=tmp_path, input=stdin, capture_output=True, text=True,
                          timeout=120, env=env)


def run_outcome(tmp_path: Path) -> Outcome:
    [journal] = (tmp_path / "ev").glob("*/journal.jsonl")
    return rebuild(journal).outcome


def test_serial_read_from_camera_without_dut_or_label(tmp_path: Path) -> None:
    result = run(tmp_path, confirm=False)
    assert "1 passed" in result.stdout, result.stdout + result.stderr


def test_scanned_label_confirms(tmp_path: Path) -> None:
    result = run(tmp_path, stdin="SN-9\n")
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    assert "Scan the DUT label" in result.stderr
    assert run_outcome(tmp_path) is Outcome.PASS


def test_label_mismatch_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, stdin="SN-1\n")
    assert "1 error" in result.stdout, result.stdout
    assert "DUT label mismatch: the label reads 'SN-1' but the camera reports 'SN-9'" in result.stdout
    assert run_outcome(tmp_path) is Outcome.ERROR


def test_no_label_within_the_timeout_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, stdin="")
    assert "1 error" in result.stdout, result.stdout
    assert "no DUT label scanned within 1 s" in result.stdout
    assert run_outcome(tmp_path) is Outcome.ERROR


def test_label_option_instead_of_a_prompt(tmp_path: Path) -> None:
    result = run(tmp_path, "--label=SN-9", confirm=False)
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    bad = run(tmp_path, "--label=SN-2", confirm=False)
    assert "DUT label mismatch" in bad.stdout
