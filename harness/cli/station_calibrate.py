"""``harness station calibrate FILE``: measure the light's level -> lux curve with the meter.

The station and the calibration are imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.app import console, error_boundary
from harness.cli.station import station_app
from harness.errors import ConfigError


@station_app.command("calibrate")
def calibrate_command(
    file: Annotated[Path, typer.Argument(help="Station file (YAML) with a light and a meter.")],
    points: Annotated[int, typer.Option("--points", min=2, max=101,
                                        help="Levels to measure, evenly spaced.")] = 11,
    lowest: Annotated[float, typer.Option("--lowest", help="Lowest level, %.")] = 5.0,
    highest: Annotated[float, typer.Option("--highest", help="Highest level, %.")] = 100.0,
    tolerance_pct: Annotated[float | None, typer.Option(
        "--tolerance-pct", help="Stable means within this spread, % "
        "[default: the station's settings.light_settle]")] = None,
    window_s: Annotated[float | None, typer.Option(
        "--window-s", help="... over this window, s [default: light_settle]")] = None,
    timeout_s: Annotated[float | None, typer.Option(
        "--timeout-s", help="Per level, s [default: light_settle]")] = None,
    allow_expired_calibration: Annotated[bool, typer.Option(
        "--allow-expired-calibration", help="Open even if a certificate expired.")] = False,
) -> None:
    """Step the light through its range, read the meter when stable, store the curve.

    Writes <station>.light-cal.json next to FILE (date, light and meter identities, points).
    A level counts as stable by the station's ``settings.light_settle`` criterion, the one its
    captures use; an option given here overrides that part of it.
    Exits 2 on bad input, 3 on an instrument fault (nothing is written then).
    """
    with error_boundary():
        from harness.station.light_calibration import (
            calibrate,
            calibration_path,
            default_levels,
        )
        from harness.station.schema import require_station_file
        from harness.station.stability import settle_criterion
        from harness.station.station import Station

        config = require_station_file(file)
        missing = [r for r in ("light", "meter") if config.device(r) is None]
        if missing:
            raise ConfigError(f"no {' and no '.join(missing)} on this station; calibration "
                              f"needs both", source=str(file))
        settle = settle_criterion(config.settings.light_settle, tolerance_pct=tolerance_pct,
                                  window_s=window_s, timeout_s=timeout_s)
        levels = default_levels(points, lowest, highest)
        with Station(config, allow_expired_calibration=allow_expired_calibration) as station:
            cal = calibrate(station.device("light"), station.device("meter"), station=config.id,
                            levels=levels, tolerance_pct=settle.tolerance_pct,
                            window_s=settle.window_s, timeout_s=settle.timeout_s,
                            interval_s=settle.interval_s)
        out = calibration_path(file)
        cal.save(out)
        table = Table("level %", f"illuminance ({cal.unit})", "CCT (K)", "spread %")
        for p in cal.points:
            table.add_row(f"{p.level_pct:g}", f"{p.lux:.4g}",
                          "" if p.cct_k is None else f"{p.cct_k:.0f}", f"{p.spread_pct:.3f}")
        console.print(table)
        console.print(f"light {cal.light.model} s/n {cal.light.serial}, meter {cal.meter.model} "
                      f"s/n {cal.meter.serial}; saved {out}", highlight=False)


__all__ = ["calibrate_command"]
