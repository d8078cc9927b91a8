"""The pytest plugin: inert without --station; safe state on every exit path with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.devices.fakes import read_events

ORDER = ["power", "light", "meter", "focus", "chart", "camera"]


def run_pytest(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def make_station(tmp_path: Path, *, roles: list[str] | None = None, serial: str = "DUT-7",
                 record: Path | None = None) -> Path:
    rec = f", record_to: {record}" if record else ""
    lines = ["id: plug", f"lock_dir: {tmp_path / 'locks'}"]
    for role in roles or ORDER:
        s = serial if role == "camera" else role.upper()
        lines.append(f"{role}: {{driver: fake, serial: {s}{rec}}}")
    path = tmp_path / "station.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def outcome_counts(output: str) -> dict[str, int]:
    return {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}


def test_plugin_is_inert_in_an_unrelated_project(tmp_path: Path) -> None:
    project = tmp_path / "other"
    project.mkdir()
    (project / "test_other.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.fixture
        def station():
            return "theirs"

        def test_uses_own_fixture(station):
            assert station == "theirs"

        def test_plain():
            assert 1 + 1 == 2

        @pytest.mark.skip(reason="their skip")
        def test_skipped():
            pass
    """))
    with_plugin = run_pytest(project, "-rA")
    without_plugin = run_pytest(project, "-rA", "-p", "no:harness")
    assert with_plugin.returncode == without_plugin.returncode == 0, with_plugin.stdout
    assert outcome_counts(with_plugin.stdout) == outcome_counts(without_plugin.stdout) == {
        "passed": 2, "skipped": 1}
    # the plugin really was loaded in the first run (its options exist) ...
    assert "--station" in run_pytest(project, "--help").stdout
    # ... and added no autouse fixture to anybody's test
    fixtures = run_pytest(project, "--fixtures-per-test", "test_other.py::test_plain").stdout
    assert "hil_" not in fixtures


def test_the_entry_module_imports_nothing_heavy() -> None:
    """Installed, the plugin loads in every pytest run: its entry imports only pytest."""
    code = ("import sys, harness.pytestplugin\n"
            "heavy = ('numpy', 'cv2', 'matplotlib', 'sqlalchemy', 'allure', 'tifffile', "
            "'colour', 'harvesters', 'pydantic', 'scipy', 'yaml')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_characterise_records_info_and_is_never_pass(tmp_path: Path) -> None:
    station = make_station(tmp_path, roles=["light", "camera"])
    (tmp_path / "test_char.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.hil_measures("mean_dn")
        def test_mean(hil_camera, hil_check):
            hil_check("mean_dn", float(hil_camera.grab(2).frames.mean()), "DN")
    """))
    result = run_pytest(tmp_path, f"--station={station}", "--characterise",
                        "--evidence-dir=ev")
    assert result.returncode == 0, result.stdout  # a characterisation run is not a failure
    from harness.evidence.journal import rebuild
    from harness.measurement import Outcome

    [journal] = (tmp_path / "ev").glob("*/journal.jsonl")
    record = rebuild(journal)
    assert record.characterisation and record.outcome is Outcome.INCOMPLETE
    assert record.reason.startswith("characterisation run")
    assert [m.outcome for m in record.measurements] == [Outcome.INFO]
    assert "harness run" in result.stdout and ": INCOMPLETE" in result.stdout


def test_suite_passes_and_reaches_safe_state(tmp_path: Path) -> None:
    record = tmp_path / "events.txt"
    station = make_station(tmp_path, record=record)
    (tmp_path / "test_suite.py").write_text(textwrap.dedent("""
        import pytest

        def test_camera(hil_camera, hil_dut):
            assert hil_dut.serial == "DUT-7"
            assert len(hil_camera.grab(2)) == 2

        def test_dut_out_of_spec(hil_camera):
            assert hil_camera.grab(1).frames.mean() < 0, "out of spec"

        def test_station_fault(hil_light):
            hil_light.set_level(150)

        @pytest.mark.hil_requires("focus", "chart")
        def test_needs_focus(hil_focus):
            hil_focus.move_to(10)
    """))
    result = run_pytest(tmp_path, f"--station={station}", "--dut=DUT-7", "--characterise")
    assert outcome_counts(result.stdout) == {"passed": 2, "failed": 2}, result.stdout
    events = read_events(record)
    assert [e.split(":")[0] for e in events if e.endswith(":safe_state")] == ORDER[::-1]
    assert [e.split(":")[0] for e in events if e.endswith(":open")] == ORDER


def test_hil_requires_skips_with_reason(tmp_path: Path) -> None:
    station = make_station(tmp_path, roles=["light", "camera"])
    (tmp_path / "test_req.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.hil_requires("focus")
        def test_needs_focus(hil_focus):
            raise AssertionError("must not run")

        def test_fixture_of_absent_device_skips(hil_chart):
            raise AssertionError("must not run")

        @pytest.mark.hil_requires("light")
        def test_needs_light(hil_light):
            hil_light.on()
    """))
    result = run_pytest(tmp_path, f"--station={station}", "-rs", "--characterise")
    assert outcome_counts(result.stdout) == {"passed": 1, "skipped": 2}, result.stdout
    assert "station plug has no focus (hil_requires)" in result.stdout
    assert "station plug has no chart" in result.stdout


def test_dut_mismatch_is_an_error_not_a_failure(tmp_path: Path) -> None:
    station = make_station(tmp_path)
    (tmp_path / "test_dut.py").write_text("def test_a(hil_camera):\n    pass\n")
    result = run_pytest(tmp_path, f"--station={station}", "--dut=OTHER-1", "--characterise")
    assert outcome_counts(result.stdout) == {"error": 1}, result.stdout
    assert "DUT serial mismatch: --dut 'OTHER-1' but the camera reports 'DUT-7'" in result.stdout


def test_bad_station_file_stops_pytest_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: a\nlight: {driver: nosuch}\n")
    (tmp_path / "test_x.py").write_text("def test_a():\n    pass\n")
    result = run_pytest(tmp_path, f"--station={bad}")
    assert result.returncode == 4  # pytest's usage error
    assert "bad.yaml:2: light.driver: unknown light driver 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_run_reaches_safe_state(tmp_path: Path, sig: signal.Signals) -> None:
    record = tmp_path / "events.txt"
    station = make_station(tmp_path, record=record)
    ready = tmp_path / "ready"
    (tmp_path / "test_long.py").write_text(textwrap.dedent(f"""
        import pathlib, time

        def test_long(hil_camera):
            pathlib.Path({str(ready)!r}).write_text("x")
            time.sleep(60)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--station={station}", "--characterise"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out  # pytest's "interrupted"
    events = read_events(record)
    assert [e.split(":")[0] for e in events if e.endswith(":safe_state")] == ORDER[::-1], out
