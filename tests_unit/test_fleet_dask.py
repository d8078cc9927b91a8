"""``harness rejudge --all`` on a real Dask cluster (issue 22, Done when).

A ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 re-judge a recorded archive
of 10 runs of the simulated small station (``bench/archive.py``: distinct DUTs, one faulty
module, one run's capture set damaged by a truncated frame file) with a spec whose PWR-IDLE
maximum is tightened to the middle of the idle currents of the archive's good modules. The verdict
changes are exactly those computed here from the stored figures and the tightened limit, the
damaged run is reported with its error and not stored, every re-judged run is identical to the
serial ``harness rejudge`` of its original, and a second identical invocation stores nothing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.archive import Archive, build_archive, corrupt_frame, tighten
from bench.bench_rejudge_fleet import loopback_cluster
from harness.evidence.journal import rebuild
from harness.evidence.model import RunRecord
from harness.evidence.records import RecordStore
from harness.measurement import Outcome

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10
DAMAGED = 2  # a good module's run (index 6 is the faulty one)
BIN = Path(sys.executable).parent


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["DASK_TEMPORARY_DIRECTORY"] = str(tmp)
    return env


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Archive, str]:
    """The recorded archive, and the id of the run whose capture set is damaged."""
    built = build_archive(tmp_path_factory.mktemp("archive"), RUNS, jobs=2)
    with RecordStore(built.records) as store:
        runs = {r.dut_serial: r.run_id for r in store.runs(limit=None)}
    assert len(runs) == RUNS
    damaged = runs[f"ARC-{DAMAGED:05d}"]
    corrupt_frame(built.evidence / damaged)
    return built, damaged


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dask scheduler`` and two ``dask worker`` processes on loopback; its address."""
    with loopback_cluster(tmp_path_factory.mktemp("dask"), workers=2) as address:
        yield address


def harness(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, run from the checkout (Dask's scratch files in ``tmp``)."""
    return subprocess.run([str(BIN / "harness"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=_env(tmp), check=False)


def _figures(record: RunRecord) -> list[tuple[str, str, str, float | None, str]]:
    return sorted((m.limit_id, m.name, json.dumps(dict(m.condition), sort_keys=True), m.value,
                   m.outcome.value) for m in record.measurements)


def _key(output: str) -> str:
    found = re.search(r"software\s+\((\w+)\)", output)
    assert found, output
    return found.group(1)


def test_rejudge_the_archive_on_a_dask_cluster(archive: tuple[Archive, str], scheduler: str,
                                               tmp_path: Path) -> None:
    built, damaged = archive
    with RecordStore(built.records) as store:
        originals = {summary.run_id: record for summary, record in store.records()}
    idle = {rid: next(m for m in r.measurements if m.limit_id == "PWR-IDLE")
            for rid, r in originals.items()}
    good = sorted(m.value for m in idle.values() if m.outcome is Outcome.PASS and m.value)
    half = len(good) // 2
    tight_max = round((good[half - 1] + good[half]) / 2, 6)  # between two modules' figures
    assert all(m.value != tight_max for m in idle.values())
    spec = tighten(built.spec, tmp_path / "tight.yaml", "PWR-IDLE", max=tight_max)
    expected = set()
    for rid, m in idle.items():  # the limit has no guard band: above the maximum FAILs
        assert m.value is not None
        new = Outcome.FAIL if m.value > tight_max else Outcome.PASS
        if new is not m.outcome and rid != damaged:
            expected.add(("PWR-IDLE", originals[rid].dut_serial, rid, m.outcome.value,
                          new.value, repr(m.value), repr(m.value)))
    assert len(expected) >= 3

    command = ("rejudge", "--all", "--records", str(built.records), "--limits", str(spec),
               "--evidence-dir", str(built.evidence), "--cluster", scheduler, "--report",
               str(tmp_path / "report"))
    first = harness(*command, tmp=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr  # one run could not be re-judged
    assert f"{RUNS} run(s) selected; 0 already re-judged" in first.stdout.replace("\n", " ")
    with (tmp_path / "report" / "changes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    changed = {(r["limit_id"], r["unit"], r["run_id"], r["old_outcome"], r["new_outcome"],
                r["old_value"], r["new_value"]) for r in rows if r["verdict_changed"] == "yes"}
    assert changed == expected
    assert [r for r in rows if r["verdict_changed"] == "no"] == []  # same code: nothing moved
    with (tmp_path / "report" / "errors.csv").open() as fh:
        [error] = list(csv.DictReader(fh))
    assert error["run_id"] == damaged and "checksum mismatch" in error["error"], error
    page = (tmp_path / "report" / "index.html").read_text()
    assert damaged in page and f"PWR-IDLE: {len(expected)} unit(s)" in page
    assert f"PWR-IDLE │ module_current_idle_a │ {len(expected)}" in first.stdout

    with RecordStore(built.records) as store:
        stored = {r.rejudged_from: store.get_run(r.run_id) for r in store.runs(limit=None)
                  if r.rejudged_from}
        assert store.verify().ok
    assert set(stored) == set(originals) - {damaged}  # the damaged run is not stored
    assert all(r.station == f"{originals[r.rejudged_from].station}.rejudge"
               for r in stored.values())

    def serial(rid: str) -> RunRecord:
        out = tmp_path / "serial" / rid
        done = harness("rejudge", str(built.evidence / rid), "--limits", str(spec),
                       "--evidence-dir", str(out), tmp=tmp_path)
        [journal] = out.glob("*/journal.jsonl")
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return rebuild(journal)

    with ThreadPoolExecutor(max_workers=2) as pool:
        serials = dict(zip(originals, pool.map(serial, originals), strict=True))
    for rid, record in serials.items():
        if rid == damaged:
            assert record.outcome is Outcome.ERROR
            continue
        assert (record.outcome, _figures(record)) == (stored[rid].outcome,
                                                      _figures(stored[rid])), rid

    # The same selection, spec and code again: nothing new (only the damaged run is retried).
    # Other work on this checkout changes the code's hash: then that invocation re-judges
    # again, rightly, and the next one is the test.
    def rejudged_runs() -> int:
        with RecordStore(built.records) as store:
            return len([r for r in store.runs(limit=None) if r.rejudged_from])

    key = _key(first.stdout)
    for _ in range(3):
        before = rejudged_runs()
        again = harness(*command, tmp=tmp_path)
        if _key(again.stdout) == key:
            break
        key = _key(again.stdout)
    text = again.stdout.replace("\n", " ")
    assert f"{RUNS} run(s) selected; {RUNS - 1} already re-judged" in text, again.stdout
    assert "re-judged and stored 0 run(s)" in text and "1 error(s)" in text, again.stdout
    assert again.returncode == 1 and rejudged_runs() == before
