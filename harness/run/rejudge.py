"""Re-judging a recorded run: the same suites on the recorded frames, judged by a new spec.

:func:`rejudge` finds the run's evidence folder (its journal and capture sets), writes a
replay station whose every device is ``driver: replay`` on that folder
(:mod:`harness.replay`), and runs the tests the original run ran, in the same order,
through pytest with the new spec. The replay camera serves the frames in capture order and
checks each against what the suite commands, so the analysis sees exactly the frames it saw
then: with the same code the figures are equal to the last digit, and only the verdicts can
change. The new run is a run of its own (journal, record; with ``records`` stored, linked to
the original by ``rejudged_from``) on the station ``<original station>.rejudge``, so it never
enters the original station's hash chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.evidence.journal import read_journal, rebuild
from harness.evidence.model import RunRecord
from harness.measurement import Measurement, Outcome
from harness.paths import safe_component
from harness.station.lease import LEASE_DB_ENV

JOURNAL = "journal.jsonl"
REPLAYED_ROLES = ("power", "light", "meter", "radiometer", "focus", "chart")


@dataclass(frozen=True)
class VerdictChange:
    """One judged figure whose verdict (or value) differs between the two runs."""

    limit_id: str
    name: str
    condition: Mapping[str, Any]
    old_outcome: Outcome | None
    new_outcome: Outcome | None
    old_value: float | None
    new_value: float | None


@dataclass(frozen=True)
class Rejudged:
    """The original run, the re-judged one (None when pytest left no run) and the changes."""

    original: RunRecord
    rejudged: RunRecord | None
    returncode: int
    changes: tuple[VerdictChange, ...]

    @property
    def values_equal(self) -> bool:
        """Every figure of the original measured again with the same value."""
        return all(c.old_value == c.new_value for c in self.changes)


def find_run(run: str, evidence_dir: Path, records: str | None = None
             ) -> tuple[Path, RunRecord]:
    """The evidence folder of ``run`` and its record rebuilt from the journal.

    ``run`` is a folder holding ``journal.jsonl``, or a run id: its folder under
    ``evidence_dir``, else (with ``records``) the folder its stored capture sets name."""
    path = Path(run)
    if (path / JOURNAL).is_file():
        return path, rebuild(path / JOURNAL)
    run_id = safe_component(run, "RUN")
    looked = [evidence_dir / run_id]
    if not (looked[0] / JOURNAL).is_file() and records is not None:
        from harness.evidence.records import RecordStore

        with RecordStore(records) as store:
            stored = store.get_run(run_id)
        looked += [Path(a.path).parent.parent for a in stored.artefacts
                   if a.kind == "frame" and a.path][:1]
    for folder in looked:
        if (folder / JOURNAL).is_file():
            return folder, rebuild(folder / JOURNAL)
    raise ConfigError(f"no evidence of run {run_id!r}: no {JOURNAL} in "
                      f"{', '.join(str(f) for f in looked)} (give the run's evidence folder, "
                      "or --evidence-dir)", field="RUN")


def replay_station_file(folder: Path, record: RunRecord, out: Path) -> Path:
    """A station file replaying ``folder``: the camera and every recorded instrument."""
    roles = {str(d.get("role", "")) for d in record.devices}
    data: dict[str, Any] = {
        "id": safe_component(f"{record.station}.rejudge"[:64], "station"),
        "description": f"replay of run {record.run_id}",
        "lock_dir": str(out),
        "settings": {"watchdog": False},
        "camera": {"driver": "replay", "run": str(folder.resolve())},
    }
    for role in REPLAYED_ROLES:
        if role in roles:
            data[role] = {"driver": "replay", "run": str(folder.resolve())}
    path = out / "replay-station.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tests_run(folder: Path) -> list[str]:
    """The node ids of the tests the run started, in the order it started them."""
    ids: list[str] = []
    for event in read_journal(folder / JOURNAL).events:
        if event["type"] == "test_start" and event.get("test_id") not in ids:
            ids.append(str(event["test_id"]))
    return ids


def _started_as_rejudging_of(journal: Path) -> str | None:
    """The ``rejudged_from`` of a journal's ``run_start`` (its first line), or None when it has
    no complete first line yet: another re-judging may be writing it in the same folder."""
    try:
        with journal.open("rb") as fh:
            first = fh.readline()
        event = json.loads(first) if first.endswith(b"\n") else None
    except (OSError, ValueError):
        return None
    if not isinstance(event, dict) or event.get("type") != "run_start":
        return None
    return str(event.get("rejudged_from") or "")


def _key(m: Measurement) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return (m.limit_id, m.name, tuple(sorted((str(k), str(v)) for k, v in m.condition.items())))


def verdict_changes(old: RunRecord, new: RunRecord) -> tuple[VerdictChange, ...]:
    """Figures whose outcome or value differ between ``old`` and ``new``. Figures are matched
    by measurement name and condition (the limit id may be new in the new spec)."""
    def by_figure(record: RunRecord) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                             list[Measurement]]:
        out: dict[tuple[str, tuple[tuple[str, str], ...]], list[Measurement]] = {}
        for m in record.measurements:
            key = _key(m)
            out.setdefault((key[1], key[2]), []).append(m)
        return out

    before, after = by_figure(old), by_figure(new)
    changes: list[VerdictChange] = []
    for figure in sorted(set(before) | set(after)):
        olds, news = before.get(figure, []), after.get(figure, [])
        for i in range(max(len(olds), len(news))):
            a = olds[i] if i < len(olds) else None
            b = news[i] if i < len(news) else None
            same = a is not None and b is not None and a.outcome is b.outcome \
                and a.value == b.value and a.limit_id == b.limit_id
            if same:
                continue
            ref = b or a
            assert ref is not None
            changes.append(VerdictChange(ref.limit_id, ref.name, dict(ref.condition),
                                         a.outcome if a else None, b.outcome if b else None,
                                         a.value if a else None, b.value if b else None))
    return tuple(changes)


def rejudge(run: str, limits: Path, *, evidence_dir: Path, records: str | None = None,
            rootdir: Path | None = None, work: Path, echo: Callable[[str], None] | None = None
            ) -> Rejudged:
    """Re-judge ``run`` with the spec ``limits`` (see the module docstring).

    ``rootdir``: the folder the run's test ids are relative to (the checkout holding
    ``tests_hil``; default the working directory). ``work``: a folder for the replay station
    file and its lock. ``echo`` gets pytest's output line by line.
    """
    if not limits.is_file():
        raise ConfigError("limit spec not found", source=str(limits), field="--limits")
    folder, original = find_run(run, evidence_dir, records)
    root = (rootdir or Path.cwd()).resolve()
    tests = _tests_run(folder)
    if not tests:
        raise ConfigError(f"run {original.run_id} started no test: nothing to re-judge",
                          source=str(folder / JOURNAL))
    missing = sorted({t.split("::")[0] for t in tests if not (root / t.split("::")[0]).is_file()})
    if missing:
        raise ConfigError(f"the suites of run {original.run_id} are not here: "
                          f"{', '.join(missing)} (run from the checkout, or give --rootdir)",
                          field="--rootdir")
    work.mkdir(parents=True, exist_ok=True)
    station = replay_station_file(folder, original, work)
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
           f"--rootdir={root}", f"--station={station}", f"--limits={limits.resolve()}",
           f"--evidence-dir={evidence_dir.resolve()}", f"--rejudged-from={original.run_id}"]
    if original.operator:
        cmd.append(f"--operator={original.operator}")
    if original.dut_serial:
        cmd.append(f"--dut={original.dut_serial}")
    if records:
        cmd.append(f"--records={records}")
    # a replay station shares no instrument: its leases stay in its own work folder
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST_") and k != LEASE_DB_ENV}
    before = set(evidence_dir.glob(f"*/{JOURNAL}")) if evidence_dir.is_dir() else set()
    with subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if echo is not None:
                echo(line.rstrip("\n"))
        code = proc.wait()
    new = [j for j in evidence_dir.glob(f"*/{JOURNAL}") if j not in before] \
        if evidence_dir.is_dir() else []
    rejudged = None
    for journal in sorted(new):
        if _started_as_rejudging_of(journal) == original.run_id:
            rejudged = rebuild(journal)
    changes = verdict_changes(original, rejudged) if rejudged is not None else ()
    return Rejudged(original, rejudged, code, changes)


__all__ = ["Rejudged", "VerdictChange", "find_run", "rejudge", "replay_station_file",
           "verdict_changes"]
