"""A qualification run on the four-up simulated station (``stations/sim-4up.yaml``): one run
record per slot, the light changed as often as for one slot, faults kept where they belong,
SIGTERM bringing every slot and the shared instruments to their safe state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.evidence.journal import read_journal, rebuild
from harness.evidence.model import RunRecord
from harness.evidence.records import RecordStore
from harness.measurement import Outcome
from harness.run.fault_matrix import events_lost
from harness.sim.instruments.hub import STATE_FILE_ENV
from harness.sim.module import load_module
from harness.station.lease import LeaseManager
from tests_unit.test_slots_capture import SPEC, station_file

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {slot: set(load_module(ROOT / "fixtures" / "modules" / f"{name}.yaml").expect.fails)
            for slot, name in (("C", "hot-cluster"), ("D", "colour-cast"))
            if load_module(ROOT / "fixtures" / "modules" / f"{name}.yaml").expect}
#: The light commands that change its state (the rest are queries).
LIGHT_CHANGES = ("OUTP1:STAT ON", "OUTP1:STAT OFF", "SOUR1:BRIG ", "SOUR1:WAV ")


def run(station: Path, folder: Path, *select: str, records: Path | None = None,
        extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str],
                                              dict[str, RunRecord]]:
    """The suite (or ``select``) on ``station``; each slot's record by the DUT's slot."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[STATE_FILE_ENV] = str(folder / "simulators.json")
    args = [sys.executable, "-m", "pytest", *(select or [str(ROOT / "tests_hil")]), "-q",
            "-p", "no:cacheprovider", f"--station={station}", f"--limits={SPEC.source}",
            f"--evidence-dir={folder / 'ev'}", f"--rootdir={ROOT}"]
    if records is not None:
        args.append(f"--records={records}")
    args += extra
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = {}
    for journal in (folder / "ev").glob("*/journal.jsonl"):
        record = rebuild(journal)
        out[str(record.dut_serial)[5]] = record  # SIM4-A-0001 -> A
    return proc, out


def light_changes(record_folder: Path) -> list[str]:
    lines = (record_folder / "instruments.log").read_text().splitlines()
    return [line.split("\t")[4] for line in lines if "\tlight\t>" in line
            and line.split("\t")[4].startswith(LIGHT_CHANGES)]


def failed(record: RunRecord) -> set[str]:
    return {m.limit_id for m in record.measurements if m.outcome is Outcome.FAIL}


def test_four_slots_four_records_golden_pass_faulty_fail_their_limits(tmp_path: Path) -> None:
    records = tmp_path / "records.sqlite"
    proc, four = run(station_file(tmp_path / "four"), tmp_path / "four", records=records)
    assert sorted(four) == ["A", "B", "C", "D"], proc.stdout[-3000:]
    assert four["A"].outcome is Outcome.PASS and four["B"].outcome is Outcome.PASS, \
        proc.stdout[-3000:]
    for slot in "CD":
        assert four[slot].outcome is Outcome.FAIL and failed(four[slot]) == EXPECTED[slot]
    assert proc.returncode == 1  # a slot failed
    assert "harness run slot A (SIM4-A-0001)" in proc.stdout
    with RecordStore(records) as store:
        stored = {r.dut_serial for r in store.runs()}
        assert stored == {"SIM4-A-0001", "SIM4-B-0002", "SIM4-C-0003", "SIM4-D-0004"}
        assert store.verify().problems == ()
    # the light changed exactly as for a one-slot run of the same station
    proc1, one = run(station_file(tmp_path / "one", slots=("A",)), tmp_path / "one")
    assert one["A"].outcome is Outcome.PASS, proc1.stdout[-3000:]
    folder = {s: next((tmp_path / "four" / "ev").glob(f"{r.run_id}")) for s, r in four.items()}
    single = next((tmp_path / "one" / "ev").glob(f"{one['A'].run_id}"))
    assert light_changes(folder["A"]) == light_changes(single)
    assert len(light_changes(single)) > 10
    # each slot's evidence: its own capture sets, its own instrument log
    for slot, path in folder.items():
        assert (path / "captures").is_dir() and (path / "instruments.log").is_file()
        assert all(f"SIM4-{slot}" in json.loads(m.read_text())["camera"]["serial"]
                   for m in (path / "captures").glob("*/manifest.json"))


