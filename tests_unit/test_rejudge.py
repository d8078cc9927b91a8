"""Re-judging a recorded run: the same suites on the recorded frames (issue: Records §1).

One qualification run of tests_hil on the small simulated station (with a records database)
is re-judged by ``harness rejudge`` with a spec in which one limit is tightened below the
golden value: every figure comes out equal to the last digit and exactly that limit FAILs in
the new run, which is stored linked to the original. A recording whose frames were reordered,
or whose gain differs from what the suite sets, stops with an ERROR naming the frame.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evidence.journal import rebuild
from harness.evidence.model import RunRecord
from harness.measurement import Outcome

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunRecord]:
    """A golden run on the small simulated station: its evidence folder and record."""
    folder = tmp_path_factory.mktemp("recorded")
    text = (ROOT / "stations" / "sim-small.yaml").read_text()
    station = folder / "station.yaml"
    station.write_text(text.replace("../fixtures/", f"{ROOT}/fixtures/")
                       + f"lock_dir: {folder}\n")
    (folder / "station.light-cal.json").write_bytes(
        (ROOT / "stations" / "sim-small.light-cal.json").read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests_hil"), "-q", "-p", "no:cacheprovider",
         f"--station={station}", f"--limits={LIMITS}", f"--evidence-dir={folder / 'ev'}",
         f"--records={folder / 'records.sqlite'}", f"--rootdir={ROOT}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    [journal] = (folder / "ev").glob("*/journal.jsonl")
    record = rebuild(journal)
    assert record.outcome is Outcome.PASS, proc.stdout[-3000:]
    return journal.parent, record


def harness(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = str(Path(sys.executable).with_name("harness"))  # the installed console script
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=_env())


def test_rejudge_with_a_tightened_limit(recorded: tuple[Path, RunRecord],
                                        tmp_path: Path) -> None:
    folder, original = recorded
    gain = next(m for m in original.measurements if m.limit_id == "EMVA-K")
    assert gain.value is not None
    spec = tmp_path / "tight.yaml"
    spec.write_text(LIMITS.read_text().replace(
        "{id: EMVA-K, measurement: system_gain_dn_per_e, unit: DN/e-, min: 0.54, max: 0.66, "
        "guard: auto,",
        f"{{id: EMVA-K, measurement: system_gain_dn_per_e, unit: DN/e-, min: 0.50, "
        f"max: {gain.value * 0.99:.6f},"))
    assert spec.read_text() != LIMITS.read_text()
    records = folder.parent.parent / "records.sqlite"
    evidence = tmp_path / "ev"
    shutil.copytree(folder, evidence / folder.name)
    result = harness("rejudge", original.run_id, "--limits", str(spec), "--evidence-dir",
                     str(evidence), "--records", str(records))
    assert result.returncode == 1, result.stdout + result.stderr  # the new run FAILs
    [new_journal] = [j for j in evidence.glob("*/journal.jsonl")
                     if j.parent.name != original.run_id]
    new = rebuild(new_journal)
    assert new.rejudged_from == original.run_id and new.outcome is Outcome.FAIL
    assert {m.limit_id for m in new.measurements if m.outcome is Outcome.FAIL} == {"EMVA-K"}

    def figures(record: RunRecord) -> dict[tuple[str, str], float | None]:
        return {(m.name, json.dumps(dict(m.condition), sort_keys=True)): m.value
                for m in record.measurements}

    assert figures(new) == figures(original)  # same code, same frames: to the last digit
    assert "EMVA-K" in result.stdout and "PASS" in result.stdout and "FAIL" in result.stdout
    from harness.evidence.records import RecordStore

    with RecordStore(records) as store:
        stored = store.get_run(new.run_id)
    assert stored.rejudged_from == original.run_id
    assert stored.station == f"{original.station}.rejudge"  # not in the station's own chain


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ev" / folder.name
    shutil.copytree(folder, copy)
    return copy


def _manifest(folder: Path, name: str) -> tuple[Path, dict]:  # type: ignore[type-arg]
    [path] = (folder / "captures").glob(f"*-{name}/manifest.json")
    return path, json.loads(path.read_text())


def _rejudge_error(copy: Path, tmp_path: Path) -> str:
    result = harness("rejudge", str(copy), "--limits", str(LIMITS), "--evidence-dir",
                     str(tmp_path / "ev"))
    new_journals = [j for j in (tmp_path / "ev").glob("*/journal.jsonl") if j.parent != copy]
    assert len(new_journals) == 1, result.stdout + result.stderr
    [new_journal] = new_journals
    new = rebuild(new_journal)
    assert new.outcome is Outcome.ERROR, result.stdout
    assert not [m for m in new.measurements if m.outcome is Outcome.FAIL]
    return "\n".join(t.message for t in new.tests if t.outcome is Outcome.ERROR)


def test_reordered_frames_stop_the_replay_naming_the_frame(
        recorded: tuple[Path, RunRecord], tmp_path: Path) -> None:
    copy = _copy(recorded[0], tmp_path)
    path, manifest = _manifest(copy, "flat_stack")
    frames = manifest["frames"]
    first_flat = next(i for i, f in enumerate(frames) if f["role"] == "flat")
    frames[first_flat - 1], frames[first_flat] = frames[first_flat], frames[first_flat - 1]
    path.write_text(json.dumps(manifest))
    message = _rejudge_error(copy, tmp_path)
    assert "replay out of sync at frame id" in message, message
    assert "role: the suite stores it as 'probe', the recording has 'flat'" in message, message


def test_a_different_gain_stops_the_replay_naming_the_frame(
        recorded: tuple[Path, RunRecord], tmp_path: Path) -> None:
    copy = _copy(recorded[0], tmp_path)
    path, manifest = _manifest(copy, "dark_stack")
    manifest["frames"][3]["gain_db"] = 6.0
    path.write_text(json.dumps(manifest))
    message = _rejudge_error(copy, tmp_path)
    assert "-dark_stack: dark step 0" in message and \
        "Gain: the suite asked for 0, the recording has 6" in message, message
