"""``harness limits coverage SPEC``: does every limit of a product's spec prove it can fail?

Runs the qualification suites on every simulated module of the product (module files that
say what they must fail, ``expect:``) and prints the table limit id x module, the modules
whose failures differ from what they expect, and the limits no module fails; exit 1 if any
(:mod:`harness.run.limit_coverage`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary
from harness.errors import ConfigError

limits_app = typer.Typer(help="Limit specs: which limits the product's modules prove.",
                         no_args_is_help=True)
app.add_typer(limits_app, name="limits")

def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 64 or int(h) < 64:
        raise ConfigError(f"{text!r}: expected WIDTHxHEIGHT, each at least 64", field="--size")
    return int(w), int(h)


@limits_app.command("coverage")
def coverage_command(
    spec: Annotated[Path, typer.Argument(help="The product's limit spec (YAML).")],
    modules: Annotated[Path, typer.Option("--modules", help="Folder of module files.")] =
        Path("fixtures/modules"),
    size: Annotated[str | None, typer.Option(
        "--size", help="Crop every module's sensor to WIDTHxHEIGHT (e.g. 640x480).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=20,
                                       help="Runs per module, seeds 1..N.")] = 1,
    station: Annotated[Path, typer.Option(
        "--station", help="Simulated station file whose camera each module replaces.")] =
        Path("stations/sim.yaml"),
    suite: Annotated[Path, typer.Option("--suite", help="The qualification suites.")] =
        Path("tests_hil"),
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=16,
                                      help="Modules run at once.")] = 2,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Run the suites on every module of the product; table of limit id x module; exit 1 if
    a limit fails on no module or a module fails other limits than it expects."""
    from rich.table import Table

    from harness.run.limit_coverage import ModuleRun, limit_coverage

    with error_boundary():
        crop = _size(size)
        done: list[str] = []
        with tempfile.TemporaryDirectory(prefix="harness-coverage-") as work, \
                console.status("running the suites per module") as status:

            def tick(run: ModuleRun) -> None:
                done.append(run.module)
                status.update(f"{len(done)} module runs done (last: {run.module})")
                if not console.is_terminal:  # a log gets one line per run instead
                    mark = "" if run.as_expected else " (unexpected)"
                    console.print(f"{len(done)} {run.module} seed {run.seed}: "
                                  f"{run.outcome.value}{mark}")

            report = limit_coverage(spec, modules, template=station, suite=suite,
                                    work=Path(work), seeds=seeds, size=crop, jobs=jobs,
                                    progress=tick)
        table = Table("limit", "fails on", "marginal on",
                      title=f"{report.spec.product} v{report.spec.version}: which modules "
                            f"fail each limit ({seeds} seed{'s' if seeds > 1 else ''}"
                            f"{f', {size}' if size else ''}; {len(report.modules)} modules)")
        for lim in report.spec:
            cells = {m: report.cell(lim.id, m) for m in report.modules}
            fails = [m + ("" if c == "FAIL" else f" ({c})") for m, c in cells.items()
                     if c in ("FAIL", "MIXED")]
            table.add_row(lim.id, ", ".join(fails) or "[red]none[/]",
                          ", ".join(m for m, c in cells.items() if c == "MARGINAL"))
        console.print(table)
        for run in report.unexpected:
            console.print(f"[red]{run.module} (seed {run.seed})[/]: fails "
                          f"{sorted(run.fails) or 'nothing'}, expected "
                          f"{sorted(run.expected_fails) or 'nothing'}; outcome "
                          f"{run.outcome.value}" + "".join(f"\n  {p}" for p in run.problems))
        if report.unfailed:
            console.print(f"[red]no module fails[/]: {', '.join(report.unfailed)}")
        if json_out is not None:
            json_out.write_text(json.dumps(report.as_dict(), indent=1) + "\n")
        if not report.ok:
            raise typer.Exit(EXIT_PROBLEM)
        console.print(f"every limit of {report.spec.product} fails on a module, and every "
                      f"module fails exactly what it expects ({len(report.runs)} runs)")


__all__ = ["coverage_command", "limits_app"]
