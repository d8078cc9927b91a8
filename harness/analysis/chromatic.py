"""Lateral chromatic displacement (lateral colour) from slanted edges, per colour plane.

ISO 19084:2015 defines chromatic displacement (CD) as the position of a feature in the R (or B)
image minus its position in the G image, and radial chromatic displacement (RCD) as its
component along the radius from the image centre; it locates the features on a dot chart or a
V-pattern chart (docs/standards.md#lateral-ca-definitions). The harness
measures the same quantity on the slanted edges the e-SFR chart already provides: an edge only
shows the displacement component along its normal, so each ROI gives the normal component,
signed positive away from the image centre (R magnified more than G is positive).

Steps for one ROI:

1. Planes: on a raw mosaic each colour keeps its own sites with their full-resolution
   coordinates (pixel centres at integers; R of RGGB at (0, 0), B at (1, 1)), both greens
   forming G; no demosaicing, so the colours are not mixed. On an RGB image each channel uses
   every pixel.
2. Edge line: the G superpixels (mean of the two greens of each 2x2 cell, at the cell centre)
   give a reference line: per-row windowed derivative centroids and a straight-line fit, as in
   the edge fit of ISO 12233 Annex D (docs/standards.md#e-sfr-edge-fit-and-esf-binning). A
   magnification about the image centre keeps line directions, so one direction serves all
   planes; only their offsets along the normal differ.
3. Per plane: the signed distance d of every site within :data:`MAX_HALF_WIDTH_PX` of that
   line, binned at :data:`BIN_PX` (bin means of distance and value, so sites keep their exact
   positions), and a weighted least-squares fit (Levenberg-Marquardt) of one edge model to all
   planes alike, the Gaussian-blurred step a + b Phi((d - c) / s). ``c`` is the plane's edge
   position (its ESF 50 % point); ``s`` its blur.
4. Displacement = c_R - c_G and c_B - c_G along the normal pointing away from the image centre,
   with a standard error from the fit's covariance (residual variance times (J^T W J)^-1).

Summary: ``lateral_ca_max_px`` = the largest |displacement| over ROIs and both channels;
``lateral_ca_pct`` = 100 x that / half-diagonal sqrt(W^2 + H^2) / 2, the percentage of the
centre-to-corner distance in which Imatest reports lateral CA
(docs/standards.md#lateral-ca-definitions). Accuracy: docs/standards.md#lateral-ca-accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from harness.analysis.edges import EdgeRoi
from harness.errors import ConfigError

FloatArray = NDArray[np.float64]
Orientation = Literal["vertical", "horizontal"]

BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")
#: ESF bin width along the normal (full-resolution pixels).
BIN_PX = 0.1
#: Distance from the edge (pixels along the normal) beyond which pixels are not used: enough
#: plateau for an edge blur sigma up to ~5 px, and a fit over a few hundred bins (speed).
MAX_HALF_WIDTH_PX = 24.0
#: Smallest ROI side (pixels).
MIN_ROI_SIDE = 16
#: Flat ground needed on each side of the edge inside the ROI (pixels along the normal).
MIN_HALF_WIDTH_PX = 4.0
#: An edge whose fitted step is below this many noise sigmas per pixel is "no edge".
MIN_EDGE_SNR = 3.0
#: Michelson contrast below which a warning is raised (sfrmat5's e-SFR threshold).
MIN_CONTRAST = 0.2
#: Edges nearer the centre than this fraction of the half-diagonal carry little lateral CA
#: (Imatest greys out CA of ROIs within 30 % of the centre-to-corner distance).
MIN_RADIUS_FRACTION = 0.3
#: |cos| between the edge normal and the radius below which the edge is called radial.
MIN_RADIAL_COS = 0.5
_LM_ITERATIONS = 60


@dataclass(frozen=True)
class ChromaticRoi:
    """Lateral chromatic displacement at one edge (full-resolution pixels).

    ``normal_xy``: unit edge normal in image coordinates (x right, y down), pointing away from
    the image centre; ``edge_point_xy``: the point of the G edge nearest the ROI centre;
    ``radius_px`` its distance from the image centre; ``radial_cos`` = normal . radius / |radius|
    (1 for a tangential edge, which shows all of a radial displacement). ``shift_*``: R or B
    edge position minus G's along ``normal_xy``; ``*_se_px`` their standard errors.
    ``esf_sigma_px``: fitted blur (Gaussian sigma) of the R, G and B edges.
    """

    label: str
    roi_xywh: tuple[int, int, int, int]
    orientation: Orientation
    edge_angle_deg: float
    normal_xy: tuple[float, float]
    edge_point_xy: tuple[float, float]
    radius_px: float
    radial_cos: float
    shift_r_g_px: float
    shift_b_g_px: float
    shift_r_g_se_px: float
    shift_b_g_se_px: float
    esf_sigma_px: tuple[float, float, float]
    contrast: float
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The per-ROI record of ``harness analyze chromatic --json``."""
        return {
            "label": self.label,
            "roi": list(self.roi_xywh),
            "orientation": self.orientation,
            "edge_angle_deg": self.edge_angle_deg,
            "normal_xy": list(self.normal_xy),
            "edge_point_xy": list(self.edge_point_xy),
            "radius_px": self.radius_px,
            "radial_cos": self.radial_cos,
            "shift_r_g_px": self.shift_r_g_px,
            "shift_b_g_px": self.shift_b_g_px,
            "shift_r_g_se_px": self.shift_r_g_se_px,
            "shift_b_g_se_px": self.shift_b_g_se_px,
            "esf_sigma_px": dict(zip("RGB", self.esf_sigma_px, strict=True)),
            "contrast": self.contrast,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LateralCaResult:
    """Per-ROI displacements and the field summary (see the module docstring)."""

    rois: tuple[ChromaticRoi, ...]
    lateral_ca_max_px: float
    lateral_ca_pct: float
    worst_roi: str
    worst_channel: Literal["R", "B"]
    half_diagonal_px: float
    centre_xy: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rois": [r.as_dict() for r in self.rois],
            "summary": {
                "lateral_ca_max_px": self.lateral_ca_max_px,
                "lateral_ca_pct": self.lateral_ca_pct,
                "worst_roi": self.worst_roi,
                "worst_channel": self.worst_channel,
                "half_diagonal_px": self.half_diagonal_px,
                "centre_xy": list(self.centre_xy),
            },
        }


