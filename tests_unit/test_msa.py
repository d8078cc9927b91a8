"""``harness msa``: the repeatability study of a station (harness.run.msa, harness.cli.msa).

The statistics are checked on synthetic run journals written with the harness's own journal
writer (:class:`harness.evidence.journal.Journal`), whose values are chosen here: the expected
mean, standard deviation, %GRR and RMS uncertainty are computed by hand from those values
with :mod:`statistics` (not with the code under test), to 1e-9 relative (float rounding
only). The orchestration is checked with the pytest process replaced by a writer of such
journals (fast); one end-to-end test runs the real suite on the simulated station.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.evidence.journal import Journal, rebuild
from harness.limits import LimitSpec, load_limits
from harness.measurement import Measurement, Outcome
from harness.run import msa as msa_mod
from harness.run.msa import (
    collect_rows,
    markdown,
    plan_study,
    repeat_station,
    run_study,
)

ROOT = Path(__file__).resolve().parents[1]
SIM_STATION = ROOT / "stations" / "sim-small.yaml"
FAKE_STATION = ROOT / "stations" / "fake.yaml"  # not simulated: stands for a real station
CM12 = ROOT / "tests_hil" / "limits" / "cm12.yaml"

SPEC = """\
product: demo
version: 1
conditions:
  msa: {between: [reseat, refocus], repeats: 4}
limits:
  - {id: GAIN, measurement: gain, unit: DN/e-, min: 0.54, max: 0.66}
  - {id: MTF-CORNER, measurement: mtf50, unit: cy/px, min: 0.22, condition: {zone: corner}}
  - {id: NOISY, measurement: noisy, unit: e-, max: 3.0}
  - {id: LINES, measurement: lines, unit: lines, max: 0}
  - {id: NEVER, measurement: never, unit: "1", max: 1}
