"""The guard of tests_unit/conftest.py sees a file a test writes into a checkout."""

from __future__ import annotations

import os
from pathlib import Path

from tests_unit.conftest import checkout_files, written


def test_the_guard_names_new_changed_and_removed_files(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "records.sqlite").write_bytes(b"x")
    (tmp_path / "README.md").write_text("a")
    (tmp_path / ".venv").mkdir()
    before = checkout_files(tmp_path)
    assert set(before) == {os.path.join("out", "records.sqlite"), "README.md"}
    (tmp_path / "out" / "report").mkdir()
    (tmp_path / "out" / "report" / "index.html").write_text("<html>")
    (tmp_path / "out" / "records.sqlite").write_bytes(b"xy")
    (tmp_path / "README.md").unlink()
    (tmp_path / ".venv" / "ignored").write_text("tools' own folders are not the checkout's")
    assert written(before, checkout_files(tmp_path)) == [
        f"new: {os.path.join('out', 'report', 'index.html')}",
        f"changed: {os.path.join('out', 'records.sqlite')}",
        "removed: README.md"]
