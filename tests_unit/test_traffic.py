"""Instrument traffic (harness.devices.traffic): the line format and its escaping, the ring per
device, thread safety, no file without an open log, the redaction hook, write errors; and a
production driver against its simulator, whose commands, replies, timeout and retry all reach
the log."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.devices import traffic
from harness.devices.traffic import MAX_TEXT, TrafficRecorder, escape, format_line
from harness.errors import InstrumentError
from harness.sim.faults import InstrumentFault

from .instrument_sim import FAST, NO_WARMUP, driver, hub_of, no_leaks


def fields(line: str) -> list[str]:
    parts = line.rstrip("\n").split("\t")
    assert len(parts) == 6, line
    return parts


def body(path: Path) -> list[str]:
    """The log's event lines (comments left out)."""
    return [ln for ln in path.read_text(encoding="ascii").splitlines()
            if not ln.startswith("#")]


def test_line_format() -> None:
    when = dt.datetime(2025, 3, 1, 9, 12, 3, 117000, tzinfo=dt.UTC)
    line = format_line(when, 0.0123, "light", ">", "SOUR1:BRIG?", "attempt 2")
    assert line == "2025-03-01T09:12:03.117+00:00\t12.3\tlight\t>\tSOUR1:BRIG?\tattempt 2\n"
    stamp, ms, device, direction, text, note = fields(format_line(when, None, "psu", "!", "x"))
    assert (ms, device, direction, text, note) == ("", "psu", "!", "x", "")
    assert dt.datetime.fromisoformat(stamp) == when


def test_escaping_keeps_one_printable_ascii_line() -> None:
    assert escape(b"\x15#?!\xff") == "\\x15#?!\\xff"  # the simulators' garbage reply
    assert escape("a\tb\r\nc\\d") == "a\\tb\\r\\nc\\\\d"
    assert escape("\u00e9\u20ac\U0001f600\x00") == "\\xe9\\u20ac\\U0001f600\\x00"
    long = escape("x" * (MAX_TEXT + 5))
    assert long.endswith("...(+5 chars)") and len(long) < MAX_TEXT + 20
    line = format_line(dt.datetime.now(dt.UTC), 0.001, "dev\tice", "<",
                       bytes(range(256)), "n\no\nte")
    assert line.count("\n") == 1 and line.isascii() and len(fields(line)) == 6
    assert all(ch.isprintable() or ch in "\t\n" for ch in line)


def test_ring_per_device_keeps_the_last_events() -> None:
    rec = TrafficRecorder(ring=5)
    for i in range(8):
        rec.record("light", ">", f"CMD {i}")
    rec.record("meter", "<", "OK00")
    last = rec.last_exchanges("light", 3)
    assert [fields(ln)[4] for ln in last] == ["CMD 5", "CMD 6", "CMD 7"]
    assert len(rec.last_exchanges("light")) == 5  # the ring's size, oldest first
    assert [fields(ln)[4] for ln in rec.last_exchanges("meter")] == ["OK00"]
    assert rec.last_exchanges("chart") == [] and rec.last_exchanges("light", 0) == []
    rec.reset()
    assert rec.last_exchanges("light") == []


def test_no_file_without_an_open_log_and_the_backlog_goes_first(tmp_path: Path) -> None:
    rec = TrafficRecorder(backlog=3)
    for i in range(5):
        rec.record("light", ">", f"before {i}")  # the station opens before the run's folder
    assert list(tmp_path.iterdir()) == [] and rec.path is None
    path = tmp_path / "instruments.log"
    rec.open_log(path)
    rec.record("light", "<", "during")
    summary = rec.close_log()
    assert summary is not None and (summary.lines, summary.lost, summary.error) == (4, 0, "")
    text = path.read_text(encoding="ascii")
    assert text.startswith("# instrument traffic:")
    assert "# 2 earlier events were not kept (backlog full)" in text
    assert [fields(ln)[4] for ln in body(path)] == ["before 2", "before 3", "before 4",
                                                   "during"]
    rec.record("light", ">", "after")
    assert "after" not in path.read_text(encoding="ascii")  # closed: nothing more written
    assert rec.close_log() is None
    assert fields(rec.last_exchanges("light", 1)[0])[4] == "after"  # the ring still keeps it


