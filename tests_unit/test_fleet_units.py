"""``harness rejudge --all`` without a suite run: the selection and its filters, the
idempotence key, the summary, the report writers, the task's and the client's handling of a
run that cannot be re-analysed, and bad input (issue 22)."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.evidence.model import Artefact, RunRecord
from harness.evidence.records import RecordStore
from harness.evidence.records.filters import parse_outcomes, parse_until, run_filters
from harness.fleet.cluster import ClusterUnreachable, check_address, dask_client
from harness.fleet.report import CHANGE_COLUMNS, changes_csv, index_html, write_report
from harness.fleet.selection import (
    ArchivedRun,
    Selection,
    already_rejudged,
    select_runs,
    software_key,
)
from harness.fleet.summary import FleetSummary, RunError, summarise
from harness.fleet.task import RejudgeTask, TaskResult, rejudge_on_worker
from harness.measurement import Outcome
from harness.run.rejudge import VerdictChange
from tests_unit.test_records import make_run

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
SOFTWARE = {"harness": "0.1.0", "harness.sha256": "c0de" * 16, "numpy": "2.1",
            "harness.commit": "abc", "harness.dirty": "false"}


def _run(run_id: str, *, dut: str = "D1", station: str = "sim-1", gain: float = 0.1,
         started: str = "2026-11-20T10:00:00.000000+00:00") -> RunRecord:
    record = make_run(run_id, dut=dut, station=station, gain=gain, started=started)
    return dataclasses.replace(record, artefacts=(
        Artefact("11" * 32, "frame", path=f"/arch/ev/{run_id}/captures/01-probe"),))


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    s = RecordStore(tmp_path / "records.sqlite")
    s.add_run(_run("a1", dut="D1", started="2026-11-20T10:00:00.000000+00:00"))
    s.add_run(_run("a2", dut="D2", gain=0.2, station="sim-2",
                   started="2026-11-21T10:00:00.000000+00:00"))
    s.add_run(_run("a3", dut="D3", started="2026-11-22T10:00:00.000000+00:00"))
    s.add_run(dataclasses.replace(_run("a1.rj", dut="D1"), rejudged_from="a1",
                                  station="sim-1.rejudge", limits_hash="cd" * 32,
                                  software=SOFTWARE))
    s.add_run(dataclasses.replace(_run("c1", dut="D9"), characterisation=True))
    return s


def test_selection_filters_and_folders(store: RecordStore) -> None:
    with store:
        every = select_runs(store, Selection())
        assert [r.run_id for r in every] == ["a1", "a2", "a3"]  # no re-judged, no characterisation
        assert every[0].stored_folder == "/arch/ev/a1"
        assert every[1].outcome is Outcome.FAIL and every[1].unit == "D2"
        assert [r.run_id for r in select_runs(store, Selection(outcome="fail"))] == ["a2"]
        assert [r.run_id for r in select_runs(store, Selection(outcome="PASS,FAIL"))] == \
            ["a1", "a2", "a3"]
        assert [r.run_id for r in select_runs(store, Selection(until="2026-11-21"))] == \
            ["a1", "a2"]  # a bare date: that day included
        assert [r.run_id for r in select_runs(store, Selection(since="2026-11-21",
                                                               until="2026-11-21"))] == ["a2"]
        assert [r.run_id for r in select_runs(store, Selection(station="sim-2"))] == ["a2"]
        assert select_runs(store, Selection(product="other")) == []


def test_filters_reject_bad_values() -> None:
    assert parse_outcomes("pass, Marginal") == (Outcome.PASS, Outcome.MARGINAL)
    assert parse_until("2026-11-21") == "2026-11-22T00:00:00.000000+00:00"
    with pytest.raises(ConfigError, match=r"--outcome: 'GOOD' is not a run outcome; allowed: "
                                          r"PASS, MARGINAL"):
        parse_outcomes("GOOD")
    with pytest.raises(ConfigError, match="--until: 'soon' is not a date"):
        run_filters(until="soon")
    assert len(run_filters("p", "s", "2026-01-01")) == 3  # the records commands' form


def test_idempotence_key(store: RecordStore) -> None:
    key = software_key(SOFTWARE)
    assert software_key({**SOFTWARE, "harness.commit": "def", "harness.dirty": "true"}) == key
    assert software_key({**SOFTWARE, "harness.sha256": "beef" * 16}) != key
    assert software_key({**SOFTWARE, "numpy": "2.2"}) != key
    with store:
        ids = ["a1", "a2", "a3"]
        assert already_rejudged(store, ids, "cd" * 32, key) == {"a1"}
        assert already_rejudged(store, ids, "ef" * 32, key) == set()  # another spec
        assert already_rejudged(store, ids, "cd" * 32, software_key({})) == set()


def _runs() -> dict[str, ArchivedRun]:
    return {rid: ArchivedRun(rid, "st", "cm12", serial, "", Outcome.PASS, "")
            for rid, serial in (("r1", "U1"), ("r2", "U2"), ("r3", "U3"), ("r4", ""))}


def _result(run_id: str, changes: tuple[VerdictChange, ...], outcome: Outcome = Outcome.PASS,
            error: str = "") -> TaskResult:
    record = RunRecord(f"{run_id}.new", "st.rejudge", outcome, rejudged_from=run_id)
    return TaskResult(run_id, None if error else record, Outcome.PASS, changes, error, 1.0,
                      "host:1")


def _change(limit: str, old: Outcome, new: Outcome, value: float, new_value: float | None = None,
            zone: str = "") -> VerdictChange:
    return VerdictChange(limit, "idle_a", {"zone": zone} if zone else {}, old, new, value,
                         value if new_value is None else new_value)


def _summary() -> FleetSummary:
    results = [
        _result("r1", (_change("PWR-IDLE", Outcome.PASS, Outcome.FAIL, 0.14, zone="a"),
                       _change("PWR-IDLE", Outcome.PASS, Outcome.FAIL, 0.15, zone="b")),
                Outcome.FAIL),
        _result("r2", (_change("PWR-IDLE", Outcome.PASS, Outcome.PASS, 0.11, 0.12),)),
        _result("r3", (), error="re-analysis failed: checksum mismatch <frame>"),
        _result("r4", (_change("PWR-IDLE", Outcome.FAIL, Outcome.PASS, 0.3),
                       _change("PWR-STREAM", Outcome.PASS, Outcome.FAIL, 0.6))),
    ]
    return summarise(_runs(), results, skipped=2, seconds=3.0)


def test_summary_counts_units_per_limit() -> None:
    s = _summary()
    assert (s.selected, s.skipped, s.rejudged) == (4, 2, 3)
    assert (s.task_seconds, s.workers) == (4.0, 1)  # every task's time, failed ones too
    limits = {lim.limit_id: lim for lim in s.limits}
    assert limits["PWR-IDLE"].units == 2  # U1 (two conditions) counted once, and run r4
    assert [(c.unit, c.old_outcome, c.new_outcome, c.old_value) for c in
            limits["PWR-IDLE"].changes] == [("U1", "PASS", "FAIL", 0.14),
                                            ("U1", "PASS", "FAIL", 0.15),
                                            ("run r4", "FAIL", "PASS", 0.3)]
    assert limits["PWR-STREAM"].units == 1
    [moved] = s.moved
    assert (moved.unit, moved.old_value, moved.new_value) == ("U2", 0.11, 0.12)
    assert [(r.run_id, r.old_outcome, r.new_outcome) for r in
            s.runs_changed] == [("r1", "PASS", "FAIL")]
    assert s.errors == (RunError("r3", "U3", "re-analysis failed: checksum mismatch <frame>",
                                 "host:1"),)


def test_report_writers(tmp_path: Path) -> None:
    s = _summary()
    rows = list(csv.DictReader(io.StringIO(changes_csv(s))))
    assert tuple(rows[0]) == CHANGE_COLUMNS
    assert [(r["limit_id"], r["unit"], r["old_value"], r["new_value"], r["verdict_changed"])
            for r in rows] == [("PWR-IDLE", "U1", "0.14", "0.14", "yes"),
                               ("PWR-IDLE", "U1", "0.15", "0.15", "yes"),
                               ("PWR-IDLE", "run r4", "0.3", "0.3", "yes"),
                               ("PWR-STREAM", "run r4", "0.6", "0.6", "yes"),
                               ("PWR-IDLE", "U2", "0.11", "0.12", "no")]
    page = index_html(s)
    assert "checksum mismatch &lt;frame&gt;" in page and "<frame>" not in page
    assert "<script" not in page and "<h3>PWR-IDLE: 2 unit(s)</h3>" in page
    written = write_report(tmp_path / "rep", s)
    assert [p.name for p in written] == ["index.html", "changes.csv", "errors.csv"]
    errors = list(csv.DictReader((tmp_path / "rep" / "errors.csv").open()))
    assert [(e["run_id"], e["worker"]) for e in errors] == [("r3", "host:1")]


def test_task_without_evidence_is_an_error_result(tmp_path: Path) -> None:
    task = RejudgeTask("r9", (str(tmp_path / "r9"), ""), str(tmp_path / "spec.yaml"),
                       str(tmp_path), str(tmp_path))
    result = rejudge_on_worker(task)
    assert not result.ok and result.record is None
    assert result.error == f"no evidence of run r9: no journal.jsonl in {tmp_path / 'r9'}"


def test_client_reports_every_failed_run_and_goes_on(store: RecordStore, tmp_path: Path
                                                     ) -> None:
    from distributed import Client, LocalCluster

    from harness.fleet.rejudge_all import Plan, run_plan

    runs = {r.run_id: r for r in select_runs(store, Selection())}
    tasks = tuple(RejudgeTask(rid, (str(tmp_path / rid),), "spec", str(tmp_path),
                              str(tmp_path)) for rid in runs)
    seen: list[tuple[int, int, int]] = []
    with store, LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        summary = run_plan(store, Plan(runs, frozenset(), tasks, "x", "y"), client,
                           progress=lambda p: seen.append((p.done, p.total, p.failures)))
    assert seen == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]
    assert [e.run_id for e in summary.errors] == ["a1", "a2", "a3"]
    assert summary.rejudged == 0 and summary.limits == ()


def _die(task: RejudgeTask) -> TaskResult:
    os._exit(3)  # the worker process dies holding the task


def test_a_worker_that_dies_is_the_error_of_its_run(store: RecordStore, tmp_path: Path
                                                    ) -> None:
    import cloudpickle
    import dask
    from distributed import Client, LocalCluster

    from harness.fleet.rejudge_all import Plan, run_plan

    runs = {r.run_id: r for r in select_runs(store, Selection(station="sim-2"))}
    tasks = (RejudgeTask("a2", (), "spec", str(tmp_path), str(tmp_path)),)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with store, dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
                LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                             dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client:
            summary = run_plan(store, Plan(runs, frozenset(), tasks, "x", "y"), client,
                               task_fn=_die)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    [error] = summary.errors
    assert (error.run_id, error.unit) == ("a2", "D2")
    assert error.error.startswith("worker lost: KilledWorker: "), error


def test_cluster_addresses() -> None:
    assert check_address("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_address("tcp://host-1.lab:8786") == "tcp://host-1.lab:8786"
    for bad in ("http://x", "host", "tcp://h:port"):
        with pytest.raises(ConfigError, match=r"--cluster: .* is not a scheduler address"):
            check_address(bad)
    with pytest.raises(ConfigError, match="not both"), dask_client("h:1", 2):
        pass
    with pytest.raises(ClusterUnreachable, match=r"cannot reach the Dask scheduler at "
                                                 r"tcp://127.0.0.1:9 within 0.5 s"), \
            dask_client("127.0.0.1:9", timeout_s=0.5):
        pass


@pytest.mark.parametrize(("args", "message"), [
    (["--all", "--limits", "s.yaml"], "--records: --all selects runs from the records database"),
    (["--limits", "s.yaml"], "RUN: give the run to re-judge"),
    (["r1", "--all", "--limits", "s.yaml"], "RUN: give RUN ('r1') or --all, not both"),
    (["--all", "--limits", "s.yaml", "--records", "DB", "--local", "2", "--cluster", "h:1"],
     "--cluster: give --cluster ADDRESS or --local N, not both"),
    (["--all", "--limits", "s.yaml", "--records", "DB", "--outcome", "MAYBE"],
     "--outcome: 'MAYBE' is not a run outcome; allowed: PASS"),
    (["--all", "--limits", "s.yaml", "--records", "DB", "--since", "then"],
     "--since: 'then' is not a date"),
    (["--all", "--limits", "s.yaml", "--records", "DB", "--cluster", "nowhere"],
     "--cluster: 'nowhere' is not a scheduler address"),
    (["r1", "--limits", "s.yaml", "--product", "p", "--local", "2"],
     "RUN: --product, --local: only with --all"),
    (["--all", "--limits", "s.yaml", "--records", "DB", "--local", "0"],
     "--local: 0 local workers; allowed: 1 or more"),
    (["--all", "--limits", "missing.yaml", "--records", "DB"],
     "missing.yaml: --limits: limit spec not found"),
    (["--all", "--limits", "SPEC", "--records", "DB", "--product", "nope"],
     "no stored qualification run matches the filters (--product nope)"),
])
def test_bad_input_is_one_line_exit_2(store: RecordStore, tmp_path: Path, args: list[str],
                                      message: str) -> None:
    store.close()
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "tests_hil" / "limits" / "cm12.yaml").read_text())
    args = [a.replace("DB", str(tmp_path / "records.sqlite")).replace("SPEC", str(spec))
            for a in args]
    out = runner.invoke(app, ["rejudge", *args])
    assert out.exit_code == 2, out.output
    assert message in out.output.replace("\n", " ")
    assert "Traceback" not in out.output
