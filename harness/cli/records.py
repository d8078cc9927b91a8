"""``harness records runs|yield|cpk|grr|trend|export|publish|verify``: query, export, publish and
check the records database.

Every ``--json`` output is strict JSON (``null`` where a figure does not exist, never NaN).
The database layer (SQLAlchemy), the exports and the outputs are imported when a command runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, cast

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, err_console, error_boundary
from harness.errors import ConfigError
from harness.measurement import Outcome
from harness.paths import DEFAULT_RECORDS, atomic_open

if TYPE_CHECKING:
    from harness.evidence.records import RecordStore

records_app = typer.Typer(help="The records database: runs, yield, Cpk, gauge R&R, trend, export, "
                          "publish, verify.",
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
    from harness.evidence.records import RecordStore

    if "://" not in records and not Path(records).is_file():
        raise ConfigError("no records database here (runs create it; give --records PATH "
                          "or URL)", source=records)
    return RecordStore(records)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def plain(data: Any) -> Any:
    """``data`` as plain JSON values: dataclasses as dicts (with their ``yield`` figures),
    tuples as lists, and a non-finite float as ``None`` (JSON has no NaN)."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        out = {f.name: plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
        for name in ("first_pass_yield", "final_yield"):
            if hasattr(data, name):
                out[name] = plain(getattr(data, name))
        if hasattr(data, "yield_"):
            out["yield"] = plain(data.yield_)
        return out
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [plain(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, str | int | float | bool) or data is None:
        return data
    return str(data)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(plain(data), indent=2, ensure_ascii=False, allow_nan=False))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _units(labels: tuple[str, ...], shown: int = 3) -> str:
    if not labels:
        return "0"
    names = ", ".join(labels[:shown]) + (", …" if len(labels) > shown else "")
    return f"{len(labels)} ({names})"


def _condition(condition: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dict(condition).items())) or "—"


@records_app.command("runs")
def runs_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
             station: StationOpt = None, since: SinceOpt = None,
             limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
             as_json: JsonOpt = False) -> None:
    """The latest runs, newest first, with their attempt and the outputs that have not taken
    them yet (failed, or never ran: see records publish --retry)."""
    with error_boundary(), open_existing(records) as store:
        from harness.evidence.outputs import load_outputs, pending

        rows = store.runs(product=product, station=station, since=since, limit=limit)
        installed = load_outputs()
        todo = pending(store, [r.run_id for r in rows], installed.names)
    if as_json:
        _print_json([{**plain(r), "outputs_pending": todo.get(r.run_id, [])} for r in rows])
        return
    table = Table("run", "station", "product", "DUT", "attempt", "started", "outcome", "#",
                  "hash", "outputs pending")
    for r in rows:
        attempt = f"re-judged {escape(r.rejudged_from)}" if r.rejudged_from else \
            str(r.attempt)
        waiting = ", ".join(todo.get(r.run_id, []))
        table.add_row(escape(r.run_id), escape(r.station), escape(r.product),
                      escape(r.dut_serial), attempt, r.started[:19],
                      f"[{OUTCOME_STYLE.get(r.outcome, 'white')}]{r.outcome.value}[/]",
                      str(r.chain_seq), (r.record_hash or "")[:12],
                      f"[red]{escape(waiting)}[/]" if waiting else "—")
    console.print(table)
    for name, error in installed.broken:
        console.print(f"[red]output {escape(name)} cannot be loaded[/]: {escape(error)}",
                      highlight=False)


RejudgedOpt = Annotated[bool, typer.Option(
    "--rejudged", help="Let a re-judged run stand in for the attempt it re-judged (left out "
    "by default: a re-judged run is not an attempt).")]


@records_app.command("yield")
def yield_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
              station: StationOpt = None, since: SinceOpt = None,
              rejudged: RejudgedOpt = False, as_json: JsonOpt = False) -> None:
    """Per product and station: units tested, first-pass yield (units passing at their first
    attempt) and final yield (at their latest); per limit, the units failing it.

    A unit is a product and DUT serial. It passes an attempt whose run is PASS or MARGINAL;
    INCOMPLETE, FAIL, ERROR and ABORTED runs are units tested but not passing. INFO figures
    never count.
    """
    with error_boundary(), open_existing(records) as store:
        report = store.unit_yield(product=product, station=station, since=since,
                                  rejudged=rejudged)
    if as_json:
        _print_json(report)
        return
    table = Table("product", "station", "units", "first pass", "FPY", "final pass",
                  "final yield", title="Units per product and station")
    for r in report.stations:
        where = escape(r.station) if r.station is not None else "[bold]all stations[/]"
        table.add_row(escape(r.product), where, str(r.units), str(r.first_pass),
                      _pct(r.first_pass_yield), str(r.final_pass), _pct(r.final_yield))
    console.print(table)
    limits = Table("product", "limit", "measurement", "unit", "judged first / latest",
                   "failing at first attempt", "failing at latest attempt",
                   title="Units failing each limit")
    for lim in report.limits:
        limits.add_row(escape(lim.product), escape(lim.limit_id), escape(lim.name),
                       escape(lim.unit), f"{lim.judged_first} / {lim.judged_latest}",
                       escape(_units(lim.failing_first)), escape(_units(lim.failing_latest)))
    console.print(limits)


