"""The individuals and moving-range (X–mR) control chart of one measurement over stored runs.

One point per attempt (the unit rules of :mod:`.units`: a re-judged run is left out unless
asked for, a characterisation run is never a point), in run order (start time, then store
order): the judged value of the measurement at one condition. Only judged figures are points
(PASS, MARGINAL, FAIL with a value); an ERROR figure (no value, or a value flagged as
physically impossible) and an INFO figure (no limit) are not. An attempt holding more than one
judged value of it at that condition is left out and counted (``duplicates``), as in Cpk.

Montgomery, *Introduction to Statistical Quality Control* (chapter 6, "Control charts for
individual measurements"); ISO 7870-2:2013 (Shewhart control charts: the individuals and
moving-range chart and the table of control chart factors):

* moving range ``MRᵢ = |xᵢ − xᵢ₋₁|`` (n = 2), ``MR̄`` their mean, ``x̄`` the mean of the points;
* natural process limits ``x̄ ± E2·MR̄`` with ``E2 = 3/d2 = 2.660`` (``d2 = 1.128`` for n = 2);
* the moving-range chart's upper limit ``UCL = D4·MR̄`` with ``D4 = 3.267`` (its lower, D3,
  is 0 for n = 2).

A point beyond the natural process limits is flagged (the first test for special causes of
ISO 7870-2, one point beyond the 3σ limits; Montgomery's first Western Electric rule).
With fewer than two points there is no moving range and so no limits: the chart says so
(:attr:`ControlChart.state`) instead of inventing them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from harness.evidence.records.chain import canonical_json
from harness.evidence.records.stats import JUDGED, _chunked
from harness.evidence.records.tables import T
from harness.evidence.records.units import unit_runs
from harness.measurement import Outcome

D2 = 1.128
"""d2 for subgroups of n = 2 (ISO 7870-2:2013, table of control chart factors)."""
E2 = 2.660
"""3/d2 for n = 2: the individuals chart's limits are x̄ ± E2·MR̄."""
D4 = 3.267
"""D4 for n = 2: the moving-range chart's upper control limit is D4·MR̄."""


@dataclass(frozen=True)
class ChartPoint:
    """One attempt's judged value of the measurement, and whether it lies beyond the natural
    process limits."""

    run_id: str
    started: str
    dut_serial: str
    station: str
    value: float
    outcome: Outcome
    beyond: bool = False


@dataclass(frozen=True)
class ControlChart:
    """The X–mR chart of ``name`` at ``condition`` (see the module docstring).

    ``moving_ranges[i]`` is ``|points[i+1].value − points[i].value|``. ``low``/``high`` are the
    spec limits the newest point was judged against (``spec_versions`` counts the different
    spec limits among the points: more than one means the limit changed over the chart).
    ``condition`` is None when the measurement has several conditions in the selection and
    none was chosen; ``conditions`` lists those present.
    """

    name: str
    condition: Mapping[str, Any] | None
    unit: str = ""
    limit_id: str = ""
    low: float | None = None
    high: float | None = None
    points: tuple[ChartPoint, ...] = ()
    moving_ranges: tuple[float, ...] = ()
    centre: float | None = None
    mr_bar: float | None = None
    lnpl: float | None = None
    unpl: float | None = None
    mr_ucl: float | None = None
    duplicates: int = 0
    spec_versions: int = 0
    conditions: tuple[Mapping[str, Any], ...] = ()

    @property
    def n(self) -> int:
        return len(self.points)

    @property
    def flagged(self) -> tuple[ChartPoint, ...]:
        """The points beyond the natural process limits."""
        return tuple(p for p in self.points if p.beyond)

    @property
    def mr_flagged(self) -> tuple[int, ...]:
        """Indices into :attr:`moving_ranges` of the ranges above the mR chart's UCL."""
        if self.mr_ucl is None:
            return ()
        return tuple(i for i, r in enumerate(self.moving_ranges) if r > self.mr_ucl)

    @property
    def state(self) -> str:
        """``"ok"``, or why there is no chart: no condition chosen, no points, one point."""
        if self.condition is None:
            return "choose a condition"
        if not self.points:
            return "no points"
        if len(self.points) < 2:
            return "one point: no moving range, so no limits"
        return "ok"


