"""``harness analyze``: run the pure analysis on recorded data.

Each command is added by the module :data:`ANALYZE_MODULES` names, imported when the command
is used (:mod:`harness.cli.lazy_group`).
"""

from __future__ import annotations

import typer

from harness.cli.app import app
from harness.cli.lazy_group import lazy_group

#: ``harness analyze`` command -> the module that registers it on :data:`analyze_app`.
ANALYZE_MODULES: dict[str, tuple[str, ...]] = {
    "blemish": ("harness.cli.analyze_blemish",),
    "chromatic": ("harness.cli.analyze_chromatic",),
    "colour": ("harness.cli.analyze_optics",),
    "defects": ("harness.cli.analyze_sensor",),
    "distortion": ("harness.cli.analyze_distortion",),
    "emva1288": ("harness.cli.analyze_sensor",),
    "focus": ("harness.cli.analyze_optics",),
    "geometry": ("harness.cli.analyze_geometry",),
    "sfr": ("harness.cli.analyze_optics",),
    "uniformity": ("harness.cli.analyze_sensor",),
}

analyze_app: typer.Typer = typer.Typer(
    cls=lazy_group(lambda: analyze_app, ANALYZE_MODULES),
    help="Analyse captured data (EMVA 1288, defects, uniformity, SFR, focus, colour).",
    no_args_is_help=True,
)
app.add_typer(analyze_app, name="analyze")

__all__ = ["ANALYZE_MODULES", "analyze_app"]
