"""``harness analyze``: run the pure analysis on recorded data.

Commands are added by :mod:`harness.cli.analyze_sensor` (EMVA 1288, defects, uniformity) and
:mod:`harness.cli.analyze_optics` (slanted-edge SFR, focus, colour).
"""

from __future__ import annotations

import typer

from harness.cli.app import app

analyze_app = typer.Typer(
    help="Analyse captured data (EMVA 1288, defects, uniformity, SFR, focus, colour).",
    no_args_is_help=True,
)
app.add_typer(analyze_app, name="analyze")

from harness.cli import analyze_blemish as _blemish  # noqa: E402,F401
from harness.cli import analyze_chromatic as _chromatic  # noqa: E402,F401
from harness.cli import analyze_distortion as _distortion  # noqa: E402,F401
from harness.cli import analyze_geometry as _geometry  # noqa: E402,F401
from harness.cli import analyze_optics as _optics  # noqa: E402,F401
from harness.cli import analyze_sensor as _sensor  # noqa: E402,F401

__all__ = ["analyze_app"]
