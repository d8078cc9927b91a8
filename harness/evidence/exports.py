"""Exports of the stored runs for other tools: CSV, JSON lines, JUnit XML.

* **CSV** (:data:`CSV_COLUMNS`): one row per measurement, INFO figures included, with its
  run, attempt, DUT, station, product, limit, condition (canonical JSON), value, limits,
  outcome, the hashes of the limit spec and of the software that judged it, and the figure's
  standard uncertainty with the decision rule (and its k) that judged it. Numbers are
  written so that they read back exactly; a missing number is an empty cell.
* **JSON lines**: one run per line, the stored record (its tests with their measurements)
  with its ``attempt`` and ``record_hash``; strict JSON (``null``, never NaN).
* **JUnit XML** in the layout pytest writes (``xunit2``): one ``testsuite`` per run with the
  run's facts and every measurement as a ``property`` (xunit2 allows properties only on the
  suite), one ``testcase`` per test (``failure`` for FAIL; ``error`` for ERROR, ABORTED and
  INCOMPLETE; ``skipped``), and a ``verdict`` testcase carrying the run's own outcome, so that
  a dashboard never shows a run that was not PASS or MARGINAL as green.

Runs come in the order they were stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from harness.errors import ConfigError
from harness.evidence.model import RunRecord, TestRecord
from harness.evidence.records import RecordStore, RunSummary, canonical_json
from harness.measurement import Measurement, Outcome

CSV_COLUMNS = ("run_id", "attempt", "rejudged_from", "dut_serial", "station", "product",
               "started", "test_id", "measurement", "limit_id", "condition", "value", "unit",
               "low", "high", "outcome", "run_outcome", "limits_hash", "software_hash",
               "uncertainty", "decision", "coverage_k")


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JUNIT = "junit"

    @classmethod
    def parse(cls, text: str | Format) -> Format:
        try:
            return cls(str(text).lower())
        except ValueError:
            raise ConfigError(f"{text!r} is not an export format; allowed: csv, jsonl, junit",
                              field="--format") from None


def _software_hash(record: RunRecord) -> str:
    from harness.evidence.signoff import software_hash  # the sign-off owns its definition

    return software_hash(record)


def _number(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def csv_rows(runs: Iterable[tuple[RunSummary, RunRecord]]) -> Iterator[dict[str, str]]:
    """One :data:`CSV_COLUMNS` row per measurement of each run."""
    for summary, record in runs:
        software = _software_hash(record)
        for test in record.tests:
            for m in test.measurements:
                yield {"run_id": record.run_id, "attempt": str(summary.attempt),
                       "rejudged_from": record.rejudged_from, "dut_serial": record.dut_serial,
                       "station": record.station, "product": record.product,
                       "started": record.started, "test_id": test.test_id,
                       "measurement": m.name, "limit_id": m.limit_id,
                       "condition": canonical_json(dict(m.condition)),
                       "value": _number(m.value), "unit": m.unit, "low": _number(m.low),
                       "high": _number(m.high), "outcome": m.outcome.value,
                       "run_outcome": record.outcome.value,
                       "limits_hash": record.limits_hash, "software_hash": software,
                       "uncertainty": _number(m.uncertainty), "decision": m.decision,
                       "coverage_k": _number(m.coverage_k)}


def write_csv(runs: Iterable[tuple[RunSummary, RunRecord]], out: TextIO) -> int:
    """Write the CSV (header first); the number of measurement rows."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in csv_rows(runs):
        writer.writerow(row)
        count += 1
    return count


def run_line(summary: RunSummary, record: RunRecord) -> str:
    """One run as one line of strict JSON."""
    data = {**record.as_dict(), "attempt": summary.attempt,
            "record_hash": summary.record_hash, "chain_seq": summary.chain_seq}
    return json.dumps(data, ensure_ascii=False, allow_nan=False, sort_keys=True,
                      separators=(",", ":"), default=str)


def write_jsonl(runs: Iterable[tuple[RunSummary, RunRecord]], out: TextIO) -> int:
    """Write one run per line; the number of runs."""
    count = 0
    for summary, record in runs:
        out.write(run_line(summary, record) + "\n")
        count += 1
    return count


def _seconds(started: str, ended: str) -> str:
    try:
        span = dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)
    except (TypeError, ValueError):
        return "0.000"
    return f"{max(span.total_seconds(), 0.0):.3f}"


def _property_name(test: TestRecord, m: Measurement) -> str:
    condition = ",".join(f"{k}={v}" for k, v in sorted(dict(m.condition).items()))
    short = test.test_id.split("::")[-1]
    return f"{short}::{m.name}" + (f"[{condition}]" if condition else "")


