"""Every limit proves itself: the qualification suite on every simulated module of a product.

:func:`limit_coverage` runs the suites (``tests_hil``) once per module and seed on a simulated
station (a copy of a station file whose camera is the module, optionally cropped to a smaller
sensor), each in its own pytest process, and reads every limit's verdict back from the run's
journal, the same evidence a sign-off uses. A module file says what it must fail
(``expect: {product, fails}``, :class:`harness.sim.module.Expectation`): the golden unit
nothing, a faulty unit exactly the limits of the one property it changes. The report is the
table limit id x module, the modules whose failures differ from what they expect, and the
limits no module fails — a limit nobody has seen fail is a limit nobody knows works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.evidence.journal import rebuild
from harness.limits import LimitSpec, load_limits
from harness.measurement import Outcome, worst
from harness.sim.module import Module, load_module


@dataclass(frozen=True)
class ModuleRun:
    """One module at one seed: the run's outcome and every limit's worst verdict."""

    module: str
    seed: int
    outcome: Outcome
    verdicts: dict[str, Outcome]
    expected_fails: tuple[str, ...]
    problems: tuple[str, ...] = ()
    """Tests that ended ERROR and other reasons the run cannot count (one line each)."""

    @property
    def fails(self) -> set[str]:
        return {lim for lim, o in self.verdicts.items() if o is Outcome.FAIL}

    @property
    def as_expected(self) -> bool:
        return not self.problems and self.fails == set(self.expected_fails) and \
            self.outcome is (Outcome.FAIL if self.expected_fails else Outcome.PASS)


@dataclass(frozen=True)
class CoverageReport:
    """The runs of a product's modules against its spec (see the module docstring)."""

    spec: LimitSpec
    runs: tuple[ModuleRun, ...]
    modules: tuple[str, ...] = field(default=())

    @property
    def unfailed(self) -> list[str]:
        """Limit ids of the spec that no module failed."""
        failed = set().union(*(r.fails for r in self.runs)) if self.runs else set()
        return [lim.id for lim in self.spec if lim.id not in failed]

    @property
    def unexpected(self) -> list[ModuleRun]:
        return [r for r in self.runs if not r.as_expected]

    @property
    def ok(self) -> bool:
        return not self.unfailed and not self.unexpected

    def cell(self, limit_id: str, module: str) -> str:
        """The limit's verdict on the module over its seeds (``MIXED`` when they disagree)."""
        seen = {r.verdicts.get(limit_id, Outcome.ERROR) for r in self.runs if r.module == module}
        if not seen:
            return ""
        return next(iter(seen)).value if len(seen) == 1 else "MIXED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.source, "spec_sha256": self.spec.sha256,
            "modules": list(self.modules),
            "table": {lim.id: {m: self.cell(lim.id, m) for m in self.modules}
                      for lim in self.spec},
            "runs": [{"module": r.module, "seed": r.seed, "outcome": r.outcome.value,
                      "fails": sorted(r.fails), "expected_fails": list(r.expected_fails),
                      "as_expected": r.as_expected, "problems": list(r.problems)}
                     for r in self.runs],
            "unfailed": self.unfailed, "ok": self.ok}


def product_modules(folder: Path, product: str) -> list[tuple[str, Module]]:
    """The module files in ``folder`` that say what a qualification of ``product`` must find
    (``expect.product``), by name, the golden unit (expects no failure) first."""
    if not folder.is_dir():
        raise ConfigError("module folder not found", source=str(folder), field="--modules")
    found: list[tuple[str, Module]] = []
    for path in sorted(folder.glob("*.yaml")):
        module = load_module(path)
        if module.expect is not None and module.expect.product == product:
            found.append((path.stem, module))
    if not found:
        raise ConfigError(f"no module in this folder expects anything of product {product!r} "
                          "(expect: {product: ..., fails: [...]})", source=str(folder),
                          field="--modules")
    return sorted(found, key=lambda nm: (bool(nm[1].expect and nm[1].expect.fails), nm[0]))


def station_for(template: Path, module: Path, folder: Path, *, seed: int,
                size: tuple[int, int] | None, station_id: str | None = None) -> Path:
    """A copy of the station file ``template`` whose camera is ``module`` (``sensor_size``
    when ``size``), with its own id (``station_id``, else one naming the module and seed) and
    lock folder, and the template's light calibration."""
    data = yaml.safe_load(template.read_text())
    camera = dict(data.get("camera") or {})
    if camera.get("driver") != "sim":
        raise ConfigError("the station template's camera is not a simulated one (driver: sim)",
                          source=str(template), field="--station")
    camera.update(module=str(module.resolve()), seed=seed)
    if size is not None:
        camera["sensor_size"] = list(size)
    data.update(camera=camera, id=station_id or f"coverage-{module.stem}-{seed}"[:64],
                lock_dir=str(folder.resolve()))
    path = folder / f"{module.stem}-{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cal = template.with_name(template.stem + ".light-cal.json")
    if cal.is_file():
        path.with_name(path.stem + ".light-cal.json").write_bytes(cal.read_bytes())
    return path


