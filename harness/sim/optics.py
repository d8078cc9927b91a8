"""Lens model: Gaussian-plus-defocus PSF varying over the field, relative illumination, aperture.

Coordinates: pixel (row i, col j) covers [j, j+1] x [i, i+1]; its centre is (j + 0.5, i + 0.5);
the optical axis is the sensor centre (W/2, H/2). Normalised field: x_n = (x - W/2)/(W/2),
y_n likewise, r_n = distance / half-diagonal (1 at the corners).

PSF at a field point = Gaussian (sigma, the lens's residual aberrations, growing as
sigma_px (1 + sigma_field_growth r_n^2)) convolved with a uniform defocus disk of radius
R = |z - z_best(x, y)| / (2 N pitch) pixels (geometric optics: blur-circle diameter = defocus /
f-number), where z_best = best_focus + field_curvature r_n^2 + tilt_x x_n + tilt_y y_n, so a
tilted lens makes one side (two corners) soft. The pixel aperture is a square box of width
fill_factor pixels.

MTF (system, along the normal of an edge at angle theta to the column axis; Goodman, *Introduction
to Fourier Optics*, 3rd ed., 6.4; docs/standards.md#e-sfr-analytic-ground-truth):
  MTF(f) = exp(-2 pi^2 sigma^2 f^2) |2 J1(2 pi R f)/(2 pi R f)| |sinc(a f cos t) sinc(a f sin t)|.
Relative illumination: cos^4 law, RI(r_n) = cos^4(atan(r_n tan theta_c)) with theta_c chosen so
RI(1) = relative_illumination_corner.

Colour shading: on a colour sensor the red and blue responses fall off differently from the
green one away from the axis (the chief-ray angle grows with the field, so light reaches the
pixel more obliquely through the colour filter and micro-lens, and the IR-cut filter's edge
shifts to shorter wavelengths at oblique incidence, cutting red): channel/green ratio
c(r_n) = 1 + (c_corner - 1) r_n^2, with ``colour_shading_corner`` giving c_corner for R and B
(docs/standards.md#iso-17957-shading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import j1

from harness.sim.module import Module

FINE = 1.0 / 64.0
"""Sampling step of the tabulated edge-spread functions, pixels."""


@dataclass(frozen=True)
class Psf:
    """PSF parameters at one field point (pixels)."""

    sigma_px: float
    defocus_radius_px: float


def field_norm(module: Module, x: float, y: float) -> tuple[float, float, float]:
    """(x_n, y_n, r_n) of the continuous sensor position (x, y) in pixels."""
    w, h = module.sensor.width, module.sensor.height
    dx, dy = x - w / 2.0, y - h / 2.0
    return dx / (w / 2.0), dy / (h / 2.0), math.hypot(dx, dy) / math.hypot(w / 2.0, h / 2.0)


def best_focus_um(module: Module, x: float, y: float) -> float:
    o = module.optics
    xn, yn, rn = field_norm(module, x, y)
    return o.best_focus_um + o.field_curvature_um * rn**2 + o.tilt_x_um * xn + o.tilt_y_um * yn


def psf_at(module: Module, focus_um: float, x: float, y: float) -> Psf:
    """The PSF at sensor position (x, y) px with the focus actuator at ``focus_um``."""
    o = module.optics
    _, _, rn = field_norm(module, x, y)
    sigma = o.sigma_px * (1.0 + o.sigma_field_growth * rn**2)
    radius = abs(focus_um - best_focus_um(module, x, y)) / (2.0 * o.f_number
                                                            * module.sensor.pixel_pitch_um)
    return Psf(sigma, radius)


def mtf(f: np.ndarray | float, psf: Psf, fill: float = 1.0, theta_deg: float = 0.0,
        lens_only: bool = False) -> np.ndarray:
    """|MTF| at spatial frequency ``f`` (cycles/pixel) along the normal of an edge at theta."""
    f = np.asarray(f, dtype=float)
    out = np.exp(-2.0 * math.pi**2 * psf.sigma_px**2 * f**2)
    arg = 2.0 * math.pi * psf.defocus_radius_px * f
    safe = np.where(arg == 0.0, 1.0, arg)
    out = out * np.abs(np.where(arg == 0.0, 1.0, 2.0 * j1(safe) / safe))
    if not lens_only:
        t = math.radians(theta_deg)
        out = out * np.abs(np.sinc(fill * f * math.cos(t)) * np.sinc(fill * f * math.sin(t)))
    return np.asarray(out)


def mtf50(psf: Psf, fill: float = 1.0, theta_deg: float = 0.0, lens_only: bool = False) -> float:
    """First frequency (cycles/pixel) where the MTF falls to 0.5."""
    grid = np.linspace(0.0, 2.0, 4001)
    values = mtf(grid, psf, fill, theta_deg, lens_only) - 0.5
    below = np.nonzero(values <= 0.0)[0]
    if below.size == 0:
        return float("inf")
    k = int(below[0])
    return float(brentq(lambda v: float(mtf(v, psf, fill, theta_deg, lens_only)) - 0.5,
                        grid[k - 1], grid[k]))


@lru_cache(maxsize=4096)
def esf_table(sigma: float, radius: float, fill: float, theta_deg: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Edge-spread function (distance in px along the edge normal -> 0..1), tabulated.

    The line-spread function is Gaussian * projected defocus disk * projected pixel box
    (widths a|cos t| and a|sin t|); area-integrating a straight edge over a square pixel is
    exactly a convolution with that projection, so a sample of this table is the exact pixel
    value of a straight edge (to the FINE grid).
    """
    half = 6.0 * sigma + radius + fill + 2.0
    x = np.arange(-half, half + FINE / 2, FINE)
    lsf = np.exp(-0.5 * (x / sigma) ** 2)
    if radius > FINE:
        disk = np.sqrt(np.clip(radius**2 - x**2, 0.0, None))
        lsf = np.convolve(lsf, disk / disk.sum(), mode="same")
    t = math.radians(theta_deg)
    for width in (fill * abs(math.cos(t)), fill * abs(math.sin(t))):
        n = round(width / FINE)
        if n > 1:
            lsf = np.convolve(lsf, np.ones(n) / n, mode="same")
    esf = np.cumsum(lsf)
    esf = (esf - esf[0]) / (esf[-1] - esf[0])
    return x, esf