def individuals_limits(values: np.ndarray
                       ) -> tuple[np.ndarray, float | None, float | None, float | None,
                                  float | None, float | None]:
    """``(moving ranges, x̄, MR̄, LNPL, UNPL, UCL of mR)`` of ``values`` in order; the limits
    are None with fewer than two values (x̄ too with none)."""
    if values.size == 0:
        return np.empty(0), None, None, None, None, None
    centre = float(np.mean(values))
    if values.size < 2:
        return np.empty(0), centre, None, None, None, None
    ranges = np.abs(np.diff(values))
    mr_bar = float(np.mean(ranges))
    return ranges, centre, mr_bar, centre - E2 * mr_bar, centre + E2 * mr_bar, D4 * mr_bar


def control_chart(conn: Connection, where: list[Any], name: str,
                  condition: Mapping[str, Any] | None = None, *,
                  rejudged: bool = False) -> ControlChart:
    """The X–mR chart of the judged values of ``name`` at ``condition`` over the selected
    runs (``where`` on ``runs``); with no ``condition``, the measurement's only condition in
    the selection (several: an empty chart listing them)."""
    attempts = {r.pk: r for r in unit_runs(conn, where, rejudged=rejudged)}
    m, runs = T["measurements"], T["runs"]
    query = (select(m.c.run_pk, runs.c.started, m.c.condition, m.c.value, m.c.unit,
                    m.c.limit_id, m.c.low, m.c.high, m.c.outcome)
             .select_from(m.join(runs, m.c.run_pk == runs.c.id))
             .where(m.c.name == name, m.c.limit_id != "", m.c.outcome.in_(JUDGED),
                    m.c.value.is_not(None)))
    by_condition: dict[str, dict[int, list[tuple[Any, ...]]]] = defaultdict(
        lambda: defaultdict(list))
    conditions: dict[str, Mapping[str, Any]] = {}
    started: dict[int, str] = {}
    for pk, start, cond, *figure in _chunked(conn, query, m.c.run_pk, sorted(attempts)):
        key = canonical_json(dict(cond or {}))
        conditions[key] = dict(cond or {})
        started[pk] = start
        by_condition[key][pk].append(tuple(figure))
    present = tuple(conditions[k] for k in sorted(conditions))
    if condition is None:
        if len(conditions) > 1:
            return ControlChart(name, None, conditions=present)
        condition = next(iter(conditions.values()), {})
    key = canonical_json(dict(condition))
    figures = by_condition.get(key, {})
    order = sorted(figures, key=lambda pk: (started[pk], pk))
    single = [pk for pk in order if len(figures[pk]) == 1]
    values = np.array([float(figures[pk][0][0]) for pk in single])
    ranges, centre, mr_bar, lnpl, unpl, ucl = individuals_limits(values)
    points = []
    for pk, value in zip(single, values, strict=True):
        run = attempts[pk]
        beyond = lnpl is not None and unpl is not None and not lnpl <= value <= unpl
        points.append(ChartPoint(run.run_id, started[pk], run.dut_serial, run.station,
                                 float(value), Outcome(figures[pk][0][5]), beyond))
    newest = figures[single[-1]][0] if single else (None, "", "", None, None, "")
    return ControlChart(
        name, dict(condition), unit=newest[1], limit_id=newest[2], low=newest[3],
        high=newest[4], points=tuple(points), moving_ranges=tuple(float(r) for r in ranges),
        centre=centre, mr_bar=mr_bar, lnpl=lnpl, unpl=unpl, mr_ucl=ucl,
        duplicates=len(order) - len(single),
        spec_versions=len({(figures[pk][0][2], figures[pk][0][3], figures[pk][0][4])
                           for pk in single}),
        conditions=present)


__all__ = ["D2", "D4", "E2", "ChartPoint", "ControlChart", "control_chart",
           "individuals_limits"]