def run_module(name: str, module_path: Path, expected: tuple[str, ...], *, spec: Path,
               template: Path, suite: Path, folder: Path, seed: int,
               size: tuple[int, int] | None) -> ModuleRun:
    """The suites on ``module_path`` in a pytest process; verdicts from its journal. The run's
    folder (its evidence: about 5 GB of frames at 12 MP) is removed once the journal is read,
    so a map of many runs needs the disk of ``jobs`` runs, not of all of them."""
    work = folder / f"{name}-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run_module(name, module_path, expected, spec=spec, template=template,
                           suite=suite, work=work, seed=seed, size=size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_suite(station: Path, spec: Path, suite: Path, evidence: Path, *,
              select: Sequence[str] = (), extra: Sequence[str] = ()
              ) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    """The suites (or the ``select``-ed files and node ids of them) in one pytest process
    with its own evidence folder: the finished process and the run's journal (None unless the
    run left exactly one). ``extra``: more pytest arguments (``--dut=...``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *(select or [str(suite)]), "-q", "-p",
         "no:cacheprovider", f"--station={station}", f"--limits={spec}",
         f"--evidence-dir={evidence}", f"--rootdir={suite.parent}", *extra],
        cwd=suite.parent, capture_output=True, text=True, env=env)
    journals = list(evidence.glob("*/journal.jsonl"))
    return proc, journals[0] if len(journals) == 1 else None


def _run_module(name: str, module_path: Path, expected: tuple[str, ...], *, spec: Path,
                template: Path, suite: Path, work: Path, seed: int,
                size: tuple[int, int] | None) -> ModuleRun:
    station = station_for(template, module_path, work, seed=seed, size=size)
    proc, journal = run_suite(station, spec, suite, work / "evidence")
    if journal is None:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return ModuleRun(name, seed, Outcome.ERROR, {}, expected,
                         (f"no run journal (pytest exit {proc.returncode}): "
                          + " | ".join(tail),))
    record = rebuild(journal)
    verdicts: dict[str, list[Outcome]] = {}
    for m in record.measurements:
        if m.limit_id:
            verdicts.setdefault(m.limit_id, []).append(m.outcome)
    problems = tuple(f"{t.test_id.rsplit('::', 1)[-1]}: {t.message}" for t in record.tests
                     if t.outcome in (Outcome.ERROR, Outcome.ABORTED))
    problems += tuple(f"unjudged {u.limit_id}: {u.reason}" for u in record.unjudged)
    return ModuleRun(name, seed, record.outcome,
                     {lim: worst(outcomes) for lim, outcomes in verdicts.items()},
                     expected, problems)


def limit_coverage(spec_path: Path, modules: Path, *, template: Path, suite: Path,
                   work: Path, seeds: int = 1, size: tuple[int, int] | None = None,
                   jobs: int = 2, progress: Callable[[ModuleRun], None] | None = None
                   ) -> CoverageReport:
    """Run every module of the spec's product ``seeds`` times (see the module docstring)."""
    spec = load_limits(spec_path)
    if not suite.is_dir():
        raise ConfigError("suite folder not found (run from the checkout, or give --suite)",
                          source=str(suite), field="--suite")
    if not template.is_file():
        raise ConfigError("station template not found", source=str(template), field="--station")
    found = product_modules(modules, spec.product)
    jobs_list: Sequence[tuple[str, Path, tuple[str, ...], int]] = [
        (name, Path(module.source), module.expect.fails if module.expect else (), seed)
        for name, module in found for seed in range(1, seeds + 1)]

    def one(job: tuple[str, Path, tuple[str, ...], int]) -> ModuleRun:
        name, path, expected, seed = job
        run = run_module(name, path, expected, spec=spec_path.resolve(), template=template,
                         suite=suite.resolve(), folder=work, seed=seed, size=size)
        if progress is not None:
            progress(run)
        return run

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = tuple(pool.map(one, jobs_list))
    return CoverageReport(spec, runs, tuple(name for name, _ in found))


__all__ = ["CoverageReport", "ModuleRun", "limit_coverage", "product_modules", "run_module",
           "run_suite", "station_for"]
