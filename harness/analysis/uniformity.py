"""Flat-field uniformity: relative illumination, colour shading and grid deviation.

* Relative illumination (RI, lens shading): per channel, mean of a corner window of a
  smoothed flat divided by the mean of the centre window (the corner/centre figure of
  camera-module specifications; ISO 17957 covers shading measurement of digital cameras).
* Colour shading: channel-ratio maps R/G and B/G on a grid of block means, each normalised to
  its centre block; the figure is the largest deviation from 1 (a colour cast towards the
  corners that white balance at the centre cannot remove).
* Grid deviation: per channel, block means on a ``grid_rows`` x ``grid_cols`` grid; the
  largest deviation from the centre block and (max - min) / max over the grid.

The flat is a mean image (a stack reduced by :mod:`harness.analysis.accumulators`); pass the
dark mean too so the offset does not dilute shading. Channels are taken from the Bayer planes
(R, G = mean of Gr and Gb, B); a mono sensor has one channel "Y". Block means are computed with
``cv2.resize(INTER_AREA)``, which averages whole blocks; the corner and centre windows are the
mean of a ``window_frac`` sized box, smoothing the flat as a mean filter would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harness.analysis.defects import bayer_planes
from harness.errors import ConfigError

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


@dataclass(frozen=True)
class UniformityOptions:
    """``window_frac``: corner/centre window side as a fraction of the channel image side;
    ``grid_rows`` x ``grid_cols``: blocks of the deviation and colour-shading maps."""

    window_frac: float = 0.05
    grid_rows: int = 9
    grid_cols: int = 12

    def __post_init__(self) -> None:
        if not 0 < self.window_frac <= 0.5:
            raise ConfigError(f"{self.window_frac} outside (0, 0.5]", field="window_frac")
        if self.grid_rows < 3 or self.grid_cols < 3:
            raise ConfigError("grid needs at least 3 x 3 blocks", field="grid_rows")


@dataclass(frozen=True)
class ChannelUniformity:
    """One channel: relative illumination per corner (fraction), grid deviation (%)."""

    centre_dn: float
    relative_illumination: Mapping[str, float]
    relative_illumination_min: float
    grid_max_deviation_pct: float
    grid_range_pct: float
    grid: tuple[tuple[float, ...], ...] = field(repr=False)


@dataclass(frozen=True)
class UniformityResult:
    """Per-channel shading and the colour-shading ratios (R/G, B/G) of a flat field."""

    channels: Mapping[str, ChannelUniformity]
    colour_shading_max_pct: Mapping[str, float]
    ratio_grids: Mapping[str, tuple[tuple[float, ...], ...]] = field(repr=False)

    @property
    def relative_illumination_min(self) -> float:
        return min(c.relative_illumination_min for c in self.channels.values())

    @property
    def grid_max_deviation_pct(self) -> float:
        return max(c.grid_max_deviation_pct for c in self.channels.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "relative_illumination_min": self.relative_illumination_min,
            "grid_max_deviation_pct": self.grid_max_deviation_pct,
            "colour_shading_max_pct": dict(self.colour_shading_max_pct),
            "channels": {
                name: {
                    "centre_dn": c.centre_dn,
                    "relative_illumination": dict(c.relative_illumination),
                    "relative_illumination_min": c.relative_illumination_min,
                    "grid_max_deviation_pct": c.grid_max_deviation_pct,
                    "grid_range_pct": c.grid_range_pct,
                    "grid": [list(row) for row in c.grid],
                } for name, c in self.channels.items()},
            "ratio_grids": {k: [list(row) for row in v] for k, v in self.ratio_grids.items()},
        }


def channel_images(flat: np.ndarray, cfa: str | None) -> dict[str, np.ndarray]:
    """Split a (dark-subtracted) mean image into channels: R, G, B or Y (float32)."""
    planes = {name: np.ascontiguousarray(flat[r0::s, c0::s], dtype=np.float32)
              for name, r0, c0, s in bayer_planes(cfa)}
    if cfa is None:
        return planes
    h = min(p.shape[0] for p in planes.values())
    w = min(p.shape[1] for p in planes.values())
    planes = {k: v[:h, :w] for k, v in planes.items()}
    return {"R": planes["R"], "G": 0.5 * (planes["Gr"] + planes["Gb"]), "B": planes["B"]}


def _box_mean(img: np.ndarray, top: int, left: int, size_r: int, size_c: int) -> float:
    return float(img[top:top + size_r, left:left + size_c].mean())


def _grid(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return cv2.resize(img, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float64)


def _centre_block(grid: np.ndarray) -> float:
    rows, cols = grid.shape
    rs = slice((rows - 1) // 2, rows // 2 + 1)
    cs = slice((cols - 1) // 2, cols // 2 + 1)
    return float(grid[rs, cs].mean())


def measure_uniformity(flat_mean: np.ndarray, *, dark_mean: np.ndarray | None = None,
                       cfa: str | None = None,
                       options: UniformityOptions | None = None) -> UniformityResult:
    """Relative illumination, colour shading and grid deviation of a flat field."""
    opt = options or UniformityOptions()
    if flat_mean.ndim != 2:
        raise ConfigError(f"flat must be a 2-D image, got shape {flat_mean.shape}")
    flat = flat_mean.astype(np.float64)
    if dark_mean is not None:
        if dark_mean.shape != flat_mean.shape:
            raise ConfigError("dark and flat differ in shape")
        flat = flat - dark_mean
    channels = channel_images(flat, cfa)
    some = next(iter(channels.values()))
    if some.shape[0] < 2 * opt.grid_rows or some.shape[1] < 2 * opt.grid_cols:
        raise ConfigError(f"channel image {some.shape[1]}x{some.shape[0]} is too small for a "
                          f"{opt.grid_cols}x{opt.grid_rows} grid")
    results: dict[str, ChannelUniformity] = {}
    grids: dict[str, np.ndarray] = {}
    for name, img in channels.items():
        h, w = img.shape
        sr, sc = max(1, round(opt.window_frac * h)), max(1, round(opt.window_frac * w))
        centre = _box_mean(img, (h - sr) // 2, (w - sc) // 2, sr, sc)
        if not centre > 0:
            raise ConfigError(f"channel {name}: the flat has no signal at the centre")
        corners = {
            "top_left": _box_mean(img, 0, 0, sr, sc),
            "top_right": _box_mean(img, 0, w - sc, sr, sc),
            "bottom_left": _box_mean(img, h - sr, 0, sr, sc),
            "bottom_right": _box_mean(img, h - sr, w - sc, sr, sc),
        }
        ri = {k: v / centre for k, v in corners.items()}
        grid = _grid(img, opt.grid_rows, opt.grid_cols)
        grids[name] = grid
        ref = _centre_block(grid)
        results[name] = ChannelUniformity(
            centre_dn=centre,
            relative_illumination=ri,
            relative_illumination_min=min(ri.values()),
            grid_max_deviation_pct=float(100.0 * np.max(np.abs(grid / ref - 1.0))),
            grid_range_pct=float(100.0 * (grid.max() - grid.min()) / grid.max()),
            grid=tuple(tuple(float(v) for v in row) for row in grid),
        )
    ratios: dict[str, tuple[tuple[float, ...], ...]] = {}
    shading: dict[str, float] = {}
    if cfa is not None:
        for num in ("R", "B"):
            ratio = grids[num] / grids["G"]
            ratio = ratio / _centre_block(ratio)
            key = f"{num}/G"
            ratios[key] = tuple(tuple(float(v) for v in row) for row in ratio)
            shading[key] = float(100.0 * np.max(np.abs(ratio - 1.0)))
    return UniformityResult(results, shading, ratios)


__all__ = ["CORNERS", "ChannelUniformity", "UniformityOptions", "UniformityResult",
           "channel_images", "measure_uniformity"]