def test_on_a_shared_focus_stage_each_slot_s_chart_is_taken_at_its_own_best_focus(
        tmp_path: Path) -> None:
    """Slot B's lens sits 16 um off (focus-offset): its edge chart is captured apart, at its
    own best focus, so it fails FOCUS-BEST only (captured at the others' focus, its MTF
    limits failed too); the three others share one capture at theirs."""
    station = station_file(tmp_path, modules={"B": "focus-offset"})
    proc, four = run(station, tmp_path, str(ROOT / "tests_hil" / "test_focus.py"))
    assert sorted(four) == ["A", "B", "C", "D"], proc.stdout[-3000:]
    assert failed(four["B"]) == {"FOCUS-BEST"}, proc.stdout[-3000:]
    assert all(not failed(four[s]) for s in "ACD"), proc.stdout[-3000:]
    best = {s: next(m.value for m in r.measurements if m.name == "best_focus_um")
            for s, r in four.items()}
    assert 14.0 < best["B"] < 20.0 and all(abs(best[s]) < 3.0 for s in "ACD"), best
    for slot, record in four.items():
        folder = next((tmp_path / "ev").glob(record.run_id))
        edge = json.loads(next((folder / "captures").glob("*-chart_edge/manifest.json"))
                          .read_text())
        positions = {f["focus_position"] for f in edge["frames"] if f["role"] == "edge"}
        assert positions == {round(best[slot])}, (slot, positions, best[slot])
        notes = [e for e in read_journal(folder / "journal.jsonl").events
                 if e["type"] == "note" and e.get("facts", {}).get("sequence") == "edge"]
        assert [n["facts"]["group"] for n in notes] == [["B"] if slot == "B" else
                                                        ["A", "C", "D"]]


SUBSET = (str(ROOT / "tests_hil" / "test_uniformity.py"),
          str(ROOT / "tests_hil" / "test_defects.py"))


def test_a_slot_whose_camera_dies_is_error_and_the_others_go_on(tmp_path: Path) -> None:
    station = station_file(tmp_path, camera_faults={"B": {"disconnect_after": 12}})
    proc, slots = run(station, tmp_path, *SUBSET)
    assert slots["B"].outcome is Outcome.ERROR, proc.stdout[-3000:]
    assert any("camera.B" in t.message for t in slots["B"].tests
               if t.outcome is Outcome.ERROR)
    for slot in "ACD":  # the others were judged (INCOMPLETE: a subset of the suite)
        assert slots[slot].outcome is not Outcome.ERROR, (slot, slots[slot].reason)
        assert all(t.outcome is not Outcome.ERROR for t in slots[slot].tests)
    assert failed(slots["C"]) == EXPECTED["C"]


def test_a_fault_of_the_shared_light_makes_every_slot_error(tmp_path: Path) -> None:
    station = station_file(tmp_path, light_faults=[{"kind": "error", "after": 30}])
    proc, slots = run(station, tmp_path, SUBSET[0])
    assert sorted(slots) == ["A", "B", "C", "D"]
    for slot, record in slots.items():
        assert record.outcome is Outcome.ERROR, (slot, proc.stdout[-2000:])
        assert any("light" in t.message for t in record.tests if t.outcome is Outcome.ERROR)


