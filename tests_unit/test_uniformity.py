"""Relative illumination, colour shading and grid deviation against an analytic vignetting model.

Each channel falls off as 1 - a_c r^2 (r = distance from the centre / half-width), so the
corner/centre ratio of box means has the closed form (1 - a (r_c^2 + v)) / (1 - a v), v being
the variance term (w^2 - 1) / 12 of a w-pixel box, per axis. Grid truths are block means of the
noise-free model computed with a numpy reshape (an independent path from cv2.resize). Noise:
8 frames with 3 DN temporal noise on ~2000 DN, so tolerances of 0.3 % hold by a wide margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator
from harness.analysis.uniformity import UniformityOptions, measure_uniformity
from harness.errors import ConfigError

H, W = 216, 288  # channel planes 108 x 144: divisible into the 9 x 12 grid
FALLOFF = {"R": 0.40, "G": 0.30, "B": 0.20}
SITES = {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}  # RGGB


def model(cfa: bool) -> np.ndarray:
    """Noise-free dark-subtracted flat (full frame)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r2 = ((xx - (W - 1) / 2) ** 2 + (yy - (H - 1) / 2) ** 2) / ((W - 1) / 2) ** 2
    if not cfa:
        return 2000.0 * (1 - FALLOFF["G"] * r2)
    out = np.empty((H, W))
    for site, (r0, c0) in SITES.items():
        a = FALLOFF[site[0] if site in ("R", "B") else "G"]
        level = {"R": 1200.0, "Gr": 2000.0, "Gb": 2000.0, "B": 1500.0}[site]
        out[r0::2, c0::2] = (level * (1 - a * r2))[r0::2, c0::2]
    return out


def mean_stack(image: np.ndarray, frames: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc = StackAccumulator()
    for _ in range(frames):
        acc.add(np.rint(image + rng.normal(0, 3, image.shape)).astype(np.uint16))
    return acc.stats().mean_img


def block_means(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    h, w = img.shape
    return img.reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))


def test_mono_relative_illumination_matches_closed_form() -> None:
    offset = 64.0
    flat = mean_stack(model(False) + offset)
    dark = mean_stack(np.full((H, W), offset), seed=1)
    res = measure_uniformity(flat, dark_mean=dark)
    ch = res.channels["Y"]
    a = FALLOFF["G"]
    wr, wc = round(0.05 * H), round(0.05 * W)
    half = (W - 1) / 2
    v = ((wr**2 - 1) / 12 + (wc**2 - 1) / 12) / half**2
    dy, dx = (H - wr) / 2, (W - wc) / 2  # corner box centre to image centre
    truth = (1 - a * ((dx**2 + dy**2) / half**2 + v)) / (1 - a * v)
    for corner in ch.relative_illumination.values():
        assert corner == pytest.approx(truth, rel=0.003)
    assert res.relative_illumination_min == pytest.approx(truth, rel=0.003)
    grid = block_means(model(False), 9, 12)
    centre = grid[4, 5:7].mean()
    assert ch.grid_max_deviation_pct == pytest.approx(100 * np.max(np.abs(grid / centre - 1)),
                                                      abs=0.1)
    assert res.colour_shading_max_pct == {}


def test_colour_shading_and_per_channel_ri() -> None:
    flat = mean_stack(model(True) + 64.0)
    dark = np.full((H, W), 64.0)
    res = measure_uniformity(flat, dark_mean=dark, cfa="RGGB")
    ri = {name: ch.relative_illumination_min for name, ch in res.channels.items()}
    assert ri["R"] < ri["G"] < ri["B"]  # stronger falloff, darker corners
    clean = model(True)
    planes = {s: clean[r0::2, c0::2] for s, (r0, c0) in SITES.items()}
    g = block_means(0.5 * (planes["Gr"] + planes["Gb"]), 9, 12)
    for num in ("R", "B"):
        ratio = block_means(planes[num], 9, 12) / g
        ratio /= ratio[4, 5:7].mean()
        truth = 100 * np.max(np.abs(ratio - 1))
        assert truth > 3  # shading is visible
        assert res.colour_shading_max_pct[f"{num}/G"] == pytest.approx(truth, abs=0.1)
    payload = res.as_dict()
    assert set(payload["ratio_grids"]) == {"R/G", "B/G"}
    assert len(payload["channels"]["G"]["grid"]) == 9


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ConfigError, match="window_frac"):
        UniformityOptions(window_frac=0.0)
    with pytest.raises(ConfigError, match="too small"):
        measure_uniformity(np.ones((10, 10)))
    with pytest.raises(ConfigError, match="no signal"):
        measure_uniformity(np.zeros((H, W)))
    with pytest.raises(ConfigError, match="shape"):
        measure_uniformity(np.ones((H, W)), dark_mean=np.ones((H, W + 1)))
