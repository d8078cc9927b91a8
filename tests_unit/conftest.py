"""Shared by the unit tests: a guard that no test writes into the checkout.

Tests write only inside their own temporary folders. At the start of the session the
checkout's files (everything but version control, the virtualenv, node modules and tool
caches) are listed with their size and modification time; at the end the listing must be the
same, else the session fails naming what appeared, changed or vanished — a test that left a
run in the user's ``out/records.sqlite`` or replaced ``out/report/index.html`` is caught.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
#: Folders (anywhere) that tools own: version control, environments, caches.
SKIP = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache",
        ".ruff_cache", ".hypothesis", "camera_qual_harness.egg-info"}
_BEFORE = pytest.StashKey[dict[str, tuple[int, int]]]()


def checkout_files(root: Path = CHECKOUT) -> dict[str, tuple[int, int]]:
    """``relative path -> (size, mtime_ns)`` of the checkout's files outside :data:`SKIP`."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP]
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return found


def written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
            ) -> list[str]:
    """What differs between two listings, one line per file."""
    lines = [f"new: {p}" for p in sorted(set(after) - set(before))]
    lines += [f"changed: {p}" for p in sorted(set(after) & set(before)) if after[p] != before[p]]
    lines += [f"removed: {p}" for p in sorted(set(before) - set(after))]
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = checkout_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None or os.environ.get("HARNESS_ALLOW_CHECKOUT_WRITES") == "1":
        return
    lines = written(before, checkout_files())
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"tests wrote into the checkout {CHECKOUT} (they must write only "
                            "in their temporary folders):", red=True)
        for line in lines[:50]:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
