"""Synthetic lateral chromatic aberration with an analytically known answer (tests, benchmarks).

A lens with lateral colour images the scene at a magnification that depends on wavelength: the
R image is the G image scaled about the optical centre O by (1 + m_r), the B image by
(1 + m_b). The slanted-square chart (:func:`chart_squares`) is rendered per colour
with its squares scaled that way (centres and sides), each edge blurred by the same
point-sampled Gaussian PSF, and sampled on that colour's sites of a Bayer mosaic.

Ground truth: a G edge is the line {p : nu . (p - C) = side / 2} (nu the side's outward unit
normal, C the square centre). Scaling about O by (1 + m) moves it to
{p : nu . (p - O) = (1 + m) (nu . (C - O) + side / 2)}, so along the normal pointing away
from O the R edge lies m_r * D further out than the G edge, D = |nu . (C - O) + side / 2| the
distance of the G edge line from O. Hence shift_r_g = m_r * D and shift_b_g = m_b * D, at
every point of the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from harness.analysis.edges import EdgeRoi
from tests_unit.optics_synth import SquareSpec, edge_chart_squares

FloatArray = NDArray[np.float64]


chart_squares = edge_chart_squares


@dataclass(frozen=True)
class CaChart:
    """A rendered mosaic (or RGB image) and what it was rendered from."""

    image: FloatArray
    squares: tuple[SquareSpec, ...]
    magnification: tuple[float, float, float]  # m_r, m_g, m_b
    centre: tuple[float, float]
    bayer: str | None


def _dark(xs: FloatArray, ys: FloatArray, squares: list[SquareSpec], sigma: float
          ) -> FloatArray:
    """Darkness 0..1 of the squares on the grid xs x ys, computed only near each square."""
    dark = np.zeros((ys.size, xs.size))
    for sq in squares:
        reach = sq.side * math.sqrt(0.5) + 8.0 * sigma + 2.0
        ix = slice(int(np.searchsorted(xs, sq.cx - reach)), int(np.searchsorted(xs, sq.cx + reach)))
        iy = slice(int(np.searchsorted(ys, sq.cy - reach)), int(np.searchsorted(ys, sq.cy + reach)))
        x, y = np.meshgrid(xs[ix], ys[iy])
        t = math.radians(sq.angle_deg)
        u = (x - sq.cx) * math.cos(t) + (y - sq.cy) * math.sin(t)
        v = -(x - sq.cx) * math.sin(t) + (y - sq.cy) * math.cos(t)
        half = sq.side / 2
        pu = ndtr((half - u) / sigma) - ndtr((-half - u) / sigma)
        pv = ndtr((half - v) / sigma) - ndtr((-half - v) / sigma)
        dark[iy, ix] = np.maximum(dark[iy, ix], pu * pv)
    return dark


def scaled(squares: list[SquareSpec], m: float, centre: tuple[float, float]) -> list[SquareSpec]:
    """The squares as imaged at magnification (1 + m) about ``centre``."""
    ox, oy = centre
    return [SquareSpec(ox + (1 + m) * (s.cx - ox), oy + (1 + m) * (s.cy - oy), (1 + m) * s.side,
                       s.angle_deg) for s in squares]


def render_ca_chart(
    shape: tuple[int, int] = (900, 1200),
    *,
    m_r: float = 0.0,
    m_b: float = 0.0,
    m_g: float = 0.0,
    sigma: float = 1.0,
    angle_deg: float = 5.0,
    lo: float = 0.15,
    hi: float = 0.75,
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
    bayer: str | None = "RGGB",
    snr: float | None = None,
    rng: np.random.Generator | None = None,
    centre: tuple[float, float] | None = None,
    squares: list[SquareSpec] | None = None,
) -> CaChart:
    """The slanted-square chart with lateral colour, as a raw mosaic of ``bayer`` (or an
    H x W x 3 image with ``bayer=None``). ``snr``: edge contrast / noise sigma of each colour
    (Gaussian noise, sigma = gain * (hi - lo) / snr); None = noiseless."""
    h, w = shape
    o = centre if centre is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
    base = squares if squares is not None else chart_squares(shape, angle_deg=angle_deg)
    mags = {"R": m_r, "G": m_g, "B": m_b}
    gain = dict(zip("RGB", gains, strict=True))
    gen = rng if rng is not None else np.random.default_rng(0)

    def plane(ch: str, xs: FloatArray, ys: FloatArray) -> FloatArray:
        val = gain[ch] * (hi - (hi - lo) * _dark(xs, ys, scaled(base, mags[ch], o), sigma))
        if snr is not None:
            val = val + gen.normal(0.0, gain[ch] * (hi - lo) / snr, val.shape)
        return val

    if bayer is None:
        xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
        img = np.stack([plane(ch, xs, ys) for ch in "RGB"], axis=-1)
    else:
        img = np.empty(shape)
        for k, ch in enumerate(bayer):
            r0, c0 = k // 2, k % 2
            img[r0::2, c0::2] = plane(ch, np.arange(c0, w, 2, dtype=np.float64),
                                      np.arange(r0, h, 2, dtype=np.float64))
    return CaChart(img, tuple(base), (m_r, m_g, m_b), o, bayer)


def truth_shifts(chart: CaChart, roi: EdgeRoi) -> tuple[float, float]:
    """(shift_r_g, shift_b_g) in px, away from the centre, for the square side in ``roi``: the
    side whose midpoint is nearest the ROI centre (see the module docstring)."""
    rx, ry = roi.x + (roi.w - 1) / 2.0, roi.y + (roi.h - 1) / 2.0
    ox, oy = chart.centre
    best = (math.inf, 0.0)
    for sq in chart.squares:
        t = math.radians(sq.angle_deg)
        for nu in ((math.cos(t), math.sin(t)), (-math.sin(t), math.cos(t))):
            for sgn in (1.0, -1.0):
                nx, ny = sgn * nu[0], sgn * nu[1]
                mx, my = sq.cx + nx * sq.side / 2, sq.cy + ny * sq.side / 2
                dist = math.hypot(mx - rx, my - ry)
                if dist < best[0]:
                    best = (dist, abs(nx * (sq.cx - ox) + ny * (sq.cy - oy) + sq.side / 2))
    m_r, m_g, m_b = chart.magnification  # G edge at (1 + m_g) D, R at (1 + m_r) D
    d = best[1]
    return (m_r - m_g) * d, (m_b - m_g) * d
