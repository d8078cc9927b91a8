"""Find a ColorChecker 24 in an image (or place it from given corners) and sample its patches.

Detection (our own, OpenCV; faster than colour-checker-detection's segmentation, which resizes
to 1440 px and takes ~1.6 s, docs/standards.md#colorchecker-detection):

1. Work on a copy whose longest side is at most ``DETECT_MAX_SIDE`` px, gamma-compressed
   (x^(1/2.2) after scaling the 99.5th percentile to 1) so dark swatches still have edges.
2. Canny edges on each channel, OR-ed and dilated; the connected regions between edges are
   candidate swatches. Keep square-ish ones (minimum-area rectangle aspect 0.7-1.4, fill > 0.75)
   and, of those, the largest group of similar size (+-25 %).
3. Rotate the centres by the median swatch angle, take the pitch from nearest neighbours,
   quantise to integer (column, row) cells and fit a homography cell -> image (least squares).
4. The grid found may miss swatches that do not stand out from the black chart body (black 2),
   so every placement of the found cells inside a 6 x 4 (or 4 x 6) grid and each of the two
   in-plane rotations is a hypothesis; the one whose sampled colours are best explained by a
   3x3 linear map to the reference colours wins. This also fixes the patch order.

Given corners: the centres of the four corner patches, clockwise from dark skin: dark skin
(1), bluish green (6), black 2 (24), white 9.5 (19), in image pixels.

Sampling: an axis-aligned square of side ``fraction`` x pitch around each centre (inside the
swatch, whose side is ~0.8 pitch, for any rotation); per channel the 10 %-trimmed mean, and the
noise as the standard deviation of the trimmed values divided by 0.6616 (the standard deviation of
a normal distribution truncated to its central 80 %, so the estimate is unbiased for Gaussian
noise yet ignores dust and defects).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError

FloatArray = NDArray[np.float64]
COLS, ROWS = 6, 4
DETECT_MAX_SIDE = 1000
#: Standard deviation of a unit normal truncated to its central 80 % (for the trimmed noise).
TRIMMED_SD_80 = 0.6616
#: Cells of the corner patches in reference order: dark skin, bluish green, black, white.
CORNER_CELLS = np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 3.0], [0.0, 3.0]])


@dataclass(frozen=True)
class CheckerLocation:
    """Where the 24 patches are: centres (x, y) in reference order, pitch in pixels."""

    centres_px: FloatArray
    pitch_px: float
    homography: FloatArray  # (column, row) cell -> image pixels
    method: str  # "detected" | "corners"
    swatches_found: int = 0


@dataclass(frozen=True)
class PatchSamples:
    """Trimmed mean, noise (robust sigma) and pixel count of each patch, per channel."""

    mean: FloatArray  # 24 x C
    noise: FloatArray  # 24 x C
    max_value: FloatArray  # 24 x C, for clipping checks
    pixels: int


def _project(h: FloatArray, cells: FloatArray) -> FloatArray:
    pts = cv2.perspectiveTransform(cells.reshape(-1, 1, 2).astype(np.float64), h)
    return np.asarray(pts.reshape(-1, 2), dtype=np.float64)


def _all_cells() -> FloatArray:
    return np.array([[c, r] for r in range(ROWS) for c in range(COLS)], dtype=np.float64)


def location_from_homography(h: FloatArray, method: str, found: int = 0) -> CheckerLocation:
    centres = _project(h, _all_cells())
    grid = centres.reshape(ROWS, COLS, 2)
    pitch = float(np.median(np.concatenate([
        np.linalg.norm(np.diff(grid, axis=1), axis=-1).ravel(),
        np.linalg.norm(np.diff(grid, axis=0), axis=-1).ravel(),
    ])))
    return CheckerLocation(centres, pitch, h, method, found)


def checker_from_corners(corners: Sequence[float] | FloatArray,
                         shape: tuple[int, ...] | None = None) -> CheckerLocation:
    """Place the chart from the centres of its corner patches (see the module docstring)."""
    pts = np.asarray(corners, dtype=np.float64).reshape(-1)
    if pts.size != 8:
        raise ConfigError(f"expected 8 numbers (4 x,y patch centres), got {pts.size}",
                          field="corners")
    quad = pts.reshape(4, 2)
    if shape is not None:
        h, w = shape[:2]
        if np.any(quad < 0) or np.any(quad[:, 0] >= w) or np.any(quad[:, 1] >= h):
            raise ConfigError(f"corner points must lie inside the {w}x{h} image",
                              field="corners")
    hom = cv2.getPerspectiveTransform(CORNER_CELLS.astype(np.float32), quad.astype(np.float32))
    loc = location_from_homography(np.asarray(hom, dtype=np.float64), "corners")
    if loc.pitch_px < 4:
        raise ConfigError("corner points too close together (patch pitch < 4 px)",
                          field="corners")
    return loc


def _region_bounds(centre: FloatArray, half: float, shape: tuple[int, ...]) -> tuple[
        int, int, int, int]:
    h, w = shape[:2]
    x0, x1 = round(float(centre[0]) - half), round(float(centre[0]) + half) + 1
    y0, y1 = round(float(centre[1]) - half), round(float(centre[1]) + half) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise ConfigError(f"patch at ({centre[0]:.0f}, {centre[1]:.0f}) lies outside the "
                          f"{w}x{h} image", field="chart")
    return x0, x1, y0, y1


def sample_patches(rgb: NDArray[Any], loc: CheckerLocation, *, fraction: float = 0.5,
                   trim: float = 0.1) -> PatchSamples:
    """Robust per-patch statistics (see the module docstring)."""
    img = np.asarray(rgb)
    if img.ndim == 2:
        img = img[..., None]
    half = max(1.0, fraction * loc.pitch_px / 2)
    nch = img.shape[2]
    mean = np.empty((24, nch))
    noise = np.empty((24, nch))
    vmax = np.empty((24, nch))
    npix = 0
    for i, c in enumerate(loc.centres_px):
        x0, x1, y0, y1 = _region_bounds(c, half, img.shape)
        block = img[y0:y1, x0:x1].reshape(-1, nch).astype(np.float64)
        n = block.shape[0]
        npix = n
        k = int(np.floor(trim * n))
        part = np.partition(block, (k, n - 1 - k), axis=0) if k > 0 else np.sort(block, axis=0)
        kept = part[k : n - k] if k > 0 else part
        mean[i] = kept.mean(axis=0)
        sd = kept.std(axis=0, ddof=1) if kept.shape[0] > 1 else np.zeros(nch)
        noise[i] = sd / TRIMMED_SD_80 if k > 0 else sd
        vmax[i] = part[-1]
    return PatchSamples(mean, noise, vmax, npix)


# --------------------------------------------------------------------------- detection


def _candidates(work: FloatArray) -> list[tuple[float, float, float, float]]:
    """(cx, cy, side, angle_deg) of square-ish flat regions bounded by edges."""
    scale = float(np.percentile(work, 99.5)) or 1.0
    enc = np.clip(work / scale, 0, 1) ** (1 / 2.2)
    img8 = np.asarray(cv2.GaussianBlur((enc * 255).astype(np.uint8), (0, 0), 2.0), np.uint8)
    edges: NDArray[np.uint8] = np.zeros(img8.shape[:2], dtype=np.uint8)
    for ch in range(img8.shape[2]):
        plane = img8[..., ch]
        # Canny thresholds above the noise: the median Sobel magnitude is set by flat areas.
        gmag = np.abs(cv2.Sobel(plane, cv2.CV_16S, 1, 0)) + np.abs(cv2.Sobel(plane, cv2.CV_16S,
                                                                                0, 1))
        low = max(10.0, 4.0 * float(np.median(gmag)))
        edges |= np.asarray(cv2.Canny(plane, low, 3 * low), dtype=np.uint8)
    edges = np.asarray(cv2.dilate(edges, np.ones((3, 3), np.uint8)), dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (edges == 0).astype(np.uint8), connectivity=4)
    h, w = edges.shape[:2]
    min_area = (0.01 * min(h, w)) ** 2 * 4
    max_area = h * w / 30
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if not (min_area <= area <= max_area) or x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        if not 0.6 <= bw / bh <= 1.6:
            continue
        mask = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        (cx, cy), (rw, rh), ang = cv2.minAreaRect(max(contours, key=cv2.contourArea))
        if rw <= 0 or rh <= 0 or not 0.7 <= rw / rh <= 1.4 or area / (rw * rh) < 0.75:
            continue
        out.append((cx + x, cy + y, float(np.sqrt(area)), ((ang + 45.0) % 90.0) - 45.0))
    return out


def _grid_cells(cands: list[tuple[float, float, float, float]]) -> tuple[FloatArray, FloatArray]:
    """Integer (column, row) cells and image centres of the swatches that form one grid."""
    if len(cands) < 6:
        raise ConfigError(f"no ColorChecker found (only {len(cands)} swatch-like squares); "
                          "place it from its corner patches (corners)", field="image")
    sides = np.array([c[2] for c in cands])
    counts = [(np.abs(sides / s - 1) < 0.25).sum() for s in sides]
    ref = sides[int(np.argmax(counts))]
    keep = [c for c in cands if abs(c[2] / ref - 1) < 0.25]
    if len(keep) < 6:
        raise ConfigError(f"no ColorChecker found (only {len(keep)} swatch-like squares of one "
                          "size); place it from its corner patches (corners)", field="image")
    pts = np.array([(c[0], c[1]) for c in keep])
    theta = np.radians(float(np.median([c[3] for c in keep])))
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    uv = pts @ rot.T
    d = np.linalg.norm(uv[:, None, :] - uv[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    pitch = float(np.median(d.min(axis=1)))
    origin = uv[int(np.argmin(np.linalg.norm(uv - np.median(uv, axis=0), axis=1)))]
    q = (uv - origin) / pitch
    cells = np.round(q)
    ok = np.all(np.abs(q - cells) < 0.25, axis=1)
    cells, pts = cells[ok], pts[ok]
    _, first = np.unique(cells, axis=0, return_index=True)  # one swatch per cell
    cells, pts = cells[np.sort(first)], pts[np.sort(first)]
    return cells - cells.min(axis=0), pts


def _hypotheses(cells: FloatArray) -> list[FloatArray]:
    """Every mapping of the found cells to reference (column, row) cells."""
    span = cells.max(axis=0) + 1
    out = []
    for cols, rows, turn in ((COLS, ROWS, False), (ROWS, COLS, True)):
        if span[0] > cols or span[1] > rows:
            continue
        for dx in range(int(cols - span[0]) + 1):
            for dy in range(int(rows - span[1]) + 1):
                c = cells + np.array([dx, dy])
                for flip in (False, True):
                    cc = np.array([cols - 1, rows - 1]) - c if flip else c
                    # portrait grids: image (col, row) -> reference (row, col) and mirror
                    ref = np.column_stack([cc[:, 1], ROWS - 1 - cc[:, 0]]) if turn else cc
                    out.append(ref)
    return out


def find_colour_checker(
    rgb: NDArray[Any],
    score: Callable[[FloatArray], float],
) -> CheckerLocation:
    """Locate a ColorChecker 24 in linear RGB (H x W x 3); ``score(patch_means_24x3)`` ranks the
    placement hypotheses (lower is better; :mod:`harness.analysis.colour` passes the residual of
    a 3x3 fit to the reference colours)."""
    img = np.asarray(rgb, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"ColorChecker detection needs an RGB image, got shape {img.shape}",
                          field="image")
    h, w = img.shape[:2]
    s = max(1.0, max(h, w) / DETECT_MAX_SIDE)
    work = (cv2.resize(img, (round(w / s), round(h / s)), interpolation=cv2.INTER_AREA)
            if s > 1 else img)
    cands = _candidates(work.astype(np.float64))
    cells, pts = _grid_cells(cands)
    if len(cells) < 6:
        raise ConfigError(f"no ColorChecker grid found ({len(cells)} swatches in a grid); "
                          "place it from its corner patches (corners)", field="image")
    best: tuple[float, FloatArray] | None = None
    for ref_cells in _hypotheses(cells):
        hom, _ = cv2.findHomography(ref_cells.astype(np.float64), pts * s, 0)
        if hom is None:
            continue
        loc = location_from_homography(np.asarray(hom, dtype=np.float64), "detected", len(cells))
        try:
            samples = sample_patches(work, CheckerLocation(
                loc.centres_px / s, loc.pitch_px / s, loc.homography, "detected"), fraction=0.3,
                trim=0.0)
        except ConfigError:
            continue
        sc = score(samples.mean)
        if best is None or sc < best[0]:
            best = (sc, np.asarray(hom, dtype=np.float64))
    if best is None:
        raise ConfigError(f"found {len(cells)} swatches but they do not fit a 6x4 ColorChecker "
                          "inside the image; place it from its corner patches (corners)",
                          field="image")
    return location_from_homography(best[1], "detected", len(cells))


__all__ = ["CORNER_CELLS", "DETECT_MAX_SIDE", "TRIMMED_SD_80", "CheckerLocation", "FloatArray",
           "PatchSamples", "checker_from_corners", "find_colour_checker",
           "location_from_homography", "sample_patches"]
