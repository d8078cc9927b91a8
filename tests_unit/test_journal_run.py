"""RunEvidence: journal → Allure → records; a failed records write makes the run ERROR."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.evidence.journal import rebuild
from harness.evidence.records import RecordStore
from harness.evidence.run import RunEvidence, software_versions
from harness.measurement import Measurement, Outcome


def _run(tmp_path: Path, records: str) -> tuple[RunEvidence, Outcome]:
    run = RunEvidence(tmp_path / "runs", station="sim-1", dut={"serial": "D1"},
                      limits_hash="ef" * 32, records=records, run_id="run-e")
    run.test_start("t.py::test_gain", family="emva1288")
    run.capture("t.py::test_gain", ["aa" * 32, "bb" * 32], capture_set="out/cs")
    run.measurement(Measurement.judged("system_gain", 0.1, "DN/e-", low=0.09, high=0.11,
                                       test_id="t.py::test_gain"))
    run.attach("t.py::test_gain", b"\x89PNG\r\n\x1a\nfake", "ptc")
    run.test_end("t.py::test_gain", Outcome.PASS)
    record = run.finish(Outcome.PASS, alluredir=tmp_path / "allure")
    return run, record.outcome


def test_run_is_journalled_and_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "rec.sqlite")
    run, outcome = _run(tmp_path, db)
    assert outcome is Outcome.PASS and run.stored is not None and run.stored.chain_seq == 1
    sha = hashlib.sha256(b"\x89PNG\r\n\x1a\nfake").hexdigest()
    assert (run.dir / "artefacts" / f"{sha}.png").is_file()
    with RecordStore(db) as store:
        rec = store.get_run("run-e")
        assert [a.kind for a in rec.artefacts] == ["frame", "frame", "plot"]
        assert rec.software["python"] and rec.outcome is Outcome.PASS
        assert store.verify().ok
    env = (tmp_path / "allure" / "environment.properties").read_text()
    assert "dut.serial=D1" in env and "software.python=" in env


def test_failed_records_write_is_error_never_pass(tmp_path: Path) -> None:
    run, outcome = _run(tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    assert outcome is Outcome.ERROR and run.stored is None
    rebuilt = rebuild(run.dir / "journal.jsonl")
    assert rebuilt.outcome is Outcome.ERROR and "records" in rebuilt.reason


def test_software_versions() -> None:
    v = software_versions(["numpy", "no-such-package-xyz"])
    assert v["numpy"][0].isdigit() and v["no-such-package-xyz"] == "not installed"
    assert "python" in v