class AttemptChoice(StrEnum):
    first = "first"
    latest = "latest"


@records_app.command("cpk")
def cpk_cmd(records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
            station: StationOpt = None, since: SinceOpt = None,
            measurement: Annotated[str | None, typer.Option(
                "--measurement", help="Only this measurement name.")] = None,
            limit: Annotated[str | None, typer.Option(
                "--limit", help="Only this limit id.")] = None,
            attempt: Annotated[AttemptChoice, typer.Option(
                "--attempt", help="Each unit's latest or first attempt.")
            ] = AttemptChoice.latest,
            limits_hash: Annotated[str | None, typer.Option(
                "--limits-hash", help="Only this limit version (a prefix of its sha256).")
            ] = None,
            rejudged: RejudgedOpt = False, as_json: JsonOpt = False) -> None:
    """Cpk per limit and condition (each corner, each orientation apart) and limit version,
    one value per unit: its latest (or first) attempt that judged it."""
    with error_boundary(), open_existing(records) as store:
        rows = store.cpk(product=product, station=station, since=since, name=measurement,
                         limit_id=limit, attempt=attempt.value, limits_hash=limits_hash,
                         rejudged=rejudged)
    if as_json:
        _print_json(rows)
        return
    table = Table("product", "limit", "measurement", "condition", "limits", "n", "mean", "σ",
                  "LSL", "USL", "Cp", "Cpk",
                  title=f"Cpk, one value per unit ({attempt.value} attempt)")
    for r in rows:
        style = "red" if r.cpk is not None and r.cpk < 1.33 else "green"
        n = f"{r.n} (+{r.duplicates} dup)" if r.duplicates else str(r.n)
        table.add_row(escape(r.product), escape(r.limit_id), escape(f"{r.name} [{r.unit}]"),
                      escape(_condition(r.condition)), r.limits_hash[:8] or "—", n,
                      _fmt(r.mean), _fmt(r.std), _fmt(r.low), _fmt(r.high), _fmt(r.cp, 3),
                      f"[{style}]{_fmt(r.cpk, 3)}[/]" if r.cpk is not None else "—")
    console.print(table)


def _pct_grr(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} %"


@records_app.command("grr")
def grr_cmd(product: Annotated[str, typer.Option("--product", help="The product studied.")],
            records: RecordsOpt = str(DEFAULT_RECORDS), station: StationOpt = None,
            since: SinceOpt = None,
            until: Annotated[str | None, typer.Option(
                "--until", help="Only runs started before: YYYY-MM-DD (that day included), "
                "ISO date-time, or 7d / 12h.")] = None,
            by: Annotated[str, typer.Option(
                "--by", help="The appraisers: station or operator.")] = "station",
            limit: Annotated[str | None, typer.Option(
                "--limit", help="Only this limit id.")] = None,
            characterisation: Annotated[str, typer.Option(
                "--characterisation", help="Characterisation runs: include (with the "
                "qualification runs), only, or exclude.")] = "include",
            rejudged: RejudgedOpt = False, as_json: JsonOpt = False) -> None:
    """Crossed gauge R&R per limit and condition (AIAG MSA, ANOVA method) from the runs in the
    records: parts = DUT serials, appraisers = stations (or operators), repeats = runs of a
    part on an appraiser. %GRR over 30 % is flagged: the station is not capable of the limit."""
    with error_boundary(), open_existing(records) as store:
        from harness.evidence.records.gauge import gauge_rr

        studies = gauge_rr(store, product=product, since=since, until=until, station=station,
                           by=by, limit_id=limit, rejudged=rejudged,
                           characterisation=characterisation)
    if as_json:
        _print_json([s.as_dict() for s in studies])
        return
    table = Table("limit", "measurement", "condition", f"parts × {by}s × repeats",
                  "σ repeat", "σ reprod", "σ part", "%GRR tol", "%GRR total", "ndc",
                  "capability", title=f"Gauge R&R of {escape(product)} by {by} (ANOVA method)")
    style = {"acceptable": "green", "conditional": "yellow", "not capable": "red"}
    for s in studies:
        head = [escape(s.limit_id), escape(f"{s.name} [{s.unit}]"),
                escape(_condition(s.condition))]
        r = s.result
        if r is None:
            table.add_row(*head, f"{len(s.parts)} × {len(s.appraisers)} × {s.repeats}",
                          *["—"] * 6, "[dim]not enough data[/]")
            continue
        pooled = "" if not r.interaction_pooled else " (pooled)"
        table.add_row(*head, f"{r.parts} × {r.appraisers} × {r.repeats}",
                      _fmt(r.sd_repeatability) + pooled, _fmt(r.sd_reproducibility),
                      _fmt(r.sd_part), _pct_grr(r.pct_grr_tolerance),
                      _pct_grr(r.pct_grr_total), _fmt(r.ndc, 3),
                      f"[{style.get(r.capability, 'white')}]{r.capability}[/]")
    console.print(table)
    for s in studies:
        where = escape(s.limit_id + (f" ({_condition(s.condition)})" if s.condition else ""))
        if s.not_capable and s.pct_grr is not None:
            console.print(f"[red]{where}: station not capable of this limit[/] "
                          f"(%GRR {s.pct_grr:.1f} %)", highlight=False)
        for note in (s.problem, *s.notes) if s.problem else s.notes:
            console.print(f"[dim]{where}: {escape(note)}[/]", highlight=False)


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


