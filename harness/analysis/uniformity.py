"""Flat-field uniformity: relative illumination, colour shading and grid deviation.

* Relative illumination (RI, lens shading): per channel, mean of a corner window of a
  smoothed flat divided by the mean of the centre window (the corner/centre figure of
  camera-module specifications; ISO 17957 covers shading measurement of digital cameras).
* Colour shading: channel-ratio maps R/G and B/G on a grid of block means, each normalised to
  its centre block; the figure is the largest deviation from 1 (a colour cast towards the
  corners that white balance at the centre cannot remove).
* Grid deviation: per channel, block means on a ``grid_rows`` x ``grid_cols`` grid; the
  largest deviation from the centre block and (max - min) / max over the grid.
* ISO 17957 shading grid (:class:`ShadingGrid`): the frame tiled into ``iso_grid_rows`` x
  ``iso_grid_cols`` cells (11 x 11 by default, the grid Imatest's ISO 17957 implementation
  uses; odd, so one cell is the centre). Per cell, luminance shading
  L = 100 Σ_c w_c C_cell / C_centre (% of the centre cell; the channels white-balanced on the
  centre cell, w = Rec. 709 / sRGB luminance weights 0.2126, 0.7152, 0.0722; a mono sensor's
  Y alone) and colour shading 100 ((C/G)_cell / (C/G)_centre - 1) for C = R, B (% deviation
  of the channel ratio from the centre cell's). ISO 17957 defines its figures on rendered
  (sRGB) images; here they are taken on the linear, dark-subtracted raw channels, so a
  figure is a ratio of linear signals (docs/standards.md#iso-17957-shading).

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
#: Rec. 709 / sRGB luminance weights of R, G, B (IEC 61966-2-1), for the ISO grid's luminance.
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


@dataclass(frozen=True)
class UniformityOptions:
    """``window_frac``: corner/centre window side as a fraction of the channel image side;
    ``grid_rows`` x ``grid_cols``: blocks of the deviation and colour-shading maps;
    ``iso_grid_rows`` x ``iso_grid_cols``: cells of the ISO 17957 shading grid (odd)."""

    window_frac: float = 0.05
    grid_rows: int = 9
    grid_cols: int = 12
    iso_grid_rows: int = 11
    iso_grid_cols: int = 11

    def __post_init__(self) -> None:
        if not 0 < self.window_frac <= 0.5:
            raise ConfigError(f"{self.window_frac} outside (0, 0.5]", field="window_frac")
        if self.grid_rows < 3 or self.grid_cols < 3:
            raise ConfigError("grid needs at least 3 x 3 blocks", field="grid_rows")
        for name in ("iso_grid_rows", "iso_grid_cols"):
            n = getattr(self, name)
            if n < 3 or n % 2 == 0:
                raise ConfigError(f"{n}: the ISO grid needs an odd number of cells, at least 3 "
                                  "(a single centre cell)", field=name)


@dataclass(frozen=True)
class ChannelUniformity:
    """One channel: relative illumination per corner (fraction), grid deviation (%)."""

    centre_dn: float
    relative_illumination: Mapping[str, float]
    relative_illumination_min: float
    grid_max_deviation_pct: float
    grid_range_pct: float
    grid: tuple[tuple[float, ...], ...] = field(repr=False)


Grid = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class ShadingGrid:
    """ISO 17957 shading grid (module docstring): per cell, ``luminance_pct`` (% of the centre
    cell) and ``colour_deviation_pct`` ("R/G", "B/G": % deviation of the ratio from the
    centre cell's; empty for a mono sensor). Cells are [row][column], row 0 at the top."""

    rows: int
    cols: int
    luminance_pct: Grid = field(repr=False)
    colour_deviation_pct: Mapping[str, Grid] = field(repr=False)

    @property
    def luminance_min_pct(self) -> float:
        return min(min(row) for row in self.luminance_pct)

    @property
    def luminance_max_pct(self) -> float:
        return max(max(row) for row in self.luminance_pct)

    @property
    def colour_deviation_max_pct(self) -> dict[str, float]:
        """Largest |deviation| per ratio over the cells."""
        return {k: max(abs(v) for row in g for v in row)
                for k, g in self.colour_deviation_pct.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "cols": self.cols,
            "luminance_min_pct": self.luminance_min_pct,
            "luminance_max_pct": self.luminance_max_pct,
            "colour_deviation_max_pct": self.colour_deviation_max_pct,
            "luminance_pct": [list(row) for row in self.luminance_pct],
            "colour_deviation_pct": {k: [list(row) for row in g]
                                     for k, g in self.colour_deviation_pct.items()},
        }


@dataclass(frozen=True)
class UniformityResult:
    """Per-channel shading and the colour-shading ratios (R/G, B/G) of a flat field, and the
    ISO 17957 shading grid."""

    channels: Mapping[str, ChannelUniformity]
    colour_shading_max_pct: Mapping[str, float]
    ratio_grids: Mapping[str, tuple[tuple[float, ...], ...]] = field(repr=False)
    iso_grid: ShadingGrid | None = field(default=None, repr=False)

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
            "iso17957_grid": None if self.iso_grid is None else self.iso_grid.as_dict(),
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


def _as_grid(values: np.ndarray) -> Grid:
    return tuple(tuple(float(v) for v in row) for row in values)


def shading_grid(channels: Mapping[str, np.ndarray], rows: int = 11,
                 cols: int = 11) -> ShadingGrid:
    """ISO 17957 shading grid of dark-subtracted channel images ({"R", "G", "B"} or {"Y"};
    see the module docstring for the formulas). Cell means are ``cv2.resize(INTER_AREA)``
    area averages, exact also when the image does not divide into whole cells."""
    if rows < 3 or cols < 3 or rows % 2 == 0 or cols % 2 == 0:
        raise ConfigError(f"{rows}x{cols}: the ISO grid needs odd sides of at least 3 cells",
                          field="iso_grid_rows")
    cells = {k: _grid(v, rows, cols) for k, v in channels.items()}
    cr, cc = rows // 2, cols // 2
    for name, grid in cells.items():
        if not grid[cr, cc] > 0:
            raise ConfigError(f"channel {name}: the flat has no signal in the centre cell")
    if set(cells) == {"Y"}:
        return ShadingGrid(rows, cols, _as_grid(100.0 * cells["Y"] / cells["Y"][cr, cc]), {})
    if set(cells) != {"R", "G", "B"}:
        raise ConfigError(f"channels {sorted(cells)}: expected R, G, B or Y", field="channels")
    rel = {k: g / g[cr, cc] for k, g in cells.items()}
    lum = sum(w * rel[k] for k, w in zip("RGB", LUMA_WEIGHTS, strict=True))
    colour = {f"{k}/G": _as_grid(100.0 * (rel[k] / rel["G"] - 1.0)) for k in ("R", "B")}
    return ShadingGrid(rows, cols, _as_grid(100.0 * np.asarray(lum)), colour)


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
    for rows, cols in ((opt.grid_rows, opt.grid_cols), (opt.iso_grid_rows, opt.iso_grid_cols)):
        if some.shape[0] < 2 * rows or some.shape[1] < 2 * cols:
            raise ConfigError(f"channel image {some.shape[1]}x{some.shape[0]} is too small for "
                              f"a {cols}x{rows} grid")
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
    iso = shading_grid(channels, opt.iso_grid_rows, opt.iso_grid_cols)
    return UniformityResult(results, shading, ratios, iso)


__all__ = ["CORNERS", "LUMA_WEIGHTS", "ChannelUniformity", "Grid", "ShadingGrid",
           "UniformityOptions", "UniformityResult", "channel_images", "measure_uniformity",
           "shading_grid"]
