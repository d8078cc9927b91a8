"""Judging figures: INFO without a limit, flagged figures are ERRORs, each limit once per run
and condition, declared figures only; outcomes by exception type; coverage with reasons."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import (
    Aborted,
    CameraTimeout,
    ConfigError,
    EvidenceError,
    InstrumentError,
    LimitFailure,
    MeasurementError,
)
from harness.limits import LimitSpec, load_limits
from harness.measurement import Measurement, Outcome, worst
from harness.run.checker import Checker, Judgements
from harness.run.coverage import TestPlan, unjudged_limits
from harness.run.outcome import classify

SPEC = """\
product: cm12
version: 2
limits:
  - {id: EMVA-K, measurement: system_gain_dn_per_e, unit: DN/e-, min: 0.09, max: 0.11, guard: 0.002}
  - {id: MTF50-CORNER, measurement: mtf50_cy_per_px, unit: cy/px, min: 0.2, condition: {zone: corner}}
  - {id: MTF50-CENTRE, measurement: mtf50_cy_per_px, unit: cy/px, min: 0.25, condition: {zone: centre}}
  - {id: DE-MEAN, measurement: delta_e_2000_mean, unit: dE00, max: 2.0}
  - {id: PWR-IDLE, measurement: module_current_idle_a, unit: A, max: 0.25}
