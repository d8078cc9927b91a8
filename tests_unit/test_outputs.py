"""Output plugins: idempotent by run id, a failing output reported and retried, never the DUT's
verdict; entry points from a throw-away dist-info; ``records runs`` shows what is pending."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evidence.model import RunRecord
from harness.evidence.outputs import Installed, load_outputs, pending, publish, retry
from harness.evidence.records import RecordStore
from harness.measurement import Outcome
from tests_unit.test_records import (  # noqa: F401  (pg_base, store_url: fixtures)
    at,
    make_run,
    pg_base,
    store_url,
)

runner = CliRunner()


class Collect:
    """An output that keeps the run ids it took."""

    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.taken: list[str] = []

    def __call__(self, record: RunRecord) -> None:
        self.taken.append(record.run_id)


class Flaky(Collect):
    """Fails the first ``failures`` calls (an MES that is down), then takes runs."""

    def __init__(self, failures: int) -> None:
        super().__init__("mes")
        self.failures = failures

    def __call__(self, record: RunRecord) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("mes.example: connection refused")
        super().__call__(record)


@pytest.fixture
def store(store_url: str) -> Iterator[RecordStore]:  # noqa: F811
    """Two stored runs, on SQLite and on PostgreSQL."""
    with RecordStore(store_url) as db:
        db.add_run(make_run("o1", dut="U1", gain=0.12, started=at(0)))  # a FAIL
        db.add_run(make_run("o2", dut="U2", started=at(1)))
        yield db


def test_publish_is_idempotent_by_run_id(store: RecordStore) -> None:
    collect = Collect()
    record = store.get_run("o1")
    assert publish(store, record, [collect]) == []
    assert publish(store, record, [collect]) == []  # already done: not called again
    assert collect.taken == ["o1"]
    state = store.output_states(["o1"])["o1"]["collect"]
    assert (state.status, state.attempts, state.last_error) == ("done", 1, "")
    assert pending(store, ["o1", "o2"], ["collect"]) == {"o2": ["collect"]}


def test_a_failing_output_is_reported_retried_and_never_the_verdict(store: RecordStore
                                                                    ) -> None:
    collect, mes = Collect(), Flaky(failures=1)
    outputs = Installed((collect, mes))
    record = store.get_run("o1")
    (failure,) = publish(store, record, outputs)
    assert (failure.run_id, failure.output) == ("o1", "mes")
    assert failure.error == "ConnectionError: mes.example: connection refused"
    assert str(failure) == ("output mes did not take run o1: ConnectionError: mes.example: "
                            "connection refused")
    states = store.output_states(["o1"])["o1"]
    assert (states["mes"].status, states["mes"].last_error) == ("failed", failure.error)
    assert states["collect"].done
    assert store.get_run("o1").outcome is Outcome.FAIL and store.verify().ok  # untouched
    assert pending(store, ["o1", "o2"], outputs.names) == {"o1": ["mes"],
                                                           "o2": ["collect", "mes"]}
    published, failures = retry(store, outputs)
    assert (published, failures) == (2, [])
    assert collect.taken == ["o1", "o2"] and mes.taken == ["o1", "o2"]
    assert store.output_states(["o1"])["o1"]["mes"].attempts == 2
    assert pending(store, ["o1", "o2"], outputs.names) == {}
    assert retry(store, outputs) == (0, [])


def test_publish_never_raises(store: RecordStore) -> None:
    """A run that is not stored, or an output that raises anything, comes back as failures."""
    class Exploding:
        name = "exploding"

        def __call__(self, record: RunRecord) -> None:
            raise RuntimeError("bug in the plugin\nsecond line")

    collect = Collect()
    failures = publish(store, make_run("ghost"), [collect, Exploding()])
    assert {f.output for f in failures} == {"collect", "exploding"}
    assert all("no run 'ghost' in the records" in f.error for f in failures)
    assert collect.taken == []  # a run that is not stored is not published
    (failure,) = publish(store, store.get_run("o2"), [collect, Exploding()])
    assert failure.error == "RuntimeError: bug in the plugin second line"
    assert collect.taken == ["o2"]


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away distribution with two ``harness.outputs`` entry points: one that writes
    each run id to a file, one whose module does not exist."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_outputs.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        class FileOutput:
            name = "file"

            def __call__(self, record):
                with Path({str(tmp_path / "taken.txt")!r}).open("a") as fh:
                    fh.write(record.run_id + "\\n")
    """))
    dist = site / "acme_outputs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-outputs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[harness.outputs]\nfile = acme_outputs:FileOutput\nmissing = acme_gone:Output\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "acme_outputs", raising=False)
    return tmp_path


def test_entry_points_runs_pending_and_publish_retry(tmp_path: Path, plugin_site: Path) -> None:
    store = RecordStore(tmp_path / "records.sqlite")
    store.add_run(make_run("o1", dut="U1", gain=0.12, started=at(0)))
    store.add_run(make_run("o2", dut="U2", started=at(1)))
    installed = load_outputs()
    assert [o.name for o in installed.outputs] == ["file"]
    ((name, error),) = installed.broken
    assert name == "missing" and "ModuleNotFoundError" in error
    db = store.url.removeprefix("sqlite:///")
    out = runner.invoke(app, ["records", "runs", "--records", db, "--json"])
    assert out.exit_code == 0, out.output
    assert {r["run_id"]: r["outputs_pending"] for r in json.loads(out.stdout)} == {
        "o1": ["file", "missing"], "o2": ["file", "missing"]}
    out = runner.invoke(app, ["records", "publish", "--records", db])
    assert out.exit_code == 2 and "--retry" in out.output
    out = runner.invoke(app, ["records", "publish", "--retry", "--records", db])
    assert out.exit_code == 1
    assert out.stdout.count("FAILED") == 2 and "output missing did not take run o1" in out.stdout
    assert (plugin_site / "taken.txt").read_text().split() == ["o1", "o2"]
    out = runner.invoke(app, ["records", "runs", "--records", db, "--json"])
    assert {r["run_id"]: r["outputs_pending"] for r in json.loads(out.stdout)} == {
        "o1": ["missing"], "o2": ["missing"]}
    table = runner.invoke(app, ["records", "runs", "--records", db])
    assert "missing" in table.stdout and "cannot be loaded" in table.stdout
    out = runner.invoke(app, ["records", "publish", "o2", "nope", "--records", db])
    assert out.exit_code == 1 and "nope" in out.stdout
    assert (plugin_site / "taken.txt").read_text().split() == ["o1", "o2"]  # file is done
    store.close()
