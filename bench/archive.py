"""A synthetic archive of recorded runs: N real runs of the simulated small-sensor station.

Each run is a whole pytest process running the chosen suites of ``tests_hil`` (default
:data:`SUITES`: module power, the cheapest suite that still grabs and records frames, about
5 s a run on this machine, mostly pytest and simulator start-up) on a copy of
``stations/sim-small.yaml`` (640 x 480), spread over :data:`STATIONS` station ids, into one
records database and one evidence folder. Every run has a module of its own (distinct DUT
serial ``ARC-00001`` ..., its own noise seed and supply current drawn from a normal
distribution); every :data:`FAULTY_EVERY`-th module is the faulty ``high-current`` module
(fails PWR-IDLE and PWR-STREAM), so that the archive has failures and a tightened spec can
change verdicts. The spec is ``tests_hil/limits/cm12.yaml`` cut to the limits the suites
measure, so that a run is complete (PASS or FAIL, not INCOMPLETE).

    python -m bench.archive OUT --runs 200 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STATION = ROOT / "stations" / "sim-small.yaml"
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"
MODULES = ROOT / "fixtures" / "modules"
SUITES = ("tests_hil/test_power.py",)
STATIONS = 3
FAULTY_EVERY = 7
IDLE_A = (0.13, 0.02)
"""Mean and standard deviation of a good module's idle current (A); streaming draws 0.18 A
more (the golden module: 0.12 A idle, 0.30 A streaming)."""


@dataclass(frozen=True)
class ArchivedUnit:
    """One run of the archive as generated: its module and how its pytest process ended."""

    index: int
    serial: str
    station: str
    module: str
    idle_a: float
    returncode: int
    seconds: float


@dataclass(frozen=True)
class Archive:
    """Where the archive is: its records database, evidence folder and spec."""

    folder: Path
    records: Path
    evidence: Path
    spec: Path
    units: tuple[ArchivedUnit, ...]
    seconds: float


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def measured_by(suites: tuple[str, ...]) -> set[str]:
    """The measurement names the suites declare (``hil_measures(...)``)."""
    names: set[str] = set()
    for suite in suites:
        for args in re.findall(r"hil_measures\(([^)]*)\)", (ROOT / suite).read_text()):
            names.update(re.findall(r"\"([a-z0-9_]+)\"", args))
    return names


def write_spec(path: Path, suites: tuple[str, ...] = SUITES, source: Path = LIMITS) -> Path:
    """The product spec cut to the limits the suites measure."""
    data = yaml.safe_load(source.read_text())
    wanted = measured_by(suites)
    data["limits"] = [lim for lim in data["limits"] if lim["measurement"] in wanted]
    data["description"] = f"{data.get('description', '')} (cut to {', '.join(suites)})"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tighten(spec: Path, out: Path, limit_id: str, **bounds: float) -> Path:
    """A copy of ``spec`` with limit ``limit_id``'s bounds (``max=``, ``min=``) replaced."""
    data = yaml.safe_load(spec.read_text())
    [limit] = [lim for lim in data["limits"] if lim["id"] == limit_id]
    limit.update(bounds)
    data["version"] = int(data.get("version", 0)) + 1
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _unit(folder: Path, index: int, rng: np.random.Generator) -> tuple[str, str, float]:
    """Write unit ``index``'s module file; (serial, module path, idle current)."""
    serial = f"ARC-{index:05d}"
    faulty = index % FAULTY_EVERY == FAULTY_EVERY - 1
    idle = 0.32 if faulty else round(float(max(0.05, rng.normal(*IDLE_A))), 4)
    module = {"extends": str(MODULES / ("high-current.yaml" if faulty else "golden.yaml")),
              "name": f"archive unit {index}", "serial": serial,
              "sensor": {"width": 640, "height": 480},
              "power": {"idle_a": idle, "streaming_a": 0.64 if faulty else round(idle + 0.18, 4)},
              "expect": None}
    path = folder / "modules" / f"{serial}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(module, sort_keys=False))
    return serial, str(path), idle


def _station(folder: Path, index: int, module: str) -> tuple[str, Path]:
    """A station file of the unit's own (its module and seed; one of :data:`STATIONS` ids)."""
    data = yaml.safe_load(STATION.read_text())
    station_id = f"arc-small-{index % STATIONS + 1:02d}"
    lock = folder / "locks" / f"{index:05d}"
    lock.mkdir(parents=True, exist_ok=True)
    data.update(id=station_id, lock_dir=str(lock))
    data["camera"] = {**data["camera"], "module": module, "seed": index + 1}
    path = folder / "stations" / f"unit-{index:05d}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.with_name(f"unit-{index:05d}.light-cal.json").write_bytes(
        STATION.with_name("sim-small.light-cal.json").read_bytes())
    return station_id, path


def build_archive(folder: Path, runs: int, *, jobs: int = 2,
                  suites: tuple[str, ...] = SUITES, seed: int = 22) -> Archive:
    """Record ``runs`` runs into ``folder`` (``records.sqlite``, ``evidence/``), ``jobs`` at
    a time. Raises RuntimeError naming a run that left no record."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_spec(folder / "spec.yaml", suites)
    records, evidence = folder / "records.sqlite", folder / "evidence"
    rng = np.random.default_rng(seed)
    plans = []
    for i in range(runs):
        serial, module, idle = _unit(folder, i, rng)
        station_id, station = _station(folder, i, module)
        plans.append((i, serial, station_id, module, idle, station))

    def record(plan: tuple[int, str, str, str, float, Path]) -> ArchivedUnit:
        i, serial, station_id, module, idle, station = plan
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider",
             f"--rootdir={ROOT}", f"--station={station}", f"--limits={spec}",
             f"--evidence-dir={evidence}", f"--records={records}"],
            cwd=ROOT, capture_output=True, text=True, env=_env(), check=False)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"archive run {i} ({serial}) exited {proc.returncode}: "
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return ArchivedUnit(i, serial, station_id, module, idle, proc.returncode,
                            round(time.perf_counter() - start, 3))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        units = tuple(pool.map(record, plans))
    return Archive(folder, records, evidence, spec, units, round(time.perf_counter() - start, 3))


def corrupt_frame(run_folder: Path) -> Path:
    """Truncate the first frame file of the run's last capture set to half its length (a
    capture set damaged on the shared file system); the file truncated."""
    last = sorted(p for p in (run_folder / "captures").iterdir() if p.is_dir())[-1]
    frame = sorted((last / "frames").iterdir())[0]
    data = frame.read_bytes()
    frame.write_bytes(data[:len(data) // 2])
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder of the archive (created)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--suite", action="append", help=f"default: {', '.join(SUITES)}")
    args = parser.parse_args(argv)
    archive = build_archive(args.out, args.runs, jobs=args.jobs,
                            suites=tuple(args.suite or SUITES))
    failing = sum(u.returncode != 0 for u in archive.units)
    print(f"{len(archive.units)} runs ({failing} not passing) in {archive.seconds:.1f} s: "
          f"records {archive.records}, evidence {archive.evidence}, spec {archive.spec}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
