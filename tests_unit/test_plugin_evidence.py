"""The plugin's evidence: journal per run, verdicts from the limit spec, outcomes kept apart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness.evidence.journal import read_journal, rebuild
from harness.measurement import Outcome

LIMITS = """\
product: fake
version: 1
limits:
  - {id: MEAN, measurement: mean_dn, unit: DN, min: 100, max: 1000, guard: 50}
  - {id: NOISE, measurement: noise_dn, unit: DN, max: 3}
"""

SUITE = """\
import math
import pytest

@pytest.mark.hil_measures("mean_dn", "unlimited_figure")
def test_pass(hil_camera, hil_check):
    hil_check("mean_dn", float(hil_camera.grab(2).frames.mean()), "DN", step=1)
    hil_check("unlimited_figure", 1.5, "px")

@pytest.mark.hil_measures("mean_dn")
def test_marginal(hil_check, hil_station):
    hil_check("mean_dn", 120.0, "DN", step=2)

@pytest.mark.hil_measures("mean_dn", "noise_dn")
def test_fail_soft(hil_check, hil_station):
    hil_check("mean_dn", 5000.0, "DN", step=3)
    hil_check("noise_dn", 9.0, "DN", step=3)
    hil_check("mean_dn", 500.0, "DN", step=4)

@pytest.mark.hil_measures("noise_dn")
def test_not_measured(hil_check, hil_station):
    hil_check("noise_dn", math.nan, "DN", step=5)

def test_station_fault(hil_light):
    hil_light.set_level(150)

def test_unrelated():
    assert True
"""


def station(tmp_path: Path) -> Path:
    path = tmp_path / "st.yaml"
    path.write_text(f"id: ev\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n"
                    "camera: {driver: fake, serial: SN-5, width: 16, height: 8}\n")
    return path


def run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "limits.yaml").write_text(LIMITS)
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--station={station(tmp_path)}", "--limits=limits.yaml", "--evidence-dir=ev",
         "--operator=alice", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)


def test_verdicts_and_outcomes_in_the_journal(tmp_path: Path) -> None:
    result = run(tmp_path, "--records=rec.sqlite")
    assert "3 failed, 3 passed" in result.stdout, result.stdout
    assert "out of spec: MEAN mean_dn=5000 DN [100..1000] FAIL; NOISE noise_dn=9 DN [..3] FAIL" \
        in result.stdout
    [journal] = list((tmp_path / "ev").glob("*/journal.jsonl"))
    record = rebuild(journal)
    outcomes = {t.test_id.split("::")[1]: t.outcome for t in record.tests}
    assert outcomes == {
        "test_pass": Outcome.PASS,
        "test_marginal": Outcome.MARGINAL,
        "test_fail_soft": Outcome.FAIL,
        "test_not_measured": Outcome.ERROR,
        "test_station_fault": Outcome.ERROR,
    }
    assert record.outcome is Outcome.ERROR  # a station fault is never hidden behind a FAIL
    assert record.operator == "alice" and record.dut_serial == "SN-5"
    assert len(record.limits_hash) == 64
    fail = next(t for t in record.tests if t.test_id.endswith("test_fail_soft"))
    assert [m.outcome for m in fail.measurements] == [Outcome.FAIL, Outcome.FAIL, Outcome.PASS]
    passed = next(t for t in record.tests if t.test_id.endswith("test_pass"))
    assert [m.outcome for m in passed.measurements] == [Outcome.PASS, Outcome.INFO]
    assert record.unjudged == ()  # every limit of the spec got a verdict
    fault = next(t for t in record.tests if t.test_id.endswith("test_station_fault"))
    assert "light: level 150" in fault.message
    from harness.evidence.records import RecordStore

    with RecordStore(str(tmp_path / "rec.sqlite")) as store:
        stored = store.get_run(record.run_id)
    assert stored.outcome is Outcome.ERROR
    assert len(stored.measurements) == len(record.measurements)


def test_sigterm_leaves_an_aborted_record(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(LIMITS)
    ready = tmp_path / "ready"
    (tmp_path / "test_long.py").write_text(textwrap.dedent(f"""
        import pathlib, time

        import pytest

        @pytest.mark.hil_measures("mean_dn")
        def test_first(hil_check, hil_station):
            hil_check("mean_dn", 500.0, "DN")

        def test_long(hil_camera):
            pathlib.Path({str(ready)!r}).write_text("x")
            time.sleep(60)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--station={station(tmp_path)}", "--limits=limits.yaml",
                             "--evidence-dir=ev"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    [journal] = list((tmp_path / "ev").glob("*/journal.jsonl"))
    contents = read_journal(journal)
    assert contents.events[-1]["type"] == "run_end", out
    record = rebuild(contents)
    assert record.outcome is Outcome.ABORTED
    outcomes = {t.test_id.split("::")[1]: t.outcome for t in record.tests}
    assert outcomes == {"test_first": Outcome.PASS, "test_long": Outcome.ABORTED}


def test_a_station_with_a_key_signs_its_runs(tmp_path: Path) -> None:
    """settings.signing_key reaches the store: the run verifies against the station's public
    key, and the key file itself is nowhere in the evidence."""
    from typer.testing import CliRunner

    from harness.cli import app

    keys = tmp_path / "keys"
    made = CliRunner().invoke(app, ["station", "keygen", "--station-id", "ev", "--out",
                                    str(keys)])
    assert made.exit_code == 0, made.output
    st = station(tmp_path)
    st.write_text(st.read_text() + f"settings: {{signing_key: {keys / 'ev.key'}}}\n")
    (tmp_path / "limits.yaml").write_text(LIMITS)
    (tmp_path / "test_one.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.hil_measures("mean_dn", "noise_dn")
        def test_one(hil_check, hil_station):
            hil_check("mean_dn", 500.0, "DN")
            hil_check("noise_dn", 1.0, "DN")
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("HARNESS_SIGNING_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--station={st}",
         "--limits=limits.yaml", "--evidence-dir=ev", "--records=rec.sqlite", "test_one.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verified = CliRunner().invoke(app, ["records", "verify", "--records",
                                        str(tmp_path / "rec.sqlite"), "--keys", str(keys)])
    assert verified.exit_code == 0, verified.output
    private = (keys / "ev.key").read_bytes()
    for path in [*(tmp_path / "ev").rglob("*"), tmp_path / "rec.sqlite"]:
        if path.is_file():
            assert private not in path.read_bytes()
