"""Run every benchmark module (or those named on the command line) and save the figures; the
start-up figures (bench_startup: harness --version, --help, a small analyze run beside
`python -c "import numpy"`) come first. The slow ones (the 12 MP limit-coverage map over three
seeds, tens of minutes) run only when named: `python -m bench coverage`."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench

SLOW = {"coverage"}


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(
        (m.name.removeprefix("bench_")
         for m in pkgutil.iter_modules(bench.__path__)
         if m.name.startswith("bench_")),
        key=lambda name: (name != "startup", name),  # start-up figures first
    )
    unknown = wanted - set(names)
    if unknown:
        print(f"error: unknown benchmark(s) {sorted(unknown)}; available: {names}", file=sys.stderr)
        return 2
    out_dir = Path("out/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        if wanted and name not in wanted:
            continue
        if not wanted and name in SLOW:
            print(f"== {name}: slow, run only when named (python -m bench {name})", flush=True)
            continue
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            figures = module.run()
        except Exception as exc:  # report and go on with the others
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        figures["wall_s"] = round(time.perf_counter() - start, 2)
        (out_dir / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        for key, value in figures.items():
            print(f"   {key}: {value}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
