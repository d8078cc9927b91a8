"""``harness msa``: the repeatability of a station for every limit of a spec.

Runs the qualification suite N times on the same DUT (:mod:`harness.run.msa`) and prints per
limit and condition: n, mean, the repeatability (standard deviation), the standard
uncertainty the runs stated (RMS), the tolerance, %GRR, ndc and AIAG's verdict; a limit whose
%GRR is over 30 % is flagged "station not capable of this limit". Exit status 0 when the study
ran (a not-capable limit is a finding), 1 when no repeat left a journal, 2 on bad input.
The study machinery is imported when the command runs.
"""

from __future__ import annotations

import datetime as dt
import json
import select as select_mod
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, err_console, error_boundary
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.run.msa import RepeatRun


def wait_for_enter(prompt: str, timeout_s: float) -> bool:
    """Show ``prompt`` on stderr and wait for Enter on stdin; False on timeout or end of
    input."""
    err_console.print(prompt, end="", markup=False, highlight=False)
    try:
        ready, _, _ = select_mod.select([sys.stdin], [], [], timeout_s)
    except (OSError, ValueError):
        return False
    return bool(ready) and sys.stdin.readline() != ""


def _selected(items: list[str]) -> list[str]:
    """``--select`` items with their file part made absolute (the suite runs from the
    checkout); a file that does not exist is bad input."""
    out: list[str] = []
    for item in items:
        path, sep, node = item.partition("::")
        resolved = Path(path).resolve()
        if not resolved.exists():
            raise ConfigError(f"{path}: no such test file or folder", field="--select")
        out.append(f"{resolved}{sep}{node}")
    return out


@app.command("msa")
def msa(
    station: Annotated[Path, typer.Option("--station", help="The station file (YAML).")],
    limits: Annotated[Path, typer.Option("--limits", help="The product's limit spec (YAML).")],
    repeats: Annotated[int | None, typer.Option(
        "--repeats", help="Runs of the suite (at least 2; default: the spec's "
        "conditions.msa.repeats, else 10).")] = None,
    dut: Annotated[str | None, typer.Option(
        "--dut", help="Expected DUT serial (checked by every run).")] = None,
    select: Annotated[list[str] | None, typer.Option(
        "--select", help="Run only this test file or pytest node id (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] =
        False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table "
                                           "(README).")] = False,
    work: Annotated[Path | None, typer.Option(
        "--work", help="Folder of the repeats (default out/msa/<station>-<time>); each keeps "
        "its journal.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep each repeat's evidence folder "
                                       "(frames: large).")] = False,
    save: Annotated[bool, typer.Option(
        "--save", help="Store each limit's repeatability beside the station file "
        "(<station>.msa.json): guarded limits of later runs on this station use it.")] = False,
    no_prompt: Annotated[bool, typer.Option(
        "--no-prompt", help="Unattended: never ask the operator (an error if the spec asks "
        "for a re-seat on a real station).")] = False,
    prompt_timeout: Annotated[float, typer.Option(
        "--prompt-timeout", help="Seconds to wait for the operator's Enter after a re-seat "
        "prompt; no answer stops the study.")] = 600.0,
) -> None:
    """Run the suite N times on the same DUT and report each limit's repeatability, %GRR and
    ndc (AIAG MSA); flag the limits the station is not capable of (%GRR over 30 %)."""
    with error_boundary():
        from harness.run.msa import (
            COLUMNS,
            NOT_CAPABLE,
            cells,
            footer,
            plan_study,
            run_study,
            save_study,
        )
        from harness.run.msa import markdown as to_markdown
        from harness.run.station_study import study_path

        plan = plan_study(station, limits, repeats, prompt=not no_prompt)
        chosen = _selected(select or [])
        folder = work or Path("out") / "msa" / \
            f"{plan.station_id}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
        if plan.simulated:
            note = "simulated station: each repeat a new camera seed (noise only)"
            if plan.between:
                note += f"; {', '.join(plan.between)} not simulated: the new seed stands in"
        elif plan.between:
            note = f"real station; between repeats: {', '.join(plan.between)}"
            if "refocus" in plan.between:
                note += " (refocus: the suite's focus test finds best focus in every run)"
        else:
            note = "real station; nothing between repeats (conditions.msa.between)"
        err_console.print(f"[dim]msa: {plan.repeats} repeats on {escape(plan.station_id)}; "
                          f"{escape(note)}; work {escape(str(folder))}[/]")

        def progress(run: RepeatRun) -> None:
            seed = f" (seed {run.seed})" if run.seed is not None else ""
            err_console.print(f"repeat {run.index}/{plan.repeats}{seed}: {run.outcome.value} "
                              f"in {run.seconds:.0f} s", highlight=False)

        def confirm(index: int) -> bool:
            return wait_for_enter(f"Re-seat the module for repeat {index}/{plan.repeats}, then "
                                  f"press Enter ({prompt_timeout:g} s): ", prompt_timeout)

        study = run_study(plan, folder, select=chosen, dut=dut or "", keep=keep,
                          progress=progress, confirm=confirm)
        if save and study.journaled:
            saved = save_study(study, study_path(plan.station))
            err_console.print(f"saved the station's repeatability to {escape(str(saved))}")
    if as_json:
        print(json.dumps(study.as_dict(), indent=1, allow_nan=False))
    elif markdown:
        print(to_markdown(study))
    else:
        grid = Table(title=f"Repeatability of {escape(plan.station_id)} for "
                           f"{escape(plan.spec.product)} v{escape(plan.spec.version)} "
                           f"({len(study.journaled)} repeats, {study.seconds:.0f} s)")
        for column in COLUMNS:
            grid.add_column(column, justify="right" if column in ("n", "mean") else "left")
        for row in study.rows:
            cs = [escape(c) for c in cells(row)]
            if row.not_capable:
                cs[-1] = f"[red]not capable: {NOT_CAPABLE}[/]"
            grid.add_row(*cs)
        console.print(grid)
        for line in footer(study):
            console.print(escape(line), highlight=False)
        for run in study.runs:
            for problem in run.problems:
                console.print(f"[dim]repeat {run.index}: {escape(problem)}[/]")
    if not study.journaled:
        raise typer.Exit(EXIT_PROBLEM)


__all__ = ["msa", "wait_for_enter"]
