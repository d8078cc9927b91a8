"""Signals during a qualification run on the simulated station (issue Reliability §2).

* SIGINT and SIGTERM at seeded random points of a ``tests_hil`` run: the run ends ABORTED, every
  simulated instrument is in its safe state (read from the simulators' own final state, which
  the hub writes at close: ``HARNESS_SIM_STATE_FILE``), and the journal is closed with
  ``run_end``.
* SIGKILL cannot be caught: the watchdog the plugin starts with the run (``harness.run.
  watchdog``) puts the instruments in their safe state and closes the journal with an ABORTED
  ``run_end``. Checked twice: on a station whose instruments are served by *this* process (so
  they outlive the runner, like real instruments), and on the simulated station whose
  simulators die with the runner (the watchdog says so instead of pretending).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.evidence.journal import read_journal, rebuild
from harness.measurement import Outcome
from harness.run.fault_matrix import (
    DEFAULT_LIMITS,
    DEFAULT_STATION,
    ROOT,
    events_lost,
    write_station,
)
from harness.run.watchdog import KILLED_REASON
from harness.sim.instruments.hub import STATE_FILE_ENV, SimulatorHub, start_simulators

SUITE = str(ROOT / "tests_hil" / "test_uniformity.py")
POINTS = 3  # random points per signal: enough to land in different phases, still fast
SEED = 1288


def _env(state_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[STATE_FILE_ENV] = str(state_file)
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT on a hung run prints every thread's stack
    return env


def _journal(evidence: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> Path:
    """The run's journal, once the run is inside its first test (station open, watchdog on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list(evidence.glob("*/journal.jsonl")) if evidence.is_dir() else []
        if found and any(e["type"] == "test_start" for e in read_journal(found[0]).events):
            return found[0]
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never started its journal"
        time.sleep(0.02)


def _signal_run(sig: signal.Signals, delay_s: float, folder: Path) -> dict[str, object]:
    folder.mkdir(parents=True)
    station = write_station(DEFAULT_STATION, None, folder)
    evidence, state_file = folder / "evidence", folder / "simulators.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={DEFAULT_LIMITS}", f"--evidence-dir={evidence}",
         f"--rootdir={ROOT}"], cwd=ROOT, env=_env(state_file), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    journal = _journal(evidence, proc)
    time.sleep(delay_s)
    finished_first = proc.poll() is not None
    proc.send_signal(sig)
    hung = False
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # the test says where it hung, instead of erroring
        hung = True
        proc.send_signal(signal.SIGABRT)
        out, _ = proc.communicate(timeout=30)
    return {"journal": journal, "state": json.loads(state_file.read_text())
            if state_file.exists() else None, "code": proc.returncode, "out": out,
            "finished_first": finished_first, "hung": hung}


CASES = [(sig, round(random.Random(SEED + i).uniform(0.0, 2.5), 2))
         for sig in (signal.SIGINT, signal.SIGTERM) for i in range(POINTS)]


@pytest.fixture(scope="module")
def signal_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, float], dict]:
    folder = tmp_path_factory.mktemp("signals")
    with ThreadPoolExecutor(max_workers=3) as pool:  # the runs mostly wait for their signal
        runs = pool.map(lambda c: _signal_run(c[0], c[1], folder / f"{c[0].name}-{c[1]}"), CASES)
        return {(sig.name, delay): run for (sig, delay), run in zip(CASES, runs, strict=True)}


@pytest.mark.parametrize(("sig", "delay_s"), CASES, ids=[f"{s.name}-{d}s" for s, d in CASES])
def test_signal_aborts_safely_and_closes_the_journal(signal_runs, sig: signal.Signals,
                                                     delay_s: float) -> None:
    run = signal_runs[(sig.name, delay_s)]
    assert not run["finished_first"], "the run ended before the signal: pick earlier points"
    assert not run["hung"], f"no exit 60 s after {sig.name}; its threads:\n{run['out'][-8000:]}"
    contents = read_journal(run["journal"])
    assert contents.events[-1]["type"] == "run_end", run["out"][-3000:]
    assert rebuild(contents).outcome is Outcome.ABORTED
    assert events_lost(run["journal"]) == (0, [])
    assert run["code"] == 2, run["out"][-3000:]  # pytest's "interrupted"
    state = run["state"]
    assert state is not None, run["out"][-3000:]
    assert not state["light"]["on"]
    assert not any(ch["on"] for ch in state["psu"]["channels"])
    assert state["chart"]["current"] == "dark"
    assert abs(state["focus"]["position"]) < 0.5 and not state["focus"]["moving"]
    assert not any(e.get("message", "").startswith("runner pid") for e in contents.events), \
        "the watchdog must not act on a run that closed itself"


# -- SIGKILL ------------------------------------------------------------------------------------

INSTRUMENTS: dict[str, dict[str, Any]] = {"light": {"type": "scpi-led"}, "psu": {"type": "scpi-psu"},
               "focus": {"type": "focus-stage", "minimum": -200, "maximum": 200},
               "chart": {"type": "chart-wheel", "charts": ["dark", "flat", "edge"]}}

KILL_ME = textwrap.dedent("""
    import pathlib, time

    def test_left_running(hil_light, hil_focus, hil_chart, hil_power):
        hil_light.set_level(40)
        hil_light.on()
        hil_focus.move_to(120)
        hil_focus.wait_settled()
        hil_chart.select("flat")
        pathlib.Path(__file__).with_name("ready").write_text("x")
        time.sleep(120)  # killed here
""")


