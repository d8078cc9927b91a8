"""``harness devices``: every device of every GenTL producer, as a table or JSON.

Harvesters and the GenTL machinery are imported when the command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.app import app, console, error_boundary
from harness.errors import ConfigError

#: :data:`harness.devices.camera.harvester.GENTL_ENV`, for the help text (which must not
#: import the GenTL machinery; tests_unit/test_startup.py checks the two agree).
GENTL_ENV = "GENICAM_GENTL64_PATH"


def list_devices(cti: list[Path]) -> dict[str, Any]:
    """Producers (``--cti`` plus ``GENICAM_GENTL64_PATH``) and the devices each lists."""
    from harness.devices.camera.harvester import check_producers, get_manager, producers_from_env

    producers = list(dict.fromkeys(check_producers(cti, source="--cti") + producers_from_env()))
    if not producers:
        raise ConfigError(f"no GenTL producer: pass --cti PATH or set {GENTL_ENV}",
                          field="--cti")
    manager = get_manager()
    if not manager.add_producers(producers) and not manager.in_use():
        manager.update()  # fresh access status; nothing of ours is open
    devices = [d.as_dict() for d in manager.devices() if d.producer in producers]
    return {"producers": producers, "devices": devices}


@app.command("devices")
def devices_command(
    cti: Annotated[list[Path] | None, typer.Option(
        "--cti", help=f"GenTL producer (.cti); repeatable. {GENTL_ENV} is searched as well.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
) -> None:
    """List every device of every GenTL producer (vendor, model, serial, user name, access)."""
    with error_boundary():
        report = list_devices(cti or [])
        if as_json:
            typer.echo(json.dumps(report, indent=1))
            return
        table = Table(title=f"{len(report['devices'])} device(s), "
                            f"{len(report['producers'])} producer(s)")
        for col in ("#", "vendor", "model", "serial", "user name", "access", "producer"):
            table.add_column(col, overflow="fold")
        for d in report["devices"]:
            table.add_row(str(d["index"]), d["vendor"], d["model"], d["serial"],
                          d["user_name"] or "-", d["access_status"], Path(d["producer"]).name)
        console.print(table)
        if not report["devices"]:
            console.print("no devices found (check cabling, power and the producer's own tools)")


__all__ = ["GENTL_ENV", "devices_command", "list_devices"]