def test_thread_safe(tmp_path: Path) -> None:
    rec = TrafficRecorder(ring=50)
    path = rec.open_log(tmp_path / "instruments.log")
    threads_n, events = 8, 400

    def worker(k: int) -> None:
        for i in range(events):
            rec.record(f"dev{k}", ">" if i % 2 else "<", f"{k}:{i}\n\xff", 0.001 * i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = rec.close_log()
    assert summary is not None and summary.lines == threads_n * events and not summary.lost
    lines = body(path)
    assert len(lines) == threads_n * events
    for k in range(threads_n):
        mine = [fields(ln)[4] for ln in lines if fields(ln)[2] == f"dev{k}"]
        assert mine == [f"{k}:{i}\\n\\xff" for i in range(events)]  # whole, in order
        assert [fields(ln)[4] for ln in rec.last_exchanges(f"dev{k}", 50)] == mine[-50:]


def test_redaction_hook() -> None:
    rec = TrafficRecorder()
    rec.set_redactor(lambda device, direction, text: text.replace("hunter2", "***"))
    rec.record("psu", ">", "SYST:PASS hunter2")
    assert fields(rec.last_exchanges("psu")[-1])[4] == "SYST:PASS ***"

    def broken(device: str, direction: str, text: str) -> str:
        raise RuntimeError(text)

    rec.set_redactor(broken)
    rec.record("psu", ">", "SYST:PASS hunter2")  # neither raises nor leaks the text
    assert fields(rec.last_exchanges("psu")[-1])[4] == "<redactor failed: RuntimeError>"
    rec.set_redactor(None)
    rec.record("psu", ">", "*IDN?")
    assert fields(rec.last_exchanges("psu")[-1])[4] == "*IDN?"


def test_a_failed_write_is_counted_never_raised() -> None:
    rec = TrafficRecorder()
    rec.open_log("/dev/full")  # every write fails with ENOSPC
    rec.record("light", ">", "*IDN?")
    rec.record("light", "<", "Harness,LED")
    summary = rec.close_log()
    assert summary is not None and summary.lines == 0 and summary.lost == 2
    assert "No space left" in summary.error
    assert len(rec.last_exchanges("light")) == 2


def test_open_log_refuses_an_unwritable_path(tmp_path: Path) -> None:
    rec = TrafficRecorder()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        rec.open_log(blocker / "instruments.log")
    assert rec.path is None


# -- a production driver against its simulator ------------------------------------------------


@pytest.fixture()
def process_log(tmp_path: Path) -> Iterator[Path]:
    """The process-wide recorder on a fresh log (what a run does)."""
    traffic.reset()
    path = traffic.open_log(tmp_path / "instruments.log")
    try:
        yield path
    finally:
        traffic.close_log()
        traffic.reset()


def test_driver_traffic_shows_commands_replies_timeout_and_retry(process_log: Path) -> None:
    specs = {"led": {"type": "scpi-led", "light": {"max_lux": 1000, **NO_WARMUP}},
             "meter": {"type": "cs100a", "light": "led", "noise_pct": 0.0}}
    with no_leaks(), hub_of(specs) as hub:
        led = driver("light", "scpi-led", hub, resource="sim:led", **FAST)
        meter = driver("meter", "cs100a", hub, port="sim:meter", **FAST)
        led.open()
        meter.open()
        try:
            led.set_level(40)
            hub.simulator("led").faults.arm(InstrumentFault(kind="delay", delay_s=0.3, count=1))
            assert led.level() == 40.0  # the first attempt times out, the retry answers
            hub.simulator("meter").faults.arm(InstrumentFault(kind="garbage", count=1))
            with pytest.raises(InstrumentError, match="undecodable"):
                meter.read()
        finally:
            led.safe_state()
            led.close()
            meter.close()
    summary = traffic.close_log()
    assert summary is not None and not summary.lost
    rows = [fields(ln) for ln in body(process_log)]
    light = [(r[3], r[4], r[5]) for r in rows if r[2] == "light"]
    assert light[0][0] == "!" and light[0][1].startswith("open TCPIP")
    assert (">", "*IDN?", "") in light and ("<", "Harness,LED-SCPI,LED-0001,1.2", "") in light
    assert (">", "SOUR1:BRIG 40.000", "") in light
    timed_out = light.index(("!", "timeout: no reply within 0.2 s", "re-sending"))
    assert light[timed_out - 1:timed_out + 3] == [
        (">", "SOUR1:BRIG?", ""),
        ("!", "timeout: no reply within 0.2 s", "re-sending"),
        (">", "SOUR1:BRIG?", "attempt 2"),
        ("<", "40.000", "")]
    assert light[-1] == ("!", "close", "")
    timeout = next(r for r in rows if r[4].startswith("timeout"))
    assert 190.0 <= float(timeout[1]) < 1000.0  # the time it waited, in ms
    meter_rows = [(r[3], r[4], r[5]) for r in rows if r[2] == "meter"]
    assert ("<", "\\x15#?!\\xff", "undecodable") in meter_rows  # escaped, the file intact
    assert any(d == "!" and t.startswith("error: undecodable reply (command 'MES'")
               for d, t, _ in meter_rows)
    last = [(f[3], f[4][:24]) for f in map(fields, traffic.last_exchanges("meter", 3))]
    assert last == [("<", "\\x15#?!\\xff"), ("!", "error: undecodable reply"),
                    ("!", "close")]  # what a report attaches for the meter's ERROR
