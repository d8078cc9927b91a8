"""The ``harness`` command line (typer + rich).

Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from harness.cli import analyze as _analyze  # noqa: F401  (registers commands)
from harness.cli import capture as _capture  # noqa: F401
from harness.cli import devices as _devices  # noqa: F401
from harness.cli import limits as _limits  # noqa: F401
from harness.cli import msa as _msa  # noqa: F401
from harness.cli import records as _records  # noqa: F401
from harness.cli import rejudge as _rejudge  # noqa: F401
from harness.cli import reliability as _reliability  # noqa: F401
from harness.cli import report as _report  # noqa: F401
from harness.cli import serve as _serve  # noqa: F401
from harness.cli import signoff as _signoff  # noqa: F401
from harness.cli import sim as _sim  # noqa: F401
from harness.cli import station as _station  # noqa: F401
from harness.cli import station_calibrate as _station_calibrate  # noqa: F401
from harness.cli.app import app, main

__all__ = ["app", "main"]
