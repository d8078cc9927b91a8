"""Concurrency (issue Reliability §4), with whole pytest runs of ``tests_hil`` on simulated
stations:

* a second run on a station that is in use is refused at once, naming the holder (pid, host),
  and the first run is undisturbed (the lock itself: tests_unit/test_station_lifecycle.py);
* two stations writing to one SQLite records database at the same time: every run is stored,
  each stored record equals its journal (nothing lost), and the hash chains verify;
* the lock of a run killed with SIGKILL is recovered: the next run on that station completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.evidence.journal import read_journal, rebuild
from harness.evidence.records import RecordStore
from harness.measurement import Outcome
from harness.run.fault_matrix import DEFAULT_LIMITS, DEFAULT_STATION, ROOT, write_station

INTERFACE = str(ROOT / "tests_hil" / "test_interface.py")
QUICK = ("-k", "identity or feature_ranges")  # measured figures, a couple of seconds
RUNS_PER_STATION = 1  # the two stations' runs write to the database at the same time
UNIFORMITY = str(ROOT / "tests_hil" / "test_uniformity.py")


QUICK_LIMITS = """\
product: cm12-interface
version: 1
description: the interface limits of cm12 only, for runs of the QUICK selection
limits:
  - {id: IF-EXPOSURE-MIN, measurement: exposure_min_us, unit: us, max: 100}
  - {id: IF-EXPOSURE-MAX, measurement: exposure_max_us, unit: us, min: 1000000}
  - {id: IF-GAIN-MAX, measurement: gain_max_db, unit: dB, min: 12}
"""
"""A spec whose every limit the QUICK selection judges, so its runs can be PASS."""


def _args(station: Path, evidence: Path, tests: str, *extra: str) -> list[str]:
    limits = DEFAULT_LIMITS
    if tests == INTERFACE:
        limits = station.parent / "quick-limits.yaml"
        limits.write_text(QUICK_LIMITS)
    return [sys.executable, "-m", "pytest", tests, "-q", "-p", "no:cacheprovider",
            f"--station={station}", f"--limits={limits}", f"--evidence-dir={evidence}",
            f"--rootdir={ROOT}", *extra]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _start(station: Path, evidence: Path, tests: str) -> subprocess.Popen[str]:
    return subprocess.Popen(_args(station, evidence, tests), cwd=ROOT, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_journal(evidence: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> Path:
    """The run's journal once the run is inside its first test (station open, watchdog on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list(evidence.glob("*/journal.jsonl")) if evidence.is_dir() else []
        if found and any(e["type"] == "test_start" for e in read_journal(found[0]).events):
            return found[0]
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _station(folder: Path, station_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_station(DEFAULT_STATION, None, folder)
    path.write_text(path.read_text().replace("id: fault-baseline", f"id: {station_id}"))
    return path


HOLD = "import time\n\n\ndef test_hold(hil_station):\n    time.sleep(120)\n"
"""A run that holds its station until it is stopped (so a loaded machine cannot let it end
before the second run has tried the lock)."""


def test_second_run_on_a_station_in_use_is_refused_at_once(tmp_path: Path) -> None:
    station = _station(tmp_path, "busy-st")
    hold = tmp_path / "test_hold.py"
    hold.write_text(HOLD)
    first = _start(station, tmp_path / "ev-1", str(hold))
    try:
        _wait_journal(tmp_path / "ev-1", first)  # the first run holds the station now
        t0 = time.monotonic()
        second = subprocess.run(_args(station, tmp_path / "ev-2", INTERFACE, *QUICK), cwd=ROOT,
                                env=_env(), capture_output=True, text=True, timeout=120)
        waited = time.monotonic() - t0
        assert first.poll() is None, "the first run ended: the refusal was not tested"
    finally:
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=60)
    assert second.returncode != 0
    assert f"station busy-st is in use by pid {first.pid} on host" in second.stdout
    assert not (tmp_path / "ev-2").exists()  # refused before any evidence was started
    # "at once": the refused run only pays pytest's start-up (a few s), it never waited for
    # the station; the first run was still going when it returned.
    assert waited < 30, waited
    first_journal = next((tmp_path / "ev-1").glob("*/journal.jsonl"))
    assert read_journal(first_journal).events[-1]["type"] == "run_end", out[-2000:]


def _run(station: Path, folder: Path, records: Path) -> list[Path]:
    journals = []
    for i in range(RUNS_PER_STATION):
        evidence = folder / f"ev-{i}"
        proc = subprocess.run(_args(station, evidence, INTERFACE, *QUICK,
                                    f"--records={records}"),
                              cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == 0, proc.stdout[-3000:]
        journals += list(evidence.glob("*/journal.jsonl"))
    return journals


def test_two_stations_share_one_records_database(tmp_path: Path) -> None:
    records = tmp_path / "records.sqlite"
    stations = [(_station(tmp_path / s, s), tmp_path / s) for s in ("line-a", "line-b")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        journals: Sequence[Path] = [j for js in pool.map(
            lambda s: _run(s[0], s[1], records), stations) for j in js]
    assert len(journals) == 2 * RUNS_PER_STATION
    with RecordStore(str(records)) as store:
        stored = {r.run_id: r for r in store.runs()}
        assert len(stored) == 2 * RUNS_PER_STATION and {r.station for r in stored.values()} == {"line-a", "line-b"}
        for journal in journals:
            truth = rebuild(journal)
            got = store.get_run(truth.run_id)
            assert got.outcome is truth.outcome is Outcome.PASS
            assert [(m.limit_id, m.name, m.value) for m in got.measurements] == \
                [(m.limit_id, m.name, m.value) for m in truth.measurements]
        report = store.verify()
    assert report.ok and report.checked == 2 * RUNS_PER_STATION and report.stations == 2, \
        report.problems


def test_lock_of_a_killed_run_is_recovered(tmp_path: Path) -> None:
    station = _station(tmp_path, "killed-st")
    proc = _start(station, tmp_path / "ev-killed", UNIFORMITY)
    journal = _wait_journal(tmp_path / "ev-killed", proc)
    proc.kill()
    proc.communicate(timeout=30)
    lock = tmp_path / "killed-st.lock"
    assert f'"pid": {proc.pid}' in lock.read_text()  # the dead runner's lock file remains
    deadline = time.monotonic() + 30  # the watchdog holds the lock while it makes it safe
    while read_journal(journal).events[-1]["type"] != "run_end":
        assert time.monotonic() < deadline, "the watchdog never closed the killed run"
        time.sleep(0.05)
    again = subprocess.run(_args(station, tmp_path / "ev-again", INTERFACE, *QUICK), cwd=ROOT,
                           env=_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout[-3000:]
    assert rebuild(next((tmp_path / "ev-again").glob("*/journal.jsonl"))).outcome is Outcome.PASS
    assert rebuild(journal).outcome is Outcome.ABORTED
