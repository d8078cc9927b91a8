"""``harness rejudge RUN --limits SPEC``: the same suites on a run's recorded frames, judged
by a new spec (:mod:`harness.run.rejudge`); ``harness rejudge --all ...``: every selected run
of the records, on a Dask cluster (:mod:`harness.fleet`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.fleet.summary import FleetSummary

CHANGES_SHOWN = 50


@app.command("rejudge")
def rejudge_command(
    limits: Annotated[Path, typer.Option("--limits", help="The spec to judge by.")],
    run: Annotated[str | None, typer.Argument(
        help="Run id (with --evidence-dir or --records) or the run's evidence folder; "
             "or --all.")] = None,
    records: Annotated[str | None, typer.Option(
        "--records", envvar="HARNESS_RECORDS",
        help="Records database: finds the run, and stores the new one.")] = None,
    evidence_dir: Annotated[Path, typer.Option(
        "--evidence-dir", help="Where runs' evidence folders are (the new run's goes there "
                               "too).")] = Path("out/evidence"),
    rootdir: Annotated[Path | None, typer.Option(
        "--rootdir", help="The checkout the run's tests are relative to (default: here).")]
        = None,
    all_runs: Annotated[bool, typer.Option(
        "--all", help="Every stored run the filters select (needs --records), on a Dask "
                      "cluster (--cluster or --local).")] = False,
    product: Annotated[str | None, typer.Option("--product", help="--all: this product.")]
        = None,
    station: Annotated[str | None, typer.Option("--station", help="--all: this station.")]
        = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="--all: runs started since YYYY-MM-DD, an ISO date-time, or 7d / 12h.")]
        = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="--all: runs started before (a bare date: that day included).")]
        = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", help="--all: runs with this outcome (or several: FAIL,MARGINAL).")]
        = None,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", help="--all: a running Dask scheduler, tcp://HOST:PORT.")] = None,
    local: Annotated[int | None, typer.Option(
        "--local", help="--all: start a local Dask cluster of N worker processes (the default, "
                        "with N = the CPU count).")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="--all: write index.html, changes.csv and errors.csv here.")]
        = None,
) -> None:
    """Replay RUN's recorded frames through the same suites and judge them by SPEC: the
    figures are measured again from the same frames, only verdicts can change; the new run is
    stored linked to the original (rejudged_from).

    With --all, every run the filters select (as harness records) is re-judged on a Dask
    cluster, one task per run; runs already re-judged with this spec and software are
    skipped; the summary lists, per limit, the units whose verdict changes."""
    if all_runs or run is None:
        with error_boundary():
            _check_all(run, all_runs, records, cluster, local, report)
        assert records is not None
        _rejudge_all(records, limits, evidence_dir, rootdir or Path.cwd(), product=product,
                     station=station, since=since, until=until, outcome=outcome,
                     cluster=cluster, local=local, report=report)
        return
    from harness.run.rejudge import rejudge

    with error_boundary():
        given = [flag for flag, value in (
            ("--product", product), ("--station", station), ("--since", since),
            ("--until", until), ("--outcome", outcome), ("--cluster", cluster),
            ("--local", local), ("--report", report)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --all (one RUN is re-judged "
                              "here, in this process)", field="RUN")
        with tempfile.TemporaryDirectory(prefix="harness-rejudge-") as work:
            result = rejudge(run, limits, evidence_dir=evidence_dir, records=records,
                             rootdir=rootdir, work=Path(work), echo=console.out)
        new = result.rejudged
        if new is None:
            console.print(f"[red]no re-judged run was recorded (pytest exit {result.returncode})")
            raise typer.Exit(EXIT_PROBLEM)
        table = Table("limit", "figure", "condition", "was", "now", "value was", "value now",
                      title=f"re-judged {result.original.run_id} ({result.original.outcome}) "
                            f"as {new.run_id} ({new.outcome})")
        for c in result.changes:
            table.add_row(c.limit_id, c.name, ", ".join(f"{k}={v}" for k, v in
                                                        c.condition.items()),
                          c.old_outcome.value if c.old_outcome else "—",
                          c.new_outcome.value if c.new_outcome else "—",
                          "—" if c.old_value is None else f"{c.old_value:.6g}",
                          "—" if c.new_value is None else f"{c.new_value:.6g}")
        console.print(table if result.changes else
                      f"re-judged {result.original.run_id} as {new.run_id}: no verdict changed "
                      f"({new.outcome.value})")
        if not result.values_equal:
            console.print("[yellow]some figures differ from the original: the code or the "
                          "frames changed (see the software identity of both runs)")
        if result.returncode != 0:
            raise typer.Exit(EXIT_PROBLEM)


def _check_all(run: str | None, all_runs: bool, records: str | None, cluster: str | None,
               local: int | None, report: Path | None) -> None:
    if run is not None:
        raise ConfigError(f"give RUN ({run!r}) or --all, not both", field="RUN")
    if not all_runs:
        raise ConfigError("give the run to re-judge (RUN: a run id or its evidence folder), "
                          "or --all with filters", field="RUN")
    if not records:
        raise ConfigError("--all selects runs from the records database: give --records "
                          "PATH or URL (or $HARNESS_RECORDS)", field="--records")
    if cluster is not None and local is not None:
        raise ConfigError("give --cluster ADDRESS or --local N, not both", field="--cluster")
    if report is not None and report.exists() and not report.is_dir():
        raise ConfigError("not a folder", source=str(report), field="--report")


def _rejudge_all(records: str, limits: Path, evidence_dir: Path, rootdir: Path, *,
                 product: str | None, station: str | None, since: str | None,
                 until: str | None, outcome: str | None, cluster: str | None,
                 local: int | None, report: Path | None) -> None:
    """``--all`` (see :mod:`harness.fleet.rejudge_all`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from harness.cli.records import open_existing
    from harness.fleet.cluster import check_address, check_workers, dask_client
    from harness.fleet.rejudge_all import Progress as Step
    from harness.fleet.rejudge_all import plan, run_plan
    from harness.fleet.report import write_report
    from harness.fleet.selection import Selection
    from harness.fleet.summary import summarise

    with error_boundary():
        if cluster is not None:
            check_address(cluster)
        workers = check_workers(local if local is not None else (os.cpu_count() or 1)) \
            if cluster is None else None
        selection = Selection(product, station, since, until, outcome)
        with open_existing(records) as store:
            work = plan(store, selection, limits, evidence_dir=evidence_dir, rootdir=rootdir)
            console.print(f"{len(work.runs)} run(s) selected; {len(work.skipped)} already "
                          f"re-judged with this spec ({work.limits_hash[:12]}) and software "
                          f"({work.software_key[:12]}): skipped; {len(work.tasks)} to "
                          "re-judge", highlight=False)
            summary = summarise(work.runs, (), skipped=len(work.skipped))
            if work.tasks:
                with dask_client(cluster, workers) as client, Progress(
                        TextColumn("re-judging"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[failures]} failure(s)"),
                        console=console) as bar:
                    job = bar.add_task("runs", total=len(work.tasks), failures=0)

                    def step(p: Step) -> None:
                        bar.update(job, completed=p.done, failures=p.failures)
                        if not p.last.ok:
                            bar.console.print(f"[red]ERROR[/] {escape(p.last.run_id)}: "
                                              f"{escape(p.last.error)}", highlight=False)

                    summary = run_plan(store, work, client, progress=step)
        _print_summary(summary)
        if report is not None:
            for path in write_report(report, summary):
                console.print(f"wrote {escape(str(path))}", highlight=False)
    if summary.errors:
        raise typer.Exit(EXIT_PROBLEM)


def _value(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def _print_summary(summary: FleetSummary) -> None:
    """Per limit, the units whose verdict changes, and the list (the first
    :data:`CHANGES_SHOWN`; the report has them all)."""
    console.print(f"re-judged and stored {summary.rejudged} run(s) in {summary.seconds:.1f} s; "
                  f"skipped {summary.skipped}; {len(summary.errors)} error(s)",
                  highlight=False)
    tasks = summary.rejudged + len(summary.errors)
    if summary.workers and tasks:
        console.print(f"tasks: {summary.task_seconds / tasks:.2f} s per run on average, on "
                      f"{summary.workers} worker(s)", highlight=False)
    if summary.limits:
        per_limit = Table("limit", "measurement", "units changing verdict",
                          title="Verdict changes per limit")
        for lim in summary.limits:
            per_limit.add_row(escape(lim.limit_id or "—"), escape(lim.name), str(lim.units))
        console.print(per_limit)
        changes = [c for lim in summary.limits for c in lim.changes]
        table = Table("limit", "unit", "run", "condition", "was", "now", "value was",
                      "value now", title="Verdict changes")
        for c in changes[:CHANGES_SHOWN]:
            table.add_row(escape(c.limit_id or c.name), escape(c.unit), escape(c.run_id),
                          escape(c.condition), c.old_outcome, c.new_outcome,
                          _value(c.old_value), _value(c.new_value))
        console.print(table)
        if len(changes) > CHANGES_SHOWN:
            console.print(f"… and {len(changes) - CHANGES_SHOWN} more (see --report)")
    elif summary.rejudged:
        console.print("no verdict changed")
    if summary.moved:
        console.print(f"[yellow]{len(summary.moved)} figure(s) moved without a verdict "
                      "change: the code or the frames changed (see --report)")
    for e in summary.errors:
        console.print(f"[red]ERROR[/] {escape(e.run_id)} ({escape(e.unit)}): "
                      f"{escape(e.error)}", highlight=False)


__all__ = ["rejudge_command"]

