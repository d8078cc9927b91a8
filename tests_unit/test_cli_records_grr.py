"""`harness records grr` on a records database built with the harness's own RecordStore: five
DUTs x two stations x three runs of values from a known model, plus runs the study must leave
out or trim."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.analysis.grr import measure_gauge_rr
from harness.cli import app
from harness.evidence.model import RunRecord, TestRecord
from harness.evidence.records import RecordStore
from harness.measurement import Measurement

runner = CliRunner()

DUTS = ("D1", "D2", "D3", "D4", "D5")
STATIONS = ("st-A", "st-B")
OPERATORS = {"st-A": "ana", "st-B": "ben"}
TRUE = {"D1": 10.0, "D2": 11.0, "D3": 12.0, "D4": 13.0, "D5": 14.0}
BIAS = {"st-A": 0.0, "st-B": 0.2}
REPEATS = 3


def run(run_id: str, dut: str, station: str, minute: int, mtf: float, *,
        lone: float | None = None) -> RunRecord:
    """One run holding the figure twice against two limits (wide MTF-1, tight MTF-TIGHT), a
    one-sided NOISE-1 at a condition and, optionally, LONE-1."""
    figures = [Measurement.judged("mtf50", mtf, "cy/px", low=5.0, high=20.0, limit_id="MTF-1"),
               Measurement.judged("mtf50_tight", mtf, "cy/px", low=11.5, high=12.5,
                                  limit_id="MTF-TIGHT"),
               Measurement.judged("noise", mtf / 10, "DN", high=5.0, limit_id="NOISE-1",
                                  condition={"gain_db": 6})]
    if lone is not None:
        figures.append(Measurement.judged("lone", lone, "px", high=10.0, limit_id="LONE-1"))
    outcome = max((m.outcome for m in figures), key=lambda o: o.rank)
    started = f"2026-11-20T{8 + minute // 60:02d}:{minute % 60:02d}:00.000000+00:00"
    test = TestRecord("tests_hil/test_optics.py::test_mtf", outcome, family="sfr",
                      measurements=tuple(figures))
    return RunRecord(run_id=run_id, station=station, outcome=outcome, product="cam-a",
                     dut_serial=dut, operator=OPERATORS[station], started=started,
                     ended=started, limits_hash="ab" * 32, tests=(test,))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    """The database and the designed (parts, stations, repeats) array of MTF values."""
    rng = np.random.default_rng(1288)
    design = np.empty((len(DUTS), len(STATIONS), REPEATS))
    path = tmp_path_factory.mktemp("grr") / "records.sqlite"
    minute = 0
    with RecordStore(path) as store:
        for k in range(REPEATS):
            for i, dut in enumerate(DUTS):
                for j, station in enumerate(STATIONS):
                    value = round(TRUE[dut] + BIAS[station] + rng.normal(0, 0.1), 4)
                    design[i, j, k] = value
                    lone = 3.0 + k if station == "st-A" else None
                    store.add_run(run(f"r{minute}", dut, station, minute, value, lone=lone))
                    minute += 1
        # a 4th, later run of D1 on st-A (an outlier): trimmed, each cell keeps its first 3
        store.add_run(run("late", "D1", "st-A", 200, 99.0))
        # a DUT measured on one station only: left out of the crossed study
        store.add_run(run("solo", "D9", "st-A", 201, 12.0))
    return str(path), design


def _grr(db: str, *args: str) -> dict[str, dict[str, Any]]:
    out = runner.invoke(app, ["records", "grr", "--records", db, "--product", "cam-a",
                              "--json", *args])
    assert out.exit_code == 0, out.output
    return {s["limit_id"]: s for s in json.loads(out.stdout)}


def test_grr_json_matches_the_designed_study(study: tuple[str, np.ndarray]) -> None:
    """The query places each value in its (DUT, station) cell, keeps the earliest 3 runs of
    a cell with 4, leaves out a DUT seen on one station only, and the components are those of
    the designed array (the same analysis on the generator's own array: the test checks the
    query, tests_unit/test_grr.py the statistics). The model's station bias of 0.2 and noise of
    0.1 against the tight limit's tolerance of 1 give %GRR near 100·6·0.17/1 ≈ 100 %: not
    capable; against the wide limit (tolerance 15) under 10 %: acceptable."""
    db, design = study
    studies = _grr(db)
    assert set(studies) == {"MTF-1", "MTF-TIGHT", "NOISE-1", "LONE-1"}
    wide = studies["MTF-1"]
    assert (wide["parts"], wide["appraisers"], wide["repeats"]) == (
        list(DUTS), list(STATIONS), REPEATS)
    expected = measure_gauge_rr(design, low=5.0, high=20.0)
    result = wide["result"]
    assert isinstance(result, dict)
    for key in ("var_repeatability", "var_appraiser", "var_interaction", "var_part",
                "pct_grr_tolerance", "pct_grr_total", "ndc"):
        assert result[key] == pytest.approx(getattr(expected, key), rel=1e-9), key
    assert result["capability"] == "acceptable" and wide["not_capable"] is False
    notes = " ".join(str(n) for n in wide["notes"])
    assert "earliest 3" in notes and "D9" in notes
    tight = studies["MTF-TIGHT"]
    assert tight["not_capable"] is True
    assert tight["result"]["pct_grr_tolerance"] > 30
    noise = studies["NOISE-1"]
    assert noise["condition"] == {"gain_db": 6}
    assert noise["result"]["sides"] == "max"
    lone = studies["LONE-1"]
    assert lone["result"] is None
    assert str(lone["problem"]).startswith("not enough data: 1 station(s)")


def test_by_operator_until_and_limit(study: tuple[str, np.ndarray]) -> None:
    """Operators map one-to-one to stations here, so --by operator gives the same study;
    --until the day before the runs leaves nothing (an error); --until a moment before the
    late runs leaves every cell with 3 runs and no trimming note; --limit picks one limit."""
    db, _ = study
    by_station = _grr(db, "--limit", "MTF-1")
    by_operator = _grr(db, "--limit", "MTF-1", "--by", "operator")
    assert set(by_station) == {"MTF-1"}
    assert by_operator["MTF-1"]["appraisers"] == ["ana", "ben"]
    assert by_operator["MTF-1"]["result"]["var_grr"] == pytest.approx(
        by_station["MTF-1"]["result"]["var_grr"])
    before_late = _grr(db, "--limit", "MTF-1", "--until", "2026-11-20T11:00:00+00:00")
    assert not before_late["MTF-1"]["notes"]
    out = runner.invoke(app, ["records", "grr", "--records", db, "--product", "cam-a",
                              "--until", "2026-11-19"])
    assert out.exit_code == 2 and "no runs of product 'cam-a'" in out.output


def test_grr_table_flags_the_station_not_capable(study: tuple[str, np.ndarray]) -> None:
    db, _ = study
    out = runner.invoke(app, ["records", "grr", "--records", db, "--product", "cam-a"],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "MTF-TIGHT" in out.stdout and "station not capable of this limit" in out.stdout
    flagged = [line for line in out.stdout.splitlines() if "not capable of this limit" in line]
    assert len(flagged) == 1 and "MTF-TIGHT" in flagged[0]
    # the table's cells wrap at the console's width (fixed when the console was made): the
    # capability column is checked in --json; here the notes below the table, unwrapped
    assert "not enough data" in " ".join(out.stdout.split())


def test_json_is_strict(study: tuple[str, np.ndarray]) -> None:
    """No NaN or Infinity in --json (a figure that does not exist is null)."""
    db, _ = study

    def no_constants(name: str) -> None:
        raise ValueError(name)

    out = runner.invoke(app, ["records", "grr", "--records", db, "--product", "cam-a",
                              "--json"])
    json.loads(out.stdout, parse_constant=no_constants)


@pytest.mark.parametrize(("args", "wanted"), [
    (["--product", "nope"], "no runs of product 'nope'"),
    (["--product", "cam-a", "--by", "bench"], "--by"),
    (["--product", "cam-a", "--since", "last tuesday"], "--since"),
    (["--product", "cam-a", "--until", "soon"], "--until"),
    ([], "--product"),
])
def test_bad_inputs(study: tuple[str, np.ndarray], args: list[str], wanted: str) -> None:
    """Bad input: exit 2 and a one-line message naming the option, no traceback."""
    db, _ = study
    out = runner.invoke(app, ["records", "grr", "--records", db, *args])
    assert out.exit_code == 2, out.output
    assert wanted in out.output and "Traceback" not in out.output


def test_missing_database(tmp_path: Path) -> None:
    out = runner.invoke(app, ["records", "grr", "--records", str(tmp_path / "none.sqlite"),
                              "--product", "cam-a"])
    assert out.exit_code == 2 and "no records database here" in out.output
    assert not (tmp_path / "none.sqlite").exists()


def test_characterisation_and_rejudged_runs(tmp_path: Path) -> None:
    """2 DUTs x 2 stations: the first run of each cell a qualification run, the second a
    characterisation run. --characterisation exclude leaves 1 repeat (not enough data), only
    leaves 1 too, include gives the 2 x 2 x 2 study. A re-judged run (new value 50) is left out
    by default and stands in for the run it re-judged with --rejudged."""
    path = tmp_path / "records.sqlite"
    values = {("D1", "st-A"): [10.0, 10.1], ("D1", "st-B"): [10.3, 10.2],
              ("D2", "st-A"): [12.0, 12.2], ("D2", "st-B"): [12.1, 12.4]}
    minute = 0
    with RecordStore(path) as store:
        for k in range(2):
            for (dut, station), v in values.items():
                rec = run(f"r{minute}", dut, station, minute, v[k])
                if k == 1:
                    rec = replace(rec, characterisation=True)
                store.add_run(rec)
                minute += 1
        store.add_run(replace(run("again", "D1", "st-A", 100, 50.0), rejudged_from="r0"))
    db = str(path)
    design = np.array([[values[(d, s)] for s in STATIONS] for d in ("D1", "D2")])
    for mode, ok in (("exclude", False), ("only", False), ("include", True)):
        got = _grr(db, "--limit", "MTF-1", "--characterisation", mode)["MTF-1"]
        assert (got["result"] is not None) is ok, mode
    got = _grr(db, "--limit", "MTF-1")["MTF-1"]["result"]
    assert got["var_grr"] == pytest.approx(measure_gauge_rr(design, low=5, high=20).var_grr)
    design[0, 0, 0] = 50.0
    got = _grr(db, "--limit", "MTF-1", "--rejudged")["MTF-1"]["result"]
    assert got["var_grr"] == pytest.approx(measure_gauge_rr(design, low=5, high=20).var_grr)
    out = runner.invoke(app, ["records", "grr", "--records", db, "--product", "cam-a",
                              "--characterisation", "some"])
    assert out.exit_code == 2 and "--characterisation" in out.output
