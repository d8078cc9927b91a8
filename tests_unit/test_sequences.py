"""Capture sequences on a station of fakes: structure, metadata, closed loops, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.capture.sequences import CaptureContext, exposure_for_level, run_sequence
from harness.devices.camera.frames import FrameStack
from harness.errors import CameraError, ConfigError, MeasurementError
from harness.station.station import Station


@pytest.fixture
def station(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "st.yaml"
    path.write_text(f"id: seq\nlock_dir: {tmp_path}\nlight: {{driver: fake}}\n"
                    "chart: {driver: fake}\nfocus: {driver: fake}\nmeter: {driver: fake}\n"
                    "camera: {driver: fake, width: 32, height: 24, bits: 12}\n")
    with Station.load(path) as st:
        yield st


def context(station: Station, tmp_path: Path, **kw: Any) -> CaptureContext:
    events: list[tuple[str, dict[str, Any]]] = []
    ticks: list[tuple[int, int, str]] = []
    ctx = CaptureContext(
        camera=station.camera(), light=station.device("light"), chart=station.device("chart"),
        focus=station.device("focus"), meter=station.device("meter"), out_dir=tmp_path / "caps",
        header={"bits": 12, "station": {"id": station.id}},
        journal=lambda e, p: events.append((e, p)),
        progress=lambda d, t, w: ticks.append((d, t, w)), **kw)
    ctx.events = events  # type: ignore[attr-defined]
    ctx.ticks = ticks  # type: ignore[attr-defined]
    return ctx


def test_exposure_sweep_structure(station: Station, tmp_path: Path) -> None:
    ctx = context(station, tmp_path, photons_per_pixel=lambda t: 2.0 * t)
    cs = run_sequence("exposure_sweep", ctx, steps=6, spatial_frames=4, exposure_max_us=6000.0)
    for role in ("bright", "dark"):
        temporal = cs.records(role=role, group="temporal")
        assert [r.step for r in temporal] == [s for s in range(6) for _ in range(2)]
        assert len(cs.records(role=role, group="spatial")) == 4
    bright = cs.records(role="bright", group="temporal")
    assert bright[0].exposure_us_set == pytest.approx(10.0)
    assert bright[-1].exposure_us_set == pytest.approx(6000.0)
    assert all(r.photons == pytest.approx(2.0 * r.exposure_us_set) for r in bright)
    assert all(r.photons is None for r in cs.records(role="dark"))
    assert bright[0].exposure_us == bright[0].exposure_us_set  # read back from the frame meta
    assert bright[0].light_level_pct == 50.0 and bright[0].meter_lux == 500.0
    assert cs.records(role="dark")[0].light_level_pct == 0.0
    assert cs.records(role="dark")[0].chart == "dark"
    # the spatial point sits near half of the measured signal range
    spatial_step = cs.records(role="bright", group="spatial")[0].step
    assert 1 <= spatial_step <= 4
    assert ctx.ticks[-1][0] == ctx.ticks[-1][1] == 4 * 6 + 2 * 4  # type: ignore[attr-defined]
    assert ctx.events[0][0] == "sequence_start"  # type: ignore[attr-defined]
    assert ctx.events[-1][0] == "sequence_end"  # type: ignore[attr-defined]


def levelled(station: Station, tmp_path: Path) -> CaptureContext:
    """A context after the saturation pre-step (measured black and saturation levels)."""
    ctx = context(station, tmp_path)
    cs = run_sequence("saturation_level", ctx)
    assert cs.manifest.extra["black_dn"] == pytest.approx(ctx.black_dn)
    assert cs.manifest.extra["black_level_register"] == 64.0  # recorded beside, not used
    assert [r.group for r in cs.records(role="dark")] == ["black"] * 4
    return ctx


def test_closed_loops_need_a_measured_black_level(station: Station, tmp_path: Path) -> None:
    ctx = context(station, tmp_path)  # no saturation pre-step: no black level, no fallback
    with pytest.raises(MeasurementError, match="no measured black level"):
        run_sequence("flat_stack", ctx, frames=3, target_fraction=0.5)


def test_black_level_is_measured_from_dark_frames(station: Station, tmp_path: Path) -> None:
    camera = station.camera()
    camera.set("BlackLevel", 200.0)  # the register says 200 ...
    ctx = context(station, tmp_path)
    cs = run_sequence("saturation_level", ctx)
    # ... and the frames say 200 + the signal of the shortest exposure: the frames win
    darks = [cs.load(r) for r in cs.records(role="dark")]
    assert ctx.black_dn == pytest.approx(sum(float(d.mean()) for d in darks) / len(darks))
    assert cs.manifest.extra["black_level_register"] == 200.0


def test_flat_stack_closes_the_loop_on_mean(station: Station, tmp_path: Path) -> None:
    ctx = levelled(station, tmp_path)
    cs = run_sequence("flat_stack", ctx, frames=3, target_fraction=0.5)
    frames = [cs.load(r) for r in cs.records(role="flat")]
    mean = sum(float(f.mean()) for f in frames) / len(frames)
    assert abs(mean / 4095 - 0.5) <= 0.03 * 0.5


def test_focus_sweep_moves_the_actuator(station: Station, tmp_path: Path) -> None:
    ctx = levelled(station, tmp_path)
    cs = run_sequence("focus_sweep", ctx, positions=[-20, -10, 0, 10, 20])
    assert [r.focus_position for r in cs.records(role="focus")] == [-20, -10, 0, 10, 20]
    assert {r.chart for r in cs.records()} == {"edge"}


def test_unknown_sequence(station: Station, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown sequence 'exposure'; available: saturation_level, exposure_sweep"):
        run_sequence("exposure", context(station, tmp_path))


def test_dropped_frames_are_a_camera_error(station: Station, tmp_path: Path) -> None:
    camera = station.camera()
    original = camera.grab

    def gappy(n: int, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
        stack = original(n, timeout_s)
        meta = list(stack.meta)
        meta[-1] = replace(meta[-1], frame_id=meta[-1].frame_id + 1)  # one frame lost
        return FrameStack(stack.frames, tuple(meta), stack.cfa)

    camera.grab = gappy
    with pytest.raises(CameraError, match="dropped frames"):
        run_sequence("dark_stack", context(station, tmp_path), frames=3)


def test_level_loop_that_cannot_converge(station: Station, tmp_path: Path) -> None:
    ctx = levelled(station, tmp_path)
    station.camera().settings.dn_per_us = 0.0  # no response to exposure at all
    with pytest.raises(CameraError, match="did not converge"):
        exposure_for_level(ctx, target_fraction=0.5, bits=12, start_us=100.0, max_iter=3)


def test_light_settle_is_skipped_only_when_nothing_changed(
        station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.devices.meter import MeterReading

    meter = station.device("meter")
    lux = {"value": 500.0}
    monkeypatch.setattr(meter, "read", lambda: MeterReading(lux["value"], "lx"))
    settles: list[float] = []

    def settle() -> dict[str, Any]:
        settles.append(lux["value"])
        return {"stability": {"mean": lux["value"], "tolerance_pct": 0.5}}

    ctx = context(station, tmp_path, settle=settle)
    ctx.light_on(50.0)
    ctx.light_on(50.0)  # unchanged, and the meter agrees: no wait
    assert len(settles) == 1
    events = ctx.events  # type: ignore[attr-defined]
    assert [e for e, _ in events] == ["light_settled", "settle_skipped"]
    assert events[0][1] == {"light": [True, 50.0, None], "mean": 500.0, "tolerance_pct": 0.5}
    ctx.light_on(60.0)  # another level
    assert len(settles) == 2
    lux["value"] = 510.0  # same state, but the light drifted (or was cycled) meanwhile
    ctx.light_on(60.0)
    assert len(settles) == 3
    ctx.dark()
    ctx.light_on(60.0)  # off and on again
    assert len(settles) == 5
    shared = context(station, tmp_path, settle=settle)
    shared.settled_light = ctx.settled_light  # a later test's context in the same session
    shared.light_on(60.0)
    assert len(settles) == 5
