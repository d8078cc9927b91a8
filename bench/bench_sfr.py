"""e-SFR speed: one 200x200 ROI (target <= 3 ms) by each method (robust, the default, and
iso12233), and a 12 MP slanted-square chart end to end.

Anchor measured in the same run: the same ESF binning done with a pure-Python loop over the
pixels (timed at ~31 ms per 200x200 ROI, docs/standards.md#speed-anchors) against
``np.bincount``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.timing import best_ms
from harness.analysis.edges import find_edge_rois
from harness.analysis.sfr import measure_sfr, measure_sfr_rois
from tests_unit.optics_synth import render_edge, render_square_chart, truth_mtf50

TARGET_MS = 3.0


def _python_binning(img: np.ndarray, slope: float, oversampling: int = 4) -> list[float]:
    """The per-pixel loop a straightforward port writes (timing anchor only)."""
    h, w = img.shape
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for y in range(h):
        xe = w / 2 + slope * (y - h / 2)
        for x in range(w):
            k = int(np.floor((x - xe) * oversampling))
            sums[k] = sums.get(k, 0.0) + float(img[y, x])
            counts[k] = counts.get(k, 0) + 1
    return [sums[k] / counts[k] for k in sorted(sums)]


def _bincount_binning(img: np.ndarray, slope: float, oversampling: int = 4) -> np.ndarray:
    h, w = img.shape
    y, x = np.mgrid[0:h, 0:w]
    idx = np.floor((x - (w / 2 + slope * (y - h / 2))) * oversampling).astype(np.int64)
    idx -= idx.min()
    return np.bincount(idx.ravel(), img.ravel()) / np.maximum(np.bincount(idx.ravel()), 1)


def run() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    roi = render_edge((200, 200), sigma=1.0, angle_deg=5.0, integrate=True,
                      noise_sigma=0.005, rng=rng)
    sfr_ms = best_ms(lambda: measure_sfr(roi), repeat=5, number=20)
    iso_ms = best_ms(lambda: measure_sfr(roi, method="iso12233"), repeat=5, number=20)
    slope = float(np.tan(np.radians(5.0)))
    py_ms = best_ms(lambda: _python_binning(roi, slope), repeat=3)
    bc_ms = best_ms(lambda: _bincount_binning(roi, slope), repeat=5, number=20)
    truth = truth_mtf50(1.0, integrate=True, angle_deg=5.0)
    err = measure_sfr(roi).mtf50_cy_per_px / truth - 1
    iso_err = measure_sfr(roi, method="iso12233").mtf50_cy_per_px / truth - 1

    h, w = 3024, 4032
    small, _ = render_square_chart((756, 1008), sigma=0.5, angle_deg=5.0)
    import cv2

    chart = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    find_ms = best_ms(lambda: find_edge_rois(chart), repeat=3)
    rois = find_edge_rois(chart)
    measure_ms = best_ms(lambda: measure_sfr_rois(chart, rois), repeat=3)
    return {
        "sfr_200x200_ms": round(sfr_ms, 3),
        "sfr_target_ms": TARGET_MS,
        "sfr_vs_target": round(sfr_ms / TARGET_MS, 3),
        "sfr_iso12233_200x200_ms": round(iso_ms, 3),
        "sfr_iso12233_vs_target": round(iso_ms / TARGET_MS, 3),
        "sfr_robust_vs_iso12233": round(sfr_ms / iso_ms, 3),
        "esf_binning_python_loop_ms": round(py_ms, 2),
        "esf_binning_bincount_ms": round(bc_ms, 3),
        "binning_speedup_bincount_vs_loop": round(py_ms / bc_ms, 1),
        "sfr_vs_python_binning_alone": round(sfr_ms / py_ms, 4),
        "mtf50_rel_error_pct": round(100 * err, 3),
        "mtf50_rel_error_iso12233_pct": round(100 * iso_err, 3),
        "chart_12mp_find_rois_ms": round(find_ms, 1),
        "chart_12mp_rois": len(rois),
        "chart_12mp_roi_side_px": rois[0].w if rois else 0,
        "chart_12mp_measure_all_rois_ms": round(measure_ms, 1),
    }
