"""Shared pieces of the qualification suites.

Run with the harness plugin and a limit spec::

    pytest tests_hil --station stations/sim.yaml --limits tests_hil/limits/cm12.yaml

The suites use the plugin's public fixtures only: ``hil_session`` (this test's view of the
run's captures: each capture sequence runs once per run with the spec's conditions, the
measured black level, shared analysis results, attachments) and ``hil_check`` (judging).
Every test declares the figures it judges with ``hil_measures``, so a run that skips or
deselects it lists those limits as unjudged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.inputs.captureset import CaptureSet
from harness.run.capture_analyses import role_mean


def mean_frame(cs: CaptureSet, role: str) -> np.ndarray:
    """Mean of the frames of ``role`` in a capture set (float64)."""
    return role_mean(cs.root, role=role)


def sequence_mean(hil_session: Any, sequence: str, role: str) -> np.ndarray:
    """:func:`mean_frame` of a run's capture sequence, computed once per run (the flat field
    serves the shading, colour and edge tests)."""
    return hil_session.analysed(f"mean:{sequence}:{role}", sequence, role_mean,
                                lambda _: {"role": role})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--selftest-record", action="store_true", default=False,
                     help="store this run's self-test figures as the station's reference")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The station self-test runs only when asked for (``-m selftest``)."""
    if "selftest" in (config.getoption("markexpr") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("selftest") is None]
    dropped = [i for i in items if i.get_closest_marker("selftest") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
