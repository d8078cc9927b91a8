"""Geometric (radial) distortion and SMIA TV distortion from an image of a dot-grid chart.

Chart: a square grid of round dots, dark on light or light on dark, filling the frame
(docs/standards.md#dot-grid-distortion-chart); any pitch of at least ~12 px with dots at least
~5 px across, the dots no wider than about half the pitch.

Method (docs/standards.md#dot-grid-distortion):

1. Detect: on a copy block-averaged to at most ``DETECT_MAX_SIDE`` px (``cv2.resize``
   INTER_AREA), divide by a local mean (``cv2.blur``, removes vignetting), Otsu threshold
   (``cv2.threshold``), ``cv2.connectedComponentsWithStats``; keep round blobs of the common
   size not touching the border. Polarity: whichever class gives more such blobs (or
   ``dots=``).
   (``cv2.findCirclesGrid`` needs the grid size in advance and returns centres of binary blobs.)
2. Refine at full resolution: in a square window around each dot, fit a background plane to
   the window's outer ring, weight each pixel inside by its contrast to that plane (dark dots:
   1 - I / plane, which also divides out vignetting; light dots: I - plane), and take the
   intensity-weighted centroid (again around it when it lands over 1 px from the window's
   centre).
3. Index: the dot nearest the image centre is (0, 0); pitch and rotation come from its nearest
   neighbours, where distortion is least. The model below is fitted to the dots near the centre
   and the indexed region grown (x 1.6 in radius per round), each dot taking the grid index
   nearest to its undistorted position under the current fit, until every dot is indexed.
4. Fit, by Gauss-Newton with step halving (numpy least squares; no scipy), the ideal grid and
   the radial polynomial of the distortion centre c:

       q(i, j) = t + s (i cos a + j sin a, -i sin a + j cos a)
       p(i, j) = c + q (1 + k1 r^2 + k2 r^4),   r = |q| / R,   R = 0.5 hypot(W, H)

   (pitch s, rotation a counter-clockwise as displayed, t the ideal position of dot (0, 0)
   relative to c). ``centre="fit"`` (default) fits c, with a weak prior at the image centre
   (``CENTRE_PRIOR_FRACTION``) so that a distortion too weak to locate it leaves it there (with
   a warning); ``centre="image"`` fixes it at the image centre ((W - 1) / 2, (H - 1) / 2).
   Dots off by more than max(6 robust sigma, 0.25 px) are dropped once and the fit repeated.
   The magnification at c is 1 by construction, so D(r) = 100 (r_d - r_u) / r_u =
   100 (k1 r^2 + k2 r^4) % at ideal radius r (fraction of R), the "5th order polynomial"
   radial model (r_d = r_u (1 + k1 r_u^2 + k2 r_u^4)).
5. SMIA TV distortion (SMIA 1.0 Part 5, Camera Characterisation, section on TV distortion):
   100 (A - B) / B with A = (A1 + A2) / 2 the heights of the left and right edges of the widest
   measured rectangle of dots and B the height at its centre; the rectangle spans grid columns
   -m..m and rows -n..n around dot (0, 0), the largest (by m x n) for which the six dots
   (+-m, +-n), (0, +-n) were all measured; heights are distances between measured centroids.
   Negative = barrel.

Coordinates: x right, y down, pixel centres at integers (top-left pixel centre (0, 0)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError, MeasurementError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

RADII = (0.5, 0.7, 0.9)
CENTRES = ("fit", "image")
POLARITIES = ("auto", "dark", "light")
DETECT_MAX_SIDE = 1100
MIN_DOTS = 24
MIN_SIDE = 64
#: Largest rms fit residual, as a fraction of the pitch, of dots that form a grid.
MAX_RMS_PITCH = 0.02
#: Pixel types OpenCV resizes as they are (others are converted to float64 first).
_NATIVE = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))
#: Weak prior on a fitted distortion centre: the image centre, known to this fraction of the
#: half-diagonal, weighed against dots measured to ``PRIOR_DOT_SIGMA_PX``. A real distortion
#: locates the centre to a fraction of a pixel and the prior moves it by far less; without
#: distortion the centre is undetermined and stays near the image centre (with a warning).
CENTRE_PRIOR_FRACTION = 0.05
PRIOR_DOT_SIGMA_PX = 0.05
#: Parameter vector of the fit: centre x, y; offset of dot (0, 0) x, y; pitch; angle; k1; k2.
_C, _T, _S, _A, _K1, _K2 = 0, 2, 4, 5, 6, 7


@dataclass(frozen=True)
class DistortionResult:
    """Radial distortion D at ideal radii (fractions of the half-diagonal), the fitted model,
    and the SMIA TV distortion of one dot-grid image."""

    radial_distortion_pct: Mapping[str, float]
    k1: float
    k2: float
    centre_px: tuple[float, float]
    centre_mode: str
    centre_sigma_px: float
    rotation_deg: float
    pitch_px: float
    grid_origin_px: tuple[float, float]
    smia_tv_distortion_pct: float
    smia_box: tuple[int, int]  # (m, n): columns -m..m, rows -n..n
    dots_detected: int
    dots_used: int
    rms_residual_px: float
    max_residual_px: float
    max_radius: float
    polarity: str
    warnings: tuple[str, ...] = ()
    dots_ij: IntArray = field(default_factory=lambda: np.zeros((0, 2), np.int64), repr=False)
    dots_px: FloatArray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "radial_distortion_pct": dict(self.radial_distortion_pct),
            "k1": self.k1, "k2": self.k2,
            "centre_px": list(self.centre_px), "centre_mode": self.centre_mode,
            "centre_sigma_px": self.centre_sigma_px,
            "rotation_deg": self.rotation_deg, "pitch_px": self.pitch_px,
            "grid_origin_px": list(self.grid_origin_px),
            "smia_tv_distortion_pct": self.smia_tv_distortion_pct,
            "smia_box": {"columns": self.smia_box[0], "rows": self.smia_box[1]},
            "dots_detected": self.dots_detected, "dots_used": self.dots_used,
            "rms_residual_px": self.rms_residual_px, "max_residual_px": self.max_residual_px,
            "max_radius": self.max_radius, "polarity": self.polarity,
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- detection


def _detect_blobs(image: NDArray[Any], factor: int, polarity: str) -> tuple[FloatArray, float,
                                                                          str]:
    """Coarse dot centres (full-resolution px), dot diameter (px) and the polarity found."""
    h, w = image.shape
    hs, ws = h // factor, w // factor
    if factor > 1:
        small = cv2.resize(np.ascontiguousarray(image[: hs * factor, : ws * factor]), (ws, hs),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
    else:
        small = image.astype(np.float32)
    if not np.isfinite(small).all():
        raise ConfigError("the image holds NaN or infinite values", field="image")
    k = max(15, (min(hs, ws) // 8) | 1)
    local = cv2.blur(small, (k, k), borderType=cv2.BORDER_REFLECT)
    scale = float(np.abs(local).max()) or 1.0
    ratio = small / np.maximum(local, 1e-3 * scale)
    lo, hi = np.percentile(ratio[::2, ::2], [0.1, 99.9])
    if not hi - lo > 0.1:
        raise MeasurementError(f"no dot grid found: the image has no contrast "
                               f"({hi - lo:.3f} relative to its local mean)", figure="dots")
    u8 = np.clip((ratio - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    _, bright = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    masks = {"light": bright, "dark": cv2.bitwise_not(bright)}
    found = {name: _round_blobs(masks[name]) for name in
             (("light", "dark") if polarity == "auto" else (polarity,))}
    polarity = max(found, key=lambda name: len(found[name][1]))
    cents, area = found[polarity]
    if len(area) < MIN_DOTS:
        raise MeasurementError(f"no dot grid found: {len(area)} dot-like blobs (at least "
                               f"{MIN_DOTS} needed)", figure="dots")
    centres = cents * factor + (factor - 1) / 2.0
    diameter = 2.0 * math.sqrt(float(np.median(area)) / math.pi) * factor
    return centres.astype(np.float64), diameter, polarity


def _round_blobs(mask: NDArray[np.uint8]) -> tuple[FloatArray, FloatArray]:
    """Centroids and areas of the round blobs of the common size that do not touch the border."""
    hs, ws = mask.shape
    _, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    left, top, bw, bh, area = (stats[1:, q] for q in range(5))
    ok = ((left > 0) & (top > 0) & (left + bw < ws) & (top + bh < hs) & (area >= 6)
          & (bw <= 2 * bh) & (bh <= 2 * bw) & (area >= 0.5 * bw * bh))
    if np.count_nonzero(ok) >= 3:
        med = float(np.median(area[ok]))
        ok &= (area > 0.4 * med) & (area < 2.5 * med)
    return cents[1:][ok], area[ok].astype(np.float64)


def _refine(image: NDArray[Any], centres: FloatArray, diameter: float, pitch: float,
            polarity: str) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Intensity-weighted centroids at full resolution (see the module docstring, step 2).

    Windows whose centroid lands more than 1 px from their centre are measured again around it.
    """
    h, w = image.shape
    rad = 0.5 * diameter
    half = max(5, round(min(1.6 * rad + 3.0, 0.45 * pitch)))
    ring = max(2, round(0.25 * rad))
    side = 2 * half + 1
    offs = np.arange(-half, half + 1, dtype=np.float64)
    dy, dx = np.meshgrid(offs, offs, indexing="ij")
    ring_mask = (np.maximum(np.abs(dx), np.abs(dy)) > half - ring).ravel()
    disc = np.flatnonzero(np.hypot(dx, dy).ravel() <= half - ring)
    design = np.stack([np.ones(int(ring_mask.sum())), dx.ravel()[ring_mask],
                       dy.ravel()[ring_mask]], axis=1)
    to_plane = np.zeros((side * side, 3), np.float32)
    to_plane[ring_mask] = np.linalg.pinv(design).T
    basis = np.stack([np.ones(disc.size), dx.ravel()[disc], dy.ravel()[disc]]).astype(np.float32)
    pts = centres.copy()
    ix = np.round(pts[:, 0]).astype(np.int64)
    iy = np.round(pts[:, 1]).astype(np.int64)
    good = (ix - half >= 0) & (iy - half >= 0) & (ix + half < w) & (iy + half < h)
    todo = np.flatnonzero(good)
    for _ in range(2):
        patches = np.empty((todo.size, side, side), np.float32)
        for n, k in enumerate(todo):
            patches[n] = image[iy[k] - half:iy[k] + half + 1, ix[k] - half:ix[k] + half + 1]
        flat = patches.reshape(todo.size, -1)
        plane = (flat @ to_plane) @ basis
        vals = flat[:, disc]
        if polarity == "dark":
            good[todo[(plane <= 0).any(axis=1)]] = False
            wgt = 1.0 - vals / np.maximum(plane, np.float32(1e-30))
        else:
            wgt = vals - plane
        sums = (wgt @ basis.T).astype(np.float64)
        total = sums[:, 0]
        safe = np.where(total > 0, total, 1.0)
        sx, sy = sums[:, 1] / safe, sums[:, 2] / safe
        good[todo[(total <= 0) | (np.hypot(sx, sy) > 0.5 * half)]] = False
        pts[todo, 0] = ix[todo] + sx
        pts[todo, 1] = iy[todo] + sy
        again = todo[good[todo] & (np.maximum(np.abs(sx), np.abs(sy)) > 1.0)]
        if again.size == 0:
            break
        ix[again] = np.round(pts[again, 0]).astype(np.int64)
        iy[again] = np.round(pts[again, 1]).astype(np.int64)
        inside = (ix[again] - half >= 0) & (iy[again] - half >= 0) & (ix[again] + half < w) & (
            iy[again] + half < h)
        good[again[~inside]] = False
        todo = again[inside]
    return pts, good