def colour_shading(module: Module, rows: slice, cols: slice) -> np.ndarray | None:
    """Per-pixel factor of the red and blue sites relative to green over a window (see the
    module docstring), float32; None for a mono sensor or no colour shading."""
    ratios = module.optics.colour_shading_corner
    cfa = module.sensor.cfa
    if cfa is None or (ratios.R == 1.0 and ratios.B == 1.0):
        return None
    h, w = module.sensor.height, module.sensor.width
    half_diag = math.hypot(w / 2.0, h / 2.0)
    y = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5 - h / 2.0) / half_diag
    x = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5 - w / 2.0) / half_diag
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    letters = np.array(list(cfa)).reshape(2, 2)
    site = letters[np.arange(rows.start, rows.stop)[:, None] % 2,
                   np.arange(cols.start, cols.stop)[None, :] % 2]
    corner = np.where(site == "R", np.float32(ratios.R),
                      np.where(site == "B", np.float32(ratios.B), np.float32(1.0)))
    return np.asarray(1.0 + (corner - 1.0) * r2, dtype=np.float32)


def relative_illumination(module: Module, rows: slice, cols: slice) -> np.ndarray:
    """cos^4 relative illumination (1 on axis) over a window of the sensor, float32."""
    corner = module.optics.relative_illumination_corner
    h, w = module.sensor.height, module.sensor.width
    if corner >= 1.0:
        return np.ones((rows.stop - rows.start, cols.stop - cols.start), np.float32)
    tan_c = math.tan(math.acos(corner**0.25))
    half_diag = math.hypot(w / 2.0, h / 2.0)
    y = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5 - h / 2.0) / half_diag
    x = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5 - w / 2.0) / half_diag
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) * np.float32(tan_c**2)
    return np.asarray(1.0 / (1.0 + r2) ** 2, dtype=np.float32)  # cos^4(atan u) = 1/(1+u^2)^2


__all__ = ["FINE", "Psf", "best_focus_um", "colour_shading", "esf_table", "field_norm", "mtf",
           "mtf50", "psf_at", "relative_illumination"]