@pytest.fixture
def served() -> Iterator[SimulatorHub]:
    """Instruments served by this process: they outlive a killed runner, as real ones do."""
    hub = start_simulators(INSTRUMENTS)
    try:
        yield hub
    finally:
        hub.close()


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _kill_run(folder: Path, station: Path, tests: str) -> tuple[Path, subprocess.Popen[str]]:
    evidence = folder / "evidence"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", tests, "-q", "-p", "no:cacheprovider",
         f"--station={station}", "--characterise", f"--evidence-dir={evidence}",
         f"--rootdir={folder}"],
        cwd=folder, env=_env(folder / "simulators.json"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return _journal(evidence, proc), proc


def _watchdog_done(journal: Path) -> bool:
    return any(e["type"] == "run_end" for e in read_journal(journal).events)


def test_sigkill_watchdog_makes_real_instruments_safe(served: SimulatorHub,
                                                      tmp_path: Path) -> None:
    a = served.address
    station = tmp_path / "st.yaml"
    station.write_text(
        f"id: kill-st\nlock_dir: {tmp_path}\n"
        f"power: {{driver: scpi-psu, resource: '{a('psu')}', max_voltage_v: 5, "
        "max_current_a: 1, voltage_v: 3.3, current_limit_a: 0.8, output_at_open: true, "
        "timeout_s: 0.5}\n"
        f"light: {{driver: scpi-led, resource: '{a('light')}', timeout_s: 0.5}}\n"
        f"focus: {{driver: serial-focus, port: '{a('focus')}', park: 0, timeout_s: 0.5}}\n"
        f"chart: {{driver: serial-chart, port: '{a('chart')}', park: dark, timeout_s: 0.5}}\n")
    (tmp_path / "test_kill.py").write_text(KILL_ME)
    journal, proc = _kill_run(tmp_path, station, str(tmp_path / "test_kill.py"))
    _wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, 60, "not ready")
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    light, psu = served.simulator("light"), served.simulator("psu")
    focus, chart = served.simulator("focus"), served.simulator("chart")
    assert light.output.on and psu.channels[0].on and chart.current == "flat"
    assert abs(focus.axis.now() - 120) < 0.5  # the run left the station live ...
    proc.kill()
    proc.communicate(timeout=30)
    _wait_for(lambda: _watchdog_done(journal), 30, "the watchdog never closed the journal")
    # ... the watchdog made it safe: light off, supply off, focus parked, dark cap in.
    assert not light.output.on and not psu.channels[0].on
    assert chart.current == "dark"
    _wait_for(lambda: not focus.axis.moving(), 5, "focus still moving")
    assert abs(focus.axis.now()) < 0.5
    events = read_journal(journal).events
    error = next(e for e in events if e["type"] == "error")
    assert f"runner pid {proc.pid} died" in error["message"]
    assert "reached: chart, focus, light, power" in error["message"]
    assert events[-1] == {**events[-1], "type": "run_end", "outcome": "ABORTED",
                          "reason": KILLED_REASON}
    record = rebuild(journal)
    assert record.outcome is Outcome.ABORTED and record.reason.startswith(KILLED_REASON)
    assert [t.outcome for t in record.tests] == [Outcome.ABORTED]
    assert events_lost(journal) == (0, [])
    built = CliRunner().invoke(app, ["report", "--from-journal", str(journal),
                                     "--results", str(tmp_path / "allure"),
                                     "--records", str(tmp_path / "records.sqlite"),
                                     "--out", str(tmp_path / "report")])
    assert built.exit_code == 0, built.output
    assert "ABORTED" in built.output


def test_sigkill_on_the_simulated_station_is_journaled(tmp_path: Path) -> None:
    """The simulators die with the runner: the watchdog closes the journal and says it could
    not reach them (nothing is left powered: the bench was in the runner too)."""
    station = write_station(DEFAULT_STATION, None, tmp_path)
    journal, proc = _kill_run(tmp_path, station,
                              str(ROOT / "tests_hil" / "test_uniformity.py"))
    time.sleep(1.0)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.kill()
    proc.communicate(timeout=30)
    _wait_for(lambda: _watchdog_done(journal), 30, "the watchdog never closed the journal")
    events = read_journal(journal).events
    error = next(e for e in events if e["type"] == "error")
    assert error["message"].startswith(f"runner pid {proc.pid} died")
    assert "simulated instrument died with the runner" in error["message"]
    assert rebuild(journal).outcome is Outcome.ABORTED
    assert events_lost(journal) == (0, [])


def test_watchdog_leaves_a_station_taken_over_by_a_new_run_alone(tmp_path: Path) -> None:
    """If a new run already holds the station, the watchdog must not switch its light off."""
    from harness.run.watchdog import apply_safe_state
    from harness.station.lock import StationLock

    station = tmp_path / "st.yaml"
    station.write_text(f"id: taken-st\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n")
    with StationLock("taken-st", tmp_path):
        reached, failed = apply_safe_state(station)
    assert reached == [] and failed[0][0] == "station" and "in use by pid" in failed[0][1]
    reached, failed = apply_safe_state(station)  # free again: the watchdog does its job
    assert reached == ["light"] and failed == []


def test_watchdog_stops_quietly_after_a_clean_close(tmp_path: Path) -> None:
    from harness.run.watchdog import start_watchdog

    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"seq": 1, "type": "run_start", "run_id": "r"}\n')
    station = tmp_path / "st.yaml"
    station.write_text(f"id: clean-st\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n")
    watchdog = start_watchdog(station, journal)
    watchdog.stop()
    assert watchdog.proc.returncode == 0
    assert len(read_journal(journal).events) == 1  # nothing appended
