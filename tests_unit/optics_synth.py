"""Synthetic optics test data with an analytically known answer (tests and benchmarks only).

Edges (docs/standards.md#e-sfr-analytic-ground-truth): a straight edge at signed normal distance
d = (x - x0) cos(theta) - (y - y0) sin(theta) blurred by a Gaussian PSF of sigma px has the ESF
Phi(d / sigma) (standard normal CDF) and the MTF exp(-2 pi^2 sigma^2 f^2), MTF50 = 0.18739 / sigma.

* point-sampled pixels: value = lo + (hi - lo) Phi(d / sigma) exactly;
* area-integrating pixels (unit square aperture): the square projected on the edge normal is the
  convolution of two boxes of widths cos(theta) and sin(theta), so the pixel value is the ESF
  convolved with both boxes, computed exactly from the second antiderivative of Phi:
  H(u) = ((u^2 + 1) Phi(u) + u phi(u)) / 2. Its MTF along the normal is
  exp(-2 pi^2 sigma^2 f^2) |sinc(f cos theta) sinc(f sin theta)|.

Charts: a slanted-square chart (dark squares rotated ~5 degrees on a light ground at the centre and
the four corners) and a ColorChecker 24 rendered through a known camera matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import j1, log_ndtr, ndtr

FloatArray = NDArray[np.float64]

SQRT_2PI = np.sqrt(2.0 * np.pi)


def _phi(u: FloatArray) -> FloatArray:
    return np.exp(-0.5 * u * u) / SQRT_2PI


def _h2(u: FloatArray) -> FloatArray:
    """Second antiderivative of the standard normal CDF."""
    return 0.5 * ((u * u + 1.0) * ndtr(u) + u * _phi(u))


def edge_profile(d: FloatArray, sigma: float, *, integrate: bool, angle_deg: float) -> FloatArray:
    """ESF value (0..1) at normal distance ``d`` for a point-sampled or unit-square pixel."""
    if not integrate:
        return ndtr(d / sigma)
    a = abs(np.cos(np.radians(angle_deg)))
    b = abs(np.sin(np.radians(angle_deg)))
    s = sigma
    if b < 1e-6:  # single box: first antiderivative G(u) = u Phi(u) + phi(u)
        def g1(t: FloatArray) -> FloatArray:
            u = t / s
            return s * (u * ndtr(u) + _phi(u))
        return (g1(d + a / 2) - g1(d - a / 2)) / a

    def h(t: FloatArray) -> FloatArray:
        return s * s * _h2(t / s)

    hp, hm = (a + b) / 2, (a - b) / 2
    return (h(d + hp) - h(d + hm) - h(d - hm) + h(d - hp)) / (a * b)


def render_edge(
    shape: tuple[int, int] = (100, 100),
    *,
    sigma: float = 1.0,
    angle_deg: float = 5.0,
    integrate: bool = False,
    horizontal: bool = False,
    offset: tuple[float, float] = (0.0, 0.0),
    lo: float = 0.2,
    hi: float = 0.8,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> FloatArray:
    """A slanted edge, dark on the left (or top when ``horizontal``), pixel centres at integers."""
    h, w = shape
    if horizontal:
        w, h = h, w
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x0 = (w - 1) / 2 + offset[0]
    y0 = (h - 1) / 2 + offset[1]
    t = np.radians(angle_deg)
    d = (x - x0) * np.cos(t) - (y - y0) * np.sin(t)
    img = lo + (hi - lo) * edge_profile(d, sigma, integrate=integrate, angle_deg=angle_deg)
    if noise_sigma > 0:
        gen = rng if rng is not None else np.random.default_rng(0)
        img = img + gen.normal(0.0, noise_sigma, img.shape)
    return img.T.copy() if horizontal else img


def truth_mtf(f: FloatArray | float, sigma: float, *, integrate: bool, angle_deg: float) -> FloatArray:
    """Analytic MTF along the edge normal (cycles/pixel)."""
    f = np.asarray(f, dtype=np.float64)
    m = np.exp(-2.0 * np.pi**2 * sigma**2 * f**2)
    if integrate:
        t = np.radians(angle_deg)
        m = m * np.abs(np.sinc(f * np.cos(t)) * np.sinc(f * np.sin(t)))
    return m


def truth_mtf50(sigma: float, *, integrate: bool, angle_deg: float) -> float:
    """Analytic MTF50 (cycles/pixel); 0.18739 / sigma for point sampling."""
    if not integrate:
        return float(np.sqrt(np.log(2.0) / 2.0) / (np.pi * sigma))
    return float(
        brentq(lambda f: truth_mtf(f, sigma, integrate=True, angle_deg=angle_deg) - 0.5, 1e-4, 0.9)
    )


def render_profile_edge(
    profile: Callable[[FloatArray], FloatArray],
    shape: tuple[int, int] = (200, 200),
    *,
    angle_deg: float = 5.0,
    offset: tuple[float, float] = (0.0, 0.0),
    lo: float = 0.2,
    hi: float = 0.8,
) -> FloatArray:
    """A point-sampled slanted edge (geometry as :func:`render_edge`) with any ESF ``profile``
    (0..1 at signed normal distance d, rising into the bright right-hand side)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.radians(angle_deg)
    d = (x - (w - 1) / 2 - offset[0]) * np.cos(t) - (y - (h - 1) / 2 - offset[1]) * np.sin(t)
    return lo + (hi - lo) * profile(d)


