"""Throughput of a multi-up station: the qualification suite on the simulated four-up station
(``stations/sim-4up.yaml``, four 640 x 480 slots) against the same station with one slot, each
a whole pytest process, measured in the same run.

Reports modules per hour for one and four slots (slots x 3600 / wall time), the speed-up, the
shared-state changes the runs made (the same for both: they are made once per station, not
per slot), and each slot's time spent waiting for the other slots at those changes, apart
from its working time (from the runs' journals). The four-slot run is measured again with
the analysis in the run's own process (``settings.analysis_workers: 0``) against the analysis
workers (the default), at 640 x 480 and at 1280 x 960, where the analysis weighs more against
the capture.
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


def _station(folder: Path, slots: tuple[str, ...], *, workers: int | None = None,
             sensor: tuple[int, int] | None = None) -> Path:
    data = yaml.safe_load(FOUR_UP.read_text())
    kept = {k: v for k, v in data["slots"].items() if k in slots}
    for own in kept.values():
        own["camera"]["module"] = str((FOUR_UP.parent / own["camera"]["module"]).resolve())
        if sensor is not None:
            own["camera"]["sensor_size"] = list(sensor)
    data.update(slots=kept, lock_dir=str(folder), id=f"bench-{len(slots)}up")
    if workers is not None:
        data["settings"]["analysis_workers"] = workers
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.with_name("station.light-cal.json").write_bytes(
        FOUR_UP.with_name("sim-4up.light-cal.json").read_bytes())
    return path


def _run(slots: tuple[str, ...], *, workers: int | None = None,
         sensor: tuple[int, int] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        station = _station(folder, slots, workers=workers, sensor=sensor)
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
        return {"slots": len(slots), "sensor": list(sensor or (640, 480)),
                "analysis_workers": "default" if workers is None else workers,
                "wall_s": round(wall, 1),
                "modules_per_hour": round(len(slots) * 3600.0 / wall, 1),
                "pytest_exit": proc.returncode, "runs": len(outcomes),
                "shared_changes": changes, "slot_wait_s": waits,
                "wall_minus_wait_s": {s: round(wall - w, 1) for s, w in waits.items()}}


def run() -> dict[str, object]:
    slots = ("A", "B", "C", "D")
    one = _run(("A",))
    four = _run(slots)
    inline = _run(slots, workers=0)
    large = (1280, 960)
    four_large = _run(slots, sensor=large)
    inline_large = _run(slots, workers=0, sensor=large)
    return {"one_slot": one, "four_slots": four,
            "speedup_modules_per_hour": round(four["modules_per_hour"] /
                                              one["modules_per_hour"], 2),
            "four_slots_analysis_inline": inline,
            "analysis_workers_speedup": round(inline["wall_s"] / four["wall_s"], 2),
            "four_slots_1280x960": four_large,
            "four_slots_1280x960_analysis_inline": inline_large,
            "analysis_workers_speedup_1280x960": round(inline_large["wall_s"] /
                                                       four_large["wall_s"], 2)}
