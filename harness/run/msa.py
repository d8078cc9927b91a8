"""Measurement system analysis of one station: the suite run N times on the same DUT.

:func:`run_study` runs ``tests_hil`` (or the ``select``-ed part of it) ``repeats`` times, one
pytest process after another (one station runs one suite at a time), each with its own
evidence folder (:func:`harness.run.limit_coverage.run_suite`), and reads every judged figure
back from the run's journal (:func:`harness.evidence.journal.rebuild`). Per limit and
condition (a limit judged under several conditions, MTF50-CORNER per field point, is one row
per condition) it collects the finite values of the repeats and the standard uncertainty each
run stated, and computes the repeatability with
:func:`harness.analysis.grr.measure_repeatability`: standard deviation, %GRR against the
tolerance and the number of distinct categories (AIAG *Measurement Systems Analysis*, 4th
edition, chapter III section B; see :mod:`harness.analysis.grr`).

Between repeats:

* a simulated station (camera ``driver: sim``) gets a copy of its station file per repeat whose
  camera ``seed`` is the repeat number: the same module, new temporal noise, so the repeats
  differ by their noise only and the study measures the station's measurement noise;
* a real station runs its own file every time, and the spec's ``conditions: msa: {between:
  [reseat, refocus]}`` is honoured: ``reseat`` asks the operator to re-seat the module
  before every repeat after the first (the ``confirm`` callback); ``refocus`` needs nothing
  extra, because the suite's focus test searches best focus again in every run.

A figure judged ERROR in a repeat (no finite value, or flagged physically impossible) is left
out of its row and counted there; a repeat that did not judge the row at all is counted as
missing. The study keeps each repeat's journal (``<work>/repeat-NN/journal.jsonl``) and
removes its evidence folder (frames) unless ``keep``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.analysis.grr import NOT_CAPABLE_PCT, Repeatability, measure_repeatability
from harness.errors import ConfigError
from harness.evidence.journal import rebuild
from harness.jsonsafe import json_safe
from harness.limits import LimitSpec, load_limits
from harness.measurement import Measurement, Outcome
from harness.run.limit_coverage import run_suite, station_for
from harness.run.station_study import ConditionKey, condition_key

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = ROOT / "tests_hil"
DEFAULT_REPEATS = 10
MIN_REPEATS = 2
BETWEEN = ("reseat", "refocus")
"""What ``conditions.msa.between`` may name."""
NOT_CAPABLE = "station not capable of this limit"



@dataclass(frozen=True)
class MsaPlan:
    """What a study will do, checked before the first run."""

    station: Path
    spec_path: Path
    spec: LimitSpec
    repeats: int
    simulated: bool
    between: tuple[str, ...]
    station_id: str
    module: Path | None = None
    """The simulated station's module file (resolved), None on a real station."""

    @property
    def reseat_prompt(self) -> bool:
        """The operator must confirm a re-seat before each repeat after the first."""
        return not self.simulated and "reseat" in self.between


