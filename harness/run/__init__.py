"""The qualification run: checker, coverage, capture session, outcome rules, the watchdog.

Used by the pytest plugin, the command line and (later) the station app; nothing in here
knows pytest. See :mod:`harness.run.qualification` for the walk of a run.

The names below are imported on first use, so ``python -m harness.run.watchdog`` (a process
started with every run) does not load the run's machinery (numpy, evidence, capture) it never
needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.run.checker import Checker, Judgements
    from harness.run.coverage import TestPlan, unjudged_limits
    from harness.run.outcome import Classified, classify
    from harness.run.qualification import QualificationRun, TestSession
    from harness.run.session import CameraSetup, CaptureSession

_HOME = {
    "Checker": "checker", "Judgements": "checker",
    "TestPlan": "coverage", "unjudged_limits": "coverage",
    "Classified": "outcome", "classify": "outcome",
    "QualificationRun": "qualification", "TestSession": "qualification",
    "CameraSetup": "session", "CaptureSession": "session",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


__all__ = ["CameraSetup", "CaptureSession", "Checker", "Classified", "Judgements",
           "QualificationRun", "TestPlan", "TestSession", "classify", "unjudged_limits"]
