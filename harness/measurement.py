"""Outcomes and judged measurements: the vocabulary every floor of the harness shares.

Ground floor (after OpenHTF's ``measurements`` and ``validators``): nothing here knows about
devices, evidence, pytest or Allure. :class:`Measurement` is one figure with its unit, the
limit it was judged against (if any), the marginal band and the outcome.

Outcomes keep their meaning end to end:

* PASS / MARGINAL: every limit judged and held (MARGINAL: inside the guard band);
* INFO: a figure recorded without a limit (a characterisation figure); it says nothing about
  the DUT and never makes anything PASS;
* INCOMPLETE: a run in which some limit of the spec got no verdict (or a characterisation
  run); it cannot be signed as PASS;
* FAIL: a limit the DUT broke; the only DUT verdict against it;
* ERROR: the station, an instrument, the evidence or the analysis could not do its part;
* ABORTED: an operator or a signal stopped the run.

A group is never better than its worst member (:func:`worst`); the rank is
SKIPPED < INFO < PASS < MARGINAL < INCOMPLETE < FAIL < ERROR < ABORTED.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """Outcome of a measurement, a test or a run (OpenHTF's outcomes plus MARGINAL)."""

    PASS = "PASS"
    MARGINAL = "MARGINAL"
    INFO = "INFO"
    INCOMPLETE = "INCOMPLETE"
    FAIL = "FAIL"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    SKIPPED = "SKIPPED"

    @property
    def rank(self) -> int:
        """Severity: the worst outcome of a group wins (see the module docstring)."""
        return _RANK[self]

    @property
    def allure_status(self) -> str:
        """Allure status: FAIL → failed (DUT); ERROR, ABORTED and INCOMPLETE → broken (the
        verdict could not be reached); SKIPPED → skipped; else passed."""
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


_RANK = {Outcome.SKIPPED: 0, Outcome.INFO: 1, Outcome.PASS: 2, Outcome.MARGINAL: 3,
         Outcome.INCOMPLETE: 4, Outcome.FAIL: 5, Outcome.ERROR: 6, Outcome.ABORTED: 7}
_ALLURE = {Outcome.PASS: "passed", Outcome.MARGINAL: "passed", Outcome.INFO: "passed",
           Outcome.INCOMPLETE: "broken", Outcome.FAIL: "failed", Outcome.ERROR: "broken",
           Outcome.ABORTED: "broken", Outcome.SKIPPED: "skipped"}


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

    ``uncertainty`` is the figure's standard uncertainty u (coverage factor 1, in ``unit``),
    as the analysis stated it from its own data (GUM, JCGM 100:2008, 2.3.1); ``None`` where
    the analysis states none. ``decision`` names the decision rule that judged the figure
    (ISO 14253-1:2017, ILAC-G8:09/2019): ``simple`` (no guard band), ``fixed-guard`` (a band
    typed in the spec) or ``guarded`` (band = ``coverage_k`` · u); ``""`` for an INFO figure.
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
    uncertainty: float | None = None
    decision: str = ""
    coverage_k: float | None = None

    @property
    def limited(self) -> bool:
        """True when the figure was judged against a limit (not an INFO figure)."""
        return self.low is not None or self.high is not None

    @classmethod
    def judged(cls, name: str, value: float | None, unit: str, *, low: float | None = None,
               high: float | None = None, marginal_low: float | None = None,
               marginal_high: float | None = None, limit_id: str = "",
               condition: Mapping[str, Any] | None = None, test_id: str = "",
               flag: str | None = None, uncertainty: float | None = None,
               decision: str = "", coverage_k: float | None = None,
               unjudgeable: str | None = None) -> Measurement:
        """Judge ``value`` against the limits.

        No limit at all gives INFO (a figure recorded, not a verdict). A missing or non-finite
        value, or a ``flag`` (the analysis found the figure physically impossible), is an
        ERROR: the DUT was not judged. A flagged value is kept for the record, never judged.
        ``unjudgeable`` (the decision rule could not be applied, e.g. a guarded limit and no
        stated uncertainty) is an ERROR with that message. An ``uncertainty`` that is not a
        finite non-negative number is not kept.
        """
        finite = value is not None and math.isfinite(value)
        kept = float(value) if finite and value is not None else None
        u = (float(uncertainty) if uncertainty is not None and math.isfinite(uncertainty)
             and uncertainty >= 0 else None)
        margin: float | None = None
        if flag:
            outcome, message = Outcome.ERROR, f"flagged: {flag}"
        elif unjudgeable:
            outcome, message = Outcome.ERROR, unjudgeable
        elif value is None or not math.isfinite(value):
            outcome, message = Outcome.ERROR, "no finite value was measured"
        elif low is None and high is None:
            outcome, message = Outcome.INFO, ""
        else:
            margins = [m for m in ((value - low) if low is not None else None,
                                   (high - value) if high is not None else None)
                       if m is not None]
            margin = min(margins)
            if margin < 0:
                outcome, message = Outcome.FAIL, "out of spec"
            elif ((marginal_low is not None and value < marginal_low)
                  or (marginal_high is not None and value > marginal_high)):
                outcome, message = Outcome.MARGINAL, "inside the guard band"
            else:
                outcome, message = Outcome.PASS, ""
        return cls(name=name, value=kept, unit=unit, outcome=outcome, limit_id=limit_id,
                   low=low, high=high, marginal_low=marginal_low, marginal_high=marginal_high,
                   margin=margin, condition=dict(condition or {}), test_id=test_id,
                   message=message, uncertainty=u,
                   decision=decision if low is not None or high is not None else "",
                   coverage_k=coverage_k)

    def limits_text(self) -> str:
        """``[low..high]`` with an empty side for an unbounded limit, ``""`` if none."""
        if self.low is None and self.high is None:
            return ""
        lo = _fmt(self.low) if self.low is not None else ""
        hi = _fmt(self.high) if self.high is not None else ""
        return f"[{lo}..{hi}]"

    def value_text(self) -> str:
        """``'0.1002'``, or ``'0.1002 ± 0.0003'`` with a stated standard uncertainty."""
        if self.value is None:
            return "n/a"
        if self.uncertainty is None:
            return _fmt(self.value)
        return f"{_fmt(self.value)} ± {self.uncertainty:.2g}"

    def allure_parameter(self) -> str:
        """``'0.1002 ± 0.0003 DN/e- [0.09..0.11] PASS'``: value (± its standard uncertainty
        when stated), unit, limits, outcome."""
        value = self.value_text()
        if self.message.startswith("flagged"):
            value += " (flagged)"
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


__all__ = ["Measurement", "Outcome", "worst"]
