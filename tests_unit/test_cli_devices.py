"""``harness devices`` against viky.cti (3 devices, serials 0-2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import genicam
import pytest
from typer.testing import CliRunner

from harness.cli import app

VIKY = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")
pytestmark = pytest.mark.skipif(not os.path.isfile(VIKY), reason="viky.cti not in this wheel")


def test_devices_json_lists_every_viky_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    result = CliRunner().invoke(app, ["devices", "--cti", VIKY, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["producers"] == [os.path.realpath(VIKY)]
    rows = report["devices"]
    assert sorted(r["serial"] for r in rows) == ["0", "1", "2"]
    assert {r["model"] for r in rows} == {"Viky"}
    assert all(r["vendor"] and r["access_status"] and r["producer"] == os.path.realpath(VIKY)
               for r in rows)
    assert {"user_name", "id", "tl_type", "index"} <= set(rows[0])


def test_devices_table_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENICAM_GENTL64_PATH", os.path.dirname(VIKY))
    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3 device(s), 1 producer(s)" in result.stdout
    assert "viky.cti" in result.stdout and "Viky" in result.stdout


def test_devices_bad_input_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 2
    assert "--cti: no GenTL producer: pass --cti PATH or set GENICAM_GENTL64_PATH" in result.output
    missing = tmp_path / "nope.cti"
    result = CliRunner().invoke(app, ["devices", "--cti", str(missing)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--cti: GenTL producer '{missing}' not found" in " ".join(result.output.split())
