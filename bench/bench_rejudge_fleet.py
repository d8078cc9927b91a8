"""Throughput of ``harness rejudge --all`` on Dask: runs re-judged per second.

Builds a synthetic archive (:mod:`bench.archive`: ``$BENCH_FLEET_RUNS`` runs, default 200, of
the simulated small station) and re-judges all of it with a tightened spec three times, each
on a fresh copy of the records database (so that nothing is skipped): ``--local 1``,
``--local 2``, and ``--cluster`` on a ``dask scheduler`` with two ``dask worker`` processes
(one thread each) that the bench starts on loopback and stops at the end. Each figure is the
whole ``harness rejudge`` process (``wall_s``: selection, cluster start, every task, storing)
and its re-judging phase alone (``rejudge_s``: first task submitted to last run stored, as the
command prints it); runs per second are over ``rejudge_s``, the speed-ups against
``--local 1``. Every task is a pytest process of its own, so the per-run cost is mostly
Python and pytest start-up (``task_s``: the mean time of a task on its worker).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.archive import ROOT, build_archive, tighten

RUNS_ENV = "BENCH_FLEET_RUNS"
BIN = Path(sys.executable).parent


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["DASK_TEMPORARY_DIRECTORY"] = str(tmp)
    return env


@contextmanager
def loopback_cluster(tmp: Path, workers: int = 2) -> Iterator[str]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1."""
    tmp.mkdir(parents=True, exist_ok=True)
    info = tmp / "scheduler.json"

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(BIN / "dask"), *args], cwd=tmp, env=_env(tmp),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    procs = [spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(info))]
    try:
        deadline = time.monotonic() + 60
        while not info.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = str(json.loads(info.read_text())["address"])
        procs += [spawn("worker", "--scheduler-file", str(info), "--nthreads", "1",
                        "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1",
                        "--local-directory", str(tmp / f"w{i}")) for i in range(workers)]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _copy_records(src: Path, dst: Path) -> Path:
    for path in src.parent.glob(f"{src.name}*"):  # the database and its WAL files
        shutil.copy2(path, dst.parent / path.name.replace(src.name, dst.name))
    return dst


def _rejudge(records: Path, spec: Path, evidence: Path, where: list[str], tmp: Path
             ) -> dict[str, float | None]:
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "harness"), "rejudge", "--all", "--records", str(records),
                           "--limits", str(spec), "--evidence-dir", str(evidence), *where],
                          cwd=ROOT, capture_output=True, text=True, env=_env(tmp), check=False)
    wall = time.perf_counter() - start
    text = proc.stdout.replace("\n", " ")
    found = re.search(r"re-judged and stored (\d+) run\(s\) in ([\d.]+) s; skipped (\d+); "
                      r"(\d+) error", text)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"harness rejudge {' '.join(where)} exited {proc.returncode}: "
                           f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    stored, seconds = int(found.group(1)), float(found.group(2))
    task = re.search(r"tasks: ([\d.]+) s per run on average, on (\d+) worker", text)
    return {"stored": stored, "wall_s": round(wall, 2), "rejudge_s": round(seconds, 2),
            "runs_per_s": round(stored / seconds, 3),
            "task_s": float(task.group(1)) if task else None,
            "workers_used": int(task.group(2)) if task else None}


def run() -> dict[str, object]:
    runs = int(os.environ.get(RUNS_ENV, "200"))
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_:
        tmp = Path(tmp_)
        archive = build_archive(tmp / "archive", runs, jobs=os.cpu_count() or 1)
        good = sorted(u.idle_a for u in archive.units if u.idle_a < 0.25)
        spec = tighten(archive.spec, tmp / "tight.yaml", "PWR-IDLE",
                       max=round((good[len(good) // 2 - 1] + good[len(good) // 2]) / 2, 6))
        figures: dict[str, object] = {
            "runs": runs, "archive_s": archive.seconds,
            "archive_runs_per_s": round(runs / archive.seconds, 3),
            "cpus": os.cpu_count(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2)}
        configs: list[tuple[str, list[str] | None]] = [
            ("local_1", ["--local", "1"]), ("local_2", ["--local", "2"]), ("scheduler_2", None)]
        for name, where in configs:
            records = _copy_records(archive.records, tmp / f"records-{name}.sqlite")
            if where is None:
                with loopback_cluster(tmp / "dask") as address:
                    figures[name] = _rejudge(records, spec, archive.evidence,
                                             ["--cluster", address], tmp)
            else:
                figures[name] = _rejudge(records, spec, archive.evidence, where, tmp)
        base = figures["local_1"]["runs_per_s"]  # type: ignore[index]
        for name in ("local_2", "scheduler_2"):
            figures[f"speedup_{name}"] = round(
                figures[name]["runs_per_s"] / base, 2)  # type: ignore[index]
        return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
