"""Judging a test's figures against the limit spec (OpenHTF's measurement validation).

A :class:`Checker` belongs to one test. ``check(name, value, unit, **condition)`` judges the
figure against every limit of the spec on ``name`` whose condition matches and hands each
verdict to the run's sink (journal, then Allure). The rules a signed verdict needs:

* a figure with no limit in the spec is INFO, never PASS; in a characterisation run every
  figure is INFO;
* a figure the analysis flagged as physically impossible (``flag=``), or with no finite value,
  is an ERROR of the test, its value kept for the record, never judged;
* a figure measured in another unit than its limit is an ERROR;
* a figure may carry its standard uncertainty (``uncertainty=``); a limit with ``guard: auto``
  needs it or the station's repeatability study of it (guarded acceptance,
  :mod:`harness.limits`), else the verdict is an ERROR;
* each limit is judged once per run and condition (:class:`Judgements`): a second verdict for
  the same limit and condition is an ERROR, so no figure is counted twice;
* a test judges only the figures it declared (``hil_measures`` marker), so the run can tell
  which limits a skipped or deselected test would have judged.

Verdicts are soft: every figure of a test is judged, and when its body ends
:meth:`Checker.raise_if_failed` raises :class:`~harness.errors.MeasurementError` for ERROR
verdicts, else :class:`~harness.errors.LimitFailure` (the only FAIL) for out-of-spec ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import LimitFailure, MeasurementError
from harness.limits import Limit, LimitSpec
from harness.measurement import Measurement, Outcome, worst

Sink = Callable[[Measurement], None]


def _key(m: Measurement) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    condition = tuple(sorted((str(k), str(v)) for k, v in m.condition.items()))
    return (m.limit_id, m.name, condition)


@dataclass
class Judgements:
    """Every verdict of a run by limit and condition (thread-safe).

    ``judged`` holds the ids of the limits that got at least one verdict; the run's coverage
    check compares it with the spec at the end.
    """

    judged: set[str] = field(default_factory=set)
    _seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, m: Measurement) -> None:
        """Count ``m``; a second verdict for the same limit (or unlimited figure) and
        condition raises :class:`MeasurementError` naming both tests."""
        key = _key(m)
        with self._lock:
            first = self._seen.get(key)
            if first is not None:
                what = m.limit_id or m.name
                cond = ", ".join(f"{k}={v}" for k, v in key[2])
                raise MeasurementError(
                    f"{what}{f' ({cond})' if cond else ''} was already judged in this run "
                    f"by {first}: a limit is judged once per run and condition",
                    figure=m.name)
            self._seen[key] = m.test_id
            if m.limit_id and m.outcome is not Outcome.INFO:
                self.judged.add(m.limit_id)


@dataclass
class Checker:
    """Judges one test's figures (see the module docstring)."""

    test_id: str
    spec: LimitSpec | None
    sink: Sink
    judgements: Judgements = field(default_factory=Judgements)
    characterise: bool = False
    declared: Collection[str] | None = None
    verdicts: list[Measurement] = field(default_factory=list)
    station_sd: Callable[[str, Mapping[str, Any]], float | None] | None = None
    """The station's repeatability s of a limit under a condition (its study), for guarded
    limits; None: the station has no study."""

    def _station_sd(self, limit: Limit, condition: Mapping[str, Any]) -> float | None:
        if self.station_sd is None or not limit.guarded:
            return None
        return self.station_sd(limit.id, {**limit.condition, **condition})

    def __call__(self, name: str, value: float | None, unit: str = "", *,
                 flag: str | None = None, uncertainty: float | None = None,
                 **condition: Any) -> list[Measurement]:
        """Judge ``value`` (in ``unit``, with its standard ``uncertainty`` when the analysis
        states one) under ``condition``; see the module docstring."""
        if self.declared is not None and name not in self.declared:
            raise MeasurementError(
                f"{self.test_id} judges {name!r} but does not declare it; add it to the "
                f"test's hil_measures marker (declared: {', '.join(sorted(self.declared))})",
                figure=name)
        limits = [] if self.characterise or self.spec is None else self.spec.find(name,
                                                                                  **condition)
        if limits:
            verdicts = [lim.judge(value, test_id=self.test_id, condition=condition, flag=flag,
                                  uncertainty=uncertainty,
                                  station_sd=self._station_sd(lim, condition))
                        for lim in limits]
        else:
            verdicts = [Measurement.judged(name, value, unit, condition=condition,
                                           test_id=self.test_id, flag=flag,
                                           uncertainty=uncertainty)]
        for verdict in verdicts:
            if unit and verdict.limited and verdict.unit != unit:
                raise MeasurementError(f"{verdict.limit_id}: limit is in {verdict.unit!r} but "
                                       f"the test measured {name} in {unit!r}", figure=name)
        for verdict in verdicts:
            self._record(verdict)
        return verdicts

    def against(self, name: str, value: float | None, unit: str, *, limit_id: str,
                low: float | None = None, high: float | None = None,
                flag: str | None = None, uncertainty: float | None = None,
                k: float | None = None, **condition: Any) -> Measurement:
        """Judge ``value`` against limits given here (a self-test's stored reference) rather
        than the spec; recorded like every other figure. With ``k``, guarded acceptance as
        ``guard: auto`` in a spec (band k·``uncertainty``; no uncertainty: ERROR)."""
        if k is None:
            verdict = Measurement.judged(name, value, unit, low=low, high=high,
                                         limit_id=limit_id, condition=condition,
                                         test_id=self.test_id, flag=flag,
                                         uncertainty=uncertainty,
                                         decision="simple" if low is not None
                                         or high is not None else "")
        else:
            verdict = Limit.model_construct(
                id=limit_id, measurement=name, unit=unit, min=low, max=high, guard="auto", k=k,
                condition={}, description="", requirement="", severity="critical",
            ).judge(value, test_id=self.test_id, condition=condition, flag=flag,
                    uncertainty=uncertainty)
        self._record(verdict)
        return verdict

    def _record(self, verdict: Measurement) -> None:
        self.judgements.add(verdict)
        self.verdicts.append(verdict)
        self.sink(verdict)

    def limited(self, name: str, **condition: Any) -> bool:
        """True when the spec has a limit on ``name`` under ``condition``."""
        return bool(self.spec and not self.characterise and self.spec.find(name, **condition))

    @property
    def failures(self) -> list[Measurement]:
        return [v for v in self.verdicts if v.outcome is Outcome.FAIL]

    @property
    def errors(self) -> list[Measurement]:
        return [v for v in self.verdicts if v.outcome is Outcome.ERROR]

    @property
    def outcome(self) -> Outcome:
        return worst((v.outcome for v in self.verdicts), default=Outcome.INFO)

    def raise_if_failed(self) -> None:
        """After the test body: ERROR verdicts raise MeasurementError (the DUT was not fully
        judged); otherwise FAIL verdicts raise LimitFailure."""
        if self.errors:
            detail = "; ".join(f"{v.limit_id or v.name}: {v.message}" for v in self.errors)
            raise MeasurementError(f"not measured: {detail}")
        if self.failures:
            detail = "; ".join(f"{v.limit_id} {v.name}={v.allure_parameter()}"
                               for v in self.failures)
            raise LimitFailure(f"out of spec: {detail}")


def conditions_text(condition: Mapping[str, Any]) -> str:
    """``k=v, ...`` for messages and reports."""
    return ", ".join(f"{k}={v}" for k, v in condition.items())


__all__ = ["Checker", "Judgements", "Sink", "conditions_text"]
