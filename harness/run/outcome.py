"""What an exception means for a verdict: the outcome of a test, chosen by exception type.

Only :class:`~harness.errors.LimitFailure` (raised by the checker when a figure broke a limit
of the spec) is a FAIL. A station, instrument, camera, evidence, configuration or analysis
problem is an ERROR; an operator or a signal is ABORTED. Any other exception, a test's own
``assert`` included, is an ERROR of kind ``test``: the suite could not do its job, and that
says nothing about the DUT. Nothing here looks at the text of a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import (
    CameraError,
    ConfigError,
    DeviceError,
    EvidenceError,
    InstrumentError,
    LimitFailure,
    MeasurementError,
    StationLocked,
)
from harness.measurement import Outcome

#: (exception type, kind) in the order they are matched: subclasses before their bases.
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (InstrumentError, "instrument"),
    (CameraError, "camera"),
    (DeviceError, "station"),
    (StationLocked, "station"),
    (MeasurementError, "measurement"),
    (EvidenceError, "evidence"),
    (ConfigError, "config"),
)


@dataclass(frozen=True)
class Classified:
    """The outcome an exception gives a test, and the kind of fault for the record."""

    outcome: Outcome
    kind: str


def classify(exc: BaseException | None) -> Classified:
    """The outcome of a test that raised ``exc`` (``None``: it raised nothing, PASS)."""
    if exc is None:
        return Classified(Outcome.PASS, "")
    if isinstance(exc, KeyboardInterrupt):  # includes harness.errors.Aborted
        return Classified(Outcome.ABORTED, "aborted")
    if isinstance(exc, LimitFailure):
        return Classified(Outcome.FAIL, "limit")
    for kind_type, kind in _KINDS:
        if isinstance(exc, kind_type):
            return Classified(Outcome.ERROR, kind)
    return Classified(Outcome.ERROR, "test")


__all__ = ["Classified", "classify"]
