"""Opt-in pytest plugin (inert unless ``--station`` is given)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "camera-module qualification harness")
    group.addoption("--station", default=None, help="station file (YAML); enables the harness")