"""

GAIN = [0.580, 0.585, 0.577, 0.583]
GAIN_U = [0.010, 0.012, 0.011, 0.013]
MTF = {"top_left": [0.265, 0.268, 0.262, 0.266], "bottom_right": [0.281, 0.279, 0.285, 0.280]}
NOISY = [2.0, 2.9, 1.1, 2.6]


def spec_file(folder: Path, text: str = SPEC) -> Path:
    path = folder / "demo.yaml"
    path.write_text(text)
    return path


def repeat_measurements(spec: LimitSpec, i: int) -> list[Measurement]:
    """Repeat ``i``'s judged figures: GAIN errors in repeat 2 (no value), NOISY is missing
    from repeat 3 (its test did not run), NEVER is never judged."""
    out = [spec.by_id("GAIN").judge(None if i == 2 else GAIN[i], uncertainty=GAIN_U[i])]
    for point, values in MTF.items():
        out.append(spec.by_id("MTF-CORNER").judge(values[i], condition={"field": point}))
    if i != 3:
        out.append(spec.by_id("NOISY").judge(NOISY[i]))
    out.append(spec.by_id("LINES").judge(0.0))
    out.append(Measurement.judged("info_figure", 1.0 + i, "x"))  # INFO: no limit, no row
    return out


def write_journal(path: Path, measurements: Sequence[Measurement], run_id: str) -> Path:
    """A complete run journal holding ``measurements`` in one test."""
    with Journal(path, run_id) as j:
        j.run_start(station="demo-station", dut={"serial": "SN1", "product": "demo"})
        j.test_start("t::test_all")
        for m in measurements:
            j.measurement(m, test_id="t::test_all")
        j.test_end("t::test_all", Outcome.PASS)
        j.run_end(Outcome.PASS)
    return path


def synthetic_runs(tmp_path: Path, spec: LimitSpec) -> list[tuple[Measurement, ...]]:
    journals = [write_journal(tmp_path / f"j{i}" / "journal.jsonl",
                              repeat_measurements(spec, i), f"R-{i}") for i in range(4)]
    return [rebuild(j).measurements for j in journals]


def test_rows_from_synthetic_journals(tmp_path: Path) -> None:
    """Per limit and condition: the finite values of the repeats, the ERROR one left out and
    counted, the missing one counted, the stated u as RMS; the figures against hand-computed
    ones (1e-9 relative: float rounding)."""
    spec = load_limits(spec_file(tmp_path))
    rows = collect_rows(spec, synthetic_runs(tmp_path, spec))
    by = {(r.limit_id, r.shown_condition): r for r in rows}
    assert list(by) == [("GAIN", ""), ("MTF-CORNER", "field=top_left"),
                        ("MTF-CORNER", "field=bottom_right"), ("NOISY", ""), ("LINES", "")]

    gain = by[("GAIN", "")]
    kept = [GAIN[i] for i in (0, 1, 3)]
    assert gain.values == tuple(kept) and gain.errors == 1 and gain.missing == 0
    sd = statistics.stdev(kept)
    assert gain.result is not None
    assert gain.result.sd == pytest.approx(sd, rel=1e-9)
    assert gain.result.mean == pytest.approx(statistics.fmean(kept), rel=1e-9)
    assert gain.result.pct_grr == pytest.approx(100 * 6 * sd / (0.66 - 0.54), rel=1e-9)
    assert gain.result.ndc == math.floor(1.41 * (0.12 / 6) / sd)
    u_kept = [GAIN_U[i] for i in (0, 1, 3)]
    assert gain.u_rms == pytest.approx(math.sqrt(sum(u * u for u in u_kept) / 3), rel=1e-9)
    assert gain.condition == {}

    corner = by[("MTF-CORNER", "field=bottom_right")]
    assert corner.condition == {"field": "bottom_right", "zone": "corner"}
    vals = MTF["bottom_right"]
    assert corner.values == tuple(vals) and corner.u_rms is None
    assert corner.result is not None and corner.result.sides == "min"
    room = statistics.fmean(vals) - 0.22
    assert corner.result.pct_grr == pytest.approx(100 * 3 * statistics.stdev(vals) / room,
                                                  rel=1e-9)

    noisy = by[("NOISY", "")]
    assert noisy.missing == 1 and noisy.errors == 0 and len(noisy.values) == 3
    assert noisy.result is not None and noisy.result.pct_grr is not None
    assert noisy.result.pct_grr > 30 and noisy.not_capable
    assert noisy.note == msa_mod.NOT_CAPABLE

    lines = by[("LINES", "")]
    assert lines.result is not None and lines.result.sd == 0
    assert not lines.not_capable and "undefined" in lines.note


def fake_plan(tmp_path: Path, station: Path = SIM_STATION) -> msa_mod.MsaPlan:
    return plan_study(station, spec_file(tmp_path), None)


def test_table_json_and_markdown(tmp_path: Path) -> None:
    """The JSON is strict (no NaN: the 0/0 %GRR of LINES is null) and holds every row; the
    Markdown table has one line per row, flags NOISY and lists the unjudged NEVER."""
    spec = load_limits(spec_file(tmp_path))
    rows = collect_rows(spec, synthetic_runs(tmp_path, spec))
    study = msa_mod.MsaStudy(fake_plan(tmp_path), (), tuple(rows), 1.0, str(tmp_path))
    data = json.loads(json.dumps(study.as_dict(), allow_nan=False))
    assert [r["limit_id"] for r in data["rows"]] == ["GAIN", "MTF-CORNER", "MTF-CORNER",
                                                    "NOISY", "LINES"]
    lines_row = data["rows"][-1]
    assert lines_row["pct_grr"] is None and lines_row["capability"] == "undetermined"
    assert data["unjudged"] == ["NEVER"] and data["not_capable"] == ["NOISY"]
    assert data["rows"][0]["errors"] == 1 and data["rows"][0]["n"] == 3
    text = markdown(study)
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + len(rows)
    noisy = next(ln for ln in table if ln.startswith("| NOISY"))
    assert "station not capable of this limit" in noisy
    assert "* no repeat judged: NEVER" in text
    assert "GAIN: 1 repeat(s) judged it ERROR" in text
    gain = next(ln for ln in table if ln.startswith("| GAIN"))
    assert "3 (1 left out)" in gain


def test_station_copy_changes_only_the_seed(tmp_path: Path) -> None:
    """Each repeat's station: the same module (resolved), camera seed = repeat number, the
    station's own id kept, its own lock folder, the light calibration beside it; every other
    key as in the station file."""
    plan = fake_plan(tmp_path)
    original = yaml.safe_load(SIM_STATION.read_text())
    module = (SIM_STATION.parent / original["camera"]["module"]).resolve()
    for seed in (1, 2, 3):
        folder = tmp_path / f"r{seed}"
        folder.mkdir()
        path = repeat_station(plan, folder, seed)
        copy = yaml.safe_load(path.read_text())
        assert copy["camera"]["seed"] == seed
        assert Path(copy["camera"]["module"]) == module
        assert copy["id"] == original["id"]
        assert copy["lock_dir"] == str(folder.resolve())
        assert {k: v for k, v in copy["camera"].items() if k not in ("seed", "module")} == \
            {k: v for k, v in original["camera"].items() if k not in ("seed", "module")}
        assert {k: v for k, v in copy.items() if k not in ("camera", "id", "lock_dir")} == \
            {k: v for k, v in original.items() if k not in ("camera", "id", "lock_dir")}
        assert path.with_name(path.stem + ".light-cal.json").is_file()


def test_plan_repeats_and_between(tmp_path: Path) -> None:
    """--repeats defaults to the spec's msa.repeats, else 10; below 2 is bad input; a real
    station whose spec asks for a re-seat needs the operator (--no-prompt is an error)."""
    assert fake_plan(tmp_path).repeats == 4
    plain = tmp_path / "plain"
    plain.mkdir()
    no_msa = spec_file(plain, SPEC.replace("  msa: {between: [reseat, refocus], repeats: 4}\n",
                                           "  light: {level_pct: 50}\n"))
    assert plan_study(SIM_STATION, no_msa, None).repeats == 10
    with pytest.raises(ConfigError, match="--repeats"):
        plan_study(SIM_STATION, no_msa, 1)
    real = plan_study(FAKE_STATION, spec_file(tmp_path), 3)
    assert not real.simulated and real.reseat_prompt and real.between == ("reseat", "refocus")
    with pytest.raises(ConfigError, match="--no-prompt"):
        plan_study(FAKE_STATION, spec_file(tmp_path), 3, prompt=False)
    assert plan_study(SIM_STATION, spec_file(tmp_path), 3, prompt=False).simulated
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(ConfigError, match=r"conditions\.msa\.between"):
        plan_study(SIM_STATION, spec_file(bad, SPEC.replace("refocus]", "polish]")), 3)


class FakeSuite:
    """Stands in for :func:`harness.run.limit_coverage.run_suite`: writes repeat i's
    synthetic journal (and a fake frame) into the evidence folder, or no journal at all."""

    def __init__(self, spec: LimitSpec, journal: bool = True) -> None:
        self.spec, self.journal = spec, journal
        self.calls: list[tuple[Path, tuple[str, ...], tuple[str, ...]]] = []

    def __call__(self, station: Path, spec: Path, suite: Path, evidence: Path, *,
                 select: Sequence[str] = (), extra: Sequence[str] = ()
                 ) -> tuple[subprocess.CompletedProcess[str], Path | None]:
        i = len(self.calls) % 4
        self.calls.append((station, tuple(select), tuple(extra)))
        proc = subprocess.CompletedProcess(["pytest"], 0 if self.journal else 4, "", "boom")
        if not self.journal:
            return proc, None
        (evidence / "R" / "captures").mkdir(parents=True)
        (evidence / "R" / "captures" / "frame.tif").write_bytes(b"0" * 100)
        path = write_journal(evidence / "R" / "journal.jsonl",
                             repeat_measurements(self.spec, i), f"R-{i}")
        return proc, path


def test_study_keeps_journals_and_removes_frames(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated study: one station copy per repeat with seed = repeat number, the journal
    kept at work/repeat-NN/journal.jsonl, the evidence folder removed (kept with keep=True),
    progress once per repeat, the same rows as from the journals directly."""
    spec_path = spec_file(tmp_path)
    fake = FakeSuite(load_limits(spec_path))
    monkeypatch.setattr(msa_mod, "run_suite", fake)
    plan = plan_study(SIM_STATION, spec_path, 4)
    seen: list[int] = []
    study = run_study(plan, tmp_path / "work", progress=lambda r: seen.append(r.index),
                      select=["x.py"], dut="SN1")
    assert seen == [1, 2, 3, 4] and [r.seed for r in study.runs] == [1, 2, 3, 4]
    seeds = [yaml.safe_load(call[0].read_text())["camera"]["seed"] for call in fake.calls]
    assert seeds == [1, 2, 3, 4]
    assert all(call[1:] == (("x.py",), ("--dut=SN1",)) for call in fake.calls)
    assert [r.outcome for r in study.runs] == [Outcome.PASS, Outcome.PASS, Outcome.ERROR,
                                               Outcome.PASS]  # repeat 3: GAIN has no value
    assert study.runs[2].problems == ("test_all: GAIN: no finite value was measured",)
    assert study.software_versions == [] and "versions of the harness" not in markdown(study)
    mixed = msa_mod.MsaStudy(plan, tuple(dataclasses.replace(r, software=f"sha{r.index % 2}")
                                         for r in study.runs), study.rows, 1.0, "w")
    assert "the repeats ran 2 versions of the harness code" in markdown(mixed)
    for run in study.runs:
        assert Path(run.journal).is_file()
        assert not (Path(run.journal).parent / "evidence").exists()
    assert [r.values for r in study.rows] == [
        r.values for r in collect_rows(plan.spec, [rebuild(r.journal).measurements
                                                   for r in study.runs])]
    saved = msa_mod.save_study(study, tmp_path / "st.msa.json")
    from harness.run.station_study import load_study

    back = load_study(saved, plan.station_id)
    assert back is not None
    for row in study.rows:
        if row.result is not None:
            assert back.lookup(row.limit_id, row.condition) == pytest.approx(row.result.sd)
    kept = run_study(plan_study(SIM_STATION, spec_path, 2), tmp_path / "kept", keep=True)
    assert (tmp_path / "kept" / "repeat-02" / "evidence" / "R" / "captures").is_dir()
    assert len(kept.runs) == 2


