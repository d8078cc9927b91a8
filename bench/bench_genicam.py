"""Frames/s through the genicam driver vs. a bare harvesters fetch loop, same run, same device.

viky.cti (the genicam wheel's GenTL producer), 800 x 800 Mono8 at AcquisitionFrameRate 200 Hz.
The bare loop is the least a correct consumer does: ``with ia.fetch(timeout=...)`` and a copy
of ``component.data`` before the buffer is re-queued. The driver is measured as a burst
(``grab(n)`` on a running stream) and as a loop of single grabs (``grab(1)``, which also reads
back ExposureTime/Gain/trigger state once per call). Rounds alternate bare/driver so that both
see the same machine load; the figure is the median over rounds. Target: driver >= 95 % of bare.
viky delivers ~190 frames/s, so both loops are camera-bound: the ratio says the driver keeps up
with the camera; the CPU time per frame (which includes harvesters' polling inside ``fetch``)
says what it costs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import genicam

from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.registry import DriverContext

VIKY = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")
SECONDS = 2.0
ROUNDS = 3


def _bare(ia: Any, seconds: float) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of a bare fetch-and-copy loop."""
    ia.start()
    try:
        with ia.fetch(timeout=2.0) as buf:  # first frame: start-up latency not counted
            buf.payload.components[0].data.copy()
        n = 0
        t0, c0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            with ia.fetch(timeout=2.0) as buf:
                buf.payload.components[0].data.copy()
            n += 1
        return n / (time.perf_counter() - t0), (time.process_time() - c0) * 1e3 / n
    finally:
        ia.stop()


def _driver_burst(cam: GenICamCamera, frames: int) -> tuple[float, float, int]:
    """(frames/s, CPU ms per frame, frame-id gaps) of one ``grab(frames)`` burst."""
    cam.start()
    try:
        cam.grab(1)
        t0, c0 = time.perf_counter(), time.process_time()
        stack = cam.grab(frames)
        rate = len(stack) / (time.perf_counter() - t0)
        cpu = (time.process_time() - c0) * 1e3 / len(stack)
    finally:
        cam.stop()
    return rate, cpu, len(stack.frame_id_gaps())


def _driver_single(cam: GenICamCamera, seconds: float) -> float:
    cam.start()
    try:
        cam.grab(1)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            cam.grab(1)
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        cam.stop()


def run() -> dict[str, Any]:
    settings = GenICamSettings(cti=[VIKY], serial="0", num_buffers=8, features={
        "PixelFormat": "Mono8", "Width": 800, "Height": 800, "AcquisitionFrameRate": 200.0})
    with tempfile.TemporaryDirectory() as tmp:
        cam = GenICamCamera("camera", settings, DriverContext("bench", Path(tmp)))
        cam.open()
        try:
            ia = cam.acquirer
            ia.num_buffers = 8
            bare, burst, single = [], [], []
            bare_cpu, burst_cpu = [], []
            gaps = 0
            for _ in range(ROUNDS):
                rate, cpu = _bare(ia, SECONDS)
                bare.append(rate)
                bare_cpu.append(cpu)
                rate, cpu, g = _driver_burst(cam, int(SECONDS * 190))
                burst.append(rate)
                burst_cpu.append(cpu)
                gaps += g
                single.append(_driver_single(cam, SECONDS))
        finally:
            cam.close()
    b, d, s = statistics.median(bare), statistics.median(burst), statistics.median(single)
    return {
        "camera": "viky 800x800 Mono8 @ 200 Hz",
        "bare_fps": round(b, 1),
        "driver_burst_fps": round(d, 1),
        "driver_single_grab_fps": round(s, 1),
        "burst_ratio": round(d / b, 3),
        "single_grab_ratio": round(s / b, 3),
        "rounds": ROUNDS,
        "bare_fps_rounds": [round(x, 1) for x in bare],
        "driver_burst_fps_rounds": [round(x, 1) for x in burst],
        "bare_cpu_ms_per_frame": round(statistics.median(bare_cpu), 2),
        "driver_burst_cpu_ms_per_frame": round(statistics.median(burst_cpu), 2),
        "driver_burst_frame_id_gaps": gaps,
        "target_ratio": 0.95,
        "meets_target": d / b >= 0.95,
    }