def exgauss_profile(sigma: float, tau: float) -> Callable[[FloatArray], FloatArray]:
    """ESF of a Gaussian PSF (sigma px) convolved with a one-sided exponential of mean ``tau`` px
    on the bright side (a long, asymmetric LSF tail, e.g. carrier diffusion): the CDF of the
    exponentially modified Gaussian, Phi(u) - exp(s^2 / (2 tau^2) - d / tau) Phi(u - s / tau),
    u = d / s, evaluated in logs so that the far dark side does not overflow."""
    def profile(d: FloatArray) -> FloatArray:
        u = d / sigma
        tail = np.exp(sigma**2 / (2 * tau**2) - d / tau + log_ndtr(u - sigma / tau))
        return np.asarray(ndtr(u) - tail, dtype=np.float64)
    return profile


def exgauss_mtf(f: FloatArray | float, sigma: float, tau: float) -> FloatArray:
    """MTF of :func:`exgauss_profile`: exp(-2 pi^2 s^2 f^2) / sqrt(1 + (2 pi tau f)^2)."""
    f = np.asarray(f, dtype=np.float64)
    return np.exp(-2.0 * np.pi**2 * sigma**2 * f**2) / np.sqrt(1.0 + (2.0 * np.pi * tau * f) ** 2)


def disc_profile(sigma: float, radius: float, step: float = 0.002
                 ) -> Callable[[FloatArray], FloatArray]:
    """ESF of a uniform defocus disc of ``radius`` px convolved with a Gaussian of sigma px: the
    disc's LSF, the half-chord 2 sqrt(R^2 - x^2) / (pi R^2), convolved on a ``step`` px grid and
    integrated (hard-edged LSF shoulders, a non-Gaussian shape)."""
    xs = np.arange(-radius - 8 * sigma - 1, radius + 8 * sigma + 1, step)
    chord = np.sqrt(np.maximum(radius**2 - xs**2, 0.0))
    g = np.exp(-0.5 * (np.arange(-8 * sigma, 8 * sigma + step / 2, step) / sigma) ** 2)
    esf = np.cumsum(np.convolve(chord, g, mode="same"))
    esf = (esf - esf[0]) / (esf[-1] - esf[0])

    def profile(d: FloatArray) -> FloatArray:
        return np.interp(d, xs, esf, left=0.0, right=1.0)
    return profile


def disc_mtf(f: FloatArray | float, sigma: float, radius: float) -> FloatArray:
    """MTF of :func:`disc_profile`: exp(-2 pi^2 s^2 f^2) |2 J1(2 pi R f) / (2 pi R f)|."""
    f = np.asarray(f, dtype=np.float64)
    a = 2.0 * np.pi * radius * np.maximum(f, 1e-12)
    return np.exp(-2.0 * np.pi**2 * sigma**2 * f**2) * np.abs(2.0 * j1(a) / a)


def mtf50_of(mtf: Callable[[float], FloatArray | float]) -> float:
    """Frequency (cy/px) where a monotone analytic MTF falls through 0.5."""
    return float(brentq(lambda f: float(mtf(f)) - 0.5, 1e-4, 0.9))