def plan_study(station: Path, spec_path: Path, repeats: int | None, *,
               prompt: bool = True) -> MsaPlan:
    """Check the inputs of a study; ConfigError naming the option (``--station``,
    ``--limits``, ``--repeats``, ``--no-prompt``) on bad input. ``repeats`` None takes the
    spec's ``conditions.msa.repeats``, else :data:`DEFAULT_REPEATS`."""
    if not station.is_file():
        raise ConfigError("station file not found", source=str(station), field="--station")
    if not spec_path.is_file():
        raise ConfigError("limit spec not found", source=str(spec_path), field="--limits")
    spec = load_limits(spec_path)
    try:
        data = yaml.safe_load(station.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not YAML: {str(exc).splitlines()[0]}", source=str(station),
                          field="--station") from None
    if not isinstance(data, dict) or not isinstance(data.get("camera"), dict):
        raise ConfigError("not a station file (no camera: section)", source=str(station),
                          field="--station")
    camera = data["camera"]
    simulated = camera.get("driver") == "sim"
    module: Path | None = None
    if simulated:
        if not camera.get("module"):
            raise ConfigError("the simulated camera names no module", source=str(station),
                              field="--station")
        module = Path(str(camera["module"]))
        module = (module if module.is_absolute() else station.parent / module).resolve()
    msa = spec.condition("msa")
    between = msa.get("between") or []
    if isinstance(between, str):
        between = [between]
    if not isinstance(between, list) or any(b not in BETWEEN for b in between):
        raise ConfigError(f"{between!r}; allowed: a list of {', '.join(BETWEEN)}",
                          source=spec.source, field="conditions.msa.between")
    if repeats is None:
        repeats = msa.get("repeats", DEFAULT_REPEATS)
        if not isinstance(repeats, int) or isinstance(repeats, bool):
            raise ConfigError(f"{repeats!r}; allowed: a whole number >= {MIN_REPEATS}",
                              source=spec.source, field="conditions.msa.repeats")
    if repeats < MIN_REPEATS:
        raise ConfigError(f"{repeats}: a repeatability study needs at least {MIN_REPEATS} "
                          "repeats", field="--repeats")
    plan = MsaPlan(station.resolve(), spec_path.resolve(), spec, int(repeats), simulated,
                   tuple(between), str(data.get("id") or station.stem), module)
    if plan.reseat_prompt and not prompt:
        raise ConfigError("the spec asks for a re-seat between repeats (conditions.msa."
                          "between) on a real station, which an operator must confirm; run "
                          "without --no-prompt", field="--no-prompt")
    return plan


def repeat_station(plan: MsaPlan, folder: Path, seed: int) -> Path:
    """A simulated station's file for one repeat: the same module, camera ``seed`` changed,
    the station's own id kept (:func:`harness.run.limit_coverage.station_for`)."""
    assert plan.module is not None
    return station_for(plan.station, plan.module, folder, seed=seed, size=None,
                       station_id=plan.station_id)


