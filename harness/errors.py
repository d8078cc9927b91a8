"""Error taxonomy.

The class of an exception decides the outcome a test gets (OpenHTF's outcome model):

* :class:`ConfigError` and its children: bad input (station file, limit spec, capture set,
  CLI argument). Always a one-line message naming the file, field and allowed values.
* :class:`DeviceError` and its children: a station or instrument fault. Reported as ERROR
  (Allure "broken"), never as a DUT failure.
* :class:`Aborted`: an operator or a signal stopped the run (ABORTED).

* :class:`MeasurementError`: a figure could not be measured, or what was measured is not
  physically possible (negative dark current, QE above 100 %, a fit with too few points, a
  chart region not found). An ERROR of the step, never a FAIL: the DUT was not judged.
* :class:`LimitFailure`: the only FAIL. Raised by the run's checker when a figure broke a
  limit of the spec; an ``AssertionError`` so that pytest reports it as a failure.

Outcomes are chosen by exception type, never by the text of a message.
"""

from __future__ import annotations

#: Every character ``str.splitlines`` breaks a line at, other than ``\n`` (which becomes a space).
_BREAKS = {ord(c): repr(c)[1:-1] for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` as one line: newlines become spaces, other line breaks are shown escaped
    (a key or value from a file may hold any of them)."""
    return text.replace("\n", " ").translate(_BREAKS)


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """Bad input: the message is one line naming the source, the field and what is allowed."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.detail = message
        prefix = ""
        if source:
            prefix = f"{source}:{line}: " if line else f"{source}: "
        if field:
            prefix += f"{field}: "
        super().__init__(one_line(prefix + message))


class CalibrationExpired(ConfigError):
    """An instrument's calibration certificate is past its due date."""


class StationLocked(HarnessError):
    """Another live process holds the station's exclusive lock."""


class DeviceError(HarnessError):
    """A station or instrument fault (an ERROR outcome, never a FAIL)."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        self.device = device
        super().__init__(f"{device}: {message}" if device else message)


class InstrumentError(DeviceError):
    """An instrument answered wrongly, not at all, or reports an error state."""


class CameraError(DeviceError):
    """The camera failed (open, feature access, acquisition)."""


class CameraTimeout(CameraError):
    """No frame arrived within the timeout (after the configured retries)."""


class CameraDisconnected(CameraError):
    """The camera vanished from its transport."""


class FeatureError(CameraError):
    """A camera feature is unknown, out of range or not writable now."""


class MeasurementError(HarnessError):
    """A figure could not be measured, or is physically impossible: an ERROR, never a FAIL.

    ``figure`` names the figure (or region) concerned, when there is one.
    """

    def __init__(self, message: str, *, figure: str | None = None) -> None:
        self.figure = figure
        super().__init__(one_line(message))


class LimitFailure(AssertionError):
    """One or more figures broke a limit of the spec: the DUT is out of spec (FAIL).

    The only exception that makes a FAIL; every other one is an ERROR or ABORTED.
    """


class EvidenceError(HarnessError):
    """Writing evidence (journal, frames, records) failed: the run cannot be PASS."""


class Aborted(KeyboardInterrupt):
    """The run was stopped by an operator or a signal (SIGINT, SIGTERM).

    A ``KeyboardInterrupt`` so that ``except Exception`` in device code does not swallow it and
    pytest ends the session the way it does on Ctrl-C: teardown (and so the safe state) runs.
    """

    def __init__(self, reason: str = "aborted") -> None:
        self.reason = reason
        super().__init__(reason)


__all__ = ["Aborted", "CalibrationExpired", "CameraDisconnected", "CameraError", "CameraTimeout",
           "ConfigError", "DeviceError", "EvidenceError", "FeatureError", "HarnessError",
           "InstrumentError", "LimitFailure", "MeasurementError", "StationLocked", "one_line"]