# --------------------------------------------------------------------------- slanted-square chart


@dataclass(frozen=True)
class SquareSpec:
    """One dark square of the edge chart: centre (x, y) px, side px, rotation deg."""

    cx: float
    cy: float
    side: float
    angle_deg: float


def edge_chart_squares(shape: tuple[int, int], *, angle_deg: float = 5.0) -> list[SquareSpec]:
    """Chart geometry assumed by :mod:`harness.analysis.edges`: five dark squares of side
    ~H/6, rotated ``angle_deg``, at the centre and at 15 % / 85 % of width and height."""
    h, w = shape
    side = h / 6.0
    pos = [(0.5, 0.5), (0.15, 0.15), (0.85, 0.15), (0.15, 0.85), (0.85, 0.85)]
    return [SquareSpec(fx * w, fy * h, side, angle_deg) for fx, fy in pos]


def render_square_chart(
    shape: tuple[int, int] = (600, 800),
    *,
    sigma: float = 1.0,
    angle_deg: float = 5.0,
    lo: float = 0.15,
    hi: float = 0.75,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
    squares: list[SquareSpec] | None = None,
) -> tuple[FloatArray, list[SquareSpec]]:
    """Dark rotated squares on a light ground, each edge blurred by a point-sampled Gaussian.

    Inside a square far from its corners, the value near one side is exactly the straight-edge
    profile, so each side's MTF50 is 0.18739 / sigma.
    """
    h, w = shape
    specs = squares if squares is not None else edge_chart_squares(shape, angle_deg=angle_deg)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dark = np.zeros(shape)
    for sq in specs:
        t = np.radians(sq.angle_deg)
        u = (x - sq.cx) * np.cos(t) + (y - sq.cy) * np.sin(t)
        v = -(x - sq.cx) * np.sin(t) + (y - sq.cy) * np.cos(t)
        half = sq.side / 2
        # product of two 1-D edge pairs: exact away from the corners
        pu = ndtr((half - u) / sigma) - ndtr((-half - u) / sigma)
        pv = ndtr((half - v) / sigma) - ndtr((-half - v) / sigma)
        dark = np.maximum(dark, pu * pv)
    img = hi - (hi - lo) * dark
    if noise_sigma > 0:
        gen = rng if rng is not None else np.random.default_rng(0)
        img = img + gen.normal(0.0, noise_sigma, img.shape)
    return img, specs


# --------------------------------------------------------------------------- ColorChecker


#: A camera matrix (camera RGB = M @ linear sRGB reference), not diagonal, rows sum near 1.
CAMERA_MATRIX = np.array(
    [[0.80, 0.15, 0.05], [0.10, 0.75, 0.15], [0.02, 0.18, 0.80]], dtype=np.float64
)


def reference_linear_rgb(illuminant: str = "D65") -> FloatArray:
    """CCM target of the ColorChecker24 (after Nov. 2014) under ``illuminant``: its D50 XYZ
    adapted to the illuminant, then (observer adapted, Bradford) to D65 and the linear sRGB
    matrix; not clipped (wide linear space). Written with the von Kries transform directly, an
    independent path from harness.analysis.colour's ``colour.XYZ_to_RGB`` call."""
    import colour  # here, not at the top: the other renderers do without its 1 s import

    cc = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    xyz = colour.xyY_to_XYZ(np.array(list(cc.data.values())))
    obs = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]
    srgb = colour.models.RGB_COLOURSPACE_sRGB
    w50, wp = colour.xy_to_XYZ(cc.illuminant), colour.xy_to_XYZ(obs[illuminant])
    w65 = colour.xy_to_XYZ(srgb.whitepoint)
    vk = colour.adaptation.chromatic_adaptation_VonKries
    xyz_a = vk(vk(xyz, w50, wp, transform="Bradford"), wp, w65, transform="Bradford")
    return np.asarray(xyz_a @ np.asarray(srgb.matrix_XYZ_to_RGB).T, dtype=np.float64)


