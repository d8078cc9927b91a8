"""Journal: fsync per event, survives SIGKILL, torn tail, failed writes never read as PASS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import ConfigError, EvidenceError
from harness.evidence.journal import Journal, read_journal, rebuild
from harness.evidence.model import Artefact
from harness.measurement import Measurement, Outcome, worst

K = Measurement.judged("system_gain", 0.1002, "DN/e-", low=0.09, high=0.11,
                       marginal_low=0.092, marginal_high=0.108, limit_id="EMVA-K-1",
                       test_id="t_gain")


def test_allure_parameter_and_judging() -> None:
    assert K.allure_parameter() == "0.1002 DN/e- [0.09..0.11] PASS"
    assert K.outcome is Outcome.PASS and K.margin == pytest.approx(0.0098)
    low = Measurement.judged("dsnu", 0.091, "DN", low=0.09, high=0.11, marginal_low=0.092)
    assert low.outcome is Outcome.MARGINAL
    out = Measurement.judged("dsnu", 1.5, "DN", high=1.0)
    assert out.outcome is Outcome.FAIL and out.margin == pytest.approx(-0.5)
    assert out.allure_parameter() == "1.5 DN [..1] FAIL"
    nan = Measurement.judged("snr", float("nan"), "dB", low=30)
    assert nan.outcome is Outcome.ERROR and nan.value is None
    assert nan.allure_parameter() == "n/a dB [30..] ERROR"
    assert Measurement.from_dict(json.loads(json.dumps(K.as_dict()))) == K
    assert worst([Outcome.PASS, Outcome.FAIL, Outcome.ERROR]) is Outcome.ERROR
    assert worst([Outcome.SKIPPED, Outcome.MARGINAL]) is Outcome.MARGINAL
    with pytest.raises(ValueError, match="allowed: PASS"):
        Outcome.parse("good")


def _full_run(path: Path) -> Journal:
    j = Journal(path, "run-1")
    j.run_start(station="sim-1", dut={"serial": "SIM-0001", "firmware": "1.2",
                                      "product": "cam-a"},
                operator="ana", software={"harness": "0.1.0"}, limits_file="limits/a.yaml",
                limits_hash="ab" * 32)
    j.test_start("t_gain", title="System gain", family="emva1288")
    j.capture("t_gain", frames=["11" * 32, "22" * 32], capture_set="out/cs1")
    j.measurement(K)
    j.test_end("t_gain", Outcome.PASS)
    return j


def test_complete_run_rebuilds(tmp_path: Path) -> None:
    j = _full_run(tmp_path / "j.jsonl")
    j.test_start("t_dark", family="defects")
    j.measurement(Measurement.judged("hot_pixels", 12, "px", high=10), test_id="t_dark")
    j.artefact("t_dark", Artefact(sha256="33" * 32, kind="plot", name="defect map"))
    j.test_end("t_dark", Outcome.PASS)  # declared PASS, but a measurement failed
    assert j.run_end(Outcome.PASS) is Outcome.FAIL
    j.close()
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == list(range(1, 11))
    rec = rebuild(tmp_path / "j.jsonl")
    assert rec.complete and rec.outcome is Outcome.FAIL
    assert [t.outcome for t in rec.tests] == [Outcome.PASS, Outcome.FAIL]
    assert rec.dut_serial == "SIM-0001" and rec.product == "cam-a"
    assert rec.limits_hash == "ab" * 32
    assert [a.kind for a in rec.artefacts] == ["frame", "frame", "plot"]
    assert rec.tests[0].measurements == (K,)


def test_unfinished_run_is_aborted_never_pass(tmp_path: Path) -> None:
    j = _full_run(tmp_path / "j.jsonl")
    j.test_start("t_sfr", family="sfr")
    rec = rebuild(tmp_path / "j.jsonl")
    assert not rec.complete and rec.outcome is Outcome.ABORTED
    assert rec.tests[0].outcome is Outcome.PASS
    assert rec.tests[1].outcome is Outcome.ABORTED
    assert "without run_end" in rec.reason


def test_torn_last_line_and_damaged_middle(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _full_run(path).close()
    with path.open("ab") as fh:
        fh.write(b'{"seq":6,"time":"2026-01-01T00:00:00","type":"measur')
    contents = read_journal(path)
    assert contents.torn_tail and not contents.damaged_lines and len(contents.events) == 5
    assert rebuild(contents).outcome is Outcome.ABORTED
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    contents = read_journal(path)
    assert contents.damaged_lines == (3,)
    rec = rebuild(contents)
    assert rec.outcome is Outcome.ABORTED and "damaged" in rec.reason
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + json.dumps(
        {"seq": 6, "type": "run_end", "outcome": "PASS"}).encode() + b"\n")
    # Ended, but a line is damaged and the sequence jumps: ERROR, not PASS.
    assert rebuild(path).outcome is Outcome.ERROR
    with path.open("ab") as fh:  # valid JSON, but a measurement without its fields
        fh.write(b'{"seq":7,"type":"measurement","measurement":{"name":"x"}}\n')
    rec = rebuild(path)
    assert rec.outcome is Outcome.ERROR and "#7 (measurement) is malformed" in rec.reason


def test_evidence_error_wins_over_pass(tmp_path: Path) -> None:
    j = _full_run(tmp_path / "j.jsonl")
    j.error("could not store frame 3: disk full", kind="evidence")
    assert j.run_end(Outcome.PASS) is Outcome.ERROR
    assert rebuild(tmp_path / "j.jsonl").outcome is Outcome.ERROR


def test_failed_write_raises_and_forces_error() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to make a write fail with ENOSPC")
    j = Journal("/dev/full", "run-x")
    with pytest.raises(EvidenceError, match="write failed"):
        j.run_start(station="s", dut={})
    assert j.failed and j.outcome is Outcome.ERROR
    with pytest.raises(EvidenceError):
        j.run_end(Outcome.PASS)
    j.close()


def test_journal_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(EvidenceError, match="cannot open"):
        Journal(tmp_path / "file" / "j.jsonl", "r")


def test_bad_journal_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such journal file"):
        rebuild(tmp_path / "missing.jsonl")
    (tmp_path / "e.jsonl").write_text('{"seq":1,"type":"test_start","test_id":"x"}\n')
    with pytest.raises(ConfigError, match=r"e\.jsonl: .*run_start"):
        rebuild(tmp_path / "e.jsonl")


CHILD = textwrap.dedent("""
    import sys
    from harness.evidence.journal import Journal
    from harness.measurement import Measurement
    j = Journal(sys.argv[1], "run-kill")
    j.run_start(station="sim-1", dut={"serial": "D1"})
    j.test_start("t_loop")
    i = 0
    while True:
        i += 1
        j.measurement(Measurement.judged(f"m{i}", float(i), "DN", high=1e9,
                                         test_id="t_loop"))
        print(i, flush=True)