# --------------------------------------------------------------------------- model


def _ideal(params: FloatArray, ij: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ideal positions q relative to the centre, and the unit grid vectors along s, a."""
    s, a = params[_S], params[_A]
    ca, sa = math.cos(a), math.sin(a)
    e = np.stack([ij[:, 0] * ca + ij[:, 1] * sa, -ij[:, 0] * sa + ij[:, 1] * ca], axis=1)
    de = np.stack([-ij[:, 0] * sa + ij[:, 1] * ca, -ij[:, 0] * ca - ij[:, 1] * sa], axis=1)
    return params[_T:_T + 2] + s * e, e, s * de


def _predict(params: FloatArray, ij: FloatArray, big_r: float) -> FloatArray:
    q, _, _ = _ideal(params, ij)
    r2 = (q * q).sum(axis=1) / big_r**2
    g = 1.0 + params[_K1] * r2 + params[_K2] * r2 * r2
    return params[_C:_C + 2] + q * g[:, None]


def _jacobian(params: FloatArray, ij: FloatArray, big_r: float) -> FloatArray:
    """d(prediction)/d(params), rows x0, y0, x1, y1, ... (8 columns)."""
    q, e, de = _ideal(params, ij)
    r2 = (q * q).sum(axis=1) / big_r**2
    k1, k2 = params[_K1], params[_K2]
    g = 1.0 + k1 * r2 + k2 * r2 * r2
    hq = ((2.0 * k1 + 4.0 * k2 * r2) / big_r**2)[:, None] * q  # dg/dq
    n = len(ij)
    jac = np.zeros((n, 2, 8))
    jac[:, 0, 0] = jac[:, 1, 1] = 1.0

    def through(dq: FloatArray) -> FloatArray:  # dp = g dq + q (hq . dq)
        return g[:, None] * dq + q * (hq * dq).sum(axis=1)[:, None]

    jac[:, :, _T] = through(np.tile([1.0, 0.0], (n, 1)))
    jac[:, :, _T + 1] = through(np.tile([0.0, 1.0], (n, 1)))
    jac[:, :, _S] = through(e)
    jac[:, :, _A] = through(de)
    jac[:, :, _K1] = q * r2[:, None]
    jac[:, :, _K2] = q * (r2 * r2)[:, None]
    return jac.reshape(2 * n, 8)


def _prior_weight(big_r: float) -> float:
    return PRIOR_DOT_SIGMA_PX / (CENTRE_PRIOR_FRACTION * big_r)


def _residuals(p: FloatArray, ij: FloatArray, obs: FloatArray, big_r: float,
               prior: FloatArray | None) -> FloatArray:
    res = obs - _predict(p, ij, big_r).reshape(-1)
    if prior is None:
        return res
    return np.concatenate([res, _prior_weight(big_r) * (prior - p[_C:_C + 2])])


def _full_jacobian(p: FloatArray, ij: FloatArray, big_r: float,
                   prior: FloatArray | None) -> FloatArray:
    jac = _jacobian(p, ij, big_r)
    if prior is None:
        return jac
    extra = np.zeros((2, 8))
    extra[0, _C] = extra[1, _C + 1] = _prior_weight(big_r)
    return np.concatenate([jac, extra])


def _fit(params: FloatArray, ij: FloatArray, pts: FloatArray, big_r: float,
         free: NDArray[np.bool_], prior: FloatArray | None = None) -> tuple[FloatArray,
                                                                            FloatArray]:
    """Gauss-Newton with step halving; returns (params, covariance of the free ones).

    ``prior``: the image centre, a weak prior on the distortion centre (when it is free)."""
    p = params.copy()
    obs = pts.reshape(-1)
    if not free[_C]:
        prior = None
    res = _residuals(p, ij, obs, big_r, prior)
    cost = float(res @ res)
    cols = np.flatnonzero(free)
    for _ in range(30):
        jac = _full_jacobian(p, ij, big_r, prior)[:, cols]
        norm = np.linalg.norm(jac, axis=0)
        norm[norm == 0] = 1.0
        scaled = jac / norm
        try:
            step = np.linalg.solve(scaled.T @ scaled, scaled.T @ res) / norm
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(scaled, res, rcond=1e-12)[0] / norm
        lam = 1.0
        for _ in range(12):
            trial = p.copy()
            trial[cols] += lam * step
            t_res = _residuals(trial, ij, obs, big_r, prior)
            t_cost = float(t_res @ t_res)
            if t_cost <= cost:
                break
            lam *= 0.5
        else:
            break
        gain = cost - t_cost
        p, res, cost = trial, t_res, t_cost
        if gain <= 1e-12 * max(cost, 1e-9) or np.max(np.abs(lam * step * norm)) < 1e-9:
            break
    jac = _full_jacobian(p, ij, big_r, prior)[:, cols]
    norm = np.linalg.norm(jac, axis=0)
    norm[norm == 0] = 1.0
    scaled = jac / norm
    dof = max(1, len(obs) - len(cols))
    cov = np.linalg.pinv(scaled.T @ scaled) / np.outer(norm, norm) * (cost / dof)
    return p, cov


def _undistort(params: FloatArray, pts: FloatArray, big_r: float) -> FloatArray:
    """Fractional grid coordinates (i, j) of image points under the model (Newton on r_u)."""
    qd = pts - params[_C:_C + 2]
    rd = np.hypot(qd[:, 0], qd[:, 1]) / big_r
    k1, k2 = params[_K1], params[_K2]
    ru = rd.copy()
    for _ in range(8):
        f = ru * (1.0 + k1 * ru**2 + k2 * ru**4) - rd
        df = 1.0 + 3.0 * k1 * ru**2 + 5.0 * k2 * ru**4
        ru = ru - f / np.where(np.abs(df) > 1e-6, df, 1e-6)
    scale = np.where(rd > 0, ru / np.where(rd > 0, rd, 1.0), 1.0)
    v = qd * scale[:, None] - params[_T:_T + 2]
    s, a = params[_S], params[_A]
    ca, sa = math.cos(a), math.sin(a)
    return np.stack([(v[:, 0] * ca - v[:, 1] * sa) / s, (v[:, 0] * sa + v[:, 1] * ca) / s],
                    axis=1)


def _assign(params: FloatArray, pts: FloatArray, big_r: float,
            limit_px: float) -> NDArray[np.intp]:
    """Indices of the dots within ``limit_px`` of dot (0, 0) that sit near a grid node, one per
    node (the nearest)."""
    uv = _undistort(params, pts, big_r)
    node = np.round(uv)
    off = np.hypot(*(uv - node).T)
    near = (off < 0.3) & (np.hypot(*(uv * params[_S]).T) <= limit_px)
    cand = np.flatnonzero(near)
    cand = cand[np.argsort(off[cand])]
    seen: set[tuple[int, int]] = set()
    keep: list[int] = []
    for k in cand:
        key = (int(node[k, 0]), int(node[k, 1]))
        if key not in seen:
            seen.add(key)
            keep.append(int(k))
    return np.array(sorted(keep), dtype=np.intp)


def _start(pts: FloatArray, shape: tuple[int, int]) -> tuple[int, float, float]:
    """Index of the dot nearest the image centre, pitch and rotation from its neighbours."""
    h, w = shape
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    o = int(np.argmin(np.hypot(*(pts - centre).T)))
    vec = pts - pts[o]
    dist = np.hypot(*vec.T)
    dist[o] = np.inf
    nn = float(dist.min())
    near = vec[dist < 1.3 * nn]
    if len(near) < 2:
        raise MeasurementError("dot grid not found: the central dot has fewer than two "
                               "neighbours at one pitch", figure="dots")
    ang = np.arctan2(-near[:, 1], near[:, 0])
    a = float(np.angle(np.exp(4j * ang).mean())) / 4.0
    pitch = float(np.mean(np.hypot(*near.T)))
    return o, pitch, a


def _smia(index: dict[tuple[int, int], int], pts: FloatArray) -> tuple[float, tuple[int, int]]:
    best: tuple[int, int, int] | None = None
    ms = [abs(i) for i, _ in index]
    ns = [abs(j) for _, j in index]
    for n in range(max(ns), 0, -1):
        for m in range(max(ms), 0, -1):
            need = [(-m, -n), (-m, n), (m, -n), (m, n), (0, -n), (0, n)]
            if all(k in index for k in need):
                if best is None or (m * n, n) > (best[0], best[2]):
                    best = (m * n, m, n)
                break
    if best is None:
        return math.nan, (0, 0)
    _, m, n = best

    def height(i: int) -> float:
        return float(np.hypot(*(pts[index[(i, n)]] - pts[index[(i, -n)]])))

    a = 0.5 * (height(-m) + height(m))
    b = height(0)
    return 100.0 * (a - b) / b, (m, n)


# --------------------------------------------------------------------------- entry point


def measure_distortion(image: NDArray[Any], *, centre: str = "fit",
                       dots: str = "auto") -> DistortionResult:
    """Radial distortion at 0.5, 0.7, 0.9 of the half-diagonal, k1, k2, distortion centre,
    grid rotation and SMIA TV distortion of a 2-D image of a dot-grid chart (module docstring).

    ``centre``: "fit" (the distortion centre is fitted) or "image" (fixed at the image
    centre); ``dots``: "auto", "dark" (dark dots on a light ground) or "light".
    """
    if centre not in CENTRES:
        raise ConfigError(f"{centre!r} is not one of {', '.join(CENTRES)}", field="centre")
    if dots not in POLARITIES:
        raise ConfigError(f"{dots!r} is not one of {', '.join(POLARITIES)}", field="dots")
    if image.ndim != 2:
        raise ConfigError(f"expected a 2-D image, got shape {image.shape}", field="image")
    h, w = image.shape
    if min(h, w) < MIN_SIDE:
        raise ConfigError(f"image {w}x{h} is too small (at least {MIN_SIDE} px a side)",
                          field="image")
    img = image if image.dtype in _NATIVE else np.asarray(image, dtype=np.float64)
    factor = max(1, math.ceil(max(h, w) / DETECT_MAX_SIDE))
    try:
        coarse, diameter, polarity = _detect_blobs(img, factor, dots)
        if factor > 1 and diameter / factor < 5:
            raise MeasurementError("dots too small to detect at reduced size")
    except MeasurementError:
        if factor == 1:
            raise
        factor = 1
        coarse, diameter, polarity = _detect_blobs(img, 1, dots)
    _, pitch0, _ = _start(coarse, (h, w))
    pts_all, good = _refine(img, coarse, diameter, pitch0, polarity)
    pts = pts_all[good]
    detected = len(pts)
    if detected < MIN_DOTS:
        raise MeasurementError(f"too few dots measured: {detected} (at least {MIN_DOTS} needed)",
                               figure="dots")
    o, pitch, angle = _start(pts, (h, w))
    big_r = 0.5 * math.hypot(w, h)
    params = np.zeros(8)
    prior = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    params[_C:_C + 2] = prior
    params[_T:_T + 2] = pts[o] - params[_C:_C + 2]
    params[_S], params[_A] = pitch, angle
    free = np.ones(8, bool)
    limit = 3.5 * pitch
    reach = float(np.hypot(*(pts - pts[o]).T).max())
    idx = np.zeros(0, np.intp)
    cov = np.zeros((0, 0))
    for _ in range(40):
        idx = _assign(params, pts, big_r, limit)
        if len(idx) < 6:
            raise MeasurementError(f"dot grid not found: only {len(idx)} dots near the centre "
                                   "lie on one grid", figure="dots")
        uv = np.round(_undistort(params, pts[idx], big_r))
        span = float(np.hypot(*(pts[idx] - params[_C:_C + 2]).T).max()) / big_r
        step_free = free.copy()
        step_free[_C:_C + 2] = centre == "fit" and span > 0.3
        step_free[_K1] = span > 0.15
        step_free[_K2] = span > 0.4
        params, cov = _fit(params, uv, pts[idx], big_r, step_free, prior)
        if limit > reach:
            again = _assign(params, pts, big_r, limit)
            if np.array_equal(again, idx):
                break
        limit *= 1.6
    free[_C:_C + 2] = centre == "fit"
    ij = np.round(_undistort(params, pts[idx], big_r))
    params, cov = _fit(params, ij, pts[idx], big_r, free, prior)
    resid = np.hypot(*(pts[idx] - _predict(params, ij, big_r)).T)
    robust = 1.4826 * float(np.median(resid))
    keep = resid <= max(6.0 * robust, 0.25)
    if not keep.all():
        idx, ij = idx[keep], ij[keep]
        params, cov = _fit(params, ij, pts[idx], big_r, free, prior)
        resid = np.hypot(*(pts[idx] - _predict(params, ij, big_r)).T)
    if len(idx) < MIN_DOTS:
        raise MeasurementError(f"too few dots on the grid: {len(idx)} (at least {MIN_DOTS} "
                               "needed)", figure="dots")
    rms = float(np.sqrt(np.mean(resid**2)))
    if rms > MAX_RMS_PITCH * params[_S]:
        raise MeasurementError(f"the dots do not lie on a distorted square grid: fit residual "
                               f"{rms:.2f} px rms for a pitch of {params[_S]:.1f} px",
                               figure="dots")
    # report the grid with index (0, 0) at the dot nearest the image centre
    origin = np.round(_undistort(params, pts[o:o + 1], big_r))[0]
    ij_int = (ij - origin).astype(np.int64)
    index = {(int(i), int(j)): k for k, (i, j) in enumerate(ij_int)}
    smia, box = _smia(index, pts[idx])
    k1, k2 = float(params[_K1]), float(params[_K2])
    q, _, _ = _ideal(params, ij)
    max_radius = float(np.hypot(*q.T).max()) / big_r
    warnings: list[str] = []
    beyond = [r for r in RADII if r > max_radius]
    if beyond:
        warnings.append(f"D at r = {', '.join(f'{r:g}' for r in beyond)} extrapolated: the "
                        f"dots reach r = {max_radius:.3f}")
    centre_sigma = (float(math.sqrt(max(cov[0, 0], 0.0) + max(cov[1, 1], 0.0)))
                    if centre == "fit" else 0.0)
    if centre == "fit" and centre_sigma > 0.01 * big_r:
        warnings.append(f"distortion centre poorly determined (±{centre_sigma:.1f} px): "
                        "distortion too weak to locate it")
    if len(idx) < 0.8 * detected:
        warnings.append(f"only {len(idx)} of {detected} dots found lie on the grid")
    if math.isnan(smia):
        warnings.append("SMIA TV distortion not measured: no rectangle of dots around the "
                        "centre")
    return DistortionResult(
        radial_distortion_pct={f"{r:g}": 100.0 * (k1 * r * r + k2 * r**4) for r in RADII},
        k1=k1, k2=k2,
        centre_px=(float(params[_C]), float(params[_C + 1])), centre_mode=centre,
        centre_sigma_px=centre_sigma,
        rotation_deg=math.degrees(float(params[_A])), pitch_px=float(params[_S]),
        grid_origin_px=(float(pts[o, 0]), float(pts[o, 1])),
        smia_tv_distortion_pct=smia, smia_box=box,
        dots_detected=detected, dots_used=len(idx),
        rms_residual_px=rms, max_residual_px=float(resid.max()),
        max_radius=max_radius, polarity=polarity, warnings=tuple(warnings),
        dots_ij=ij_int, dots_px=pts[idx].copy(),
    )


__all__ = ["CENTRES", "DETECT_MAX_SIDE", "MIN_DOTS", "POLARITIES", "RADII", "DistortionResult",
           "measure_distortion"]