def render_colour_checker(
    shape: tuple[int, int] = (600, 900),
    *,
    camera_matrix: FloatArray = CAMERA_MATRIX,
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
    black: float = 0.0,
    exposure: float = 0.8,
    angle_deg: float = 3.0,
    centre: tuple[float, float] | None = None,
    pitch: float | None = None,
    background: float = 0.35,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
    illuminant: str = "D65",
) -> tuple[FloatArray, FloatArray]:
    """A ColorChecker 24 on a mid-grey ground: black chart body, 6x4 swatches of 0.8 pitch.

    Swatch value = black + exposure * gains * (camera_matrix @ reference linear RGB). Returns the
    image (H x W x 3) and the 24 patch centres (x, y) in reference order.
    """
    h, w = shape
    p = pitch if pitch is not None else min(w / 8.0, h / 5.5)
    cx, cy = centre if centre is not None else ((w - 1) / 2, (h - 1) / 2)
    t = np.radians(angle_deg)
    ref = reference_linear_rgb(illuminant)
    cam = exposure * (ref @ np.asarray(camera_matrix).T) * np.asarray(gains)[None, :]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (x - cx) * np.cos(t) + (y - cy) * np.sin(t)  # chart coordinates, px
    v = -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
    img = np.empty((h, w, 3))
    img[...] = background
    body = (np.abs(u) <= 3.15 * p) & (np.abs(v) <= 2.15 * p)
    img[body] = 0.03 * exposure
    col = np.floor(u / p + 3.0)
    row = np.floor(v / p + 2.0)
    fu = u / p + 3.0 - col - 0.5
    fv = v / p + 2.0 - row - 0.5
    sw = (col >= 0) & (col < 6) & (row >= 0) & (row < 4) & (np.abs(fu) < 0.4) & (np.abs(fv) < 0.4)
    k = (row * 6 + col)[sw].astype(np.int64)
    img[sw] = cam[k]
    img = img + black
    if noise_sigma > 0:
        gen = rng if rng is not None else np.random.default_rng(0)
        img = img + gen.normal(0.0, noise_sigma, img.shape)
    centres = []
    for i in range(24):
        r, c = divmod(i, 6)
        uu, vv = (c - 2.5) * p, (r - 1.5) * p
        centres.append((cx + uu * np.cos(t) - vv * np.sin(t), cy + uu * np.sin(t) + vv * np.cos(t)))
    return img, np.array(centres)


# --------------------------------------------------------------------------- focus sweeps


def texture(shape: tuple[int, int], rng: np.random.Generator, *, corr_px: float = 1.2) -> FloatArray:
    """Band-limited random texture in 0.2..0.8 (white noise low-passed by a Gaussian)."""
    import cv2

    t = cv2.GaussianBlur(rng.normal(size=shape).astype(np.float32), (0, 0), corr_px)
    t = (t - t.mean()) / (4 * t.std())
    return np.clip(0.5 + 0.3 * t / 0.5, 0.2, 0.8).astype(np.float64)


def defocus_sweep(
    base: FloatArray,
    positions: NDArray[np.float64] | list[float],
    best: FloatArray | float,
    *,
    blur_per_unit: float = 1.0,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
    regions: dict[str, tuple[slice, slice]] | None = None,
) -> list[FloatArray]:
    """Frames of ``base`` blurred by a Gaussian of sigma = blur_per_unit * |z - best| px.

    With ``regions`` (name -> slices) and ``best`` a dict-like array of per-region best positions
    (same order), each region gets its own defocus: a tilted focal plane.
    """
    import cv2

    gen = rng if rng is not None else np.random.default_rng(0)
    frames = []
    bests = np.atleast_1d(np.asarray(best, dtype=np.float64))
    for z in positions:
        if regions is None:
            s = blur_per_unit * abs(z - bests[0])
            fr = cv2.GaussianBlur(base, (0, 0), s) if s > 0.05 else base.copy()
        else:
            fr = np.empty_like(base)
            for (sy, sx), zb in zip(regions.values(), bests, strict=True):
                s = blur_per_unit * abs(z - zb)
                fr[sy, sx] = (cv2.GaussianBlur(base, (0, 0), s) if s > 0.05 else base)[sy, sx]
        if noise_sigma > 0:
            fr = fr + gen.normal(0.0, noise_sigma, fr.shape)
        frames.append(np.asarray(fr, dtype=np.float64))
    return frames
