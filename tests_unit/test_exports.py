"""Exports: CSV rows are the stored measurements (read back with the csv module), JSON lines
parse strictly, JUnit XML has the element and attribute layout pytest's own xunit2 report has."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evidence.exports import CSV_COLUMNS, export
from harness.evidence.model import TestRecord
from harness.evidence.records import RecordStore
from harness.evidence.signoff import software_hash
from harness.measurement import Measurement, Outcome
from tests_unit.test_records import at, make_run, mtf_corners, with_figures

runner = CliRunner()


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    """Runs of every kind: passing, failing, re-judged, INFO figures, eight corner fields,
    a skipped and an errored test, a message with a control character."""
    db = RecordStore(tmp_path / "records.sqlite")
    info = Measurement.judged("temperature", 41.25, "degC")
    db.add_run(with_figures(make_run("e1", dut="U1", gain=0.1 + 1e-13, started=at(0)),
                            info, *mtf_corners([0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37,
                                                0.38])))
    db.add_run(make_run("e2", dut="U1", gain=0.12, started=at(1)))
    failing = make_run("e3", dut="U2", gain=0.1, started=at(2), outcome=Outcome.ERROR)
    broken = (TestRecord("tests_hil/test_power.py::test_current", Outcome.ERROR,
                         message="meter: no reply \x1b[31m after 3 tries"),
              TestRecord("tests_hil/test_colour.py::test_ccm", Outcome.SKIPPED,
                         message="station has no chart"))
    db.add_run(replace(failing, tests=(*failing.tests, *broken), reason="meter fault"))
    db.add_run(replace(make_run("e3-rj", dut="U2", started=at(3)), rejudged_from="e3",
                       station="sim-rj"))
    yield db
    db.close()


def test_csv_rows_are_the_stored_measurements(store: RecordStore) -> None:
    out = io.StringIO()
    count = export(store, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = []
    attempts = {r.run_id: r.attempt for r in store.runs()}
    for run_id in ("e1", "e2", "e3", "e3-rj"):
        record = store.get_run(run_id)
        for test in record.tests:
            for m in test.measurements:
                expected.append((record, test, m))
    assert count == len(rows) == len(expected) == 2 + 9 + 2 + 2 + 2
    for row, (record, test, m) in zip(rows, expected, strict=True):
        assert (row["run_id"], row["dut_serial"], row["station"], row["product"]) == (
            record.run_id, record.dut_serial, record.station, record.product)
        assert int(row["attempt"]) == attempts[record.run_id]
        assert row["rejudged_from"] == record.rejudged_from
        assert (row["test_id"], row["measurement"], row["limit_id"]) == (
            test.test_id, m.name, m.limit_id)
        assert json.loads(row["condition"]) == m.condition
        assert float(row["value"]) == m.value  # exactly: numbers read back bit for bit
        for side in ("low", "high"):
            bound = getattr(m, side)
            assert (row[side] == "") if bound is None else float(row[side]) == bound
        assert (row["unit"], row["outcome"], row["run_outcome"]) == (
            m.unit, m.outcome.value, record.outcome.value)
        assert row["limits_hash"] == record.limits_hash
        assert row["software_hash"] == software_hash(record)
    assert [r["attempt"] for r in rows if r["measurement"] == "hot_pixels"] == \
        ["1", "2", "1", "1"]
    info = [r for r in rows if r["measurement"] == "temperature"]
    assert [(r["limit_id"], r["outcome"], r["low"]) for r in info] == [("", "INFO", "")]
    corners = [json.loads(r["condition"])["field"] for r in rows
               if r["limit_id"] == "MTF50-CORNER"]
    assert len(set(corners)) == 8
    assert float(rows[0]["value"]) == 0.1 + 1e-13


def test_json_lines_parse_strictly_one_run_per_line(store: RecordStore) -> None:
    out = io.StringIO()
    assert export(store, "jsonl", out) == 4
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    chain = {r.run_id: r for r in store.runs()}
    for line in lines:
        data = json.loads(line, parse_constant=_no_constants)
        run_id = data["run_id"]
        stored = store.get_run(run_id).as_dict()
        assert {k: v for k, v in data.items()
                if k not in ("attempt", "record_hash", "chain_seq")} == stored
        assert (data["attempt"], data["record_hash"]) == (chain[run_id].attempt,
                                                          chain[run_id].record_hash)
        assert sum(len(t["measurements"]) for t in data["tests"]) == \
            len(store.get_run(run_id).measurements)
    assert json.loads(lines[3])["rejudged_from"] == "e3"


PYTEST_SAMPLE = '''
import pytest

def test_passes(record_testsuite_property):
    record_testsuite_property("station", "sim-1")

def test_fails():
    assert 1 == 2, "out of spec"

@pytest.fixture
def broken():
    raise RuntimeError("meter fault")

def test_errors(broken):
    pass

def test_skipped():
    pytest.skip("no chart")
'''


def _layout(root: ET.Element) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """For each tag: the child tags it holds and the attribute names it has."""
    children: dict[str, set[str]] = defaultdict(set)
    attributes: dict[str, set[str]] = defaultdict(set)
    for element in root.iter():
        attributes[element.tag] |= set(element.attrib)
        children[element.tag] |= {child.tag for child in element}
    return children, attributes


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory: pytest.TempPathFactory) -> ET.Element:
    """The JUnit XML pytest itself writes (junit_family xunit2) for pass/fail/error/skip."""
    where = tmp_path_factory.mktemp("pytest-junit")
    (where / "test_sample.py").write_text(textwrap.dedent(PYTEST_SAMPLE))
    (where / "pytest.ini").write_text("[pytest]\njunit_family = xunit2\n")
    report = where / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}", "test_sample.py"], cwd=where,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # one test fails, as meant
    return ET.parse(report).getroot()


def test_junit_has_pytests_xunit2_layout(store: RecordStore, pytest_junit: ET.Element) -> None:
    out = io.StringIO()
    assert export(store, "junit", out) == 4
    ours = ET.fromstring(out.getvalue())
    theirs_children, theirs_attributes = _layout(pytest_junit)
    our_children, our_attributes = _layout(ours)
    assert ours.tag == pytest_junit.tag == "testsuites"
    for tag in our_children:
        assert tag in theirs_attributes, f"pytest never writes <{tag}>"
        assert our_children[tag] <= theirs_children[tag], tag
        assert our_attributes[tag] == theirs_attributes[tag], tag
    for suite in ours.iter("testsuite"):  # the counts agree with the cases
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        for kind, tag in (("failures", "failure"), ("errors", "error"),
                          ("skipped", "skipped")):
            assert int(suite.get(kind, "")) == sum(len(c.findall(tag)) for c in cases)
    suites = {s.get("name"): s for s in ours.iter("testsuite")}
    e1 = suites["e1"]
    props = {p.get("name"): p.get("value") for p in e1.iter("property")}
    record = store.get_run("e1")
    measured = [k for k in props if "::" in k]
    assert len(measured) == len(record.measurements) == 11
    assert props["test_gain::system_gain[gain_db=0,wavelength_nm=525]"] == \
        f"{0.1 + 1e-13!r} DN/e- EMVA-K-1 [0.09..0.11] PASS"
    assert props["test_mtf::temperature"] == "41.25 degC INFO"
    assert (props["outcome"], props["attempt"], props["software_hash"]) == (
        "PASS", "1", software_hash(record))
    e3 = suites["e3"]
    verdict = next(c for c in e3.iter("testcase") if c.get("name") == "verdict")
    assert verdict.find("error") is not None and "meter fault" in verdict.find("error").text
    power = next(c for c in e3.iter("testcase") if c.get("name") == "test_current")
    assert power.get("classname") == "tests_hil.test_power"
    assert "#x1B" in power.find("error").get("message")
    assert (e3.get("errors"), e3.get("skipped"), e3.get("failures")) == ("2", "1", "0")
    assert suites["e2"].get("failures") == "2"  # the gain test and the run's verdict


def test_export_cli(store: RecordStore, tmp_path: Path) -> None:
    db = str(tmp_path / "records.sqlite")
    target = tmp_path / "out" / "all.csv"
    out = runner.invoke(app, ["records", "export", "--format", "csv", "--records", db,
                              "--out", str(target), "--product", "cam-a"])
    assert out.exit_code == 0, out.output
    assert len(list(csv.DictReader(target.open()))) == 17
    assert "17 measurements written" in out.output
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    out = runner.invoke(app, ["records", "export", "--format", "jsonl", "--records", db,
                              "--station", "sim-rj"])
    assert out.exit_code == 0
    (line,) = out.stdout.splitlines()
    assert json.loads(line, parse_constant=_no_constants)["run_id"] == "e3-rj"
    out = runner.invoke(app, ["records", "export", "--format", "junit", "--records", db,
                              "--since", "2026-11-20T10:02:00"])
    assert out.exit_code == 0
    assert [s.get("name") for s in ET.fromstring(out.stdout).iter("testsuite")] == \
        ["e3", "e3-rj"]
    out = runner.invoke(app, ["records", "export", "--format", "xml", "--records", db])
    assert out.exit_code == 2 and "csv" in out.output and "junit" in out.output
