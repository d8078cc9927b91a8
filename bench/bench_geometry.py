"""Optical centre: speed on a 12 MP flat (target <= 300 ms) and accuracy over decentres.

Speed: :func:`measure_optical_centre` on a 4032 x 3024 RGGB flat, as a camera delivers it
(uint16) and as ``load_image`` hands it over (float64 in 0..1). The share of the block
averaging (one ``cv2.resize(INTER_AREA)`` of the frame, measured alone in the same run) shows
where the time goes. Accuracy: the largest distance from the generator's centre over 12 MP
flats with decentres 0, ±40 and ±120 px in x and y, mono and RGGB, cos⁴ alone and with
vignetting (tests_unit/geometry_synth.py); the requirement is 2 px.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from bench.timing import best_ms
from harness.analysis.geometry import measure_optical_centre
from tests_unit.geometry_synth import H12, W12, render_flat

TARGET_MS = 300.0
TARGET_PX = 2.0
OFFSETS = ((0, 0), (40, 0), (-40, 0), (120, 0), (-120, 0), (0, 40), (0, -40), (0, 120),
           (0, -120), (120, -120))


def run() -> dict[str, Any]:
    ic = ((W12 - 1) / 2, (H12 - 1) / 2)
    flat = render_flat((ic[0] + 120, ic[1] - 40), cfa="RGGB", vignetting=(1.3, 1.0), seed=1)
    as_float = flat / 65535.0
    u16_ms = best_ms(lambda: measure_optical_centre(flat, bayer="RGGB"), repeat=5)
    f64_ms = best_ms(lambda: measure_optical_centre(as_float, bayer="RGGB"), repeat=5)
    resize_ms = best_ms(lambda: cv2.resize(flat.astype(np.float32), (126, 94),
                                           interpolation=cv2.INTER_AREA), repeat=5)
    errors: list[float] = []
    for i, (dx, dy) in enumerate(OFFSETS):
        for cfa, vig in ((None, None), ("RGGB", (1.3, 1.0))):
            truth = (ic[0] + dx, ic[1] + dy)
            img = render_flat(truth, cfa=cfa, vignetting=vig, seed=100 + i)
            res = measure_optical_centre(img, bayer=cfa)
            errors.append(float(np.hypot(*np.subtract(res.optical_centre_px, truth))))
    return {
        "centre_12mp_uint16_ms": round(u16_ms, 1),
        "centre_12mp_float64_ms": round(f64_ms, 1),
        "centre_target_ms": TARGET_MS,
        "centre_vs_target": round(max(u16_ms, f64_ms) / TARGET_MS, 3),
        "block_means_alone_ms": round(resize_ms, 1),
        "block_means_share": round(resize_ms / u16_ms, 2),
        "accuracy_flats": len(errors),
        "centre_error_max_px": round(max(errors), 3),
        "centre_error_mean_px": round(float(np.mean(errors)), 3),
        "centre_target_px": TARGET_PX,
    }
