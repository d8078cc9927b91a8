"""``harness station check``: identities, calibration, exit codes, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app
from harness.station.lock import StationLock

runner = CliRunner()


def station(tmp_path: Path, extra: str = "", due: str = "2099-01-01") -> Path:
    path = tmp_path / "st.yaml"
    path.write_text(
        f"id: chk\nlock_dir: {tmp_path / 'locks'}\n"
        "meter: {driver: fake, serial: M-1}\n"
        f"camera: {{driver: fake, serial: C-1{extra}}}\n"
        f"calibration:\n  meter: {{certificate: KM-9, due: {due}}}\n"
    )
    return path


def test_check_ok_prints_identities(tmp_path: Path) -> None:
    result = runner.invoke(app, ["station", "check", str(station(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "C-1" in result.output and "M-1" in result.output and "KM-9" in result.output


def test_check_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["station", "check", str(station(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["station"] == "chk"
    assert [d["identity"]["serial"] for d in report["devices"]] == ["M-1", "C-1"]
    assert report["calibration"][0]["status"] == "OK"
    assert report["problems"] == []


def test_check_expired_calibration_is_a_problem(tmp_path: Path) -> None:
    path = station(tmp_path, due="2020-02-02")
    result = runner.invoke(app, ["station", "check", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["problems"] == ["meter: calibration KM-9 expired on 2020-02-02"]
    assert report["calibration"][0]["status"] == "EXPIRED"
    allowed = runner.invoke(app, ["station", "check", str(path), "--allow-expired-calibration"])
    assert allowed.exit_code == 0, allowed.output


def test_check_failing_device_is_a_problem(tmp_path: Path) -> None:
    result = runner.invoke(app, ["station", "check", str(station(tmp_path, ", fail_on: [identity]"))])
    assert result.exit_code == 1
    assert "camera: identity failed" in result.output


def test_check_device_that_fails_to_open(tmp_path: Path) -> None:
    result = runner.invoke(app, ["station", "check", str(station(tmp_path, ", fail_on: [open]")),
                                 "--json"])
    assert result.exit_code == 1
    assert "open failed: camera: injected failure in open" in json.loads(result.stdout)["problems"][0]


def test_check_malformed_file_exit_2_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ncamera: {driver: fake, width: -1}\n")
    result = runner.invoke(app, ["station", "check", str(bad)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.yaml:2: camera.width" in lines[0], result.output


def test_check_locked_station_exit_3(tmp_path: Path) -> None:
    path = station(tmp_path)
    with StationLock("chk", tmp_path / "locks"):
        result = runner.invoke(app, ["station", "check", str(path)])
    assert result.exit_code == 3
    assert "station chk is in use by pid" in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["station", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "station file not found" in result.output