def test_real_station_asks_for_a_reseat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real station the same station file every repeat; the operator is asked before
    every repeat after the first; no answer stops the study there."""
    spec_path = spec_file(tmp_path)
    fake = FakeSuite(load_limits(spec_path))
    monkeypatch.setattr(msa_mod, "run_suite", fake)
    asked: list[int] = []

    def confirm(index: int) -> bool:
        asked.append(index)
        return index < 3

    study = run_study(plan_study(FAKE_STATION, spec_path, 4), tmp_path / "w", confirm=confirm)
    assert asked == [2, 3] and len(study.runs) == 2
    assert all(call[0] == FAKE_STATION.resolve() for call in fake.calls)
    assert study.stopped == "no re-seat confirmed before repeat 3"
    assert [r.seed for r in study.runs] == [None, None]


def test_wait_for_enter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-seat prompt: Enter confirms; silence until the timeout, or the end of the
    input (unattended), does not."""
    from harness.cli.msa import wait_for_enter

    for data, close, expected in ((b"\n", False, True), (b"", False, False),
                                  (b"", True, False)):
        r, w = os.pipe()
        os.write(w, data)
        if close:
            os.close(w)
        with os.fdopen(r) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            assert wait_for_enter("re-seat: ", 0.05) is expected
        if not close:
            os.close(w)


