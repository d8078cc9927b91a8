"""`harness records ...` and `harness report --from-journal` through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from harness.cli import app
from harness.evidence.journal import Journal
from harness.evidence.records import RecordStore
from harness.measurement import Measurement, Outcome
from tests_unit.test_records import make_run

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "records.sqlite"
    with RecordStore(path) as store:
        for i, gain in enumerate([0.1, 0.101, 0.099, 0.115]):
            store.add_run(make_run(f"r{i}", dut=f"D{i}", gain=gain,
                                   started=f"2026-11-2{i}T08:00:00.000000+00:00"))
    return str(path)


def test_runs_yield_cpk_trend(db: str) -> None:
    out = runner.invoke(app, ["records", "runs", "--records", db, "--json"])
    assert out.exit_code == 0, out.output
    runs = json.loads(out.stdout)
    assert [r["run_id"] for r in runs] == ["r3", "r2", "r1", "r0"]
    assert runs[0]["outcome"] == "FAIL"
    assert (runs[0]["attempt"], runs[0]["rejudged_from"]) == (1, "")
    out = runner.invoke(app, ["records", "yield", "--records", db, "--json"])
    report = json.loads(out.stdout)
    (sim1, total) = report["stations"]
    assert (sim1["station"], sim1["units"], sim1["first_pass"], sim1["final_pass"]) == \
        ("sim-1", 4, 3, 3)
    assert total["station"] is None and total["final_yield"] == pytest.approx(0.75)
    rows = {r["limit_id"]: r for r in report["limits"]}
    assert rows["EMVA-K-1"]["failing_latest"] == ["D3"]
    out = runner.invoke(app, ["records", "cpk", "--records", db, "--measurement",
                              "system_gain", "--json"])
    (cpk,) = json.loads(out.stdout)
    assert cpk["n"] == 4 and cpk["mean"] == pytest.approx(0.10375)
    assert cpk["condition"] == {"gain_db": 0, "wavelength_nm": 525}
    out = runner.invoke(app, ["records", "trend", "--records", db, "--since", "2026-11-22",
                              "--measurement", "system_gain", "--json"])
    trend = json.loads(out.stdout)
    assert [(t["day"], t["runs"], t["mean"]) for t in trend] == [
        ("2026-11-22", 1, pytest.approx(0.099)), ("2026-11-23", 1, pytest.approx(0.115))]
    assert runner.invoke(app, ["records", "runs", "--records", db]).exit_code == 0


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_every_json_output_is_strict_json(db: str) -> None:
    """NaN/Infinity never appear: a figure that does not exist (σ of one value, a yield of no
    units) is null."""
    with RecordStore(db) as store:  # a product with one unit: σ, Cp and Cpk do not exist
        store.add_run(make_run("solo", dut="S1", product="cam-solo"))
    commands = [["runs"], ["yield"], ["yield", "--rejudged"], ["cpk"], ["cpk", "--attempt",
                "first"], ["cpk", "--product", "cam-solo"], ["trend", "--measurement",
                "system_gain"], ["trend", "--measurement", "nothing"],
                ["yield", "--product", "none"]]
    for args in commands:
        out = runner.invoke(app, ["records", args[0], "--records", db, "--json", *args[1:]])
        assert out.exit_code == 0, (args, out.output)
        json.loads(out.stdout, parse_constant=_no_constants)
    out = runner.invoke(app, ["records", "cpk", "--records", db, "--json", "--product",
                              "cam-solo"])
    solo = json.loads(out.stdout, parse_constant=_no_constants)
    assert {(r["n"], r["std"], r["cp"], r["cpk"]) for r in solo} == {(1, None, None, None)}
    for args in (["yield"], ["cpk"], ["cpk", "--product", "cam-solo"]):
        out = runner.invoke(app, ["records", *args, "--records", db])
        assert out.exit_code == 0 and "Traceback" not in out.output
    out = runner.invoke(app, ["records", "cpk", "--records", db, "--attempt", "second"])
    assert out.exit_code == 2 and "first" in out.output and "latest" in out.output
    out = runner.invoke(app, ["records", "cpk", "--records", db, "--limits-hash", "zz"])
    assert out.exit_code == 2 and "--limits-hash" in out.output


def test_verify_exit_codes(db: str) -> None:
    out = runner.invoke(app, ["records", "verify", "--records", db])
    assert out.exit_code == 0 and "4 runs" in out.stdout
    with RecordStore(db) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET outcome = 'PASS' WHERE run_id = 'r3'"))
    out = runner.invoke(app, ["records", "verify", "--records", db])
    assert out.exit_code == 1 and "run r3 was edited" in out.stdout


def test_bad_inputs_are_one_line_errors(tmp_path: Path, db: str) -> None:
    out = runner.invoke(app, ["records", "runs", "--records", str(tmp_path / "none.sqlite")])
    assert out.exit_code == 2 and "no records database here" in out.output
    assert not (tmp_path / "none.sqlite").exists()
    out = runner.invoke(app, ["records", "runs", "--records", db, "--since", "yesterday-ish"])
    assert out.exit_code == 2 and "--since" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["records", "runs", "--records", "mysql://x@y/z"])
    assert out.exit_code == 2 and "unsupported database 'mysql'" in out.output
    out = runner.invoke(app, ["report"])
    assert out.exit_code == 2 and "exactly one" in out.output
    out = runner.invoke(app, ["report", str(tmp_path)])
    assert out.exit_code == 2 and "no *-result.json" in out.output
    out = runner.invoke(app, ["report", "--from-journal", str(tmp_path / "nope.jsonl")])
    assert out.exit_code == 2 and "no such journal file" in out.output


def test_report_from_journal(tmp_path: Path) -> None:
    """A killed run's journal → record (ABORTED) in the DB + Allure results + HTML report."""
    j = Journal(tmp_path / "run.jsonl", "run-k")
    j.run_start(station="sim-1", dut={"serial": "D9", "product": "cam-a"})
    j.test_start("t.py::test_gain", family="emva1288")
    j.measurement(Measurement.judged("system_gain", 0.1, "DN/e-", low=0.09, high=0.11,
                                     test_id="t.py::test_gain"))
    j.test_end("t.py::test_gain", Outcome.PASS)
    j.test_start("t.py::test_sfr", family="sfr")
    j.close()
    db = tmp_path / "rec.sqlite"
    results, report = tmp_path / "results", tmp_path / "report"
    args = ["report", "--from-journal", str(tmp_path / "run.jsonl"), "--records", str(db),
            "--results", str(results), "--out", str(report)]
    if shutil.which("node") is None or not Path("node_modules/.bin/allure").exists():
        args.append("--no-html")
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "ABORTED" in out.stdout and "journal incomplete" in out.stdout
    assert len(list(results.glob("*-result.json"))) == 2
    with RecordStore(db) as store:
        rec = store.get_run("run-k")
        assert rec.outcome is Outcome.ABORTED and not rec.complete
    if "--no-html" not in args:
        assert "2 tests: 1 passed, 0 failed, 1 broken" in " ".join(out.stdout.split())
        assert (report / "index.html").stat().st_size > 100_000
    again = runner.invoke(app, [*args, "--no-html"])
    assert again.exit_code == 0 and "already stored" in again.stdout
