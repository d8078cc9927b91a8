"""Optical centre: the centre of the relative-illumination surface of a flat field.

A lens's relative illumination (RI: the cos⁴ law of natural vignetting, mechanical vignetting,
the sensor's chief-ray-angle falloff) is rotationally symmetric about the optical axis, so the
flat field of a camera module is a function of the distance from one point: the optical centre.
Its offset from the image centre ((W - 1) / 2, (H - 1) / 2) is the lens-to-sensor decentre that
module assembly (active alignment) controls; ISO 17957 (shading) and the module specifications
that quote an "optical centre" figure both take the flat field as the measurement.

Method (harness policy, docs/standards.md#optical-centre):

1. Block means: the (dark-subtracted) flat is averaged over square blocks of ``block`` pixels
   with ``cv2.resize(INTER_AREA)`` (about 128 blocks along the long side; an even block size on
   a Bayer mosaic, so that every block holds the four colours equally). Each block mean sits at
   the block's centre, ((j + 1/2) s - 1/2, (i + 1/2) s - 1/2). Averaging s² pixels divides PRNU
   and shot noise by s (32 at 12 MP) and takes single defects' weight away; more blocks do not
   make the centre more precise (the noise of the centre is that of all pixels together).
2. Model: I(x, y) = f(ρ), ρ = √((x - x0)² + (y - y0)²) / R (R = half the image diagonal), with
   the radial profile f a cubic regression spline in ρ: the even terms 1, ρ², ρ⁴, ρ⁶ plus the
   truncated cubics (ρ - t_k)³₊ on ``knots`` equally spaced knots, so f is smooth at the centre
   (f'(0) = 0) and can follow the knee of mechanical vignetting, which an even polynomial of
   low order cannot. Colour shading does not disturb the fit: each colour's RI is symmetric
   about the same axis, and so is any sum of them.
3. Fit: Gauss-Newton least squares on all parameters (spline coefficients and x0, y0), started
   at the extremum of a 2-D quadratic fitted to the blocks; the Jacobian columns of x0 and y0
   are f'(ρ) ∂ρ/∂x0 = -f'(ρ) (x - x0) / (R² ρ) and likewise for y0 (Björck, "Numerical methods
   for least squares problems", SIAM 1996, §9.2). The normal equations are solved with column
   scaling; iterations stop when the centre moves by less than 1e-3 px.

The standard error of (x0, y0) is the Gauss-Newton covariance s² (JᵀJ)⁻¹ with s² the residual
variance of the blocks; it covers noise, not a model that does not fit (see ``fit_rms_pct``).
Accuracy on synthetic 12 MP flats (cos⁴ to 0.4 at the corners, with and without vignetting
clipping the corners, 1 % PRNU, shot noise, per-colour gains and falloff, decentres up to
±120 px): within 0.1 px of the true centre (docs/standards.md#optical-centre).

Errors: bad input raises ConfigError naming ``bayer``, ``blocks``, ``knots``, ``flat`` or
``dark``; a flat without measurable shading (or one the fit cannot follow) raises
MeasurementError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from harness.analysis.defects import CFA_PATTERNS
from harness.errors import ConfigError, MeasurementError

FloatArray = NDArray[np.float64]

#: Smallest fall-off (fitted peak to the darkest block, fraction of the peak) with which the
#: centre is defined: a flat with less shading has no measurable optical centre.
MIN_SHADING = 0.01


@dataclass(frozen=True)
class OpticalCentreResult:
    """Optical centre and image geometry of one flat field (pixels of the input image).

    ``optical_centre_px`` (x, y): centre of the fitted RI surface; ``image_centre_px``:
    ((W - 1) / 2, (H - 1) / 2); ``optical_centre_offset_px``: their difference (dx, dy);
    ``centre_se_px``: standard error of the centre (noise only); ``fit_rms_pct``: RMS residual
    of the blocks from the surface, % of its peak; ``relative_illumination_corners``: the
    surface at each image corner / its peak."""

    optical_centre_px: tuple[float, float]
    image_centre_px: tuple[float, float]
    optical_centre_offset_px: tuple[float, float]
    optical_centre_offset_radius_px: float
    centre_se_px: tuple[float, float]
    fit_rms_pct: float
    peak_value: float
    relative_illumination_corners: dict[str, float]
    image_size_px: tuple[int, int]
    block_px: int
    iterations: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "optical_centre_px": list(self.optical_centre_px),
            "optical_centre_offset_px": list(self.optical_centre_offset_px),
            "optical_centre_offset_radius_px": self.optical_centre_offset_radius_px,
            "image_centre_px": list(self.image_centre_px),
            "image_size_px": list(self.image_size_px),
            "centre_se_px": list(self.centre_se_px),
            "fit_rms_pct": self.fit_rms_pct,
            "peak_value": self.peak_value,
            "relative_illumination_corners": dict(self.relative_illumination_corners),
            "block_px": self.block_px,
            "iterations": self.iterations,
        }


def _plane(flat: np.ndarray, name: str) -> np.ndarray:
    """A 2-D array cv2.resize accepts: RGB averaged, integers as float32."""
    if flat.ndim == 3 and flat.shape[2] == 3:
        flat = flat.mean(axis=2, dtype=np.float32)
    if flat.ndim != 2:
        raise ConfigError(f"expected a 2-D image or H x W x 3 RGB, got shape {flat.shape}",
                          field=name)
    if flat.dtype == np.float64 or flat.dtype == np.float32:
        return flat
    return flat.astype(np.float32)


def _block_means(img: np.ndarray, block: int) -> np.ndarray:
    h, w = img.shape
    rows, cols = h // block, w // block
    return cv2.resize(img[:rows * block, :cols * block], (cols, rows),
                      interpolation=cv2.INTER_AREA).astype(np.float64)


def _solve(jac: FloatArray, res: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Least-squares step and the inverse normal matrix, by column-scaled normal equations
    (einsum: no multi-threaded BLAS call, which a loaded machine makes slow)."""
    scale = np.sqrt(np.einsum("ij,ij->j", jac, jac))
    scale[scale == 0] = 1.0
    js = jac / scale
    normal = np.einsum("ij,ik->jk", js, js)
    inv = np.linalg.pinv(normal, rcond=1e-13, hermitian=True)
    step = inv @ np.einsum("ij,i->j", js, res)
    return step / scale, inv / np.outer(scale, scale)