# --------------------------------------------------------------------------- edge model


def _erf(x: FloatArray) -> FloatArray:
    """erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); numpy has none, scipy is not
    used by the analysis layer."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class _EdgeFit:
    c: float
    s: float
    lo: float
    hi: float
    c_var: float
    noise: float


def _fit_step(d: FloatArray, v: FloatArray, n: FloatArray) -> _EdgeFit | None:
    """Weighted least squares of v ~ a + b Phi((d - c) / s) over bins (weights = counts);
    Levenberg-Marquardt. None when it does not converge to an edge inside the data."""
    half = float(min(-d.min(), d.max()))
    q = max(half / 2, 1.0)
    left, right = d < -q, d > q
    if not left.any() or not right.any():
        return None
    a = float(np.average(v[left], weights=n[left]))
    b = float(np.average(v[right], weights=n[right])) - a
    p = np.array([a, b, 0.0, 1.0])
    lam = 1e-3

    def resid_jac(p: FloatArray) -> tuple[FloatArray, FloatArray]:
        z = (d - p[2]) * (1.0 / p[3])
        cdf = 0.5 + 0.5 * _erf(z * _INV_SQRT2)
        pdf = np.exp(-0.5 * z * z) * _INV_SQRT2PI
        out = np.empty((d.size, 4))
        out[:, 0] = 1.0
        out[:, 1] = cdf
        np.multiply(pdf, -p[1] / p[3], out=out[:, 2])
        np.multiply(out[:, 2], z, out=out[:, 3])
        return v - (p[0] + p[1] * cdf), out

    r, jac = resid_jac(p)
    cost = float(np.sum(n * r * r))
    converged = False
    for _ in range(_LM_ITERATIONS):
        jw = jac * n[:, None]
        a_mat = jw.T @ jac
        grad = jw.T @ r
        damped = a_mat.copy()
        damped[np.diag_indices(4)] *= 1.0 + lam
        step = np.linalg.solve(damped, grad)
        trial = p + step
        if trial[3] > 0.02:
            r_t, jac_t = resid_jac(trial)
            cost_t = float(np.sum(n * r_t * r_t))
            if cost_t <= cost:
                p, r, jac, cost = trial, r_t, jac_t, cost_t
                lam = max(lam / 5.0, 1e-9)
                if abs(step[2]) < 1e-6 and abs(step[3]) < 1e-5:
                    converged = True
                    break
                continue
        lam *= 4.0
        if lam > 1e8:
            break
    if not converged or not abs(p[2]) < half:
        return None
    dof = max(d.size - 4, 1)
    noise2 = cost / dof  # bins hold means of n samples: n * r^2 estimates the pixel variance
    jw = jac * n[:, None]
    try:
        cov = np.linalg.inv(jw.T @ jac)
    except np.linalg.LinAlgError:
        return None
    lo, hi = sorted((float(p[0]), float(p[0] + p[1])))
    return _EdgeFit(float(p[2]), float(p[3]), lo, hi, float(cov[2, 2] * noise2),
                    math.sqrt(noise2))


# --------------------------------------------------------------------------- planes and line


@dataclass(frozen=True)
class _Plane:
    values: FloatArray
    x: FloatArray  # absolute full-resolution x of each column
    y: FloatArray  # absolute y of each row


def _planes(img: FloatArray, roi: EdgeRoi, bayer: str | None) -> tuple[
        dict[str, list[_Plane]], _Plane]:
    """Colour planes of the ROI (G may hold two site lattices) and the G locating image."""
    x0, y0, w, h = roi.xywh
    if bayer is None:
        planes = {ch: [_Plane(img[y0:y0 + h, x0:x0 + w, k],
                              np.arange(x0, x0 + w, dtype=np.float64),
                              np.arange(y0, y0 + h, dtype=np.float64))]
                  for k, ch in enumerate("RGB")}
        return planes, planes["G"][0]
    planes = {"R": [], "G": [], "B": []}
    for k, ch in enumerate(bayer):
        r0, c0 = k // 2, k % 2
        ys = y0 + (r0 - y0) % 2
        xs = x0 + (c0 - x0) % 2
        vals = img[ys:y0 + h:2, xs:x0 + w:2]
        planes[ch].append(_Plane(vals, np.arange(xs, xs + 2 * vals.shape[1], 2, dtype=np.float64),
                                 np.arange(ys, ys + 2 * vals.shape[0], 2, dtype=np.float64)))
    xe, ye = x0 + x0 % 2, y0 + y0 % 2  # 2x2 cells aligned to the mosaic
    nh, nw = (y0 + h - ye) // 2, (x0 + w - xe) // 2
    cell = img[ye:ye + 2 * nh, xe:xe + 2 * nw].reshape(nh, 2, nw, 2)
    gsum = np.zeros((nh, nw))
    for k, ch in enumerate(bayer):
        if ch == "G":
            gsum += cell[:, k // 2, :, k % 2]
    locate = _Plane(gsum / 2.0, xe + 0.5 + 2.0 * np.arange(nw, dtype=np.float64),
                    ye + 0.5 + 2.0 * np.arange(nh, dtype=np.float64))
    return planes, locate


def _edge_line(loc: _Plane) -> tuple[Orientation, float, float]:
    """(orientation, alpha, beta): the edge as u = alpha + beta * t in absolute coordinates, u
    across the edge (x for a vertical edge, y for a horizontal one), t along it; from per-row
    windowed derivative centroids on the G locating image (ISO 12233 Annex D edge fit)."""
    img = loc.values
    gx = float(np.mean(np.abs(np.diff(img, axis=1)))) if img.shape[1] > 1 else 0.0
    gy = float(np.mean(np.abs(np.diff(img, axis=0)))) if img.shape[0] > 1 else 0.0
    orientation: Orientation = "vertical"
    u, t = loc.x, loc.y
    if gy > gx:
        img, u, t, orientation = img.T, loc.y, loc.x, "horizontal"
    nrows, ncols = img.shape
    if nrows < 4 or ncols < 6:
        raise ConfigError("ROI too small to hold an edge", field="roi")
    q = max(1, ncols // 4)
    step = abs(float(img[:, -q:].mean() - img[:, :q].mean()))
    noise = 1.4826 * float(np.median(np.abs(np.diff(img, axis=0)))) / math.sqrt(2.0)
    if not step > MIN_EDGE_SNR * noise:
        raise ConfigError(f"no edge found (step between the ROI's sides {step:.3g} is below "
                          f"{MIN_EDGE_SNR:g} noise sigmas {noise:.3g})", field="roi")
    deriv = np.diff(img, axis=1)
    deriv *= 1.0 if deriv.sum() >= 0 else -1.0
    xd = np.arange(ncols - 1, dtype=np.float64) + 0.5
    rows = np.arange(nrows, dtype=np.float64)
    centre = np.full(nrows, float(xd[int(np.argmax(deriv.mean(axis=0)))]))
    coef = np.array([0.0, centre[0]])
    for half in (ncols / 4.0, max(4.0, ncols / 8.0), max(4.0, ncols / 8.0)):
        wgt = np.clip(1.0 - np.abs(xd[None, :] - centre[:, None]) / half, 0.0, None)
        wd = wgt * deriv
        s = wd.sum(axis=1)
        ok = s > 1e-12 * max(1.0, float(np.abs(wd).max()))
        if ok.sum() < 3:
            raise ConfigError(f"no edge found ({int(ok.sum())} usable rows)", field="roi")
        cent = (wd[ok] * xd[None, :]).sum(axis=1) / s[ok]
        coef = np.polyfit(rows[ok], cent, 1)
        centre = np.polyval(coef, rows)
    # index space -> absolute: u = u[0] + pitch_u * col, t = t[0] + pitch_t * row
    pu = float(u[1] - u[0]) if u.size > 1 else 1.0
    pt = float(t[1] - t[0]) if t.size > 1 else 1.0
    beta = float(coef[0]) * pu / pt
    alpha = float(u[0] + pu * coef[1] - beta * t[0])
    return orientation, alpha, beta


# --------------------------------------------------------------------------- measurement


def _check_inputs(img: FloatArray, bayer: str | None) -> str | None:
    if img.ndim == 3 and img.shape[2] == 3:
        if bayer is not None:
            raise ConfigError("bayer applies to a single-channel raw mosaic, got an RGB image",
                              field="bayer")
        return None
    if img.ndim != 2:
        raise ConfigError(f"expected a 2-D raw mosaic or an H x W x 3 RGB image, got shape "
                          f"{img.shape}", field="image")
    if bayer is None:
        raise ConfigError("a 2-D image needs its Bayer pattern: lateral CA compares colour "
                          f"planes; allowed: {', '.join(BAYER_PATTERNS)}", field="bayer")
    pattern = bayer.upper()
    if pattern not in BAYER_PATTERNS:
        raise ConfigError(f"{bayer!r} is not one of {', '.join(BAYER_PATTERNS)}", field="bayer")
    return pattern


def _measure_roi(img: FloatArray, roi: EdgeRoi, bayer: str | None, centre: tuple[float, float],
                 half_diag: float, saturation: float | None) -> ChromaticRoi:
    planes, loc = _planes(img, roi, bayer)
    orientation, alpha, beta = _edge_line(loc)
    norm = math.hypot(1.0, beta)
    x0, y0, w, h = roi.xywh
    u0, u1, t0, t1 = (x0, x0 + w - 1, y0, y0 + h - 1) if orientation == "vertical" else (
        y0, y0 + h - 1, x0, x0 + w - 1)
    # symmetric distance range covered along the whole edge inside the ROI
    ends = np.array([alpha + beta * t0, alpha + beta * t1])
    half = float(min((ends - u0).min(), (u1 - ends).min())) / norm
    if half < MIN_HALF_WIDTH_PX:
        raise ConfigError(f"edge too close to the ROI border (needs {MIN_HALF_WIDTH_PX:g} px of "
                          "ground on each side)", field="roi")
    half = min(half, MAX_HALF_WIDTH_PX)
    nbins = int(2 * half / BIN_PX)
    fits: dict[str, _EdgeFit] = {}
    warnings: list[str] = []
    for ch in "RGB":
        d_all, v_all = [], []
        for pl in planes[ch]:
            uu, tt = (pl.x[None, :], pl.y[:, None]) if orientation == "vertical" else (
                pl.y[:, None], pl.x[None, :])
            dist = ((uu - alpha) - beta * tt) / norm
            near = np.abs(dist) < half
            d_all.append(dist[near])
            v_all.append(pl.values[near])
        d = np.concatenate(d_all)
        v = np.concatenate(v_all)
        if saturation is not None and float(np.mean(v >= saturation)) > 1e-3:
            warnings.append(f"{ch} clipped: {100 * float(np.mean(v >= saturation)):.1f} % of "
                            "its pixels near the edge at the clip level shift its edge")
        idx = ((d + half) * (1.0 / BIN_PX)).astype(np.int64)
        np.clip(idx, 0, nbins - 1, out=idx)
        counts = np.bincount(idx, minlength=nbins).astype(np.float64)
        dsum = np.bincount(idx, weights=d, minlength=nbins)
        vsum = np.bincount(idx, weights=v, minlength=nbins)
        full = counts > 0
        fit = _fit_step(dsum[full] / counts[full], vsum[full] / counts[full], counts[full])
        if fit is None or fit.hi - fit.lo < MIN_EDGE_SNR * fit.noise:
            raise ConfigError(f"no edge found in the {ch} plane (step below {MIN_EDGE_SNR:g} "
                              "noise sigmas, or the edge fit did not converge)", field="roi")
        fits[ch] = fit
    # unit normal (towards +u) in image coordinates; flip it to point away from the centre
    n_u, n_t = 1.0 / norm, -beta / norm
    nx, ny = (n_u, n_t) if orientation == "vertical" else (n_t, n_u)
    tc = (t0 + t1) / 2.0
    uc = alpha + beta * tc + fits["G"].c / norm
    px, py = (uc, tc) if orientation == "vertical" else (tc, uc)
    rx, ry = px - centre[0], py - centre[1]
    radius = math.hypot(rx, ry)
    sign = -1.0 if nx * rx + ny * ry < 0 else 1.0
    nx, ny = sign * nx, sign * ny
    radial_cos = (nx * rx + ny * ry) / radius if radius > 0 else 0.0
    if radius < MIN_RADIUS_FRACTION * half_diag:
        warnings.append(f"edge at {100 * radius / half_diag:.0f} % of the half-diagonal from the "
                        f"centre (< {100 * MIN_RADIUS_FRACTION:.0f} %): little lateral CA there")
    elif abs(radial_cos) < MIN_RADIAL_COS:
        warnings.append(f"edge normal at {math.degrees(math.acos(min(1.0, abs(radial_cos)))):.0f}"
                        " deg to the radius: only its normal component of the displacement")
    g = fits["G"]
    contrast = (g.hi - g.lo) / (g.hi + g.lo) if g.hi + g.lo > 0 else 0.0
    if contrast < MIN_CONTRAST:
        warnings.append(f"low contrast {contrast:.3f} < {MIN_CONTRAST} ((hi-lo)/(hi+lo))")
    angle = math.degrees(math.atan(beta))
    return ChromaticRoi(
        label=roi.label,
        roi_xywh=roi.xywh,
        orientation=orientation,
        edge_angle_deg=angle,
        normal_xy=(nx, ny),
        edge_point_xy=(px, py),
        radius_px=radius,
        radial_cos=radial_cos,
        shift_r_g_px=sign * (fits["R"].c - g.c),
        shift_b_g_px=sign * (fits["B"].c - g.c),
        shift_r_g_se_px=math.sqrt(fits["R"].c_var + g.c_var),
        shift_b_g_se_px=math.sqrt(fits["B"].c_var + g.c_var),
        esf_sigma_px=(fits["R"].s, g.s, fits["B"].s),
        contrast=contrast,
        warnings=tuple(warnings),
    )


def measure_lateral_ca(
    raw: NDArray[Any],
    rois: Sequence[EdgeRoi],
    *,
    bayer: str | None,
    centre: tuple[float, float] | None = None,
    saturation: float | None = None,
) -> LateralCaResult:
    """Lateral chromatic displacement of R and B against G at each edge ROI.

    ``raw``: a 2-D linear raw mosaic of ``bayer`` (RGGB, GRBG, GBRG, BGGR: the colours at
    (0, 0), (0, 1), (1, 0), (1, 1)), or an H x W x 3 linear RGB image with ``bayer=None``.
    ``rois``: rectangles each holding one straight edge, e.g. from
    :func:`harness.analysis.edges.find_edge_rois`. ``centre``: the optical centre (x, y) in
    pixels, default the image centre ((W - 1) / 2, (H - 1) / 2) (pixel centres at integers).
    ``saturation``: the clip level; clipped planes raise a warning (clipping moves an edge).
    Bad input raises :class:`~harness.errors.ConfigError` naming ``bayer``, ``roi`` or
    ``centre``; see the module docstring for the method.
    """
    img = np.asarray(raw, dtype=np.float64)
    pattern = _check_inputs(img, bayer)
    if not rois:
        raise ConfigError("no edge ROI to measure", field="roi")
    height, width = img.shape[:2]
    if pattern is not None and (height % 2 or width % 2):
        raise ConfigError(f"a Bayer mosaic needs even dimensions, got {img.shape}", field="bayer")
    if centre is None:
        centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    elif not (len(centre) == 2 and all(math.isfinite(c) for c in centre)):
        raise ConfigError(f"expected two finite numbers x, y, got {centre!r}", field="centre")
    half_diag = math.hypot(width, height) / 2.0
    results = []
    for roi in rois:
        if (roi.w < MIN_ROI_SIDE or roi.h < MIN_ROI_SIDE or roi.x < 0 or roi.y < 0
                or roi.x + roi.w > width or roi.y + roi.h > height):
            raise ConfigError(f"ROI {roi.label} {roi.xywh} must be at least {MIN_ROI_SIDE}x"
                              f"{MIN_ROI_SIDE} and inside the {width}x{height} image",
                              field="roi")
        if not np.all(np.isfinite(img[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w])):
            raise ConfigError(f"ROI {roi.label} {roi.xywh} holds NaN or infinite values",
                              field="roi")
        try:
            results.append(_measure_roi(img, roi, pattern, centre, half_diag, saturation))
        except ConfigError as exc:
            raise ConfigError(f"ROI {roi.label} {roi.xywh}: {exc.detail}", field="roi") from None
    worst, worst_ch, worst_val = results[0], "R", -1.0
    for r in results:
        for ch, val in (("R", r.shift_r_g_px), ("B", r.shift_b_g_px)):
            if abs(val) > worst_val:
                worst, worst_ch, worst_val = r, ch, abs(val)
    return LateralCaResult(
        rois=tuple(results),
        lateral_ca_max_px=worst_val,
        lateral_ca_pct=100.0 * worst_val / half_diag,
        worst_roi=worst.label,
        worst_channel="R" if worst_ch == "R" else "B",
        half_diagonal_px=half_diag,
        centre_xy=(float(centre[0]), float(centre[1])),
    )


__all__ = ["BAYER_PATTERNS", "BIN_PX", "MAX_HALF_WIDTH_PX", "MIN_CONTRAST", "MIN_EDGE_SNR",
           "MIN_HALF_WIDTH_PX", "MIN_RADIAL_COS", "MIN_RADIUS_FRACTION", "MIN_ROI_SIDE",
           "ChromaticRoi", "LateralCaResult", "Orientation", "measure_lateral_ca"]