def save_study(study: MsaStudy, path: Path) -> Path:
    """Store the study's repeatability s per limit and condition as the station's measured
    uncertainty (:mod:`harness.run.station_study`), for guarded limits of later runs."""
    rows = [{"limit_id": r.limit_id, "condition": dict(r.condition), "sd": r.result.sd,
             "n": len(r.values), "mean": r.result.mean, "pct_grr": r.result.pct_grr,
             "capability": r.result.capability}
            for r in study.rows if r.result is not None and math.isfinite(r.result.sd)]
    path.write_text(json.dumps(json_safe({
        "station_id": study.plan.station_id, "station": Path(study.plan.station).name,
        "spec": study.plan.spec.source, "spec_sha256": study.plan.spec.sha256,
        "repeats": len(study.journaled), "software_versions": study.software_versions,
        "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "rows": rows},
    ), indent=1, allow_nan=False) + "\n")
    return path


@dataclass(frozen=True)
class RepeatRun:
    """One run of the suite in the study."""

    index: int
    seed: int | None
    outcome: Outcome
    seconds: float
    journal: str
    """The run's journal (kept in the study's folder); ``""``: the run left none."""
    problems: tuple[str, ...] = ()
    measurements: tuple[Measurement, ...] = field(default=(), repr=False)
    software: str = ""
    """The harness code the run used (``harness.sha256`` of its journal's software)."""


@dataclass(frozen=True)
class MsaRow:
    """One limit under one condition over the repeats."""

    limit_id: str
    measurement: str
    unit: str
    condition: dict[str, Any]
    shown_condition: str
    """The condition without the keys the limit itself fixes (``field=top_left_vertical``)."""
    low: float | None
    high: float | None
    values: tuple[float, ...]
    errors: int
    """Repeats that judged this row ERROR (value left out)."""
    missing: int
    """Repeats with a journal that did not judge this row at all."""
    uncertainties: tuple[float, ...]
    result: Repeatability | None
    note: str = ""

    @property
    def u_rms(self) -> float | None:
        """Root mean square of the stated standard uncertainties (None: none stated)."""
        if not self.uncertainties:
            return None
        return math.sqrt(sum(u * u for u in self.uncertainties) / len(self.uncertainties))

    @property
    def not_capable(self) -> bool:
        pct = self.result.pct_grr if self.result is not None else None
        return pct is not None and not math.isnan(pct) and pct > NOT_CAPABLE_PCT

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return json_safe({
            "limit_id": self.limit_id, "measurement": self.measurement, "unit": self.unit,
            "condition": dict(self.condition), "low": self.low, "high": self.high,
            "n": len(self.values), "values": list(self.values), "errors": self.errors,
            "missing": self.missing, "mean": r.mean if r else None, "sd": r.sd if r else None,
            "u_rms": self.u_rms, "u_count": len(self.uncertainties),
            "tolerance": r.tolerance if r else None, "sides": r.sides if r else None,
            "pct_grr": r.pct_grr if r else None, "ndc": r.ndc if r else None,
            "capability": r.capability if r else "undetermined",
            "not_capable": self.not_capable, "note": self.note})


def collect_rows(spec: LimitSpec, runs: Sequence[Iterable[Measurement]]) -> list[MsaRow]:
    """The rows of a study from the judged measurements of each repeat (one iterable per repeat
    that left a journal), in the spec's limit order, conditions in order of first appearance.
    Figures without a limit id (INFO) are not rows."""
    known = {lim.id: lim for lim in spec}
    seen: dict[tuple[str, ConditionKey], dict[str, Any]] = {}
    for repeat, measurements in enumerate(runs):
        for m in measurements:
            if m.limit_id not in known:
                continue
            key = (m.limit_id, condition_key(m.condition))
            row = seen.setdefault(key, {"m": m, "values": [], "errors": 0, "us": [],
                                        "repeats": set()})
            row["repeats"].add(repeat)
            if m.outcome is Outcome.ERROR or m.value is None or not math.isfinite(m.value):
                row["errors"] += 1
                continue
            row["values"].append(float(m.value))
            if m.uncertainty is not None and math.isfinite(m.uncertainty):
                row["us"].append(float(m.uncertainty))
    order = {lim.id: i for i, lim in enumerate(spec)}
    rows: list[MsaRow] = []
    for (limit_id, ckey), row in sorted(seen.items(), key=lambda kv: order[kv[0][0]]):
        lim = known[limit_id]
        first: Measurement = row["m"]
        own = {str(k) for k in lim.condition}
        shown = ", ".join(f"{k}={v}" for k, v in ckey if k not in own)
        values = tuple(row["values"])
        result: Repeatability | None = None
        note = ""
        if len(values) >= MIN_REPEATS:
            result = measure_repeatability(values, low=lim.min, high=lim.max)
            if result.pct_grr is not None and math.isnan(result.pct_grr):
                note = ("%GRR undefined: no spread and the mean on the limit (0/0); a count "
                        "that never varies needs an attribute study")
        else:
            note = f"{len(values)} finite value(s): not enough for a repeatability"
        if result is not None and result.pct_grr is not None and \
                result.pct_grr > NOT_CAPABLE_PCT:
            note = NOT_CAPABLE
        rows.append(MsaRow(limit_id, first.name, lim.unit or first.unit, dict(ckey),
                           shown, lim.min, lim.max, values, int(row["errors"]),
                           len(runs) - len(row["repeats"]), tuple(row["us"]), result, note))
    return rows


@dataclass(frozen=True)
class MsaStudy:
    """A finished study (see the module docstring)."""

    plan: MsaPlan
    runs: tuple[RepeatRun, ...]
    rows: tuple[MsaRow, ...]
    seconds: float
    work: str
    select: tuple[str, ...] = ()
    dut: str = ""
    stopped: str = ""
    """Why the study stopped before its last repeat (``""``: it did not)."""

    @property
    def journaled(self) -> list[RepeatRun]:
        return [r for r in self.runs if r.journal]

    @property
    def software_versions(self) -> list[str]:
        """The distinct harness code hashes the repeats ran (more than one: the study mixes
        software, and its spread is not the station's alone)."""
        return list(dict.fromkeys(r.software for r in self.journaled if r.software))

    @property
    def unjudged(self) -> list[str]:
        """Limit ids of the spec that no repeat judged."""
        judged = {row.limit_id for row in self.rows}
        return [lim.id for lim in self.plan.spec if lim.id not in judged]

    @property
    def not_capable(self) -> list[MsaRow]:
        return [row for row in self.rows if row.not_capable]

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        return json_safe({
            "station": str(plan.station), "station_id": plan.station_id,
            "simulated": plan.simulated, "spec": str(plan.spec_path),
            "spec_sha256": plan.spec.sha256, "product": plan.spec.product,
            "repeats": plan.repeats, "between": list(plan.between), "dut": self.dut,
            "select": list(self.select), "work": self.work, "seconds": self.seconds,
            "stopped": self.stopped,
            "runs": [{"repeat": r.index, "seed": r.seed, "outcome": r.outcome.value,
                      "seconds": r.seconds, "journal": r.journal, "problems": list(r.problems),
                      "software": r.software}
                     for r in self.runs],
            "software_versions": self.software_versions,
            "rows": [row.as_dict() for row in self.rows],
            "unjudged": self.unjudged,
            "not_capable": [f"{row.limit_id}" + (f" ({row.shown_condition})"
                                                 if row.shown_condition else "")
                            for row in self.not_capable]})


def _g(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:.4g}"


def cells(row: MsaRow) -> list[str]:
    """The table cells of a row: limit, unit, condition, n, mean, sd, u (RMS), tolerance,
    %GRR, ndc, capability (shared by the console and the Markdown table)."""
    r = row.result
    n = str(len(row.values))
    left_out = row.errors + row.missing
    if left_out:
        n += f" ({left_out} left out)"
    pct = "—"
    if r is not None and r.pct_grr is not None and not math.isnan(r.pct_grr):
        pct = "∞" if math.isinf(r.pct_grr) else f"{r.pct_grr:.1f} %"
    ndc = "—" if r is None or r.ndc is None else _g(r.ndc)
    capability = r.capability if r is not None else "undetermined"
    return [row.limit_id, row.unit, row.shown_condition or "—", n,
            _g(r.mean if r else None), _g(r.sd if r else None), _g(row.u_rms),
            _g(r.tolerance if r else None), pct, ndc, capability]


COLUMNS = ("limit", "unit", "condition", "n", "mean", "sd (repeatability)", "stated u (RMS)",
           "tolerance", "%GRR", "ndc", "capability")


def footer(study: MsaStudy) -> list[str]:
    """The lines under the table: not-capable rows, rows without a %GRR, unjudged limits."""
    lines = []
    for row in study.rows:
        where = f"{row.limit_id}" + (f" ({row.shown_condition})" if row.shown_condition
                                     else "")
        if row.not_capable and row.result is not None and row.result.pct_grr is not None:
            lines.append(f"{where}: {NOT_CAPABLE} (%GRR {row.result.pct_grr:.1f} %)")
        elif row.note:
            lines.append(f"{where}: {row.note}")
        if row.errors:
            lines.append(f"{where}: {row.errors} repeat(s) judged it ERROR, value(s) left out")
    if study.unjudged:
        lines.append("no repeat judged: " + ", ".join(study.unjudged))
    if len(study.software_versions) > 1:
        lines.append(f"the repeats ran {len(study.software_versions)} versions of the harness "
                     "code (harness.sha256): the spread is not the station's alone")
    if study.stopped:
        lines.append(f"stopped after {len(study.runs)} of {study.plan.repeats} repeats: "
                     f"{study.stopped}")
    return lines


def markdown(study: MsaStudy) -> str:
    """The study as a Markdown table with its footer (the README)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in study.rows:
        cs = cells(row)
        if row.not_capable:
            cs[-1] = f"**not capable**: {NOT_CAPABLE}"
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cs) + " |")
    notes = footer(study)
    if notes:
        lines.append("")
        lines.extend(f"* {n}" for n in notes)
    return "\n".join(lines)


def _why(message: str, errors: Sequence[str], measurements: Sequence[Measurement]) -> str:
    """One line on why a test ended ERROR: its message, its errors, or its ERROR figures."""
    if message:
        return message
    if errors:
        return "; ".join(errors)
    return "; ".join(f"{m.limit_id or m.name}: {m.message}" for m in measurements
                     if m.outcome is Outcome.ERROR)


def run_repeat(plan: MsaPlan, index: int, work: Path, *, suite: Path,
               select: Sequence[str] = (), dut: str = "", keep: bool = False) -> RepeatRun:
    """Repeat ``index`` (from 1) in ``work/repeat-NN``: the suite in its own pytest process;
    its journal copied beside its evidence folder, which is removed unless ``keep``."""
    folder = work / f"repeat-{index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    seed = index if plan.simulated else None
    station = repeat_station(plan, folder, index) if plan.simulated else plan.station
    evidence = folder / "evidence"
    t0 = time.perf_counter()
    proc, journal = run_suite(station, plan.spec_path, suite, evidence, select=select,
                              extra=[f"--dut={dut}"] if dut else [])
    seconds = time.perf_counter() - t0
    try:
        if journal is None:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return RepeatRun(index, seed, Outcome.ERROR, seconds, "",
                             (f"no run journal (pytest exit {proc.returncode}): "
                              + " | ".join(tail),))
        kept = folder / "journal.jsonl"
        shutil.copyfile(journal, kept)
        record = rebuild(kept)
        problems = tuple(f"{t.test_id.rsplit('::', 1)[-1]}: "
                         f"{_why(t.message, t.errors, t.measurements)}"
                         for t in record.tests if t.outcome in (Outcome.ERROR, Outcome.ABORTED))
        return RepeatRun(index, seed, record.outcome, seconds, str(kept.resolve()), problems,
                         record.measurements, record.software.get("harness.sha256", ""))
    finally:
        if not keep:
            shutil.rmtree(evidence, ignore_errors=True)


def run_study(plan: MsaPlan, work: Path, *, suite: Path = DEFAULT_SUITE,
              select: Sequence[str] = (), dut: str = "", keep: bool = False,
              progress: Callable[[RepeatRun], None] | None = None,
              confirm: Callable[[int], bool] | None = None) -> MsaStudy:
    """Run the study's repeats one after another (see the module docstring). ``confirm(i)``
    is called before repeat ``i`` > 1 when the operator must re-seat the module; False (no
    answer in time) stops the study there."""
    if not suite.is_dir():
        raise ConfigError("suite folder not found", source=str(suite), field="--suite")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs: list[RepeatRun] = []
    stopped = ""
    for index in range(1, plan.repeats + 1):
        if index > 1 and plan.reseat_prompt and confirm is not None and not confirm(index):
            stopped = f"no re-seat confirmed before repeat {index}"
            break
        run = run_repeat(plan, index, work, suite=suite.resolve(), select=select, dut=dut,
                         keep=keep)
        runs.append(run)
        if progress is not None:
            progress(run)
    rows = collect_rows(plan.spec, [r.measurements for r in runs if r.journal])
    return MsaStudy(plan, tuple(runs), tuple(rows), time.perf_counter() - t0,
                    str(work.resolve()), tuple(select), dut, stopped)


__all__ = ["BETWEEN", "COLUMNS", "DEFAULT_REPEATS", "DEFAULT_SUITE", "MIN_REPEATS",
           "NOT_CAPABLE", "MsaPlan", "MsaRow", "MsaStudy", "RepeatRun", "cells",
           "collect_rows", "footer", "markdown", "plan_study",
           "repeat_station", "run_repeat", "run_study", "save_study"]
