"""Coverage: every limit of the spec got a verdict, or the run says which did not and why.

A run is PASS only when every limit of its spec was judged and held. At the end of the run
the limits that got no verdict are listed with the reason, from what the runner planned and
what happened: the tests that declare the limit's measurement (``hil_measures``) were
deselected, skipped (a device the station lacks, with the skip's reason), ended in an error
before measuring it, or ran without measuring it; or no test collected in the run measures
it at all. Any such limit makes the run INCOMPLETE.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from harness.evidence.model import Unjudged
from harness.limits import LimitSpec
from harness.measurement import Outcome


@dataclass(frozen=True)
class TestEnd:
    """How a planned test ended (``message``: the skip reason or the error)."""

    __test__ = False  # not a pytest test class

    outcome: Outcome
    message: str = ""


@dataclass
class TestPlan:
    """What the runner collected, deselected and saw end, by test id."""

    __test__ = False  # not a pytest test class

    declared: dict[str, frozenset[str]] = field(default_factory=dict)
    deselected: dict[str, frozenset[str]] = field(default_factory=dict)
    ended: dict[str, TestEnd] = field(default_factory=dict)

    def declare(self, test_id: str, measurements: Collection[str]) -> None:
        self.declared[test_id] = frozenset(measurements)

    def deselect(self, test_id: str, measurements: Collection[str]) -> None:
        self.deselected[test_id] = frozenset(measurements)
        self.declared.pop(test_id, None)

    def end(self, test_id: str, outcome: Outcome, message: str = "") -> None:
        self.ended[test_id] = TestEnd(outcome, message.splitlines()[0] if message else "")


def _short(test_id: str) -> str:
    return test_id.rsplit("::", 1)[-1]


def _why(measurement: str, plan: TestPlan) -> str:
    planned = [t for t, names in plan.declared.items() if measurement in names]
    dropped = [t for t, names in plan.deselected.items() if measurement in names]
    if not planned:
        if dropped:
            return "deselected: " + ", ".join(_short(t) for t in dropped)
        return "no test collected in this run measures it"
    reasons: list[str] = []
    for test_id in planned:
        end = plan.ended.get(test_id)
        name = _short(test_id)
        if end is None:
            reasons.append(f"{name} did not run")
        elif end.outcome is Outcome.SKIPPED:
            reasons.append(f"{name} skipped: {end.message}" if end.message
                           else f"{name} skipped")
        elif end.outcome in (Outcome.ERROR, Outcome.ABORTED):
            reasons.append(f"not measured: {name} ended {end.outcome.value}"
                           + (f": {end.message}" if end.message else ""))
        else:
            reasons.append(f"not measured by {name} (no figure under this limit's condition)")
    return "; ".join(reasons)


def unjudged_limits(spec: LimitSpec, judged: Collection[str], plan: TestPlan
                    ) -> list[Unjudged]:
    """The limits of ``spec`` not in ``judged`` (limit ids with a verdict), with reasons."""
    out: list[Unjudged] = []
    for limit in spec:
        if limit.id in judged:
            continue
        out.append(Unjudged(limit.id, limit.measurement, _why(limit.measurement, plan),
                            dict(limit.condition)))
    return out


def undeclared_measurements(spec: LimitSpec, plan: TestPlan) -> Mapping[str, list[str]]:
    """Limit ids by measurement that no collected or deselected test declares (for a
    suite author: a limit nobody measures)."""
    known = set().union(*plan.declared.values(), *plan.deselected.values())
    out: dict[str, list[str]] = {}
    for limit in spec:
        if limit.measurement not in known:
            out.setdefault(limit.measurement, []).append(limit.id)
    return out


__all__ = ["TestEnd", "TestPlan", "undeclared_measurements", "unjudged_limits"]
