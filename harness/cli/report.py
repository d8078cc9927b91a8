"""``harness report RESULTS_DIR`` and ``harness report --from-journal PATH``.

The evidence machinery (Allure writer, journal, records, report builder) is imported when the
command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.cli.app import app, console, error_boundary, fail
from harness.cli.records import OUTCOME_STYLE
from harness.errors import EvidenceError
from harness.paths import DEFAULT_RECORDS


@app.command("report")
def report_cmd(
    results_dir: Annotated[Path | None, typer.Argument(
        help="Allure results folder (pytest --alluredir).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Report folder (index.html).")] =
        Path("out/report"),
    from_journal: Annotated[Path | None, typer.Option(
        "--from-journal", help="Rebuild record, Allure results and report from a journal.")
    ] = None,
    results_out: Annotated[Path | None, typer.Option(
        "--results", help="With --from-journal: where to write the Allure results "
        "(default out/allure-results/<run id>).")] = None,
    records: Annotated[str, typer.Option(
        "--records", envvar="HARNESS_RECORDS",
        help="With --from-journal: store the rebuilt run here (SQLite path or URL).")] =
        str(DEFAULT_RECORDS),
    no_records: Annotated[bool, typer.Option(
        "--no-records", help="With --from-journal: do not store the run.")] = False,
    no_html: Annotated[bool, typer.Option(
        "--no-html", help="Only write Allure results, no HTML report.")] = False,
) -> None:
    """Build the single-file HTML report (Allure 3) from results or from a run journal."""
    if (results_dir is None) == (from_journal is None):
        fail("give either RESULTS_DIR or --from-journal PATH (exactly one)")
    with error_boundary():
        from harness.evidence.allure import write_results
        from harness.evidence.journal import rebuild
        from harness.evidence.records import RecordStore
        from harness.evidence.report import build_report

        if from_journal is not None:
            record = rebuild(from_journal)
            style = OUTCOME_STYLE[record.outcome]
            console.print(f"run {escape(record.run_id)} on {escape(record.station)}: "
                          f"[{style}]{record.outcome.value}[/] ({len(record.tests)} tests"
                          f"{'' if record.complete else ', journal incomplete'})",
                          highlight=False)
            if record.reason:
                console.print(f"  reason: {escape(record.reason)}", highlight=False)
            results = results_out or Path("out/allure-results") / record.run_id
            written = write_results(record, results)
            console.print(f"Allure results: {results} ({written} tests)", highlight=False)
            if not no_records:
                with RecordStore(records) as store:
                    try:
                        stored = store.add_run(record)
                        console.print(f"records: stored as #{stored.chain_seq} of "
                                      f"{stored.station} in {store.display}", highlight=False)
                    except EvidenceError as exc:
                        if "already stored" not in str(exc):
                            raise
                        console.print(f"records: run {record.run_id} is already stored",
                                      highlight=False)
            if no_html or not written:
                return
            results_dir = results
        assert results_dir is not None
        if no_html:
            return
        summary = build_report(results_dir, out)
        console.print(f"report: {summary.index} — {summary.total} tests: {summary.passed} "
                      f"passed, {summary.failed} failed, {summary.broken} broken, "
                      f"{summary.skipped} skipped", highlight=False)


__all__ = ["report_cmd"]
