"""Blemishes: shadows of particles on the cover glass or IR filter, found in a flat field.

A particle at a distance d in front of the sensor casts the shadow of the exit pupil: a soft
disc about d / N across (N the f-number), as deep as the particle's area over the shadow's,
so a dip of ~1-10 % and 10-100 px in a flat field. No standard defines a blemish test; this
is the harness's own method (docs/standards.md#blemishes):

1. **Working plane.** The frame is averaged over 2 x 2 blocks (``cv2.resize(INTER_AREA)``):
   for a Bayer mosaic each block holds one R, two G and one B, so every block has the same
   colour mix (a luminance plane); spots are >= 10 px, so nothing is lost. Defect pixels are
   replaced there by the 3 x 3 median where they depart from it by more than
   ``defect_sigma`` robust sigmas and 2 % (the defect correction of an ISP): a defect is one
   or two pixels, the smooth profile of a blemish is not touched.
2. **Background.** Shading is removed with a background from a mesh of 32 px block means
   covering the whole frame (the background mesh of SExtractor, Bertin & Arnouts 1996, A&AS
   117, 393, with sigma-clipping in place of its mode): smoothed with a Gaussian "twiced"
   (Tukey 1977, bias of order sigma^4 on a curved background), the border padded by point
   reflection so a gradient is kept to the corners; blocks off it by more than 3 sigma and a
   quarter of ``min_contrast_pct`` (the spots) are masked and filled in from their
   neighbours: by diffusion inside the frame, by a locally fitted plane on the border (where
   the point reflection would hold a masked block at its own value).
3. **Detection** on the contrast 1 - plane / background at 8 px per pixel: Gaussian matched
   filters at three scales (normalised convolution, so unbiased up to the border), each
   divided by its local noise (the mesh map of the median residual of step 1 times the
   filter's white-noise gain sqrt(sum k^2) / sum k); local maxima beyond
   ``threshold_sigma`` (and a quarter of ``min_contrast_pct``) are the candidates.
4. **Measurement** of each candidate on the 2 x 2 plane (decimated to ~7 px across the
   spot): divided by the mesh background, a quadratic fitted (least squares, one 3-sigma
   clip) on the ring 1.3-2.5 diameters out, then c exp(-ln2 (2 r / D)^beta) fitted to the
   contrast by Levenberg-Marquardt in (x0, y0, c, D, beta). Its centre value is c and its
   full width at half c is D for any beta (2: Gaussian; large: flat-topped disc); log beta
   has a prior N(log 3, 0.4^2) that decides the shape only where the noise cannot.
   ``contrast_pct`` = 100 c, ``diameter_px`` = D, ``area_px`` = pi D^2 / 4 (inside the
   half-contrast contour), ``snr`` = the fitted spot's matched-filter signal-to-noise ratio
   sqrt(sum model^2) / pixel noise, which must pass ``threshold_sigma`` too.

Only spots with ``contrast_pct`` >= ``min_contrast_pct`` in magnitude (dark spots positive,
bright ones negative) and ``diameter_px`` >= ``min_diameter_px`` are reported; clusters of
defect pixels are smaller than the default minimum of 6 px. Coordinates are full-frame pixels,
x = column, y = row, pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harness.analysis.defects import CFA_PATTERNS
from harness.errors import ConfigError

#: Block of the background mesh, full-frame pixels.
MESH_PX = 32
_DET = 4  # the detection plane is the 2 x 2 plane decimated by 4: 8 full-frame px per pixel
_SCALES = (0.6, 1.2, 2.4)  # detection-plane px: spot FWHM ~ 11, 23, 45 full-frame px
_LN2 = math.log(2.0)
_BETA0, _BETA_SD = math.log(3.0), 0.4


@dataclass(frozen=True)
class BlemishOptions:
    """``min_contrast_pct``, ``min_diameter_px``: the smallest spot reported (full-frame px);
    ``threshold_sigma``: detection threshold in matched-filter noise sigmas, for the
    candidates and for the fitted spot (5.5: the expected number of noise maxima above it,
    both signs, on the finest filter of a 12 MP frame is ~0.05 by the Euler characteristic
    of a smoothed Gaussian field; at 5 it is ~0.6, and 0.5 false spots per frame were seen);
    ``defect_sigma``: the departure from the 3 x 3 median, in robust sigmas, that marks a
    defect pixel."""

    min_contrast_pct: float = 1.0
    min_diameter_px: float = 6.0
    threshold_sigma: float = 5.5
    defect_sigma: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.min_contrast_pct < 100:
            raise ConfigError(f"{self.min_contrast_pct} outside (0, 100)",
                              field="min_contrast_pct")
        if not 2 <= self.min_diameter_px <= 200:
            raise ConfigError(f"{self.min_diameter_px} outside [2, 200] px",
                              field="min_diameter_px")
        if not 3 <= self.threshold_sigma <= 50:
            raise ConfigError(f"{self.threshold_sigma} outside [3, 50]", field="threshold_sigma")
        if not 3 <= self.defect_sigma <= 100:
            raise ConfigError(f"{self.defect_sigma} outside [3, 100]", field="defect_sigma")


@dataclass(frozen=True)
class Blemish:
    """One spot: centre (full-frame column x, row y), FWHM diameter and its area (px), centre
    contrast 100 (1 - spot / background) (%), and the detection's signal-to-noise ratio."""

    x: float
    y: float
    diameter_px: float
    contrast_pct: float
    area_px: float
    snr: float

    def as_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "diameter_px": self.diameter_px,
                "contrast_pct": self.contrast_pct, "area_px": self.area_px, "snr": self.snr}


@dataclass(frozen=True)
class BlemishResult:
    """Blemishes found (largest contrast first), the frame size and the flat's pixel noise."""

    blemishes: tuple[Blemish, ...]
    width: int
    height: int
    noise_pct: float
    options: BlemishOptions = field(default_factory=BlemishOptions)

    @property
    def count(self) -> int:
        return len(self.blemishes)

    @property
    def max_contrast_pct(self) -> float:
        return max((abs(b.contrast_pct) for b in self.blemishes), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "blemishes": [b.as_dict() for b in self.blemishes],
                "max_contrast_pct": self.max_contrast_pct, "width": self.width,
                "height": self.height, "noise_pct": self.noise_pct,
                "options": {"min_contrast_pct": self.options.min_contrast_pct,
                            "min_diameter_px": self.options.min_diameter_px,
                            "threshold_sigma": self.options.threshold_sigma,
                            "defect_sigma": self.options.defect_sigma}}


def _working_plane(flat: np.ndarray, defect_sigma: float,
                   ) -> tuple[np.ndarray, float, np.ndarray]:
    """2 x 2 block means with defect pixels replaced by the 3 x 3 median; the relative pixel
    noise of the plane (robust sigma of plane / median - 1; for white noise the sigma of
    x - median of 9 is 0.971 sigma, its 1.4826 MAD 0.862 sigma, measured); and the mean
    square of that residual per mesh block (a noise map that smooth spots hardly touch: the
    median of a ramp is its centre value)."""
    h, w = flat.shape
    src = flat[: h - h % 2, : w - w % 2]
    if src.dtype != np.float32:
        src = src.astype(np.float32)
    plane = cv2.resize(src, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    med = cv2.medianBlur(plane, 3)
    rel = plane / np.maximum(med, np.float32(1e-12))
    rel -= np.float32(1.0)
    sigma = 1.4826 * float(np.median(np.abs(rel[::7, ::7]))) / 0.862
    if not sigma > 0:
        sigma = float(np.std(rel[::7, ::7])) / 0.971 or 1e-6
    # at least 2 %: the curvature of a small deep spot must not pass for a defect
    bad = np.abs(rel) > np.float32(max(defect_sigma * 0.862 * sigma, 0.02))
    np.copyto(plane, med, where=bad)
    rel[bad] = 0
    blk = MESH_PX // 2
    mh, mw = -(-plane.shape[0] // blk), -(-plane.shape[1] // blk)
    rel *= rel
    rel = np.pad(rel, ((0, mh * blk - rel.shape[0]), (0, mw * blk - rel.shape[1])),
                 mode="symmetric")
    var = cv2.resize(rel, (mw, mh), interpolation=cv2.INTER_AREA)
    return plane, sigma, var / np.float32(0.971**2)


def _pad_odd(img: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(img, pad, mode="reflect", reflect_type="odd")


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing "twiced" (Tukey 1977: S + S(x - S)), whose bias on a curved
    background is of order sigma^4 instead of sigma^2, with the border point-reflected."""
    pad = math.ceil(6 * sigma)
    padded = _pad_odd(img, pad).astype(np.float32)
    once = cv2.GaussianBlur(padded, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    out = once + cv2.GaussianBlur(padded - once, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(out[pad:-pad, pad:-pad])


def _fill_holes(mesh: np.ndarray, bad: np.ndarray, sigma: float) -> np.ndarray:
    """``mesh`` with its ``bad`` blocks replaced by a plane fitted, by least squares under
    Gaussian weights of ``sigma`` blocks, to the good blocks around each (polynomial normalised
    convolution, Knutsson & Westin 1993, CVPR, 515), so a hole on the border is filled from the
    side that has data with the background's slope kept. A block with less than a quarter of a
    full window of good blocks in reach waits for its neighbours to be filled (a large hole
    fills from its rim in). Only its border blocks are used (:func:`_background`); the inner
    ones it fills carry the rim-in to the border blocks deep in a hole (without them the border
    fill was worse: a 77 px spot 3 px off centre). Inside the frame a plane extrapolates the
    flank of a wide spot into its hole (measured: an 80 px, 1.5 % spot missed), where
    diffusion, which interpolates, does not."""
    r = math.ceil(3 * sigma)
    u = np.arange(-r, r + 1, dtype=np.float32)
    g = np.exp(-0.5 * (u / sigma) ** 2).astype(np.float32)
    terms = [(0, 0), (1, 0), (0, 1)]  # 1, x, y
    nt = len(terms)
    powers = {(a1 + a2, b1 + b2) for a1, b1 in terms for a2, b2 in terms}
    full = float(g.sum()) ** 2
    out = mesh.astype(np.float32).copy()
    todo = bad.copy()
    for _ in range(20):
        good = (~todo).astype(np.float32)
        mom = {pw: cv2.sepFilter2D(good, cv2.CV_32F, g * u**pw[0], g * u**pw[1],
                                   borderType=cv2.BORDER_CONSTANT) for pw in powers}
        ys, xs = np.nonzero(todo & (mom[0, 0] >= 0.25 * full))
        if ys.size == 0:
            break
        data = out * good
        gram = np.empty((ys.size, nt, nt))
        vec = np.empty((ys.size, nt))
        for i, (a1, b1) in enumerate(terms):
            vec[:, i] = cv2.sepFilter2D(data, cv2.CV_32F, g * u**a1, g * u**b1,
                                        borderType=cv2.BORDER_CONSTANT)[ys, xs]
            for j, (a2, b2) in enumerate(terms):
                gram[:, i, j] = mom[a1 + a2, b1 + b2][ys, xs]
        gram[:, np.arange(1, nt), np.arange(1, nt)] += 1e-6 * gram[:, :1, 0]
        out[ys, xs] = np.linalg.solve(gram, vec[:, :, None])[:, 0, 0]
        todo[ys, xs] = False
    return out.astype(mesh.dtype)


def _background(mesh: np.ndarray, noise: float, floor: float) -> np.ndarray:
    """Smooth background of the mesh of block means with the spots clipped out: blocks off
    by more than 3 robust sigmas, and more than ``floor`` (relative), are replaced, inside the
    frame by diffusion from the blocks around (repeated smoothing), on the border by
    :func:`_fill_holes`. Diffusion cannot reach a border block: :func:`_smooth` point-reflects
    the border, which holds every border block at its own value, so a spot on the border kept
    up to 0.7 % of its depth in the background (measured: a 77 px spot 4 px off centre)."""
    sigma = 1.5
    bg = _smooth(mesh, sigma)
    work = mesh.copy()
    bad = np.zeros(mesh.shape, bool)
    ring = np.ones(mesh.shape, bool)
    ring[1:-1, 1:-1] = False
    edge = np.zeros(mesh.shape, bool)
    fixed = mesh
    for it in range(20):
        if it < 4:  # the mask settles in a few passes; the holes then fill in by diffusion
            dev = mesh / bg - 1.0
            spread = 1.4826 * float(np.median(np.abs(dev)))
            bad = np.abs(dev) > max(3.0 * spread, 0.5 * noise, floor)
            bad = cv2.dilate(bad.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if not bad.any():
                break
            np.copyto(work, mesh)
            edge = bad & ring
            if edge.any():
                fixed = _fill_holes(mesh, bad, sigma)
        np.copyto(work, bg, where=bad)
        np.copyto(work, fixed, where=edge)
        bg = _smooth(work, sigma)
    return bg


def _upsample(mesh: np.ndarray, blk: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of the mesh (one node per ``blk`` x ``blk`` block) to ``shape``,
    extrapolated linearly past the outer nodes (so the background keeps its slope to the
    border, where ``cv2.resize`` would hold it flat)."""
    padded = _pad_odd(mesh, 1).astype(np.float32)
    h, w = shape
    mx = (np.arange(w, dtype=np.float32) - (blk - 1) / 2) / blk + 1
    my = (np.arange(h, dtype=np.float32) - (blk - 1) / 2) / blk + 1
    map_x = np.broadcast_to(mx[None, :], shape).copy()
    map_y = np.broadcast_to(my[:, None], shape).copy()
    out = cv2.remap(padded, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.maximum(out, np.float32(1e-6 * float(np.max(mesh))))


def _kernel(sigma: float) -> np.ndarray:
    return cv2.getGaussianKernel(2 * math.ceil(3.5 * sigma) + 1, sigma, cv2.CV_32F)


def _filter(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.sepFilter2D(img, cv2.CV_32F, k, k, borderType=cv2.BORDER_CONSTANT))


def _detect(det: np.ndarray, bg: np.ndarray, var_mesh: np.ndarray, opt: BlemishOptions,
            ) -> list[tuple[float, float, float, float]]:
    """(x, y, sigma, snr) on the detection plane of each candidate spot."""
    contrast = 1.0 - det / bg
    # pixel noise of the detection plane (4 x 4 means of the 2 x 2 plane) from the mesh map
    var = cv2.medianBlur(var_mesh.astype(np.float32), 5)
    noise = np.sqrt(_upsample(var, MESH_PX // (2 * _DET), det.shape)) / np.float32(_DET)
    noise = np.maximum(noise, np.float32(1e-5))
    zmax = np.zeros_like(contrast)
    best = np.zeros(contrast.shape, np.uint8)
    ones = np.ones_like(contrast)
    floor = np.float32(0.25 * opt.min_contrast_pct / 100)
    means = []
    for i, s in enumerate(_SCALES):
        # normalised convolution (zeros outside the frame): an unbiased local mean up to the
        # border, its white-noise gain sqrt(sum k^2) / sum k known at every pixel
        k = _kernel(s)
        norm = _filter(ones, k)
        m = _filter(contrast, k) / norm
        means.append(m)
        z = np.abs(m) / (noise * np.sqrt(_filter(ones, k * k)) / norm)
        z[np.abs(m) < floor] = 0  # too shallow to matter, however clean the flat
        higher = z > zmax
        np.copyto(zmax, z, where=higher)
        best[higher] = i
    # candidates: local maxima of the significance (two spots may share one region above the
    # threshold), each with its first-guess size from the filter responses there
    peaks = (zmax > opt.threshold_sigma) & (zmax >= cv2.dilate(zmax, np.ones((5, 5), np.uint8)))
    out = []
    for y, x in zip(*np.nonzero(peaks), strict=True):
        out.append((float(x), float(y), _spot_sigma([float(abs(mm[y, x])) for mm in means]),
                    float(zmax[y, x])))
    return out


def _spot_sigma(peaks: list[float]) -> float:
    """Spot sigma (detection-plane px) from its peak after two Gaussian filters: a Gaussian
    spot of sigma p gives c p^2 / (p^2 + s^2) after a filter of sigma s."""
    est = 1.0
    for i in range(len(_SCALES) - 1):
        (s1, m1), (s2, m2) = (_SCALES[i], peaks[i]), (_SCALES[i + 1], peaks[i + 1])
        est = math.sqrt(max(m2 * s2**2 - m1 * s1**2, 0.0) / max(m1 - m2, 1e-12))
        if est < 1.5 * s2:
            break
    return min(max(est, 0.4), 10.0)


def _model(q: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c exp(-ln2 (2 r / D)^beta) around (x0, y0) and its Jacobian in (x0, y0, c, D, beta)."""
    x0, y0, c, d, b = q
    dx, dy = xx - x0, yy - y0
    r = np.maximum(np.hypot(dx, dy), 1e-3)
    ratio = 2.0 * r / d
    u = ratio**b
    g = np.exp(-_LN2 * u)
    m = c * g
    k = m * _LN2 * b * u
    jac = np.stack([k * dx / (r * r), k * dy / (r * r), g, k / d,
                    -m * _LN2 * u * np.log(ratio)], 1)
    return m, jac


def _fit_spot(xx: np.ndarray, yy: np.ndarray, v: np.ndarray, start: np.ndarray, noise: float,
              ) -> np.ndarray | None:
    """Levenberg-Marquardt fit of the spot model to contrast values ``v`` at (xx, yy) with
    pixel noise ``noise``; log(beta) has a prior N(log 3, 0.4^2) (shape halfway between a
    Gaussian and a flat-topped disc), which decides the shape only where the noise cannot."""
    p = start.astype(np.float64)
    d_max = 4.0 * p[3] + 10.0
    lam = 1e-3
    w = 1.0 / max(noise, 1e-9)

    def terms(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        m, jac = _model(q, xx, yy)
        res = np.append((v - m) * w, (_BETA0 - math.log(q[4])) / _BETA_SD)
        prior = np.zeros((1, 5))
        prior[0, 4] = 1.0 / (q[4] * _BETA_SD)
        return res, np.vstack([jac * w, prior]), float(res @ res)

    res, jac, cost = terms(p)
    for _ in range(50):
        a = jac.T @ jac
        grad = jac.T @ res
        try:
            step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), grad)
        except np.linalg.LinAlgError:
            return None
        trial = p + step
        trial[3] = min(max(trial[3], 0.5), d_max)
        trial[4] = min(max(trial[4], 1.2), 20.0)
        res_t, jac_t, cost_t = terms(trial)
        if cost_t <= cost:
            done = bool(np.all(np.abs(trial - p) <= 1e-3 * (np.abs(p) + 1e-2)))
            p, res, jac, cost = trial, res_t, jac_t, cost_t
            lam = max(lam / 3.0, 1e-9)
            if done:
                break
        else:
            lam *= 4.0
            if lam > 1e8:
                break
    return p if bool(np.all(np.isfinite(p))) else None


def _mesh_at(padded: np.ndarray, blk: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Bilinear value of a mesh (one node per ``blk`` px block, padded by one node as in
    :func:`_upsample`) at plane coordinates (xx, yy) of the same shape (2-D)."""
    mx = ((xx - (blk - 1) / 2) / blk + 1).astype(np.float32)
    my = ((yy - (blk - 1) / 2) / blk + 1).astype(np.float32)
    return np.asarray(cv2.remap(padded, mx, my, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE), dtype=np.float64)


def _measure(plane: np.ndarray, mesh_bg: np.ndarray, x0: float, y0: float, d0: float,
             ) -> tuple[float, float, float, float, float] | None:
    """(x, y, contrast, diameter, snr) of one spot on the 2 x 2 plane, from a first guess: a local
    quadratic background, then the spot model fitted to the contrast (on a copy of the
    region decimated to ~7 px across the spot, so that large spots cost no more)."""
    h, w = plane.shape
    q = np.array([x0, y0, 0.0, d0, 3.0])
    for it in range(3):
        xc, yc, d = float(q[0]), float(q[1]), float(q[3])
        f = max(1, int(d / 7.0))
        half = math.ceil(2.5 * d) + 3
        ya, yb = max(0, int(yc) - half), min(h, int(yc) + half + 2)
        xa, xb = max(0, int(xc) - half), min(w, int(xc) + half + 2)
        ny, nx = (yb - ya) // f, (xb - xa) // f
        if ny < 5 or nx < 5:
            return None
        roi = plane[ya:ya + ny * f, xa:xa + nx * f]
        if f > 1:
            roi = cv2.resize(roi, (nx, ny), interpolation=cv2.INTER_AREA)
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
        xx = xa + f * xx + (f - 1) / 2
        yy = ya + f * yy + (f - 1) / 2
        # the mesh background first, so the local quadratic only corrects what is left
        vals = (roi / _mesh_at(mesh_bg, MESH_PX // 2, xx, yy)).ravel()
        xx, yy = xx.ravel(), yy.ravel()
        dx, dy = (xx - xc) / half, (yy - yc) / half
        r = np.hypot(dx, dy) * half
        ring = r >= 1.3 * d
        if ring.sum() < 12:
            return None
        basis = np.stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy], 1)
        keep = ring
        for _ in range(2):
            bk = basis[keep]
            coef = np.linalg.solve(bk.T @ bk, bk.T @ vals[keep])
            model = basis @ coef
            dev = vals / model - 1.0
            spread = 1.4826 * float(np.median(np.abs(dev[ring])))
            keep = ring & (np.abs(dev) <= 3.0 * spread + 1e-12)
        contrast = 1.0 - vals / model
        if it == 0:
            q[2] = float(np.mean(contrast[r <= max(0.3 * d, 1.5 * f)]))
        fit = _fit_spot(xx, yy, contrast, q, spread)
        if fit is None or fit[3] <= 0.5 or math.hypot(fit[0] - x0, fit[1] - y0) > d0 + 4:
            return None
        # matched-filter significance of the fitted spot against the ring's pixel noise
        g = _model(fit, xx, yy)[0]
        snr = float(math.sqrt(float(g @ g)) / max(spread, 1e-9))
        moved = abs(fit[3] - q[3]) < 0.03 * q[3] and math.hypot(fit[0] - xc, fit[1] - yc) < 0.5
        q = fit
        if moved:
            break
    return float(q[0]), float(q[1]), float(q[2]), float(q[3]), snr


def measure_blemishes(flat: np.ndarray, *, bayer: str | None = None,
                      options: BlemishOptions | None = None) -> BlemishResult:
    """Blemishes of a flat field (mono image or raw Bayer mosaic named by ``bayer``; dark
    offset subtracted or small). See the module docstring for the method."""
    opt = options or BlemishOptions()
    if bayer is not None and bayer not in CFA_PATTERNS:
        raise ConfigError(f"{bayer!r} not allowed; allowed: {', '.join(CFA_PATTERNS)} or none",
                          field="bayer")
    if not isinstance(flat, np.ndarray) or flat.ndim != 2:
        raise ConfigError(f"flat must be a 2-D image, got shape {np.shape(flat)}", field="flat")
    h, w = flat.shape
    if h < 8 * MESH_PX or w < 8 * MESH_PX:
        raise ConfigError(f"flat {w}x{h} is too small; needs at least {8 * MESH_PX} px a side",
                          field="flat")
    if not np.issubdtype(flat.dtype, np.number) or np.issubdtype(flat.dtype, np.complexfloating):
        raise ConfigError(f"flat must hold real numbers, got {flat.dtype}", field="flat")
    plane, noise, var_mesh = _working_plane(flat, opt.defect_sigma)
    if not np.all(np.isfinite(plane[::17, ::17])):
        raise ConfigError("flat holds NaN or infinite values", field="flat")
    ph, pw = plane.shape
    dh, dw = ph // _DET, pw // _DET
    det = cv2.resize(plane[: dh * _DET, : dw * _DET], (dw, dh), interpolation=cv2.INTER_AREA)
    blk = MESH_PX // (2 * _DET)
    mh, mw = -(-dh // blk), -(-dw // blk)
    # a part block at the far edges is completed by point reflection (exact for a linear
    # background), so the mesh covers the whole frame: a spot in the last part block is seen
    whole = np.pad(det, ((0, mh * blk - dh), (0, mw * blk - dw)), mode="reflect",
                   reflect_type="odd")
    mesh = cv2.resize(whole, (mw, mh), interpolation=cv2.INTER_AREA)
    if not float(np.median(mesh)) > 0:
        raise ConfigError("the flat has no signal (median <= 0)", field="flat")
    bg_mesh = _background(mesh.astype(np.float64), noise / (MESH_PX / 2),
                          0.25 * opt.min_contrast_pct / 100)
    bg = _upsample(bg_mesh, blk, (dh, dw))
    padded = _pad_odd(bg_mesh, 1).astype(np.float32)
    found: list[Blemish] = []
    for xd, yd, sig, _z in sorted(_detect(det, bg, var_mesh[:mh, :mw], opt), key=lambda c: -c[3]):
        x0, y0 = _DET * xd + (_DET - 1) / 2, _DET * yd + (_DET - 1) / 2
        if any(math.hypot(2 * x0 + 0.5 - b.x, 2 * y0 + 0.5 - b.y) < b.diameter_px
               for b in found):
            continue
        m = _measure(plane, padded, x0, y0, 2.3548 * sig * _DET)
        if m is None:
            continue
        xc, yc, c, d, snr = m
        b = Blemish(x=2 * xc + 0.5, y=2 * yc + 0.5, diameter_px=2 * d, contrast_pct=100 * c,
                    area_px=math.pi * d * d, snr=snr)
        if (abs(b.contrast_pct) < opt.min_contrast_pct or b.diameter_px < opt.min_diameter_px
                or not (-0.5 <= b.x <= w - 0.5 and -0.5 <= b.y <= h - 0.5)
                or snr < opt.threshold_sigma
                or any(math.hypot(b.x - o.x, b.y - o.y) < 0.5 * max(b.diameter_px,
                                                                     o.diameter_px)
                       for o in found)):
            continue
        found.append(b)
    found.sort(key=lambda b: -abs(b.contrast_pct))
    return BlemishResult(tuple(found), w, h, 100 * noise, opt)


__all__ = ["MESH_PX", "Blemish", "BlemishOptions", "BlemishResult", "measure_blemishes"]