def _basis(rho: FloatArray, knots: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Spline basis of the radial profile and its derivative in ρ (module docstring, step 2)."""
    powers = (0, 2, 4, 6)
    cols = [rho**p for p in powers]
    dcols = [p * rho ** (p - 1) if p else np.zeros_like(rho) for p in powers]
    for t in knots:
        u = np.maximum(rho - t, 0.0)
        cols.append(u**3)
        dcols.append(3.0 * u**2)
    return np.stack(cols, axis=1), np.stack(dcols, axis=1)


def _quadratic_peak(x: FloatArray, y: FloatArray, z: FloatArray,
                    scale: float) -> tuple[float, float]:
    """Extremum of z ≈ a + b x + c y + d x² + e x y + g y² (the Gauss-Newton start)."""
    u, v = x / scale, y / scale
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    a = _solve(design, z)[0]
    hess = np.array([[2 * a[3], a[4]], [a[4], 2 * a[5]]])
    if abs(np.linalg.det(hess)) < 1e-12:
        raise MeasurementError("the flat shows no shading: the optical centre is undefined",
                               figure="optical_centre_px")
    cu, cv = np.linalg.solve(hess, -a[1:3])
    return float(cu * scale), float(cv * scale)


def measure_optical_centre(flat: np.ndarray, *, bayer: str | None = None,
                           dark: np.ndarray | None = None, blocks: int = 128,
                           knots: int = 8, max_iter: int = 50) -> OpticalCentreResult:
    """Optical centre of a flat field: the centre of its rotationally symmetric RI surface.

    ``flat``: a mean (or single) flat frame, 2-D (mono or raw Bayer mosaic) or H x W x 3 RGB;
    ``bayer``: the mosaic's CFA (RGGB, GRBG, GBRG, BGGR), which makes the block size even;
    ``dark``: a dark frame of the same shape to subtract (a constant offset does not move the
    centre; a dark frame with shading of its own would); ``blocks``: block means along the long
    side; ``knots``: interior knots of the radial spline."""
    if bayer is not None and bayer not in CFA_PATTERNS:
        raise ConfigError(f"{bayer!r} not allowed; allowed: {', '.join(CFA_PATTERNS)} or none",
                          field="bayer")
    if not 16 <= blocks <= 1024:
        raise ConfigError(f"{blocks} outside 16..1024", field="blocks")
    if not 0 <= knots <= 20:
        raise ConfigError(f"{knots} outside 0..20", field="knots")
    flat = np.asarray(flat)
    if bayer is not None and flat.ndim != 2:
        raise ConfigError(f"a Bayer mosaic is 2-D, got shape {flat.shape}", field="bayer")
    img = _plane(flat, "flat")
    h, w = img.shape
    block = max(1, round(max(h, w) / blocks))
    if bayer is not None:
        block = max(2, block + block % 2)
    if min(h, w) < 8 * block or min(h, w) < 16:
        raise ConfigError(f"image {w}x{h} is too small for the fit (at least 8 blocks of "
                          f"{block} px per side)", field="flat")
    z = _block_means(img, block)
    if dark is not None:
        dk = _plane(np.asarray(dark), "dark")
        if dk.shape != img.shape:
            raise ConfigError(f"dark {dk.shape} and flat {img.shape} differ in shape",
                              field="dark")
        z = z - _block_means(dk, block)
    if not np.all(np.isfinite(z)):
        raise ConfigError("the flat holds NaN or infinite values", field="flat")
    peak = float(np.percentile(z, 99.5))
    if not peak > 0:
        raise MeasurementError("the flat has no signal", figure="optical_centre_px")
    rows, cols = z.shape
    ys = (np.arange(rows) + 0.5) * block - 0.5
    xs = (np.arange(cols) + 0.5) * block - 0.5
    gx, gy = np.meshgrid(xs, ys)
    x, y, zz = gx.ravel(), gy.ravel(), z.ravel() / peak
    ic = ((w - 1) / 2.0, (h - 1) / 2.0)
    radius = 0.5 * float(np.hypot(w - 1, h - 1))
    qx, qy = _quadratic_peak(x - ic[0], y - ic[1], zz, radius)
    cx, cy = qx + ic[0], qy + ic[1]
    if not (0 <= cx <= w - 1 and 0 <= cy <= h - 1):
        cx, cy = ic
    rho_max = float(np.max(np.hypot(x - cx, y - cy))) / radius
    knot_at = rho_max * np.arange(1, knots + 1) / (knots + 1)
    basis, _ = _basis(np.hypot(x - cx, y - cy) / radius, knot_at)
    coef = _solve(basis, zz)[0]
    cov = np.zeros((2, 2))
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        dx, dy = x - cx, y - cy
        r = np.hypot(dx, dy)
        basis, dbasis = _basis(r / radius, knot_at)
        res = zz - basis @ coef
        slope = (dbasis @ coef) / (radius * np.maximum(r, 1e-9))
        jac = np.column_stack([basis, -slope * dx, -slope * dy])
        step, inv = _solve(jac, res)
        coef = coef + step[:-2]
        cx, cy = cx + float(step[-2]), cy + float(step[-1])
        if not (-0.5 * w <= cx <= 1.5 * w and -0.5 * h <= cy <= 1.5 * h):
            raise MeasurementError("the fit left the image (no rotationally symmetric "
                                   "shading): the optical centre is undefined",
                                   figure="optical_centre_px")
        if np.hypot(step[-2], step[-1]) < 1e-3:
            dof = max(1, zz.size - jac.shape[1])
            cov = inv[-2:, -2:] * float(res @ res) / dof
            break
    else:
        raise MeasurementError(f"the fit did not converge in {max_iter} iterations",
                               figure="optical_centre_px")
    model = _basis(np.hypot(x - cx, y - cy) / radius, knot_at)[0] @ coef
    res = zz - model
    top = float((_basis(np.zeros(1), knot_at)[0] @ coef)[0])
    if not top > 0 or 1.0 - float(model.min()) / top < MIN_SHADING:
        raise MeasurementError(f"the flat falls off by less than {100 * MIN_SHADING:g} % from "
                               "its peak: the optical centre is undefined",
                               figure="optical_centre_px")
    corners = {"top_left": (0.0, 0.0), "top_right": (w - 1.0, 0.0),
               "bottom_left": (0.0, h - 1.0), "bottom_right": (w - 1.0, h - 1.0)}
    rc = np.array([np.hypot(px - cx, py - cy) / radius for px, py in corners.values()])
    ri = dict(zip(corners, (_basis(rc, knot_at)[0] @ coef / top).tolist(), strict=True))
    dxy = (cx - ic[0], cy - ic[1])
    return OpticalCentreResult(
        optical_centre_px=(cx, cy),
        image_centre_px=ic,
        optical_centre_offset_px=dxy,
        optical_centre_offset_radius_px=float(np.hypot(*dxy)),
        centre_se_px=(float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))),
        fit_rms_pct=float(100.0 * np.sqrt(np.mean(res**2)) / top),
        peak_value=top * peak,
        relative_illumination_corners=ri,
        image_size_px=(w, h),
        block_px=block,
        iterations=iterations,
    )


__all__ = ["MIN_SHADING", "OpticalCentreResult", "measure_optical_centre"]