""")


def test_sigkill_mid_run_keeps_every_event(tmp_path: Path) -> None:
    """A real process killed with SIGKILL: every event whose write returned is on disk."""
    path = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 25:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    rec = rebuild(path)
    assert not rec.complete and rec.outcome is Outcome.ABORTED
    names = [m.name for m in rec.measurements]
    assert len(names) >= acknowledged
    assert names[:acknowledged] == [f"m{i}" for i in range(1, acknowledged + 1)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_a_line_and_its_count_waits_for_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals) -> None:
    """A signal delivered the moment a journal line is out (here: raised from inside the
    write) is acted on once the line is counted, so the next event takes the next number.
    Without the hold the next event reused the number (test_signals saw ``seq 10 -> 9``)."""
    import harness.evidence.journal as journal_module
    from harness.evidence.interrupts import install, restore

    class Stop(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = install((sig,), stop)
    j = Journal.create(tmp_path, "sig-run")
    real_write = os.write
    fired: list[int] = []

    def write_then_signal(fd: int, data: bytes | memoryview) -> int:
        n = real_write(fd, data)
        if not fired:
            fired.append(n)
            signal.raise_signal(sig)  # its handler runs at the next bytecode, here
        return n

    try:
        j.run_start(station="s", dut={"serial": "d"})
        monkeypatch.setattr(journal_module.os, "write", write_then_signal)
        with pytest.raises(Stop, match=sig.name):
            j.test_start("t1", title="t", family="f")
        monkeypatch.setattr(journal_module.os, "write", real_write)
        j.test_end("t1", Outcome.PASS)
    finally:
        restore(previous)
        j.close()
    seqs = [e["seq"] for e in read_journal(j.path).events]
    assert fired and seqs == [1, 2, 3]
