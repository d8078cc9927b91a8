"""The floors of harness/ hold: no module imports a higher floor (import-linter).

The contracts are ``[tool.importlinter]`` in pyproject.toml: the floors bottom up as
shared/DESIGN.md ("Top floors") draws them, and nothing up to ``harness.run`` importing pytest.
Imports inside functions count, so a lazy import cannot hide a floor crossed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LINT = ("import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv[0] = 'lint-imports'; lint_imports_command()")


def test_no_floor_imports_a_higher_one() -> None:
    assert importlib.util.find_spec("importlinter") is not None, (
        "import-linter is missing: install the dev extra (pip install -e '.[dev]')")
    # --no-cache: the cache would be written into the checkout
    proc = subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--no-logo",
                           str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"import rules broken:\n{proc.stdout}{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout
