"""``harness rejudge RUN --limits SPEC``: the same suites on a run's recorded frames, judged
by a new spec (:mod:`harness.run.rejudge`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary


@app.command("rejudge")
def rejudge_command(
    run: Annotated[str, typer.Argument(
        help="Run id (with --evidence-dir or --records) or the run's evidence folder.")],
    limits: Annotated[Path, typer.Option("--limits", help="The spec to judge by.")],
    records: Annotated[str | None, typer.Option(
        "--records", envvar="HARNESS_RECORDS",
        help="Records database: finds the run, and stores the new one.")] = None,
    evidence_dir: Annotated[Path, typer.Option(
        "--evidence-dir", help="Where runs' evidence folders are (the new run's goes there "
                               "too).")] = Path("out/evidence"),
    rootdir: Annotated[Path | None, typer.Option(
        "--rootdir", help="The checkout the run's tests are relative to (default: here).")]
        = None,
) -> None:
    """Replay RUN's recorded frames through the same suites and judge them by SPEC: the
    figures are measured again from the same frames, only verdicts can change; the new run is
    stored linked to the original (rejudged_from)."""
    from harness.run.rejudge import rejudge

    with error_boundary():
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


__all__ = ["rejudge_command"]