def test_sigterm_brings_every_slot_and_the_instruments_to_safe_state(tmp_path: Path) -> None:
    station = station_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    state_file = tmp_path / "simulators.json"
    env[STATE_FILE_ENV] = str(state_file)
    evidence = tmp_path / "ev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *SUBSET, "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={SPEC.source}", f"--evidence-dir={evidence}",
         f"--rootdir={ROOT}"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not any("test_start" in j.read_text() for j in evidence.glob("*/journal.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.0)  # inside the captures
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    journals = list(evidence.glob("*/journal.jsonl"))
    assert len(journals) == 4, out[-3000:]
    for journal in journals:
        contents = read_journal(journal)
        assert contents.events[-1]["type"] == "run_end", out[-3000:]
        assert rebuild(contents).outcome is Outcome.ABORTED
        assert events_lost(journal) == (0, [])
    state = json.loads(state_file.read_text())
    assert not state["light"]["on"] and state["chart"]["current"] == "dark"
    assert not any(ch["on"] for ch in state["psu"]["channels"])


def test_dut_option_is_refused_on_a_multi_slot_station(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", SUBSET[0], "-q", "-p", "no:cacheprovider",
         f"--station={station_file(tmp_path)}", f"--limits={SPEC.source}", "--dut=X",
         f"--evidence-dir={tmp_path / 'ev'}"], capture_output=True, text=True, timeout=120,
        cwd=tmp_path)
    assert proc.returncode == 4 and "each slot's serial is read from its camera" in proc.stderr


def test_sigkill_the_watchdog_closes_every_slot_journal(tmp_path: Path) -> None:
    """SIGKILL cannot be caught: the watchdog closes each slot's journal ABORTED (the
    simulators died with the runner, and it says so in each)."""
    from harness.run.watchdog import KILLED_REASON

    station = station_file(tmp_path)
    evidence = tmp_path / "ev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", SUBSET[0], "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={SPEC.source}", f"--evidence-dir={evidence}",
         f"--rootdir={ROOT}"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while sum("test_start" in j.read_text() for j in evidence.glob("*/journal.jsonl")) < 1:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)
    # the runner's leases name its watchdog their guardian
    registry = LeaseManager(tmp_path / "leases.sqlite")
    rows = registry.holders()
    assert rows and {r.pid for r in rows} == {proc.pid}
    guardian = int(rows[0].guardian.partition(":")[0])
    assert b"harness.run.watchdog" in Path(f"/proc/{guardian}/cmdline").read_bytes()
    proc.kill()
    proc.communicate(timeout=30)
    journals = list(evidence.glob("*/journal.jsonl"))
    assert len(journals) == 4
    deadline = time.monotonic() + 45
    while not all(read_journal(j).events[-1]["type"] == "run_end" for j in journals):
        assert time.monotonic() < deadline, "the watchdog did not close every slot's journal"
        time.sleep(0.1)
    for journal in journals:
        events = read_journal(journal).events
        assert events[-1]["reason"] == KILLED_REASON
        assert rebuild(journal).outcome is Outcome.ABORTED
        assert events_lost(journal) == (0, [])
    # the watchdog adopted them while making the station safe, then freed them
    deadline = time.monotonic() + 10
    while registry.holders():
        assert time.monotonic() < deadline, registry.holders()
        time.sleep(0.1)


def test_a_slot_whose_label_does_not_match_is_error_alone(tmp_path: Path) -> None:
    """With settings.confirm_label the operator scans each slot's label in turn; a wrong one
    makes that slot's run ERROR (its tests too) and the others are qualified; --label (one
    DUT's) is refused on a multi-slot station."""
    import yaml

    station = station_file(tmp_path)
    data = yaml.safe_load(station.read_text())
    data["settings"] = {**data.get("settings", {}), "confirm_label": True,
                        "label_timeout_s": 20}
    station.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", SUBSET[0], "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={SPEC.source}", f"--evidence-dir={tmp_path / 'ev'}",
         f"--rootdir={ROOT}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        input="SIM4-A-0001\nSIM4-X-9999\nSIM4-C-0003\nSIM4-D-0004\n")
    slots = {str(rebuild(j).dut_serial)[5]: rebuild(j)
             for j in (tmp_path / "ev").glob("*/journal.jsonl")}
    assert slots["B"].outcome is Outcome.ERROR, proc.stdout[-3000:]
    assert all(t.outcome is Outcome.ERROR for t in slots["B"].tests)
    assert "DUT label mismatch" in slots["B"].reason + " ".join(
        t.message for t in slots["B"].tests)
    for slot in "ACD":
        assert all(t.outcome is not Outcome.ERROR for t in slots[slot].tests), slot
    refused = subprocess.run(
        [sys.executable, "-m", "pytest", SUBSET[0], "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={SPEC.source}", "--label=X",
         f"--evidence-dir={tmp_path / 'ev2'}"], capture_output=True, text=True, timeout=120,
        cwd=tmp_path)
    assert refused.returncode == 4 and "--label names one DUT" in refused.stderr


def test_a_slot_record_lists_its_devices_and_allure_groups_by_slot(tmp_path: Path) -> None:
    allure = tmp_path / "allure"
    _, slots = run(station_file(tmp_path), tmp_path, SUBSET[0],
                   extra=(f"--alluredir={allure}",))
    roles = {slot: {d["role"] for d in record.devices} for slot, record in slots.items()}
    assert {"camera.B", "power.B", "light", "chart", "meter"} <= roles["B"]
    assert not any(r.endswith((".A", ".C", ".D")) for r in roles["B"])
    suites: dict[str, str] = {}
    for result in allure.glob("*-result.json"):
        data = json.loads(result.read_text())
        labels = {lab["name"]: lab["value"] for lab in data.get("labels", [])}
        suites[data["name"]] = labels.get("parentSuite", "")
    assert suites, "no Allure results"
    for name, suite in suites.items():
        slot = name.rsplit("[", 1)[-1].rstrip("]")
        assert suite == f"slot {slot}", (name, suite)
