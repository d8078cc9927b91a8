"""Throughput of a multi-up station: the qualification suite on the simulated four-up station
(``stations/sim-4up.yaml``, four 640 x 480 slots) against the same station with one slot, each
a whole pytest process, measured in the same run.

Reports modules per hour for one and four slots (slots x 3600 / wall time), the speed-up, the
shared-state changes the runs made (the same for both: they are made once per station, not
per slot), and each slot's time spent waiting for the other slots at those changes, apart
from its working time (from the runs' journals).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
FOUR_UP = ROOT / "stations" / "sim-4up.yaml"


def _station(folder: Path, slots: tuple[str, ...]) -> Path:
    data = yaml.safe_load(FOUR_UP.read_text())
    kept = {k: v for k, v in data["slots"].items() if k in slots}
    for own in kept.values():
        own["camera"]["module"] = str((FOUR_UP.parent / own["camera"]["module"]).resolve())
    data.update(slots=kept, lock_dir=str(folder), id=f"bench-{len(slots)}up")
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.with_name("station.light-cal.json").write_bytes(
        FOUR_UP.with_name("sim-4up.light-cal.json").read_bytes())
    return path


def _run(slots: tuple[str, ...]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        station = _station(folder, slots)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "tests_hil", "-q", "-p", "no:cacheprovider",
             f"--station={station}", "--limits=tests_hil/limits/cm12.yaml",
             f"--evidence-dir={folder / 'ev'}"], cwd=ROOT, capture_output=True, text=True,
            env=env, timeout=1800)
        wall = time.perf_counter() - start
        waits: dict[str, float] = {}
        changes = 0
        outcomes: dict[str, str] = {}
        for journal in (folder / "ev").glob("*/journal.jsonl"):
            for line in journal.read_text().splitlines():
                event = json.loads(line)
                facts = event.get("facts") or {}
                if "slot_wait_s" in facts:
                    waits[str(facts["slot"])] = float(facts["slot_wait_s"])
                    changes = int(facts.get("shared_changes", 0))
                if event.get("type") == "run_end":
                    outcomes[journal.parent.name] = str(event.get("outcome"))
        return {"slots": len(slots), "wall_s": round(wall, 1),
                "modules_per_hour": round(len(slots) * 3600.0 / wall, 1),
                "pytest_exit": proc.returncode, "runs": len(outcomes),
                "shared_changes": changes, "slot_wait_s": waits,
                "wall_minus_wait_s": {s: round(wall - w, 1) for s, w in waits.items()}}


def run() -> dict[str, object]:
    one = _run(("A",))
    four = _run(("A", "B", "C", "D"))
    return {"one_slot": one, "four_slots": four,
            "speedup_modules_per_hour": round(four["modules_per_hour"] /
                                              one["modules_per_hour"], 2)}
