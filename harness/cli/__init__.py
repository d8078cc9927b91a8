"""The ``harness`` command line (typer + rich).

Each command group lives in its own module and registers itself on :data:`app`; the root
group imports a module when its command is used (``COMMAND_MODULES`` in
:mod:`harness.cli.app`).
"""

from __future__ import annotations

from harness.cli.app import app, main

__all__ = ["app", "main"]
