"""The measurement and outcome model the whole harness shares (after OpenHTF's measurements).

A :class:`Measurement` is one judged figure: value, unit, limits, an optional marginal band,
the outcome and the margin to the nearest limit. A :class:`RunRecord` is everything a run left
behind (tests, measurements, captured frames by hash, devices, calibrations); the journal
rebuilds it, the records store keeps it, the report and the sign-off read it.

Outcomes keep their meaning end to end: FAIL is the DUT out of spec, ERROR a station or
instrument fault (or lost evidence), ABORTED an operator or a signal. A run is never better
than its worst test, so an ERROR can never read as PASS.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """Outcome of a measurement, a test or a run (OpenHTF's outcomes plus MARGINAL)."""

    PASS = "PASS"
    MARGINAL = "MARGINAL"
    FAIL = "FAIL"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    SKIPPED = "SKIPPED"

    @property
    def rank(self) -> int:
        """Severity: the worst outcome of a group wins (SKIPPED < PASS < ... < ABORTED)."""
        return _RANK[self]

    @property
    def allure_status(self) -> str:
        """Allure status: FAIL → failed (DUT), ERROR/ABORTED → broken (station), else passed."""
        return _ALLURE[self]

    @property
    def ok(self) -> bool:
        """True when the DUT is within its limits (PASS or MARGINAL)."""
        return self in (Outcome.PASS, Outcome.MARGINAL)

    @classmethod
    def parse(cls, text: str) -> Outcome:
        try:
            return cls(text.upper())
        except ValueError:
            allowed = ", ".join(o.value for o in cls)
            raise ValueError(f"unknown outcome {text!r}; allowed: {allowed}") from None


_RANK = {Outcome.SKIPPED: 0, Outcome.PASS: 1, Outcome.MARGINAL: 2, Outcome.FAIL: 3,
         Outcome.ERROR: 4, Outcome.ABORTED: 5}
_ALLURE = {Outcome.PASS: "passed", Outcome.MARGINAL: "passed", Outcome.FAIL: "failed",
           Outcome.ERROR: "broken", Outcome.ABORTED: "broken", Outcome.SKIPPED: "skipped"}


def worst(outcomes: Iterable[Outcome], default: Outcome = Outcome.PASS) -> Outcome:
    """The most severe outcome of ``outcomes`` (``default`` when there are none)."""
    found = list(outcomes)
    return max(found, key=lambda o: o.rank) if found else default


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class Measurement:
    """One judged figure (OpenHTF-style measurement with a marginal band).

    ``low``/``high`` are the limits (``None`` = unbounded). ``marginal_low``/``marginal_high``
    are the inner edges of the guard band: a value inside the limits but outside
    ``[marginal_low, marginal_high]`` is MARGINAL. ``margin`` is the signed distance to the
    nearest limit in the measurement's unit (positive inside the limits).
    """

    name: str
    value: float | None
    unit: str
    outcome: Outcome
    limit_id: str = ""
    low: float | None = None
    high: float | None = None
    marginal_low: float | None = None
    marginal_high: float | None = None
    margin: float | None = None
    condition: Mapping[str, Any] = field(default_factory=dict)
    test_id: str = ""
    message: str = ""

    @classmethod
    def judged(cls, name: str, value: float | None, unit: str, *, low: float | None = None,
               high: float | None = None, marginal_low: float | None = None,
               marginal_high: float | None = None, limit_id: str = "",
               condition: Mapping[str, Any] | None = None, test_id: str = "") -> Measurement:
        """Judge ``value`` against the limits: a missing or non-finite value is an ERROR."""
        if value is None or not math.isfinite(value):
            outcome, margin, message = Outcome.ERROR, None, "no finite value was measured"
        else:
            margins = [m for m in ((value - low) if low is not None else None,
                                   (high - value) if high is not None else None)
                       if m is not None]
            margin = min(margins) if margins else None
            if margin is not None and margin < 0:
                outcome, message = Outcome.FAIL, "out of spec"
            elif ((marginal_low is not None and value < marginal_low)
                  or (marginal_high is not None and value > marginal_high)):
                outcome, message = Outcome.MARGINAL, "inside the guard band"
            else:
                outcome, message = Outcome.PASS, ""
        return cls(name=name, value=None if value is None or not math.isfinite(value) else
                   float(value), unit=unit, outcome=outcome, limit_id=limit_id, low=low,
                   high=high, marginal_low=marginal_low, marginal_high=marginal_high,
                   margin=margin, condition=dict(condition or {}), test_id=test_id,
                   message=message)

    def limits_text(self) -> str:
        """``[low..high]`` with an empty side for an unbounded limit, ``""`` if none."""
        if self.low is None and self.high is None:
            return ""
        lo = _fmt(self.low) if self.low is not None else ""
        hi = _fmt(self.high) if self.high is not None else ""
        return f"[{lo}..{hi}]"

    def allure_parameter(self) -> str:
        """``'0.1002 DN/e- [0.09..0.11] PASS'``: value, unit, limits, outcome."""
        value = _fmt(self.value) if self.value is not None else "n/a"
        parts = [value, self.unit, self.limits_text(), self.outcome.value]
        return " ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["condition"] = dict(self.condition)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["outcome"] = Outcome.parse(str(data["outcome"]))
        kwargs["condition"] = dict(data.get("condition") or {})
        return cls(**kwargs)


@dataclass(frozen=True)
class Artefact:
    """A file the run produced, by content hash (frames, plots, capture-set manifests)."""

    sha256: str
    kind: str
    name: str = ""
    path: str = ""
    test_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TestRecord:
    """One test of a run with its measurements, errors and artefacts."""

    __test__ = False  # not a pytest test class

    test_id: str
    outcome: Outcome
    title: str = ""
    family: str = ""
    started: str = ""
    ended: str = ""
    message: str = ""
    measurements: tuple[Measurement, ...] = ()
    errors: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"test_id": self.test_id, "outcome": self.outcome.value, "title": self.title,
                "family": self.family, "started": self.started, "ended": self.ended,
                "message": self.message,
                "measurements": [m.as_dict() for m in self.measurements],
                "errors": list(self.errors)}


