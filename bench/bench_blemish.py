"""Blemish detection speed on a 12 MP flat (4032 x 3024, float32): target <= 0.3 s.

The frame is rendered like the tests' (tests_unit/blemish_synth.py): 12 spots 10-80 px at
1.5-10 %, cos⁴ shading to 0.4, 1 % PRNU, the shot noise of a 16-frame mean of 2000 e-, hot and
dead pixels. Anchor measured in the same run: one ``cv2.medianBlur`` 5 x 5 of the frame as
uint16 (a pass every flat-field analysis makes; ~18.5 ms, docs/standards.md#speed-anchors).
The accuracy on this frame is reported too (worst centre, diameter and contrast errors).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from bench.timing import best_ms
from harness.analysis.blemish import measure_blemishes
from tests_unit.blemish_synth import random_spots, render_flat

TARGET_MS = 300.0


def run() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    spots = random_spots(rng, 12)
    flat = render_flat(spots, electrons=16 * 2000.0, rng=rng)
    ms = best_ms(lambda: measure_blemishes(flat), repeat=5)
    as_u16 = np.clip(flat * 10, 0, 65535).astype(np.uint16)
    median_ms = best_ms(lambda: cv2.medianBlur(as_u16, 5), repeat=5)
    res = measure_blemishes(flat)
    pos, diam, con, missed = [], [], [], 0
    for s in spots:
        near = [b for b in res.blemishes if math.hypot(b.x - s.x, b.y - s.y) < s.diameter / 2]
        if not near:
            missed += 1
            continue
        b = min(near, key=lambda b: math.hypot(b.x - s.x, b.y - s.y))
        pos.append(math.hypot(b.x - s.x, b.y - s.y))
        diam.append(abs(b.diameter_px / s.diameter - 1))
        con.append(abs(b.contrast_pct / (100 * s.contrast) - 1))
    return {
        "blemish_12mp_ms": round(ms, 1),
        "blemish_target_ms": TARGET_MS,
        "blemish_vs_target": round(ms / TARGET_MS, 3),
        "median5x5_12mp_u16_ms": round(median_ms, 2),
        "blemish_vs_median5x5": round(ms / median_ms, 2),
        "spots": len(spots),
        "found": len(spots) - missed,
        "false_positives": res.count - len(pos),
        "max_centre_error_px": round(max(pos, default=float("nan")), 2),
        "max_diameter_error_pct": round(100 * max(diam, default=float("nan")), 1),
        "max_contrast_error_pct": round(100 * max(con, default=float("nan")), 1),
    }
