"""The X–mR control chart and the per-day yields over stored runs, against figures computed
here by hand (numpy on the values inserted): run order, moving ranges, limits, flagged points,
the explicit states of a chart with fewer than two points, and the unit rules (ERROR figures,
re-judged and characterisation runs left out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection

from harness.evidence.model import RunRecord, TestRecord
from harness.evidence.records import RecordStore, run_filters
from harness.evidence.records.control import D4, E2, control_chart, individuals_limits
from harness.evidence.records.daily import daily_yield
from harness.measurement import Measurement, Outcome
from tests_unit.test_records import make_run

GAIN = {"gain_db": 0, "wavelength_nm": 525}


def at(day: int, minute: int) -> str:
    return f"2026-11-{day:02d}T10:{minute:02d}:00.000000+00:00"


def with_gain(run: RunRecord, *figures: Measurement) -> RunRecord:
    """``run`` with its gain test holding ``figures`` instead."""
    gain = TestRecord("tests_hil/test_emva.py::test_gain", Outcome.PASS, family="emva1288",
                      measurements=figures)
    return replace(run, tests=(gain, *run.tests[1:]))


def gain(value: float | None, condition: dict[str, int] | None = None) -> Measurement:
    return Measurement.judged("system_gain", value, "DN/e-", low=0.09, high=0.11,
                              limit_id="EMVA-K-1", condition=condition or GAIN)


@contextmanager
def reading(store: RecordStore) -> Iterator[Connection]:
    with store.engine.connect() as conn:
        yield conn


# (run id, DUT, value, started) — stored in this order, which is not run order
RUNS = [("r01", "U1", 0.1000, at(20, 1)), ("r03", "U3", 0.1010, at(20, 3)),
        ("r02", "U2", 0.0995, at(20, 2)), ("r04", "U4", 0.1003, at(20, 4)),
        ("r05", "U5", 0.0998, at(20, 5)), ("r06", "U6", 0.1007, at(20, 6)),
        ("r07", "U7", 0.1001, at(20, 7)), ("r08", "U8", 0.0996, at(20, 8)),
        ("r09", "U9", 0.1230, at(20, 9)), ("r10", "U10", 0.1002, at(20, 10)),
        ("r11", "U11", 0.0999, at(20, 11))]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore(tmp_path / "records.sqlite") as s:
        for run_id, dut, value, started in RUNS:
            s.add_run(with_gain(make_run(run_id, dut=dut, started=started), gain(value),
                                gain(value + 0.001, {"gain_db": 6})))
        # not points: an ERROR figure (no value), a re-judged run, a characterisation run
        s.add_run(with_gain(make_run("r12-none", dut="U12", started=at(20, 12)), gain(None),
                            gain(0.1, {"gain_db": 6})))
        s.add_run(replace(with_gain(make_run("r03-rj", dut="U3", started=at(20, 30)),
                                    gain(0.0920)), rejudged_from="r03"))
        s.add_run(replace(with_gain(make_run("ch-1", dut="U99", started=at(20, 31)),
                                    gain(0.2000)), characterisation=True))
        # a run with the figure twice at one condition is left out and counted
        s.add_run(with_gain(make_run("r13-dup", dut="U13", started=at(20, 13)), gain(0.1),
                            gain(0.1001)))
        yield s


def test_individuals_chart_against_a_hand_computation(store: RecordStore) -> None:
    with reading(store) as conn:
        chart = control_chart(conn, run_filters(), "system_gain", GAIN)
    ordered = sorted(RUNS, key=lambda r: r[3])
    x = np.array([v for _, _, v, _ in ordered])
    mr = np.abs(np.diff(x))
    centre, mr_bar = x.mean(), mr.mean()
    assert chart.state == "ok" and chart.n == 11
    assert [p.run_id for p in chart.points] == [r[0] for r in ordered]
    assert [p.dut_serial for p in chart.points] == [r[1] for r in ordered]
    assert [p.started for p in chart.points] == [r[3] for r in ordered]
    assert np.allclose([p.value for p in chart.points], x, rtol=0, atol=1e-15)
    assert np.allclose(chart.moving_ranges, mr, rtol=1e-12)
    assert chart.centre == pytest.approx(centre, rel=1e-12)
    assert chart.mr_bar == pytest.approx(mr_bar, rel=1e-12)
    assert chart.unpl == pytest.approx(centre + 2.660 * mr_bar, rel=1e-12)
    assert chart.lnpl == pytest.approx(centre - 2.660 * mr_bar, rel=1e-12)
    assert chart.mr_ucl == pytest.approx(3.267 * mr_bar, rel=1e-12)
    assert (chart.low, chart.high, chart.unit, chart.limit_id) == (0.09, 0.11, "DN/e-",
                                                                   "EMVA-K-1")
    beyond = [r[0] for r, v in zip(ordered, x, strict=True)
              if not centre - 2.660 * mr_bar <= v <= centre + 2.660 * mr_bar]
    assert beyond == ["r09"]  # the 0.123 outlier, and only it
    assert [p.run_id for p in chart.flagged] == beyond
    assert chart.flagged[0].outcome is Outcome.FAIL
    assert list(chart.mr_flagged) == [i for i, r in enumerate(mr) if r > 3.267 * mr_bar]
    assert chart.duplicates == 1 and chart.spec_versions == 1
    assert GAIN in chart.conditions and {"gain_db": 6} in chart.conditions


def test_the_constants_are_the_tabulated_factors_for_n_2() -> None:
    d2, d3 = 1.128, 0.853  # ISO 7870-2 / Montgomery appendix VI, n = 2
    assert pytest.approx(3 / d2, abs=5e-4) == E2
    assert pytest.approx(1 + 3 * d3 / d2, abs=2e-3) == D4


def test_other_condition_rejudged_and_a_selection(store: RecordStore) -> None:
    with reading(store) as conn:
        other = control_chart(conn, run_filters(), "system_gain", {"gain_db": 6})
        # with re-judged runs, r03-rj's value stands in for r03's, at r03-rj's start
        rejudged = control_chart(conn, run_filters(), "system_gain", GAIN, rejudged=True)
        late = control_chart(conn, run_filters(since="2026-11-20T10:07:00+00:00"),
                             "system_gain", GAIN)
        several = control_chart(conn, run_filters(), "system_gain")
    ordered = sorted(RUNS, key=lambda r: r[3])
    # gain_db 6: every run's value + 0.001, and r12-none's 0.1 (its gain_db 0 figure is ERROR)
    x6 = np.array([v + 0.001 for *_, v, _ in ordered] + [0.1])
    assert other.n == 12 and other.centre == pytest.approx(x6.mean(), rel=1e-12)
    assert other.mr_bar == pytest.approx(np.abs(np.diff(x6)).mean(), rel=1e-12)
    assert "r03" not in [p.run_id for p in rejudged.points]
    assert [p.run_id for p in rejudged.points][-1] == "r03-rj"
    xr = np.array([v for r, _, v, _ in ordered if r != "r03"] + [0.0920])
    assert rejudged.centre == pytest.approx(xr.mean(), rel=1e-12)
    assert [p.run_id for p in late.points] == ["r07", "r08", "r09", "r10", "r11"]
    assert several.state == "choose a condition" and not several.points
    assert len(several.conditions) == 2


def test_fewer_than_two_points_is_a_state_not_a_crash(store: RecordStore) -> None:
    with reading(store) as conn:
        one = control_chart(conn, run_filters(since="2026-11-20T10:11:00+00:00"),
                            "system_gain", GAIN)
        none = control_chart(conn, run_filters(), "no_such_figure")
        error_only = control_chart(conn, run_filters(since="2026-11-20T10:12:00+00:00"),
                                   "system_gain", GAIN)
    assert one.state == "one point: no moving range, so no limits"
    assert [p.value for p in one.points] == [0.0999] and one.centre == 0.0999
    assert (one.mr_bar, one.lnpl, one.unpl, one.mr_ucl, one.moving_ranges) == \
        (None, None, None, None, ())
    assert none.state == "no points" and none.centre is None and none.conditions == ()
    assert error_only.state == "no points" and error_only.duplicates == 1  # r13-dup
    empty = individuals_limits(np.array([]))
    assert empty[0].size == 0 and empty[1:] == (None,) * 5


def test_daily_yield_per_unit(tmp_path: Path) -> None:
    """Day 20: U1 FAILs then passes, U2 passes; day 21: U1 retested (attempt 3, passes) on
    sim-2, U3 first tested and FAILs. A re-judged run counts on no day."""
    with RecordStore(tmp_path / "r.sqlite") as s:
        for run_id, dut, value, started, station in [
                ("a", "U1", 0.080, at(20, 1), "sim-1"), ("b", "U2", 0.100, at(20, 2), "sim-1"),
                ("c", "U1", 0.100, at(20, 3), "sim-1"), ("d", "U1", 0.101, at(21, 1), "sim-2"),
                ("e", "U3", 0.120, at(21, 2), "sim-1")]:
            s.add_run(make_run(run_id, dut=dut, gain=value, started=started, station=station))
        s.add_run(replace(make_run("e-rj", dut="U3", gain=0.1, started=at(21, 9)),
                          rejudged_from="e"))
        with reading(s) as conn:
            days = daily_yield(conn, run_filters())
    got = {(d.day, d.station): (d.units, d.passed, d.new_units, d.first_pass) for d in days}
    assert got == {("2026-11-20", "sim-1"): (2, 2, 2, 1), ("2026-11-20", None): (2, 2, 2, 1),
                   ("2026-11-21", "sim-2"): (1, 1, 0, 0), ("2026-11-21", "sim-1"): (1, 0, 1, 0),
                   ("2026-11-21", None): (2, 1, 1, 0)}
    assert next(d.day for d in days) == "2026-11-21"  # newest first
    day20 = next(d for d in days if d.day == "2026-11-20" and d.station is None)
    assert (day20.yield_, day20.first_pass_yield) == (1.0, 0.5)
    day21 = next(d for d in days if d.day == "2026-11-21" and d.station == "sim-2")
    assert day21.first_pass_yield is None
