"""Simulated camera speed and memory: frames/s at 12 MP and 2 MP, peak memory in frames.

Target (issue 4): >= 10 frames/s at 12 MP (4032 x 3024) Mono12 flat field on one core, peak
memory <= 8 frames' worth (one frame = W x H x 2 bytes). OpenCV and the sensor model's render
pool are pinned to one thread for the target; the 12 MP flat rate with the pool is reported too.
Times (best and median of 9 grabs; the box is shared) go through the full SimCamera path
(GenApi reads, sensor model, pixel format conversion, FrameStack); the build of the
per-operating-point maps (first frame after a change of exposure, gain, light or chart) is
reported separately.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

import cv2

from harness.sim import sensor
from harness.sim.bench import Bench
from harness.sim.camera import SimCamera
from harness.sim.module import load_module

MODULE = Path(__file__).resolve().parents[1] / "fixtures" / "modules" / "golden.yaml"


def _camera(width: int, height: int, chart: str = "flat") -> SimCamera:
    """The golden module without its CFA (Mono12), at ``width`` x ``height``."""
    bench = Bench()
    bench.set_chart(chart)
    golden = load_module(MODULE)
    mono = golden.model_copy(update={"sensor": golden.sensor.model_copy(update={"cfa": None})})
    cam = SimCamera.standalone(mono, seed=1, bench=bench, sensor_size=(width, height))
    cam.set("PixelFormat", "Mono12")
    cam.set("ExposureTime", 5000.0)
    return cam


def _fps(cam: SimCamera, frames: int) -> tuple[float, float, float]:
    """(best frames/s, median frames/s, build seconds) over ``frames`` single-frame grabs."""
    cam.start()
    t0 = time.perf_counter()
    cam.grab(1)
    build = time.perf_counter() - t0
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        cam.grab(1)
        times.append(time.perf_counter() - t)
    cam.stop()
    return 1.0 / min(times), 1.0 / statistics.median(times), build


def _peak_frames(width: int, height: int) -> float:
    cam = _camera(width, height)
    sensor.release_buffers()  # the render threads' buffers count: made inside the window
    tracemalloc.start()
    tracemalloc.reset_peak()
    cam.start()
    for _ in range(3):
        cam.grab(1)
    cam.set("ExposureTime", 6000.0)  # a rebuild of the maps is part of the steady state
    cam.grab(1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cam.stop()
    return peak / (width * height * 2)


def run() -> dict[str, Any]:
    cv2.setNumThreads(1)
    threads = sensor.RENDER_THREADS
    sensor.RENDER_THREADS = 1  # the target is on one core
    try:
        figures = _figures()
    finally:
        sensor.RENDER_THREADS = threads
    if threads > 1:  # what a station gets with its render pool
        _, median, build = _fps(_camera(4032, 3024), 9)
        figures[f"12mp_flat_mono12_fps_median_{threads}_threads"] = round(median, 2)
        figures[f"12mp_build_s_{threads}_threads"] = round(build, 3)
        figures[f"12mp_peak_memory_frames_{threads}_threads"] = round(
            _peak_frames(4032, 3024), 2)
    return figures


def _figures() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for label, (w, h) in (("12mp", (4032, 3024)), ("2mp", (1920, 1080))):
        best, median, build = _fps(_camera(w, h), 9)
        figures[f"{label}_flat_mono12_fps_best"] = round(best, 2)
        figures[f"{label}_flat_mono12_fps_median"] = round(median, 2)
        figures[f"{label}_build_s"] = round(build, 3)
    for chart in ("edge", "dark"):
        best, median, _ = _fps(_camera(4032, 3024, chart), 3)
        figures[f"12mp_{chart}_fps_median"] = round(median, 2)
    figures["12mp_median_fps_over_target_10"] = round(
        figures["12mp_flat_mono12_fps_median"] / 10.0, 2)
    figures["12mp_peak_memory_frames"] = round(_peak_frames(4032, 3024), 2)
    figures["peak_memory_limit_frames"] = 8
    return figures
