"""The qualification run: checker, coverage, capture session, outcome rules.

Used by the pytest plugin, the command line and (later) the station app; nothing in here
knows pytest. See :mod:`harness.run.qualification` for the walk of a run.
"""

from harness.run.checker import Checker, Judgements
from harness.run.coverage import TestPlan, unjudged_limits
from harness.run.outcome import Classified, classify
from harness.run.qualification import QualificationRun, TestSession
from harness.run.session import CameraSetup, CaptureSession

__all__ = ["CameraSetup", "CaptureSession", "Checker", "Classified", "Judgements",
           "QualificationRun", "TestPlan", "TestSession", "classify", "unjudged_limits"]
