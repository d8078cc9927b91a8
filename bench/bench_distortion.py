"""Dot-grid distortion speed on a 12 MP frame (target <= 0.3 s) and its accuracy there.

The frame (4032 x 3024, float64 as ``load_image`` gives it) is the chart of
tests_unit/dotgrid_synth.py through a lens with k1 = -0.06, k2 = 0.008, rotation -0.8°, centre
offset (20, -12) px, blur σ 1 px, noise 1 %, corner relative illumination 0.7. Wall time is the
best of 5 runs; CPU time (``time.process_time``, all threads) is reported too, since the wall
time on a shared machine includes waiting for a core. Anchor measured in the same run: one
``np.copyto`` of the frame (the memory-bandwidth floor of any full-frame pass,
docs/standards.md#speed-anchors).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.timing import best_ms
from harness.analysis.distortion import RADII, measure_distortion
from tests_unit.dotgrid_synth import DotLens, render_dot_grid, truth_distortion_pct

TARGET_MS = 300.0


def _cpu_ms(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best * 1e3


def run() -> dict[str, Any]:
    lens = DotLens(k1=-0.06, k2=0.008, rotation_deg=-0.8, centre_offset_px=(20.0, -12.0))
    frame = render_dot_grid((3024, 4032), lens, blur_sigma=1.0, noise_sigma=0.01,
                            corner_ri=0.7, rng=np.random.default_rng(0)).astype(np.float64)
    wall = best_ms(lambda: measure_distortion(frame), repeat=5)
    cpu = _cpu_ms(lambda: measure_distortion(frame))
    dst = np.empty_like(frame)
    copy = best_ms(lambda: np.copyto(dst, frame), repeat=5)
    res = measure_distortion(frame)
    err = max(abs(res.radial_distortion_pct[f"{r:g}"] - truth_distortion_pct(lens, r))
              for r in RADII)
    return {
        "distortion_12mp_ms": round(wall, 1),
        "distortion_12mp_cpu_ms": round(cpu, 1),
        "distortion_target_ms": TARGET_MS,
        "distortion_vs_target": round(wall / TARGET_MS, 3),
        "frame_copyto_ms": round(copy, 2),
        "distortion_vs_copyto": round(wall / copy, 1),
        "dots_used": res.dots_used,
        "max_abs_error_d_pct_points": round(err, 5),
        "rotation_error_deg": round(abs(res.rotation_deg - lens.rotation_deg), 5),
        "rms_residual_px": round(res.rms_residual_px, 4),
    }
