"""The fault matrix (issue Reliability §1): every station fault the issue names is injected in
turn into a copy of ``stations/sim-small.yaml``, the part of ``tests_hil`` that uses the faulted
device runs in its own pytest process, and for each:

* the outcome is ERROR (not FAIL, not PASS);
* the message names the device and the fault;
* every simulated instrument ends in its safe state, read from the simulators' own final state
  (the hub writes it at close: ``HARNESS_SIM_STATE_FILE``); an instrument scripted to stop
  answering cannot be reached by anyone, so for it the journal must say its safe state was not
  reached;
* the fault actually fired (the simulator recorded it: a fault that never fires proves nothing);
* the journal is complete up to the fault (no torn line, no sequence gap, every test ended,
  ``run_end`` written);
* for an instrument fault, the run's ``instruments.log`` is in its evidence folder and the
  Allure result of the test that ended ERROR carries the ``<device> traffic`` attachment of the
  device the error names, with the failing exchange in it.

The matrix is printed (``pytest -s``) and is what ``harness reliability`` shows. By default the
test runs a covering subset (every camera fault, every instrument fault kind on at least one
device and over both transports, every device, over-range, stall, evidence, records: 12 of the
24 pytest runs) to keep ``make test`` short; ``HARNESS_FULL_FAULT_MATRIX=1`` runs all 24, as
``harness reliability`` always does (light drift alone takes 45 s: the suite's meter settle
waits 30 s before it gives up).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness.measurement import Outcome
from harness.run.fault_matrix import (
    DEFAULT_STATION,
    FaultResult,
    _safe_state,
    default_cases,
    events_lost,
    run_fault_matrix,
    table,
    write_station,
)
from harness.sim.faults import FaultState, InstrumentFault
from harness.sim.instruments.hub import STATE_FILE_ENV, start_simulators

ALL_CASES = default_cases()
COVERING = {"camera-timeout", "camera-disconnect", "camera-drop", "camera-incomplete",
            "light-timeout", "power-garbage", "meter-drop", "meter-over-range",
            "chart-garbage", "focus-stall", "evidence-unwritable", "records-unreachable"}
CASES = (ALL_CASES if os.environ.get("HARNESS_FULL_FAULT_MATRIX") == "1"
         else [c for c in ALL_CASES if c.name in COVERING])


@pytest.fixture(scope="module")
def matrix() -> dict[str, FaultResult]:
    results = run_fault_matrix(cases=CASES, workers=3)
    print("\n" + table(results))
    return {r.case.name: r for r in results}


def test_the_matrix_covers_every_fault_the_issue_names() -> None:
    names = {c.name for c in ALL_CASES}
    assert names >= COVERING
    for device in ("light", "power", "meter", "focus", "chart"):
        assert {f"{device}-timeout", f"{device}-garbage", f"{device}-drop"} <= names
    assert {"camera-timeout", "camera-disconnect", "camera-drop", "camera-incomplete",
            "light-drift", "meter-over-range", "focus-stall", "evidence-unwritable",
            "records-unreachable"} <= names


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_fault_ends_error_named_safe_and_journaled(matrix: dict[str, FaultResult],
                                                   name: str) -> None:
    r = matrix[name]
    why = f"{r.row()}\n{r.output[-2500:]}"
    assert r.outcome is Outcome.ERROR, why
    assert r.exit_code not in (0, -1), why  # pytest must not report success either
    assert r.names_device and r.names_fault, why
    assert r.fault_fired, why
    assert r.safe_state, why
    if r.case.evidence_unwritable:
        assert r.events_lost is None and "evidence" in r.message.lower(), why  # no journal
    else:
        assert r.events_lost == 0, why


@pytest.mark.parametrize("name", [c.name for c in CASES if c.simulator is not None])
def test_instrument_error_attaches_the_device_traffic(matrix: dict[str, FaultResult],
                                                      name: str) -> None:
    r = matrix[name]
    why = f"{r.row()}\n{r.output[-2500:]}"
    log = Path(r.instruments_log)
    assert r.instruments_log and log.name == "instruments.log" and log.parent == \
        Path(r.journal).parent, why  # in the run's evidence folder, beside its journal
    lines = r.instruments_log_text.splitlines()
    assert len(lines) > 10 and all(ln.count("\t") == 5 for ln in lines[1:]), why
    device = next(d for d in r.case.names if d in r.traffic)  # the device the ERROR names
    text = r.traffic[device][0]
    rows = [ln.split("\t") for ln in text.splitlines()]
    assert rows and all(len(f) == 6 and f[2] == device for f in rows), text
    command = re.search(r"command '([^']*)'", r.message)
    if command is not None:  # the failing exchange: its command, and the error it ended in
        assert any(f[3] == ">" and f[4] == command.group(1) for f in rows), text
        assert any(f[3] == "!" and f[4].startswith("error: ") for f in rows), text
    assert "\t".join(rows[-1]) in lines, text  # the same lines as the log


# -- the pieces, checked on their own ------------------------------------------------------------


def test_hub_writes_the_simulators_final_state(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    monkeypatch.setenv(STATE_FILE_ENV, str(target))
    hub = start_simulators({"light": {"type": "scpi-led",
                                      "faults": [{"kind": "drift", "after": 0}]},
                            "psu": {"type": "scpi-psu"}})
    hub.simulator("light").output.set_on(True)
    hub.simulator("light").output.relative_output()  # a continuous fault fires when it acts
    hub.close()
    state = json.loads(target.read_text())
    assert state["light"]["on"] is True and state["light"]["type"] == "scpi-led"
    assert state["light"]["faults_fired"] == ["drift"]
    assert state["psu"]["channels"][0]["on"] is False and state["psu"]["faults_fired"] == []


def test_continuous_faults_are_recorded_once_when_active() -> None:
    faults = FaultState([InstrumentFault(kind="drift", after=1)])
    assert faults.active("drift") is None and faults.fired == []
    faults.command_seen()
    assert faults.active("drift") is not None and faults.active("drift") is not None
    assert faults.fired == ["drift"]


def test_safe_state_judge_catches_a_live_instrument() -> None:
    station = {"focus": {"park": 0}, "chart": {"park": "dark"}}
    good: dict[str, dict[str, Any]] = {
        "light": {"type": "scpi-led", "on": False},
        "psu": {"type": "scpi-psu", "channels": [{"on": False}]},
        "focus": {"type": "focus-stage", "position": 0.1, "moving": False, "stalled": False},
        "chart": {"type": "chart-wheel", "current": "dark"}}
    assert _safe_state(good, station)[0]
    for name, change in (("light", {"on": True}), ("psu", {"channels": [{"on": True}]}),
                         ("focus", {"position": 50.0}), ("chart", {"current": "flat"})):
        bad = {**good, name: {**good[name], **change}}
        assert not _safe_state(bad, station)[0], name
    assert not _safe_state(None, station)[0]
    assert not _safe_state({**good, "light": {"type": "scpi-led", "on": True}}, station,
                           silent="light")[0]  # silent, and nothing journaled about it
    assert _safe_state({**good, "light": {"type": "scpi-led", "on": True}}, station,
                       silent="light", reported="light: safe state not reached: no reply")[0]


def test_events_lost_counts_gaps_torn_lines_and_open_ends(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = [{"seq": 1, "type": "run_start"}, {"seq": 2, "type": "test_start", "test_id": "a"},
             {"seq": 4, "type": "measurement"}]
    journal.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"seq": 5, "ty')
    lost, notes = events_lost(journal)
    # seq 3 missing, torn tail, test 'a' never ended, no run_end
    assert lost == 4 and "seq 3 -> 4" in notes and "no run_end" in notes


def test_station_copy_scripts_the_fault_and_keeps_the_rest(tmp_path: Path) -> None:
    import yaml

    case = next(c for c in ALL_CASES if c.name == "power-garbage")
    path = write_station(DEFAULT_STATION, case, tmp_path, {"psu": 7})
    data = yaml.safe_load(path.read_text())
    assert data["simulators"]["psu"]["faults"] == [{"after": 7, "kind": "garbage", "count": 3}]
    assert "faults" not in data["simulators"]["light"]
    assert Path(data["camera"]["module"]).is_absolute() and data["lock_dir"] == str(tmp_path)
    assert path.with_name("power-garbage.light-cal.json").exists()
    assert os.path.exists(data["camera"]["module"])


def test_reliability_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli.app import app

    runner = CliRunner()
    listed = runner.invoke(app, ["reliability", "--list"])
    assert listed.exit_code == 0 and "focus-stall" in listed.output
    bad = runner.invoke(app, ["reliability", "--only", "camera-melt"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "unknown fault(s) camera-melt; allowed:" in bad.output
    missing = runner.invoke(app, ["reliability", "--station", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "no such station file" in missing.output
    ran = runner.invoke(app, ["reliability", "--only", "camera-incomplete", "--json"])
    assert ran.exit_code == 0, ran.output
    rows = json.loads(ran.output)
    assert [(r["fault"], r["outcome"], r["ok"]) for r in rows] == [
        ("camera-incomplete", "ERROR", True)]