@dataclass(frozen=True)
class RunRecord:
    """Everything a run left behind; the unit the records store keeps and hashes."""

    run_id: str
    station: str
    outcome: Outcome
    product: str = ""
    dut_serial: str = ""
    dut_firmware: str = ""
    operator: str = ""
    started: str = ""
    ended: str = ""
    limits_file: str = ""
    limits_hash: str = ""
    software: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    tests: tuple[TestRecord, ...] = ()
    artefacts: tuple[Artefact, ...] = ()
    devices: tuple[Mapping[str, Any], ...] = ()
    calibrations: tuple[Mapping[str, Any], ...] = ()
    complete: bool = True

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(m for t in self.tests for m in t.measurements)

    def with_outcome(self, outcome: Outcome, reason: str = "") -> RunRecord:
        return replace(self, outcome=outcome, reason=reason or self.reason)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "station": self.station, "outcome": self.outcome.value,
                "product": self.product, "dut_serial": self.dut_serial,
                "dut_firmware": self.dut_firmware, "operator": self.operator,
                "started": self.started, "ended": self.ended,
                "limits_file": self.limits_file, "limits_hash": self.limits_hash,
                "software": dict(self.software), "reason": self.reason,
                "tests": [t.as_dict() for t in self.tests],
                "artefacts": [a.as_dict() for a in self.artefacts],
                "devices": [dict(d) for d in self.devices],
                "calibrations": [dict(c) for c in self.calibrations],
                "complete": self.complete}


__all__ = ["Artefact", "Measurement", "Outcome", "RunRecord", "TestRecord", "worst"]
