"""Focus metrics per 12 MP frame (float32), and a sweep analysis per frame.

Anchor measured in the same run: one ``cv2.meanStdDev`` pass over the same float32 frame
(docs/standards.md#speed-anchors: var(Laplacian)/Tenengrad/Brenner timed at 45/68/34 ms on
this box class).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from bench.timing import best_ms
from harness.analysis.focus import FOCUS_METHODS, measure_focus_sweep
from tests_unit.optics_synth import texture


def run() -> dict[str, Any]:
    base = texture((756, 1008), np.random.default_rng(0)).astype(np.float32)
    frame = cv2.resize(base, (4032, 3024), interpolation=cv2.INTER_LINEAR)
    out: dict[str, Any] = {}
    floor = best_ms(lambda: cv2.meanStdDev(frame), repeat=5)
    out["one_pass_meanstddev_ms"] = round(floor, 2)
    for m, measure in FOCUS_METHODS.items():
        t = best_ms(lambda measure=measure: measure(frame))  # type: ignore[misc]
        out[f"{m}_12mp_ms"] = round(t, 1)
        out[f"{m}_vs_one_pass"] = round(t / floor, 1)
    frames = [frame, cv2.GaussianBlur(frame, (0, 0), 1.0), cv2.GaussianBlur(frame, (0, 0), 2.0)]
    sweep = best_ms(lambda: measure_focus_sweep(frames, [0.0, 1.0, 2.0]), repeat=2)
    out["sweep_analysis_per_12mp_frame_ms"] = round(sweep / len(frames), 1)
    return out
