"""Lens model: Gaussian-plus-defocus PSF varying over the field, relative illumination, aperture.

Coordinates: pixel (row i, col j) covers [j, j+1] x [i, i+1]; its centre is (j + 0.5, i + 0.5);
the optical axis meets the sensor at the optical centre (c_x, c_y) = (W/2 + dx, H/2 + dy), the
sensor centre moved by the lens's decentre ``decentre_px`` (a lens glued off the sensor's
centre). Normalised field: x_n = (x - c_x)/(W/2), y_n likewise, r_n = distance from the optical
centre / half-diagonal (1 at the corners of a centred lens). Every field-dependent property
(PSF, relative illumination, colour shading, distortion, lateral colour) is centred there.

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

Distortion (the radial terms of Brown's model, D. C. Brown, "Decentering distortion of lenses",
Photogrammetric Engineering 32 (3), 1966): a scene point at normalised ideal radius r_u from the
optical centre is imaged at r_d = r_u (1 + k1 r_u^2 + k2 r_u^4), so the distortion of that
image height, D = 100 (r_d - r_u)/r_u, is 100 (k1 r_u^2 + k2 r_u^4) % (the definition the
dot-grid analysis reports). Lateral chromatic aberration: the red and blue images are
the green one magnified by (1 + m_R), (1 + m_B) about the optical centre, so a point at green
radius r is displaced radially by m r in red / blue (m x half-diagonal px at the corner).
:func:`source_scale` gives, per output pixel, where its light comes from in the ideal scene; the
scene renderer remaps the rendered scene through it (cv2.remap).
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


def optical_centre(module: Module) -> tuple[float, float]:
    """(c_x, c_y): where the optical axis meets the sensor, continuous pixel coordinates."""
    off = module.optics.decentre_px
    return module.sensor.width / 2.0 + off.x, module.sensor.height / 2.0 + off.y


def field_norm(module: Module, x: float, y: float) -> tuple[float, float, float]:
    """(x_n, y_n, r_n) of the continuous sensor position (x, y) in pixels."""
    w, h = module.sensor.width, module.sensor.height
    cx, cy = optical_centre(module)
    dx, dy = x - cx, y - cy
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
    cx, cy = optical_centre(module)
    y = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5 - cy) / half_diag
    x = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5 - cx) / half_diag
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
    cx, cy = optical_centre(module)
    y = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5 - cy) / half_diag
    x = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5 - cx) / half_diag
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) * np.float32(tan_c**2)
    return np.asarray(1.0 / (1.0 + r2) ** 2, dtype=np.float32)  # cos^4(atan u) = 1/(1+u^2)^2


def image_point(module: Module, x: float, y: float) -> tuple[float, float, float, float]:
    """Where the lens images the ideal point (x, y) (green; continuous px), and the local
    magnification there, radial (1 + 3 k1 r^2 + 5 k2 r^4) and tangential (1 + k1 r^2 +
    k2 r^4): the scene renderer blurs a shape with the PSF of its image position shrunk by
    them, so that after the remap its image has the PSF of :func:`psf_at`."""
    o, s = module.optics, module.sensor
    k1, k2 = o.distortion.k1, o.distortion.k2
    if k1 == 0.0 and k2 == 0.0:
        return x, y, 1.0, 1.0
    cx, cy = optical_centre(module)
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (s.width**2 / 4.0 + s.height**2 / 4.0)
    tangential = 1.0 + k1 * r2 + k2 * r2 * r2
    radial = 1.0 + 3.0 * k1 * r2 + 5.0 * k2 * r2 * r2
    return cx + (x - cx) * tangential, cy + (y - cy) * tangential, radial, tangential


def distortion_pct(k1: float, k2: float, r: float) -> float:
    """D(r) = 100 (r_d - r_u)/r_u at normalised ideal radius r (see the module docstring)."""
    return 100.0 * (k1 * r**2 + k2 * r**4)


@lru_cache(maxsize=16)
def _inverse_table(k1: float, k2: float, top: float) -> tuple[np.ndarray, np.ndarray]:
    """(rho^2, r_u / rho) on a 4097-point grid of the distorted radius rho in [0, top]: the
    inverse of r_d = r_u (1 + k1 r_u^2 + k2 r_u^4) (monotonic: checked by the module schema),
    by interpolating the forward map on a finer r_u grid."""
    r_u = np.linspace(0.0, top * 1.5 + 0.1, 32769)
    r_d = r_u * (1.0 + k1 * r_u**2 + k2 * r_u**4)
    rho2 = np.linspace(0.0, top**2, 4097)
    rho = np.sqrt(rho2)
    inv = np.interp(rho, r_d, r_u)
    ratio = np.divide(inv, rho, out=np.ones_like(rho), where=rho > 0.0)
    return rho2, ratio


def source_scale(module: Module, channel: int | None, rows: slice, cols: slice,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Where in the ideal (undistorted, green) image the light of each pixel centre of the
    window (slices may step) comes from, continuous pixel coordinates (x, y), float32: the
    inverse of the lens's distortion and of the channel's lateral-colour magnification
    (``channel`` 0 R, 1 G, 2 B; None: mono, no lateral colour) about the optical centre (see
    the module docstring)."""
    o, s = module.optics, module.sensor
    cx, cy = optical_centre(module)
    half_diag = math.hypot(s.width / 2.0, s.height / 2.0)
    m = {0: o.lateral_ca.R, 2: o.lateral_ca.B}.get(channel, 0.0) if channel is not None else 0.0
    far = max(math.hypot(px - cx, py - cy) for px in (0.0, s.width) for py in (0.0, s.height))
    top = far / half_diag / (1.0 + min(m, 0.0)) + 0.01
    rho2_tab, ratio_tab = _inverse_table(o.distortion.k1, o.distortion.k2, round(top, 2) + 0.01)
    dy = (np.arange(rows.start, rows.stop, rows.step or 1, dtype=np.float32)
          + np.float32(0.5 - cy))[:, None]
    dx = (np.arange(cols.start, cols.stop, cols.step or 1, dtype=np.float32)
          + np.float32(0.5 - cx))[None, :]
    if o.distortion.k1 == 0.0 and o.distortion.k2 == 0.0:
        scale = np.full((dy.size, dx.size), 1.0 / (1.0 + m), np.float32)
    else:
        rho2 = (dx * dx + dy * dy) * np.float32(1.0 / (half_diag * (1.0 + m)) ** 2)
        scale = np.interp(rho2, rho2_tab, ratio_tab).astype(np.float32)
        scale *= np.float32(1.0 / (1.0 + m))
    return (dx * scale + np.float32(cx)).astype(np.float32), \
        (dy * scale + np.float32(cy)).astype(np.float32)


__all__ = ["FINE", "Psf", "best_focus_um", "colour_shading", "distortion_pct", "esf_table",
           "field_norm", "image_point", "mtf", "mtf50", "optical_centre", "psf_at",
           "relative_illumination", "source_scale"]
