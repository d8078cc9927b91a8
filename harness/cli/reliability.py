"""``harness reliability``: the fault matrix (harness.run.fault_matrix) as a table.

Runs part of ``tests_hil`` once per injected fault on a simulated station and prints, per
fault: the device, the outcome (must be ERROR), the message, whether every instrument reached
its safe state and how many journal events were lost. Exit status 1 when any row is wrong.
The fault matrix is imported when the command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.run.fault_matrix import FaultResult


@app.command("reliability")
def reliability(
    station: Annotated[str | None, typer.Option(
        "--station", help="A simulated station file (default: the checkout's "
        "stations/sim-small.yaml).")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only this fault (repeatable); see --list.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the faults and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table (README).")]
    = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=8,
                                         help="pytest processes at a time.")] = 2,
) -> None:
    """Inject each station fault in turn and show that the run ends ERROR and safe."""
    with error_boundary():
        from harness.run.fault_matrix import (
            DEFAULT_STATION,
            default_cases,
            run_fault_matrix,
            table,
        )

        cases = default_cases()
        if list_:
            for case in cases:
                console.print(f"{case.name}: {escape(case.fault)} ({case.device})")
            return
        if only:
            known = {c.name for c in cases}
            unknown = [n for n in only if n not in known]
            if unknown:
                raise ConfigError(f"unknown fault(s) {', '.join(unknown)}; allowed: "
                                  f"{', '.join(sorted(known))}", field="--only")
            cases = [c for c in cases if c.name in only]

        def progress(r: FaultResult) -> None:
            if not as_json and not markdown:
                console.print(f"[dim]{r.case.name}: {r.outcome.value} in {r.seconds:.1f} s[/]")

        results = run_fault_matrix(station or DEFAULT_STATION, cases=cases, workers=workers,
                                   progress=progress)
    if as_json:
        print(json.dumps([r.row() for r in results], indent=1))
    elif markdown:
        print(table(results))
    else:
        grid = Table(title="Fault matrix")
        for column in ("fault injected", "device", "outcome", "safe state", "events lost",
                       "message"):
            grid.add_column(column)
        for r in results:
            grid.add_row(f"{r.case.name}: {escape(r.case.fault)}", r.case.device,
                         r.outcome.value if r.ok else f"[red]{r.outcome.value}[/]",
                         escape(r.safe_detail) if r.safe_state
                         else f"[red]NO: {escape(r.safe_detail)}[/]",
                         "no journal" if r.events_lost is None else str(r.events_lost),
                         escape(r.message[:120]))
        console.print(grid)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_PROBLEM)


__all__ = ["reliability"]
