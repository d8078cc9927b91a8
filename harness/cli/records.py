"""``harness records runs|yield|trend|cpk|verify``: query and check the records database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary
from harness.errors import ConfigError
from harness.evidence.model import Outcome
from harness.evidence.records import DEFAULT_RECORDS, RecordStore

records_app = typer.Typer(help="The records database: runs, yield, trend, Cpk, verify.",
                          no_args_is_help=True)
app.add_typer(records_app, name="records")

RecordsOpt = Annotated[str, typer.Option(
    "--records", envvar="HARNESS_RECORDS",
    help="SQLite file or URL (sqlite:///PATH, postgresql://USER@HOST:PORT/DB).")]
ProductOpt = Annotated[str | None, typer.Option("--product", help="Only this product.")]
StationOpt = Annotated[str | None, typer.Option("--station", help="Only this station.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="Only runs started since: YYYY-MM-DD, ISO date-time, or 7d / 12h.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

OUTCOME_STYLE = {Outcome.PASS: "green", Outcome.MARGINAL: "yellow", Outcome.FAIL: "red",
                 Outcome.ERROR: "magenta", Outcome.ABORTED: "magenta",
                 Outcome.SKIPPED: "dim"}


def open_existing(records: str) -> RecordStore:
    """Open a store for reading; a SQLite path that does not exist is an error, not a new DB."""
    if "://" not in records and not Path(records).is_file():
        raise ConfigError("no records database here (runs create it; give --records PATH "
                          "or URL)", source=records)
    return RecordStore(records)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _print_json(rows: list[Any]) -> None:
    def encode(obj: Any) -> Any:
        data = dataclasses.asdict(obj)
        for name in ("yield_",):
            if hasattr(obj, name):
                data["yield"] = getattr(obj, name)
        return data

    console.print_json(json.dumps([encode(r) for r in rows], default=str))


@records_app.command("runs")
def runs_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
             station: StationOpt = None, since: SinceOpt = None,
             limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
             as_json: JsonOpt = False) -> None:
    """The latest runs, newest first."""
    with error_boundary(), open_existing(records) as store:
        rows = store.runs(product=product, station=station, since=since, limit=limit)
        if as_json:
            _print_json(rows)
            return
        table = Table("run", "station", "product", "DUT", "started", "outcome", "#", "hash")
        for r in rows:
            table.add_row(escape(r.run_id), escape(r.station), escape(r.product),
                          escape(r.dut_serial), r.started[:19],
                          f"[{OUTCOME_STYLE[r.outcome]}]{r.outcome.value}[/]",
                          str(r.chain_seq), (r.record_hash or "")[:12])
        console.print(table)


@records_app.command("yield")
def yield_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
              station: StationOpt = None, since: SinceOpt = None,
              as_json: JsonOpt = False) -> None:
    """Yield per limit: PASS / MARGINAL / FAIL counts (ERROR is not a DUT verdict)."""
    with error_boundary(), open_existing(records) as store:
        rows = store.yield_by_limit(product=product, station=station, since=since)
        if as_json:
            _print_json(rows)
            return
        table = Table("limit", "measurement", "unit", "pass", "marginal", "fail", "error",
                      "yield")
        for r in rows:
            y = "—" if r.yield_ is None else f"{100 * r.yield_:.1f} %"
            table.add_row(escape(r.limit_id), escape(r.name), escape(r.unit), str(r.passed),
                          str(r.marginal), str(r.failed), str(r.error), y)
        console.print(table)


@records_app.command("cpk")
def cpk_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
            station: StationOpt = None, since: SinceOpt = None,
            measurement: Annotated[str | None, typer.Option("--measurement")] = None,
            as_json: JsonOpt = False) -> None:
    """Cpk per measurement across DUTs (each DUT's latest run)."""
    with error_boundary(), open_existing(records) as store:
        rows = store.cpk(product=product, station=station, since=since, name=measurement)
        if as_json:
            _print_json(rows)
            return
        table = Table("measurement", "limit", "unit", "n", "mean", "σ", "LSL", "USL", "Cp",
                      "Cpk")
        for r in rows:
            style = "red" if r.cpk is not None and r.cpk < 1.33 else "green"
            table.add_row(escape(r.name), escape(r.limit_id), escape(r.unit), str(r.n),
                          _fmt(r.mean), _fmt(r.std), _fmt(r.low), _fmt(r.high), _fmt(r.cp, 3),
                          f"[{style}]{_fmt(r.cpk, 3)}[/]" if r.cpk is not None else "—")
        console.print(table)


@records_app.command("trend")
def trend_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
              station: StationOpt = None, since: SinceOpt = None,
              measurement: Annotated[str | None, typer.Option(
                  "--measurement", help="Also show this measurement's daily mean/min/max.")
              ] = None,
              as_json: JsonOpt = False) -> None:
    """Per station and day: run outcomes and yield (and a measurement's statistics)."""
    with error_boundary(), open_existing(records) as store:
        rows = store.trend(product=product, station=station, since=since,
                           measurement=measurement)
        if as_json:
            _print_json(rows)
            return
        columns = ["station", "day", "runs", "pass", "marginal", "fail", "error", "aborted",
                   "yield"]
        if measurement:
            columns += [f"{measurement} mean", "min", "max"]
        table = Table(*columns)
        for r in rows:
            cells = [escape(r.station), r.day, str(r.runs), str(r.passed), str(r.marginal),
                     str(r.failed), str(r.error), str(r.aborted),
                     "—" if r.yield_ is None else f"{100 * r.yield_:.1f} %"]
            if measurement:
                cells += [_fmt(r.mean), _fmt(r.minimum), _fmt(r.maximum)]
            table.add_row(*cells)
        console.print(table)


@records_app.command("verify")
def verify_cmd(records: RecordsOpt = str(DEFAULT_RECORDS),
               keys: Annotated[Path | None, typer.Option(
                   "--keys", help="Folder of <station id>.pub public keys: also check every "
                                  "run's signature (an unsigned run is a problem).")] = None,
               ) -> None:
    """Recompute every run's hash and check each station's chain (and, with --keys, every
    run's station signature); exit 1 on any problem."""
    from harness.evidence.records.signing import load_public_keys, signature_check

    with error_boundary():
        checks = [signature_check(load_public_keys(keys))] if keys is not None else []
        with open_existing(records) as store:
            report = store.verify(checks=checks)
    if report.ok:
        signed = ", every signature" if keys is not None else ""
        console.print(f"[green]OK[/]: {report.checked} runs on {report.stations} station(s), "
                      f"every hash{signed} and chain link checks out")
        return
    for problem in report.problems:
        console.print(f"[red]TAMPERED[/]: {escape(problem)}", highlight=False)
    raise typer.Exit(EXIT_PROBLEM)