class FormatChoice(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    junit = "junit"


@records_app.command("export")
def export_cmd(fmt: Annotated[FormatChoice, typer.Option(
                   "--format", help="csv: one row per measurement; jsonl: one run per line; "
                   "junit: JUnit XML, every measurement a property.")],
               records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
               station: StationOpt = None, since: SinceOpt = None,
               out: Annotated[Path | None, typer.Option(
                   "--out", help="Write here (atomically) instead of to stdout.")] = None
               ) -> None:
    """Export the selected runs, in the order they were stored."""
    from harness.evidence.exports import export

    with error_boundary(), open_existing(records) as store:
        if out is None:
            export(store, fmt.value, sys.stdout, product=product, station=station,
                   since=since)
            return
        count = _export_to(out, store, fmt.value, product, station, since)
    what = "measurements" if fmt is FormatChoice.csv else "runs"
    err_console.print(f"{count} {what} written to {escape(str(out))}", highlight=False)


def _export_to(path: Path, store: RecordStore, fmt: str, product: str | None,
               station: str | None, since: str | None) -> int:
    """Write the export whole or not at all (:func:`~harness.paths.atomic_open`)."""
    from harness.evidence.exports import export

    with atomic_open(path, "w", newline="") as fh:
        count: int = export(store, fmt, cast("TextIO", fh), product=product, station=station,
                            since=since)
    return count


@records_app.command("publish")
def publish_cmd(run_ids: Annotated[list[str] | None, typer.Argument(
                    help="Runs to give to the outputs that have not taken them.")] = None,
                retry_all: Annotated[bool, typer.Option(
                    "--retry", help="Every selected run whose outputs failed or never ran.")
                ] = False,
                records: RecordsOpt = str(DEFAULT_RECORDS), product: ProductOpt = None,
                station: StationOpt = None, since: SinceOpt = None) -> None:
    """Give stored runs to the installed outputs (entry-point group harness.outputs) that
    have not taken them; exit 1 if any output fails (each failure is printed)."""
    from harness.evidence.outputs import ENTRY_POINT_GROUP, load_outputs, retry

    with error_boundary():
        if not run_ids and not retry_all:
            raise ConfigError("give RUN_ID ... or --retry (every run whose outputs failed or "
                              "never ran)", field="publish")
        with open_existing(records) as store:
            installed = load_outputs()
            published, failures = retry(store, installed, product=product, station=station,
                                        since=since, run_ids=run_ids or ())
    for failure in failures:
        console.print(f"[red]FAILED[/]: {escape(str(failure))}", highlight=False)
    if not installed.names:
        console.print(f"no outputs installed (entry-point group {ENTRY_POINT_GROUP})")
    else:
        console.print(f"{published} run(s) given to {', '.join(installed.names)}; "
                      f"{len(failures)} failure(s)", highlight=False)
    if failures:
        raise typer.Exit(EXIT_PROBLEM)


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


__all__ = ["OUTCOME_STYLE", "AttemptChoice", "FormatChoice", "JsonOpt", "ProductOpt",
           "RecordsOpt", "RejudgedOpt", "SinceOpt", "StationOpt", "cpk_cmd", "export_cmd",
           "grr_cmd", "open_existing", "plain", "publish_cmd", "records_app", "runs_cmd",
           "trend_cmd", "verify_cmd", "yield_cmd"]
