"""The ``harness`` command line (typer + rich).

Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from harness.cli import analyze as _analyze  # noqa: F401  (registers commands)
from harness.cli.app import app, main

__all__ = ["app", "main"]
