"""A verdict is earned: the qualification suite on the simulated station, run the ways a user
could get an unearned PASS before (issue: Verdict).

Each case runs ``tests_hil`` (or a selection) in its own pytest process on a copy of the small
simulated station, changed in one way, and reads the run record back from its journal: no
limits stops pytest at once; a limit nobody judged, a ``-k`` selection or a station missing a
device leaves the run INCOMPLETE naming the limits; station faults (a chart wheel without the
edge chart, a damaged chart, a light that is not the spec's illuminant) are ERROR naming the
cause, never FAIL; an incomplete GenICam buffer fails IF-INCOMPLETE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.evidence.journal import rebuild
from harness.evidence.model import RunRecord
from harness.measurement import Outcome

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"
SMALL = ROOT / "stations" / "sim-small.yaml"


def sim_station(folder: Path, *, replace: dict[str, str] | None = None) -> Path:
    """stations/sim-small.yaml in ``folder`` with its own lock dir and ``replace``-ments."""
    text = SMALL.read_text().replace("../fixtures/", f"{ROOT}/fixtures/")
    for old, new in (replace or {}).items():
        assert old in text, f"stations/sim-small.yaml changed: {old!r} not found"
        text = text.replace(old, new)
    path = folder / "station.yaml"
    path.write_text(text + f"lock_dir: {folder}\n")
    (folder / "station.light-cal.json").write_bytes(
        (ROOT / "stations" / "sim-small.light-cal.json").read_bytes())
    return path


def run_hil(folder: Path, station: Path, *args: str, limits: Path | None = LIMITS,
            env_extra: dict[str, str] | None = None
            ) -> tuple[subprocess.CompletedProcess[str], RunRecord | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(env_extra or {})
    evidence = folder / "evidence"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests_hil"), "-q", "-p",
           "no:cacheprovider", f"--station={station}", f"--evidence-dir={evidence}",
           f"--rootdir={ROOT}", *args]
    if limits is not None:
        cmd.append(f"--limits={limits}")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    journals = list(evidence.glob("*/journal.jsonl"))
    return proc, rebuild(journals[0]) if journals else None


def failed(record: RunRecord) -> set[str]:
    return {m.limit_id for m in record.measurements if m.outcome is Outcome.FAIL}


def test_no_limits_stops_pytest_with_one_line(tmp_path: Path) -> None:
    proc, record = run_hil(tmp_path, sim_station(tmp_path), limits=None)
    assert proc.returncode == 4 and record is None  # a usage error: nothing ran
    assert ("--station needs a limit spec: give --limits FILE (or limits: in "
            f"{tmp_path / 'station.yaml'}), or --characterise") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_limit_nobody_judged_makes_the_run_incomplete(tmp_path: Path) -> None:
    spec = tmp_path / "limits.yaml"
    spec.write_text(LIMITS.read_text() + "  - {id: FLARE-VEILING, measurement: "
                    "veiling_glare_pct, unit: '%', max: 2.0}\n")
    proc, record = run_hil(tmp_path, sim_station(tmp_path), limits=spec)
    assert record is not None, proc.stdout + proc.stderr
    assert record.outcome is Outcome.INCOMPLETE, proc.stdout
    assert [(u.limit_id, u.reason) for u in record.unjudged] == [
        ("FLARE-VEILING", "no test collected in this run measures it")]
    assert not failed(record)  # everything else was judged and held
    assert proc.returncode == 1  # a run that cannot be signed does not exit 0
    assert "unjudged FLARE-VEILING (veiling_glare_pct): no test collected in this run measures it" \
        in proc.stdout
    # one capture session: sets numbered run-wide in capture order, every sequence event and
    # every set in the journal
    from harness.evidence.journal import read_journal

    [journal] = (tmp_path / "evidence").glob("*/journal.jsonl")
    events = read_journal(journal).events
    sets = sorted(p.name for p in (journal.parent / "captures").iterdir())
    assert [int(name[:2]) for name in sets] == list(range(1, len(sets) + 1))
    assert sets[:2] == ["01-camera_probe", "02-saturation_level"]
    journaled = {Path(e["capture_set"]).name for e in events if e["type"] == "capture"}
    assert journaled == set(sets)
    started = [e["data"]["sequence"] for e in events
               if e["type"] == "sequence" and e["event"] == "sequence_start"]
    ended = [e["data"]["sequence"] for e in events
             if e["type"] == "sequence" and e["event"] == "sequence_end"]
    assert started == ended and {"saturation_level", "exposure_sweep", "dark_stack",
                                 "flat_stack", "focus_sweep", "edge", "colour",
                                 "dotgrid"} == set(started)
    # every wait for the light is evidence: its state and every meter reading judged
    settled = [e["data"] for e in events
               if e["type"] == "sequence" and e["event"] == "light_settled"]
    assert settled and all(d["stable"] and len(d["samples"]) >= 3 for d in settled)
    on = [d for d in settled if d["light"][0]]
    assert on and all(d["mean"] > 0 and d["tolerance_pct"] == 0.5 for d in on)


def test_a_k_selection_is_incomplete(tmp_path: Path) -> None:
    proc, record = run_hil(tmp_path, sim_station(tmp_path), "-k", "test_colour")
    assert record is not None, proc.stdout + proc.stderr
    assert record.outcome is Outcome.INCOMPLETE, proc.stdout
    reasons = {u.limit_id: u.reason for u in record.unjudged}
    assert reasons["EMVA-K"] == "deselected: test_photon_transfer"
    assert reasons["MTF50-CORNER"] == "deselected: test_mtf_centre_and_corners"
    colour = {"COLOUR-DE-MEAN", "COLOUR-DE-MAX", "COLOUR-WB-R", "COLOUR-WB-B"}
    assert not colour & set(reasons)
    assert {m.limit_id for m in record.measurements if m.outcome is Outcome.PASS} == {
        "COLOUR-DE-MEAN", "COLOUR-DE-MAX", "COLOUR-WB-R", "COLOUR-WB-B"}


def test_a_production_ccm_in_the_spec_is_judged(tmp_path: Path) -> None:
    """A spec that gives the product's fixed CCM judges ΔE through it: an identity matrix on
    raw camera RGB is a poor pipeline and fails its limit, while the leave-one-out figures
    (the module's best 3x3) still pass."""
    text = LIMITS.read_text().replace(
        "illuminant_tolerance_delta_uv: 0.005}",
        "illuminant_tolerance_delta_uv: 0.005, ccm: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}")
    assert "ccm: [[1, 0, 0]" in text
    spec = tmp_path / "limits.yaml"
    spec.write_text(text + "  - {id: COLOUR-DE-PRODUCTION, measurement: delta_e_2000_mean, "
                           "unit: dE00, max: 2.0, condition: {ccm: production}}\n")
    proc, record = run_hil(tmp_path, sim_station(tmp_path), "-k", "test_colour", limits=spec)
    assert record is not None, proc.stdout + proc.stderr
    verdicts = {m.limit_id: m for m in record.measurements if m.limit_id}
    assert verdicts["COLOUR-DE-PRODUCTION"].outcome is Outcome.FAIL, proc.stdout
    assert verdicts["COLOUR-DE-PRODUCTION"].value > 2.0
    assert verdicts["COLOUR-DE-MEAN"].outcome is Outcome.PASS
    assert failed(record) == {"COLOUR-DE-PRODUCTION"}


def test_a_station_missing_a_device_is_incomplete(tmp_path: Path) -> None:
    station = sim_station(tmp_path, replace={
        'chart:  {driver: serial-chart, port: "sim:chart", park: dark, timeout_s: 0.5}\n': ""})
    proc, record = run_hil(tmp_path, station, "-k", "test_colour or test_module_current")
    assert record is not None, proc.stdout + proc.stderr
    reasons = {u.limit_id: u.reason for u in record.unjudged}
    assert reasons["COLOUR-DE-MEAN"] == ("test_colour_accuracy skipped: station sim-small-01 "
                                         "has no chart (hil_requires)")
    assert record.outcome is Outcome.INCOMPLETE, proc.stdout


def test_a_chart_wheel_without_the_dot_grid_leaves_distortion_unjudged(tmp_path: Path) -> None:
    """A real station may have no dot-grid chart: the distortion test skips and names why, the
    run is INCOMPLETE (never PASS) and everything it did judge stands."""
    station = sim_station(tmp_path, replace={
        "charts: [dark, flat, edge, colour, focus, dotgrid]": "charts: [dark, flat, edge, colour, "
                                                              "focus]"})
    proc, record = run_hil(tmp_path, station, "-k", "test_distortion or test_optical_centre")
    assert record is not None, proc.stdout + proc.stderr
    reasons = {u.limit_id: u.reason for u in record.unjudged}
    assert reasons["DIST-09"].startswith("test_distortion skipped: the station's chart wheel has "
                                         "no 'dotgrid' chart"), reasons["DIST-09"]
    assert record.outcome is Outcome.INCOMPLETE and not failed(record), proc.stdout
    assert {m.limit_id: m.outcome for m in record.measurements if m.limit_id} == {
        "GEOM-CENTRE": Outcome.PASS}


def test_a_chart_wheel_without_the_edge_chart_is_an_error(tmp_path: Path) -> None:
    station = sim_station(tmp_path, replace={
        "charts: [dark, flat, edge, colour, focus, dotgrid]": "charts: [dark, flat, colour, focus]"})
    proc, record = run_hil(tmp_path, station, "-k", "test_mtf or test_best_focus")
    assert record is not None, proc.stdout + proc.stderr
    assert record.outcome is Outcome.ERROR and not failed(record), proc.stdout
    for test in record.tests:
        assert test.outcome is Outcome.ERROR
        assert "no chart 'edge'; charts: dark, flat, colour, focus" in test.message


def test_a_light_that_is_not_the_specs_illuminant_is_an_error(tmp_path: Path) -> None:
    station = sim_station(tmp_path, replace={
        "full_scale_photons_per_um2_s: 2.0e6, illuminant: D65}":
            "full_scale_photons_per_um2_s: 2.0e6, illuminant: A}",
        "warmup_pct: 0.2, illuminant: D65}}": "warmup_pct: 0.2, illuminant: A}}"})
    proc, record = run_hil(tmp_path, station, "-k", "test_colour")
    assert record is not None, proc.stdout + proc.stderr
    assert record.outcome is Outcome.ERROR and not failed(record), proc.stdout
    [test] = record.tests
    assert "the light measured x=0.4476 y=0.4074 (about 2856 K) but the spec's illuminant D65 " \
           "is x=0.3127 y=0.3290 (6505 K)" in test.message
    assert not [m for m in test.measurements if m.name.startswith("delta_e")]


def test_a_missing_corner_roi_is_an_error(tmp_path: Path) -> None:
    station = sim_station(tmp_path, replace={
        "charts: [dark, flat, edge, colour, focus, dotgrid]":
            "charts: [dark, flat, edge, colour, focus, dotgrid], "
            "scenes: {edge: edge-without-top-left}"})
    proc, record = run_hil(tmp_path, station, "-k", "test_mtf")
    assert record is not None, proc.stdout + proc.stderr
    assert record.outcome is Outcome.ERROR and not failed(record), proc.stdout
    [test] = [t for t in record.tests if t.test_id.endswith("test_mtf_centre_and_corners")]
    assert test.outcome is Outcome.ERROR
    assert "top_left vertical, top_left horizontal" in test.message


VIKY_INCOMPLETE = '''\
"""Test helper: harvesters discards the 5th buffer as incomplete (what it does with a buffer
the transport delivered partially: requeue it and emit INCOMPLETE_BUFFER)."""
import harvesters.core as core

_fetch = core.ImageAcquirer._fetch
calls = {"n": 0}


def _flaky(self, *args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 5:
        self._emit_callbacks(self.Events.INCOMPLETE_BUFFER)
    return _fetch(self, *args, **kwargs)


core.ImageAcquirer._fetch = _flaky
'''


def test_an_incomplete_genicam_buffer_fails_if_incomplete(tmp_path: Path) -> None:
    import genicam

    viky = Path(genicam.__file__).parent / "viky.cti"
    if not viky.is_file():
        pytest.skip("viky.cti not in this genicam wheel")
    (tmp_path / "viky_incomplete.py").write_text(VIKY_INCOMPLETE)
    station = tmp_path / "station.yaml"
    station.write_text(textwrap.dedent(f"""\
        id: viky-if
        lock_dir: {tmp_path}
        camera: {{driver: genicam, cti: [{viky}], serial: "1"}}
        settings: {{watchdog: false}}
    """))
    proc, record = run_hil(tmp_path, station, "-k", "test_frame_rate", "-p", "viky_incomplete",
                           env_extra={"PYTHONPATH": str(tmp_path)})
    assert record is not None, proc.stdout + proc.stderr
    verdicts = {m.limit_id: m for m in record.measurements}
    assert verdicts["IF-INCOMPLETE"].outcome is Outcome.FAIL, proc.stdout
    assert verdicts["IF-INCOMPLETE"].value == 1.0
    assert verdicts["IF-DROPPED"].outcome is Outcome.PASS  # discarded, not a frame-id gap
    # the producer's own counters over the burst, recorded where it reports them (viky: GenTL
    # delivered and underrun frames, and harvesters' discarded incomplete buffer)
    info = {m.name: m for m in record.measurements if m.name.startswith("stream_")}
    assert info["stream_delivered_frames"].value >= 48 - 1
    assert info["stream_incomplete_discarded"].value == 1.0
    assert all(m.outcome is Outcome.INFO for m in info.values())
    assert "stream_resent_packets" not in info  # viky reports none: never shown as 0
    [test] = record.tests
    assert test.outcome is Outcome.FAIL and record.outcome is Outcome.FAIL