"""


@pytest.fixture
def spec(tmp_path: Path) -> LimitSpec:
    path = tmp_path / "limits.yaml"
    path.write_text(textwrap.dedent(SPEC))
    return load_limits(path)


def checker(spec: LimitSpec | None, judgements: Judgements | None = None, *,
            declared: set[str] | None = None, characterise: bool = False
            ) -> tuple[Checker, list[Measurement]]:
    sink: list[Measurement] = []
    return Checker("t::x", spec, sink.append, judgements or Judgements(),
                   characterise=characterise, declared=declared), sink


def test_a_figure_without_a_limit_is_info_never_pass(spec: LimitSpec) -> None:
    check, sink = checker(spec)
    [m] = check("no_limit_here", 3.0, "px")
    assert m.outcome is Outcome.INFO and m.limit_id == "" and sink == [m]
    assert check.outcome is Outcome.INFO  # a test with only INFO figures judged nothing
    check.raise_if_failed()  # INFO is not a failure


def test_characterisation_records_every_figure_as_info(spec: LimitSpec) -> None:
    check, _ = checker(spec, characterise=True)
    [m] = check("system_gain_dn_per_e", 0.5, "DN/e-")  # would FAIL EMVA-K
    assert m.outcome is Outcome.INFO and m.limit_id == ""


def test_verdicts_pass_marginal_fail(spec: LimitSpec) -> None:
    judgements = Judgements()
    check, _ = checker(spec, judgements)
    assert [m.outcome for m in check("system_gain_dn_per_e", 0.1, "DN/e-")] == [Outcome.PASS]
    check2, _ = checker(spec, judgements)
    assert [m.outcome for m in check2("mtf50_cy_per_px", 0.205, "cy/px", zone="corner",
                                      field="top_left")] == [Outcome.PASS]
    assert [m.outcome for m in check2("mtf50_cy_per_px", 0.1, "cy/px", zone="corner",
                                      field="top_right")] == [Outcome.FAIL]
    assert judgements.judged == {"EMVA-K", "MTF50-CORNER"}
    with pytest.raises(LimitFailure, match=r"out of spec: MTF50-CORNER mtf50_cy_per_px=0\.1"):
        check2.raise_if_failed()


def test_a_flagged_figure_is_an_error_with_its_value_kept(spec: LimitSpec) -> None:
    check, _ = checker(spec)
    [m] = check("system_gain_dn_per_e", -0.1, "DN/e-", flag="negative system gain")
    assert m.outcome is Outcome.ERROR and m.value == -0.1 and m.limit_id == "EMVA-K"
    assert m.message == "flagged: negative system gain"
    assert "(flagged)" in m.allure_parameter()
    [nan] = check("delta_e_2000_mean", float("nan"), "dE00")
    assert nan.outcome is Outcome.ERROR and nan.value is None
    with pytest.raises(MeasurementError, match="EMVA-K: flagged: negative system gain; "
                                               "DE-MEAN: no finite value"):
        check.raise_if_failed()


def test_errors_win_over_failures_when_raising(spec: LimitSpec) -> None:
    check, _ = checker(spec)
    check("system_gain_dn_per_e", 0.5, "DN/e-")  # FAIL
    check("delta_e_2000_mean", None, "dE00")  # ERROR
    with pytest.raises(MeasurementError):
        check.raise_if_failed()


def test_another_unit_than_the_limit_is_an_error(spec: LimitSpec) -> None:
    check, sink = checker(spec)
    with pytest.raises(MeasurementError, match="EMVA-K: limit is in 'DN/e-' but the test "
                                                "measured system_gain_dn_per_e in 'e-/DN'"):
        check("system_gain_dn_per_e", 10.0, "e-/DN")
    assert sink == []  # nothing recorded under the wrong unit


def test_a_limit_is_judged_once_per_run_and_condition(spec: LimitSpec) -> None:
    judgements = Judgements()
    first, _ = checker(spec, judgements)
    first("system_gain_dn_per_e", 0.1, "DN/e-")
    second = Checker("t::other", spec, lambda m: None, judgements)
    with pytest.raises(MeasurementError, match="EMVA-K was already judged in this run by "
                                                "t::x"):
        second("system_gain_dn_per_e", 0.1, "DN/e-")
    # the same limit under another condition is another verdict
    first("mtf50_cy_per_px", 0.3, "cy/px", zone="corner", field="top_left_vertical")
    first("mtf50_cy_per_px", 0.3, "cy/px", zone="corner", field="top_left_horizontal")
    with pytest.raises(MeasurementError, match=r"MTF50-CORNER \(field=top_left_vertical, "
                                                r"zone=corner\) was already judged"):
        first("mtf50_cy_per_px", 0.3, "cy/px", zone="corner", field="top_left_vertical")


def test_a_test_judges_only_what_it_declares(spec: LimitSpec) -> None:
    check, _ = checker(spec, declared={"system_gain_dn_per_e"})
    check("system_gain_dn_per_e", 0.1, "DN/e-")
    with pytest.raises(MeasurementError, match="judges 'snr_max_db' but does not declare it"):
        check("snr_max_db", 40.0, "dB")


@pytest.mark.parametrize(("exc", "outcome", "kind"), [
    (None, Outcome.PASS, ""),
    (LimitFailure("out of spec"), Outcome.FAIL, "limit"),
    (AssertionError("a test's own assert"), Outcome.ERROR, "test"),
    (MeasurementError("chart square not found"), Outcome.ERROR, "measurement"),
    (InstrumentError("no reply", device="light"), Outcome.ERROR, "instrument"),
    (CameraTimeout("no frame", device="camera"), Outcome.ERROR, "camera"),
    (EvidenceError("disk full"), Outcome.ERROR, "evidence"),
    (ConfigError("bad", field="x"), Outcome.ERROR, "config"),
    (ValueError("bug"), Outcome.ERROR, "test"),
    (Aborted("SIGTERM"), Outcome.ABORTED, "aborted"),
    (KeyboardInterrupt(), Outcome.ABORTED, "aborted"),
])
def test_outcome_by_exception_type(exc: BaseException | None, outcome: Outcome,
                                   kind: str) -> None:
    found = classify(exc)
    assert (found.outcome, found.kind) == (outcome, kind)


def test_only_the_class_decides_not_the_text() -> None:
    class InstrumentLikeName(Exception):
        pass

    assert classify(InstrumentLikeName("Instrument failure")).kind == "test"
    assert classify(AssertionError("out of spec: EMVA-K")).outcome is Outcome.ERROR


def test_rank_incomplete_between_marginal_and_fail() -> None:
    order = [Outcome.SKIPPED, Outcome.INFO, Outcome.PASS, Outcome.MARGINAL,
             Outcome.INCOMPLETE, Outcome.FAIL, Outcome.ERROR, Outcome.ABORTED]
    assert sorted(order, key=lambda o: o.rank) == order
    assert worst([Outcome.PASS, Outcome.INCOMPLETE]) is Outcome.INCOMPLETE
    assert worst([Outcome.FAIL, Outcome.INCOMPLETE]) is Outcome.FAIL
    assert worst([Outcome.PASS, Outcome.INFO]) is Outcome.PASS


def test_unjudged_limits_with_their_reasons(spec: LimitSpec) -> None:
    plan = TestPlan()
    plan.declare("s/test_a.py::test_gain", {"system_gain_dn_per_e"})
    plan.declare("s/test_b.py::test_mtf", {"mtf50_cy_per_px"})
    plan.declare("s/test_c.py::test_colour", {"delta_e_2000_mean"})
    plan.deselect("s/test_d.py::test_power", {"module_current_idle_a"})
    plan.end("s/test_a.py::test_gain", Outcome.PASS)
    plan.end("s/test_b.py::test_mtf", Outcome.ERROR,
             "MeasurementError: edge ROI not found: top_left vertical\nmore")
    plan.end("s/test_c.py::test_colour", Outcome.SKIPPED,
             "station st has no chart (hil_requires)")
    found = {u.limit_id: u.reason for u in unjudged_limits(spec, {"EMVA-K"}, plan)}
    assert found == {
        "MTF50-CORNER": "not measured: test_mtf ended ERROR: MeasurementError: edge ROI not "
                        "found: top_left vertical",
        "MTF50-CENTRE": "not measured: test_mtf ended ERROR: MeasurementError: edge ROI not "
                        "found: top_left vertical",
        "DE-MEAN": "test_colour skipped: station st has no chart (hil_requires)",
        "PWR-IDLE": "deselected: test_power",
    }
    assert unjudged_limits(spec, {"EMVA-K", "MTF50-CORNER", "MTF50-CENTRE", "DE-MEAN",
                                  "PWR-IDLE"}, plan) == []


def test_a_limit_no_test_measures_is_named(spec: LimitSpec) -> None:
    plan = TestPlan()
    plan.declare("t::gain", {"system_gain_dn_per_e"})
    plan.end("t::gain", Outcome.PASS)
    found = {u.limit_id: u.reason for u in unjudged_limits(spec, set(), plan)}
    assert found["PWR-IDLE"] == "no test collected in this run measures it"
    assert found["EMVA-K"].startswith("not measured by gain")