def _property_value(m: Measurement) -> str:
    value = "n/a" if m.value is None else _number(m.value)
    limits = f"[{_number(m.low)}..{_number(m.high)}]" if m.limited else ""
    limit = f"{m.limit_id} " if m.limit_id else ""
    return " ".join(p for p in (value, m.unit, f"{limit}{limits}".strip(), m.outcome.value)
                    if p)


_FAILED = (Outcome.FAIL,)
_BROKEN = (Outcome.ERROR, Outcome.ABORTED, Outcome.INCOMPLETE)


def _testcase(suite: ET.Element, classname: str, name: str, time: str, outcome: Outcome,
              message: str) -> str:
    """Add a testcase; its kind: ``failures``, ``errors``, ``skipped`` or ``""``."""
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=time)
    text = message or outcome.value
    if outcome in _FAILED:
        ET.SubElement(case, "failure", message=f"{outcome.value}: {text}").text = text
        return "failures"
    if outcome in _BROKEN:
        ET.SubElement(case, "error", message=f"{outcome.value}: {text}").text = text
        return "errors"
    if outcome is Outcome.SKIPPED:
        ET.SubElement(case, "skipped", type="harness.skip", message=text)
        return "skipped"
    return ""


def junit_suite(summary: RunSummary, record: RunRecord) -> ET.Element:
    """One run as a ``testsuite`` element (see the module docstring)."""
    suite = ET.Element("testsuite", name=record.run_id)
    props = ET.SubElement(suite, "properties")
    facts = {"run_id": record.run_id, "outcome": record.outcome.value,
             "dut_serial": record.dut_serial, "product": record.product,
             "station": record.station, "attempt": str(summary.attempt),
             "rejudged_from": record.rejudged_from, "operator": record.operator,
             "limits_hash": record.limits_hash, "software_hash": _software_hash(record),
             "record_hash": summary.record_hash or ""}
    for key, value in facts.items():
        ET.SubElement(props, "property", name=key, value=value)
    for test in record.tests:
        for m in test.measurements:
            ET.SubElement(props, "property", name=_property_name(test, m),
                          value=_property_value(m))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    cases = 0
    for test in record.tests:
        classname, _, name = test.test_id.rpartition("::")
        kind = _testcase(suite, classname.replace("/", ".").removesuffix(".py"),
                         name or test.test_id, _seconds(test.started, test.ended),
                         test.outcome, test.message)
        cases += 1
        if kind:
            counts[kind] += 1
    kind = _testcase(suite, record.run_id, "verdict", _seconds(record.started, record.ended),
                     record.outcome, record.reason)
    cases += 1
    if kind:
        counts[kind] += 1
    suite.set("errors", str(counts["errors"]))
    suite.set("failures", str(counts["failures"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("tests", str(cases))
    suite.set("time", _seconds(record.started, record.ended))
    suite.set("timestamp", record.started)
    suite.set("hostname", record.station)
    return suite


_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(root: ET.Element) -> None:
    """Show characters XML 1.0 cannot hold (control characters) escaped, as pytest does."""
    def fix(text: str) -> str:
        return _NOT_XML.sub(lambda c: f"#x{ord(c.group()):02X}", text)

    for element in root.iter():
        for key, value in element.attrib.items():
            element.set(key, fix(value))
        if element.text:
            element.text = fix(element.text)


def write_junit(runs: Iterable[tuple[RunSummary, RunRecord]], out: TextIO) -> int:
    """Write one ``testsuites`` document; the number of runs."""
    root = ET.Element("testsuites", name="harness records")
    count = 0
    for summary, record in runs:
        root.append(junit_suite(summary, record))
        count += 1
    _xml_safe(root)
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="utf-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
    return count


WRITERS: dict[Format, Any] = {Format.CSV: write_csv, Format.JSONL: write_jsonl,
                              Format.JUNIT: write_junit}


def export(store: RecordStore, fmt: Format | str, out: TextIO, *,
           product: str | None = None, station: str | None = None,
           since: str | None = None) -> int:
    """Write the selected runs to ``out`` in ``fmt``; the number of rows (CSV) or runs."""
    writer = WRITERS[Format.parse(fmt)]
    return int(writer(store.records(product=product, station=station, since=since), out))


__all__ = ["CSV_COLUMNS", "Format", "csv_rows", "export", "junit_suite", "run_line",
           "write_csv", "write_jsonl", "write_junit"]
