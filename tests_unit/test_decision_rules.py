"""Decision rules from uncertainty (ISO 14253-1:2017, ILAC-G8:09/2019): ``guard: auto`` judges
with a band of k·u from the figure's own stated uncertainty; every verdict records its rule,
u and k; the records keep them and a run stored before them keeps its hash."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.errors import ConfigError, MeasurementError
from harness.evidence.records import GENESIS_HASH, RecordStore, run_hash
from harness.limits import Limit, load_limits
from harness.measurement import Measurement, Outcome
from harness.run.checker import Checker
from tests_unit.test_records import make_run


def guarded(**kw: object) -> Limit:
    return Limit.model_validate({"id": "DN", "measurement": "temporal_dark_noise_e",
                                 "unit": "e-", "max": 3.0, "guard": "auto", **kw})


def test_guarded_acceptance_band_is_k_times_u() -> None:
    lim = guarded()  # k defaults to 2
    u = 0.1
    assert lim.judge(2.75, uncertainty=u).outcome is Outcome.PASS        # 0.25 > 2u inside
    assert lim.judge(2.85, uncertainty=u).outcome is Outcome.MARGINAL    # inside, < 2u
    assert lim.judge(3.05, uncertainty=u).outcome is Outcome.FAIL        # outside the limit
    m = lim.judge(2.85, uncertainty=u)
    assert m.decision == "guarded" and m.coverage_k == 2.0 and m.uncertainty == u
    assert m.marginal_high == pytest.approx(3.0 - 2 * u)
    # a larger k widens the band: the same value is no longer proven inside
    assert guarded(k=3).judge(2.75, uncertainty=u).outcome is Outcome.MARGINAL


def test_guarded_limit_without_uncertainty_is_an_error_not_a_verdict() -> None:
    for u in (None, math.nan, -1.0):
        m = guarded().judge(1.0, uncertainty=u)
        assert m.outcome is Outcome.ERROR
        assert "stated no uncertainty" in m.message and m.value == 1.0


def test_two_sided_guard_wider_than_the_tolerance_never_passes() -> None:
    lim = Limit.model_validate({"id": "K", "measurement": "k", "unit": "1", "min": 0.0,
                                "max": 1.0, "guard": "auto"})
    assert lim.judge(0.5, uncertainty=0.1).outcome is Outcome.PASS
    # 2 k u = 1.2 > tolerance: conformance cannot be proven, only a conditional pass
    assert lim.judge(0.5, uncertainty=0.3).outcome is Outcome.MARGINAL


def test_other_rules_are_named_and_keep_the_stated_uncertainty() -> None:
    fixed = Limit(id="A", measurement="a", unit="1", max=1.0, guard=0.1)
    simple = Limit(id="B", measurement="a", unit="1", max=1.0)
    m = fixed.judge(0.95, uncertainty=0.01)
    assert (m.decision, m.coverage_k, m.uncertainty, m.outcome) == (
        "fixed-guard", None, 0.01, Outcome.MARGINAL)
    assert simple.judge(0.95).decision == "simple"
    info = Measurement.judged("a", 1.0, "1", uncertainty=0.2)
    assert info.decision == "" and info.uncertainty == 0.2
    assert info.allure_parameter() == "1 ± 0.2 1 INFO"


@pytest.mark.parametrize(("entry", "words"), [
    ("guard: sometimes", ["guard", "auto"]),
    ("guard: 0.1, k: 3", ["k", "guard: auto"]),
    ("guard: auto, k: 0", ["k", "greater than 0"]),
    ("guard: -0.5", ["guard", "negative"]),
])
def test_bad_decision_rule_in_a_spec_is_one_line_naming_the_field(
        tmp_path: Path, entry: str, words: list[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("product: p\nversion: 1\nlimits:\n"
                    f"  - {{id: A, measurement: a, unit: '1', max: 1.0, {entry}}}\n")
    with pytest.raises(ConfigError) as err:
        load_limits(spec)
    text = str(err.value)
    assert "\n" not in text and str(spec) in text
    for word in words:
        assert word in text


def test_checker_passes_the_uncertainty_to_the_rule(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("product: p\nversion: 1\nlimits:\n"
                    "  - {id: A, measurement: a, unit: '1', max: 1.0, guard: auto}\n")
    seen: list[Measurement] = []
    check = Checker("t", load_limits(spec), seen.append)
    (m,) = check("a", 0.5, "1", uncertainty=0.05)
    assert m.outcome is Outcome.PASS and m.uncertainty == 0.05
    check2 = Checker("t2", load_limits(spec), seen.append)
    check2("a", 0.5, "1")
    with pytest.raises(MeasurementError, match="stated no uncertainty"):
        check2.raise_if_failed()


def test_records_keep_rule_u_and_k_and_old_hashes_hold(tmp_path: Path) -> None:
    # the hash of a run stored before schema v6, as the v5 code computed it (commit eed384b)
    assert run_hash(make_run("r1"), GENESIS_HASH) == (
        "7ed752a7554b931ad690fb05baa20db11679c9e241bab33517003c30d3b12b76")
    lim = guarded()
    m = lim.judge(2.5, uncertainty=0.125, test_id="tests_hil/test_linearity.py::t")
    base = make_run("r2")
    test = base.tests[0]
    run = type(base)(**{**base.__dict__, "tests": (
        type(test)(**{**test.__dict__, "measurements": (*test.measurements, m)}),
        *base.tests[1:])})
    assert run_hash(run, GENESIS_HASH) != run_hash(base, GENESIS_HASH)
    with RecordStore(tmp_path / "r.sqlite") as store:
        store.add_run(make_run("r1"))
        store.add_run(run)
        back = store.get_run("r2")
        stored = [x for x in back.measurements if x.limit_id == "DN"]
        assert len(stored) == 1
        assert (stored[0].uncertainty, stored[0].decision, stored[0].coverage_k) == (
            0.125, "guarded", 2.0)
        assert store.verify().problems == ()


def test_signoff_and_csv_show_u_and_the_rule() -> None:
    from harness.evidence.exports import CSV_COLUMNS
    from harness.evidence.signoff import _family_html, family_tables

    m = guarded().judge(2.5, uncertainty=0.125, test_id="tests_hil/test_linearity.py::t")
    base = make_run("r3")
    test = base.tests[0]
    run = type(base)(**{**base.__dict__, "tests": (
        type(test)(**{**test.__dict__, "measurements": (m,)}),)})
    html = "".join(_family_html(t) for t in family_tables(run))
    assert "2.5 ± 0.12" in html and "guarded, k = 2" in html
    assert CSV_COLUMNS[-3:] == ("uncertainty", "decision", "coverage_k")


def test_the_station_study_widens_the_band_when_its_repeatability_is_larger() -> None:
    lim = guarded()
    # the analysis saw 0.05 within the run; the station's repeats spread 0.1: band 2 x 0.1
    m = lim.judge(2.85, uncertainty=0.05, station_sd=0.1)
    assert (m.outcome, m.decision, m.uncertainty) == (Outcome.MARGINAL, "guarded-msa", 0.05)
    assert m.marginal_high == pytest.approx(3.0 - 0.2)
    # the run's own u is the larger: the analysis's u rules
    m = lim.judge(2.85, uncertainty=0.2, station_sd=0.1)
    assert m.decision == "guarded" and m.marginal_high == pytest.approx(2.6)
    # no u stated but a study: judged with the study's s; neither: ERROR
    assert lim.judge(2.5, station_sd=0.1).outcome is Outcome.PASS
    assert lim.judge(2.5).outcome is Outcome.ERROR


def test_a_station_study_is_read_checked_and_looked_up_by_condition(tmp_path: Path) -> None:
    import json

    from harness.run.station_study import load_study, study_path

    station = tmp_path / "st.yaml"
    path = study_path(station)
    assert path.name == "st.msa.json" and load_study(path, "st-1") is None
    rows = [{"limit_id": "MTF50-CORNER", "condition": {"zone": "corner", "field": "tl_v"},
             "sd": 0.007}]
    path.write_text(json.dumps({"station_id": "st-1", "rows": rows}))
    study = load_study(path, "st-1")
    assert study is not None
    assert study.lookup("MTF50-CORNER", {"field": "tl_v", "zone": "corner"}) == 0.007
    assert study.lookup("MTF50-CORNER", {"field": "tr_v", "zone": "corner"}) is None
    with pytest.raises(ConfigError, match="station_id"):
        load_study(path, "st-2")  # another station's study measures another station
    path.write_text(json.dumps({"station_id": "st-1", "rows": [{"limit_id": "A", "sd": -1}]}))
    with pytest.raises(ConfigError, match=r"rows\[0\]\.sd"):
        load_study(path, "st-1")
    path.write_text("{")
    with pytest.raises(ConfigError, match=r"st\.msa\.json"):
        load_study(path, "st-1")

    spec = tmp_path / "spec.yaml"
    spec.write_text("product: p\nversion: 1\nlimits:\n  - {id: MTF50-CORNER, measurement: "
                    "mtf50, unit: cy/px, min: 0.22, guard: auto, condition: {zone: corner}}\n")
    path.write_text(json.dumps({"station_id": "st-1", "rows": rows}))
    study = load_study(path, "st-1")
    assert study is not None
    seen: list[Measurement] = []
    check = Checker("t", load_limits(spec), seen.append, station_sd=study.lookup)
    (m,) = check("mtf50", 0.23, "cy/px", uncertainty=0.002, zone="corner", field="tl_v")
    assert m.decision == "guarded-msa" and m.marginal_low == pytest.approx(0.234)
    assert m.outcome is Outcome.MARGINAL
