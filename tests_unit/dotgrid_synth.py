"""Dot-grid chart images through a lens of known radial distortion (tests, bench, simulator).

Pure numpy + OpenCV, so the simulator can render the same chart.

Chart (the ``dots`` chart, docs/standards.md#dot-grid-distortion-chart): a square grid of round
dots, pitch ``PITCH_H`` = 0.05 of the image height H, dot diameter ``DIAMETER_H`` = 0.015 H
(0.3 pitch); dark dots (reflectance ``DARK`` 0.10) on a light ground (``LIGHT`` 0.80), or the
reverse; the grid is laid out so that, without lens distortion, one dot sits at the image centre
and the grid fills the whole frame.

Coordinates: x right, y down, in pixels with the centre of the top-left pixel at (0, 0) (OpenCV's
convention), so the image centre is ((W - 1) / 2, (H - 1) / 2). Rotation is counter-clockwise as
displayed (from the x axis towards -y), as in :mod:`harness.sim.scene`.

Lens model (the one :mod:`harness.analysis.distortion` fits): a point of the ideal (undistorted)
image at q from the distortion centre c, with r = |q| / R (R = the half-diagonal
0.5 * hypot(W, H)), is imaged at c + q (1 + k1 r^2 + k2 r^4). The ideal grid is
q(i, j) = t + s * (i cos(a) + j sin(a), -i sin(a) + j cos(a)) with pitch s, rotation a and t the
ideal position of dot (0, 0) relative to c. So the radial distortion at the ideal radius r is
exactly D(r) = 100 (k1 r^2 + k2 r^4) % (``truth_distortion_pct``).

Rendering: every pixel centre is mapped back to the ideal image (the radius inverted through a
dense table of the monotonic r_u -> r_d curve), the distance to the nearest dot centre gives the
dot's coverage with a one-pixel linear ramp across its rim (scaled by the local magnification),
then optional vignetting (relative illumination falling as 1 - (1 - corner_ri) rho^2 with rho the
distance from the image centre over R), a Gaussian blur of ``blur_sigma`` px (cv2.GaussianBlur)
and Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

PITCH_H = 0.05
DIAMETER_H = 0.015
LIGHT, DARK = 0.80, 0.10


@dataclass(frozen=True)
class DotLens:
    """Known distortion of a rendered chart.

    ``centre_offset_px``: distortion centre minus image centre (x, y); ``grid_offset_px``: where
    dot (0, 0) would be imaged without distortion, relative to the image centre.
    """

    k1: float = 0.0
    k2: float = 0.0
    rotation_deg: float = 0.0
    centre_offset_px: tuple[float, float] = (0.0, 0.0)
    grid_offset_px: tuple[float, float] = (0.0, 0.0)


def half_diagonal(shape: tuple[int, int]) -> float:
    return 0.5 * math.hypot(shape[0], shape[1])


def image_centre(shape: tuple[int, int]) -> tuple[float, float]:
    return (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0


def distortion_centre(shape: tuple[int, int], lens: DotLens) -> tuple[float, float]:
    cx, cy = image_centre(shape)
    return cx + lens.centre_offset_px[0], cy + lens.centre_offset_px[1]


def truth_distortion_pct(lens: DotLens, r: float) -> float:
    """D(r) = 100 (k1 r^2 + k2 r^4): the relative radial displacement at ideal radius r."""
    return 100.0 * (lens.k1 * r * r + lens.k2 * r**4)


def dot_positions(shape: tuple[int, int], lens: DotLens, ij: FloatArray,
                  pitch_h: float = PITCH_H) -> FloatArray:
    """Image position (x, y) of the centre of dots ``ij`` (N x 2 of column i, row j)."""
    s = pitch_h * shape[0]
    a = math.radians(lens.rotation_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = distortion_centre(shape, lens)
    icx, icy = image_centre(shape)
    tx = icx + lens.grid_offset_px[0] - cx
    ty = icy + lens.grid_offset_px[1] - cy
    i, j = ij[:, 0].astype(np.float64), ij[:, 1].astype(np.float64)
    qx = tx + s * (i * ca + j * sa)
    qy = ty + s * (-i * sa + j * ca)
    r2 = (qx * qx + qy * qy) / half_diagonal(shape) ** 2
    g = 1.0 + lens.k1 * r2 + lens.k2 * r2 * r2
    return np.stack([cx + qx * g, cy + qy * g], axis=1)


def _radius_table(lens: DotLens, r_needed: float) -> tuple[FloatArray, FloatArray]:
    ru = np.linspace(0.0, 2.0, 20001)
    rd = ru * (1.0 + lens.k1 * ru**2 + lens.k2 * ru**4)
    rising = np.diff(rd) > 0
    n = int(np.argmin(rising)) if not rising.all() else rd.size - 1
    if rd[n] < r_needed:
        raise ValueError(f"k1={lens.k1}, k2={lens.k2}: r_d is not monotonic up to {r_needed:.3f}")
    return rd[: n + 1], ru[: n + 1]


def render_dot_grid(shape: tuple[int, int], lens: DotLens, *, pitch_h: float = PITCH_H,
                    diameter_h: float = DIAMETER_H, blur_sigma: float = 1.0,
                    noise_sigma: float = 0.0, corner_ri: float = 1.0, dark_dots: bool = True,
                    rng: np.random.Generator | None = None) -> NDArray[np.float32]:
    """The chart through ``lens``: float32 image of ``shape`` (H, W), values ~0..0.8."""
    h, w = shape
    big_r = half_diagonal(shape)
    s = pitch_h * h
    rad = 0.5 * diameter_h * h
    a = math.radians(lens.rotation_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = distortion_centre(shape, lens)
    icx, icy = image_centre(shape)
    tx, ty = icx + lens.grid_offset_px[0] - cx, icy + lens.grid_offset_px[1] - cy
    far = max(math.hypot(x - cx, y - cy) for x in (0, w - 1) for y in (0, h - 1)) / big_r
    rd_tab, ru_tab = _radius_table(lens, far + 0.01)
    ground, dot = (LIGHT, DARK) if dark_dots else (DARK, LIGHT)
    out = np.empty(shape, np.float32)
    xs = np.arange(w, dtype=np.float64)[None, :]
    for r0 in range(0, h, 256):
        ys = np.arange(r0, min(h, r0 + 256), dtype=np.float64)[:, None]
        dx, dy = xs - cx, ys - cy
        rd = np.hypot(dx, dy) / big_r
        ru = np.interp(rd, rd_tab, ru_tab)
        mag = np.where(rd > 0, rd / np.where(ru > 0, ru, 1.0), 1.0)
        qx, qy = dx / mag - tx, dy / mag - ty
        u = (qx * ca - qy * sa) / s
        v = (qx * sa + qy * ca) / s
        dist = s * np.hypot(u - np.round(u), v - np.round(v))
        cover = np.clip(0.5 - (dist - rad) * mag, 0.0, 1.0)
        value = ground + (dot - ground) * cover
        if corner_ri != 1.0:
            rho2 = ((xs - icx) ** 2 + (ys - icy) ** 2) / big_r**2
            value = value * (1.0 - (1.0 - corner_ri) * rho2)
        out[r0 : r0 + ys.shape[0]] = value
    if blur_sigma > 0:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT),
                         np.float32)
    if noise_sigma > 0:
        gen = rng if rng is not None else np.random.default_rng(0)
        out += gen.standard_normal(shape, dtype=np.float32) * np.float32(noise_sigma)
    return out


__all__ = ["DARK", "DIAMETER_H", "LIGHT", "PITCH_H", "DotLens", "distortion_centre",
           "dot_positions", "half_diagonal", "image_centre", "render_dot_grid",
           "truth_distortion_pct"]
