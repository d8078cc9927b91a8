"""``harness station check``: validate a station file, open every device, show identities.

The station (schema, drivers) is imported when a command runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.app import EXIT_PROBLEM, app, console, error_boundary
from harness.errors import HarnessError, StationLocked

station_app = typer.Typer(help="Station files: check, calibrate; signing keys.",
                          no_args_is_help=True)
app.add_typer(station_app, name="station")

DUE_SOON_DAYS = 30


def calibration_status(config: Any, today: dt.date | None = None) -> list[dict[str, Any]]:
    """One row per calibrated instrument: certificate, due date, days left, status."""
    today = today or dt.date.today()
    rows = []
    for role, cal in sorted(config.calibration.items()):
        days = cal.days_left(today)
        status = "EXPIRED" if days < 0 else ("DUE SOON" if days <= DUE_SOON_DAYS else "OK")
        rows.append({"device": role, "certificate": cal.certificate,
                     "due": cal.due.isoformat(), "days_left": days, "status": status})
    return rows


def run_check(path: Path, allow_expired: bool) -> tuple[dict[str, Any], list[str]]:
    """Load, open and identify every device; returns the report and the problems found."""
    from harness.station.schema import load_station_file
    from harness.station.station import Station

    config = load_station_file(path)
    problems: list[str] = []
    cal_rows = calibration_status(config)
    problems += [f"{r['device']}: calibration {r['certificate']} expired on {r['due']}"
                 for r in cal_rows if r["status"] == "EXPIRED"]
    report: dict[str, Any] = {"station": config.id, "site": config.site, "file": str(path),
                              "devices": [], "calibration": cal_rows}
    station = Station(config, allow_expired_calibration=True)
    try:
        station.open()
    except StationLocked:  # another run holds it: not a device problem, exit 3
        raise
    except HarnessError as exc:
        problems.append(f"open failed: {exc}")
        report["problems"] = problems
        return report, problems
    try:
        for spec in config.devices:
            entry: dict[str, Any] = {"role": spec.role, "kind": spec.kind, "driver": spec.driver}
            try:
                entry["identity"] = station.device(spec.role).identity().as_dict()
                entry["status"] = "OK"
            except Exception as exc:
                entry["status"] = f"ERROR: {exc}"
                problems.append(f"{spec.role}: identity failed: {exc}")
            report["devices"].append(entry)
    finally:
        safe = station.close()
        for role, msg in safe.failed:
            problems.append(f"{role}: safe state failed: {msg}")
    if calibration_file := _light_calibration_problem(config):
        problems.append(calibration_file)
    report["problems"] = problems
    return report, problems


def _light_calibration_problem(config: Any) -> str | None:
    """Stale or missing light calibration (filled in by the instruments work when present)."""
    try:
        from harness.station.light_calibration import calibration_problem
    except ModuleNotFoundError:
        return None
    result: str | None = calibration_problem(config)
    return result


@station_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="Station file (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    allow_expired_calibration: Annotated[
        bool, typer.Option("--allow-expired-calibration",
                           help="Report an expired calibration without failing.")] = False,
) -> None:
    """Validate FILE, open every device, print identities and calibration status.

    Exits 0 when all is well, 1 on any problem (a device that fails, an expired calibration),
    2 on a malformed file, 3 when the station is locked by another run.
    """
    with error_boundary():
        report, problems = run_check(file, allow_expired_calibration)
        if allow_expired_calibration:
            problems = [p for p in problems if "expired" not in p]
            report["problems"] = problems
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_report(report)
        if problems:
            if not as_json:
                for p in problems:
                    console.print(f"[bold red]problem:[/] {p}", highlight=False)
            raise typer.Exit(EXIT_PROBLEM)


def _print_report(report: dict[str, Any]) -> None:
    console.print(f"[bold]Station {report['station']}[/] ({report['site'] or 'no site'}) "
                  f"from {report['file']}", highlight=False)
    devices = Table("role", "driver", "vendor", "model", "serial", "firmware", "status")
    for d in report["devices"]:
        ident = d.get("identity") or {}
        devices.add_row(d["role"], d["driver"], ident.get("vendor", ""), ident.get("model", ""),
                        ident.get("serial", ""), ident.get("firmware", ""), d["status"])
    console.print(devices)
    if report["calibration"]:
        cal = Table("device", "certificate", "due", "days left", "status")
        for r in report["calibration"]:
            cal.add_row(r["device"], r["certificate"], r["due"], str(r["days_left"]), r["status"])
        console.print(cal)
    else:
        console.print("no calibration records in the station file")


@station_app.command("keygen")
def keygen(
    station_id: Annotated[str, typer.Option("--station-id", help="The station's id (its "
                                            "station file's `id:`).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for ID.key and ID.pub.")],
) -> None:
    """Make the station's Ed25519 signing key pair: OUT/ID.key (private, mode 0600) and
    OUT/ID.pub. Runs are signed when the station file names the private key
    (settings.signing_key) or $HARNESS_SIGNING_KEY does; `harness records verify --keys DIR`
    checks them against the .pub files. An existing key is never overwritten."""
    from harness.evidence.records.signing import generate_keys

    with error_boundary():
        pair = generate_keys(station_id, out)
    console.print(f"private key: {pair.private} (mode 0600; keep it on the station: "
                  "settings.signing_key or $HARNESS_SIGNING_KEY)", highlight=False)
    console.print(f"public key:  {pair.public} (for `harness records verify --keys`)",
                  highlight=False)
    console.print(f"fingerprint: {pair.fingerprint}", highlight=False)


__all__ = ["calibration_status", "check", "keygen", "run_check", "station_app"]