runner = CliRunner()


def _one_line_error(result_output: str, option: str) -> None:
    lines = [ln for ln in result_output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], \
        result_output


@pytest.mark.parametrize(("args", "option"), [
    (["--station", "nope.yaml", "--limits", str(CM12)], "--station"),
    (["--station", str(SIM_STATION), "--limits", "nope.yaml"], "--limits"),
    (["--station", str(SIM_STATION), "--limits", str(CM12), "--repeats", "1"], "--repeats"),
    (["--station", str(SIM_STATION), "--limits", str(CM12), "--repeats", "2", "--select",
      "tests_hil/nope.py"], "--select"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], option: str,
                                          tmp_path: Path) -> None:
    result = runner.invoke(app, ["msa", *args, "--work", str(tmp_path / "w")])
    assert result.exit_code == 2
    _one_line_error(result.output, option)
    assert not (tmp_path / "w").exists()


def test_no_prompt_on_a_real_station_that_needs_a_reseat(tmp_path: Path) -> None:
    result = runner.invoke(app, ["msa", "--station", str(FAKE_STATION), "--limits",
                                 str(spec_file(tmp_path)), "--no-prompt", "--work",
                                 str(tmp_path / "w")])
    assert result.exit_code == 2
    _one_line_error(result.output, "--no-prompt")


def test_cli_json_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--json prints strict JSON with the journal of every repeat; exit 0 although NOISY is
    not capable (a finding); exit 1 when no repeat left a journal."""
    spec_path = spec_file(tmp_path)
    monkeypatch.setattr(msa_mod, "run_suite", FakeSuite(load_limits(spec_path)))
    result = runner.invoke(app, ["msa", "--station", str(SIM_STATION), "--limits",
                                 str(spec_path), "--json", "--work", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"not strict: {c}"))
    assert len(data["runs"]) == 4 and all(Path(r["journal"]).is_file() for r in data["runs"])
    assert data["not_capable"] == ["NOISY"]
    table = runner.invoke(app, ["msa", "--station", str(SIM_STATION), "--limits",
                                str(spec_path), "--repeats", "2", "--work", str(tmp_path / "t")])
    assert table.exit_code == 0 and "NOISY" in table.stdout and "repeat 2/2" in table.stderr
    monkeypatch.setattr(msa_mod, "run_suite", FakeSuite(load_limits(spec_path), journal=False))
    none = runner.invoke(app, ["msa", "--station", str(SIM_STATION), "--limits",
                               str(spec_path), "--repeats", "2", "--work", str(tmp_path / "n")])
    assert none.exit_code == 1


@pytest.mark.slow
def test_end_to_end_on_the_simulated_station(tmp_path: Path) -> None:
    """The real thing, small: the uniformity tests 3 times on stations/sim-small.yaml. Every
    selected limit gets a %GRR, and the values differ between repeats (seeds 1, 2, 3: the
    temporal noise differs, the module does not)."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("harness")), "msa", "--station", str(SIM_STATION),
         "--limits", str(CM12), "--repeats", "3", "--select",
         str(ROOT / "tests_hil" / "test_uniformity.py"), "--json", "--work",
         str(tmp_path / "work")], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [r["outcome"] for r in data["runs"]] == ["INCOMPLETE"] * 3  # other limits unjudged
    selected = {"UNIF-RI", "UNIF-COLOUR-SHADING"}
    rows = [r for r in data["rows"] if r["limit_id"] in selected]
    assert {r["limit_id"] for r in rows} == selected and len(rows) == 3  # shading: R/G, B/G
    for row in rows:
        assert row["n"] == 3 and row["pct_grr"] is not None, row
        assert len(set(row["values"])) == 3, row
    assert "EMVA-K" in data["unjudged"]
    assert not list((tmp_path / "work").glob("repeat-*/evidence"))
