"""ISO 12233 edge-based spatial frequency response (e-SFR) of one slanted-edge ROI.

Steps follow ISO 12233:2017/2023 Annex D as described by P. Burns' sfrmat3/sfrmat5 (the ISO text
itself was not read); the code is ours:

1. Orient the edge near-vertical (transpose a horizontal edge), make it rise left to right.
2. Per-row derivative; per-row centroid of the derivative under a Hamming window centred on the
   current edge estimate; fit edge position against row with a line (ISO 12233:2017) or a
   polynomial (ISO 12233:2023, distorted edges); re-window at the fit, recompute, refit.
3. Keep an integer number of phase cycles of rows: n' = round(floor(n |slope|) / |slope|).
4. Project every pixel onto the edge normal and bin into a ``oversampling``-times oversampled ESF
   (``np.bincount``; empty bins filled by linear interpolation).
5. LSF = central difference [0.5, 0, -0.5] of the ESF, multiplied by a window over the *full* LSF
   length (a narrow adaptive window truncates the LSF tails and biases MTF50 high by 2-6 %,
   docs/standards.md#e-sfr-lsf-window). Default: Tukey, alpha = 0.5 (flat over the central half).
   sfrmat3's full-length Hamming still curves over the LSF core and biases MTF50 high in small ROIs
   (measured, sigma = 2 px: +1.9 % in a 50 px ROI, +0.5 % at 100 px; Tukey: < 0.1 %).
   One function per window (:func:`lsf_window_tukey`, :func:`lsf_window_hamming`), by name in
   :data:`LSF_WINDOW_METHODS` (``measure_sfr(window=...)``).
6. |FFT| normalised by its DC value, frequencies f = k / (N h) in cycles per pixel along the edge
   normal (h = bin pitch along the normal = cos(angle) / oversampling pixels).
7. Divide by the transfer function of the two sampling steps we introduced: the central
   difference, sinc(2 f h), and the bin averaging (a box of width h), sinc(f h); the product of
   these is the "derivative correction" of sfrmat's ``fir2fix`` plus the binning box. Capped at 10.
8. MTF50 is where the MTF of the 4x zero-padded spectrum (exact DTFT interpolation) falls
   through 0.5: a least-squares cubic over the band 0.3-0.7 around the first crossing, solved
   for 0.5, so noise ripple does not cross early (linear interpolation of the first crossing
   when the band holds fewer than 8 samples or the cubic has no root in it; :func:`_crossing`);
   MTF at 0.125, 0.25 and 0.5 cy/px linearly interpolated on the same spectrum.

Warnings follow sfrmat5/sfrmat3: Michelson contrast (hi - lo)/(hi + lo) below 0.2, an edge
angle under 2 degrees from the pixel axis (too few phases), clipped pixels.

Two methods (``measure_sfr(method=...)``, :data:`SFR_METHODS`; docs/standards.md#e-sfr-accuracy):

* ``"iso12233"``: the steps above, exactly.
* ``"robust"`` (default): the same steps, plus three changes against noise, in the spirit of MTF
  Mapper's ESF smoothing (F. van den Bergh: a fine transition kernel, ever wider boxes in the
  tails). White pixel noise puts noise of standard deviation proportional to f sqrt(L) into
  the LSF spectrum at frequency f, L the length of LSF kept (docs/standards.md#e-sfr-accuracy),
  so what matters near MTF50 is how much LSF beyond the edge's own spread is kept:
  (a) one full-width centroid pass of step 2 finds the edge, then two passes under a Hann
  window of half-width :data:`REFINE_HALF_PX` centred on the fit locate it (the full-width
  window lets flat-field noise far from the edge into every row's centroid); (b) the LSF is
  split into a *core* and *tails*. The core has weight 1 from the edge out to where the ESF,
  box-smoothed over its 10-90 % rise, comes within :data:`CORE_RESIDUAL` of the contrast of its
  plateau (on each side separately, so a long one-sided tail gets a long core), then a cosine
  taper over :data:`TAPER_RISES` rises. The tails (the rest) are low-passed by a Gaussian of
  sigma :data:`TAIL_SIGMA_RISES` rises, applied exactly in the Fourier domain:
  ``S(f) = G(f) F[lsf](f) + (1 - G(f)) F[core lsf](f)``. At DC and low frequencies the tails are
  kept whole (veiling glare, slow shoulders still lower the MTF); near MTF50 only the core's
  noise is left. With no 10-90 % rise found the tails are kept unfiltered (a warning says so).
  (c) on a full plane (no ``mask``) every row enters the ESF, not only a whole number of phase
  cycles (step 3): each bin is the mean of the samples that fall in it, so an unequal number of
  rows per phase leaves its expectation unchanged, and the noise falls as 1 / sqrt(rows) (up to
  8 % more rows at 2.5 deg in a 200 px ROI). A masked plane (one Bayer colour) keeps whole
  cycles: its samples sit on a lattice that shifts from row to row, and only whole cycles of it
  balance the sample positions (measured: all rows moved a 33 px G-plane ROI from 1.3 % to 2.0 %
  off its truth). Near MTF50 the noise left is that of the LSF core itself, where the signal is
  (docs/standards.md#e-sfr-accuracy): no window or crossing fit of ours removed more of it
  without a bias on long-tailed LSFs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from harness.analysis.edges import FIELD_POSITIONS, ORIENTATIONS, EdgeRoi
from harness.errors import ConfigError, MeasurementError

FloatArray = NDArray[np.float64]
Orientation = Literal["vertical", "horizontal"]
WindowName = Literal["hamming", "tukey"]
SfrMethod = Literal["robust", "iso12233"]

#: sfrmat5's low-contrast warning threshold on (hi - lo) / (hi + lo).
MIN_CONTRAST = 0.2
#: Below this angle from the pixel axis the ESF has too few phases per bin.
MIN_ANGLE_DEG = 2.0
#: Smallest ROI side (pixels) that still gives a usable ESF.
MIN_ROI_SIDE = 16
#: sfrmat's cap on the derivative correction factor.
MAX_CORRECTION = 10.0
#: Zero-padding factor of the FFT used to interpolate MTF50 and MTF(f).
PAD_FACTOR = 4
#: Frequencies reported in ``frequencies``/``mtf`` (cycles/pixel): up to 2x Nyquist.
F_MAX_CY_PER_PX = 1.0
#: The e-SFR methods of :func:`measure_sfr` (its ``method`` parameter); the first is the default.
SFR_METHODS: tuple[SfrMethod, ...] = ("robust", "iso12233")
#: Robust method: half-width (px) of the Hann window of the edge-refinement centroid passes.
REFINE_HALF_PX = 8.0
#: Robust method: the LSF core reaches, on each side, to where the ESF (box-smoothed over one
#: 10-90 % rise) comes within this fraction of the edge contrast of its plateau ...
CORE_RESIDUAL = 0.01
#: ... but at least this many rises from the edge ...
CORE_MIN_RISES = 0.5
#: ... and then tapers to 0 (cosine) over this many rises.
TAPER_RISES = 0.75
#: Robust method: sigma of the Gaussian low-pass of the LSF tails, in ESF 10-90 % rises.
TAIL_SIGMA_RISES = 0.75


@dataclass(frozen=True)
class SfrResult:
    """e-SFR of one edge. Frequencies in cycles/pixel along the edge normal.

    ``edge_angle_deg``: signed angle of the edge from the pixel column (vertical edge, atan of
    dx/dy) or row (horizontal edge, atan of dy/dx), image coordinates x right, y down.
    """

    edge_angle_deg: float
    orientation: Orientation
    contrast: float
    mtf50_cy_per_px: float
    mtf_at_0125: float
    mtf_at_025: float
    mtf_at_05: float
    frequencies_cy_per_px: tuple[float, ...]
    mtf: tuple[float, ...]
    esf_bin_px: float
    rows_used: int
    warnings: tuple[str, ...] = ()
    label: str = "roi"
    channel: str = "Y"
    roi_xywh: tuple[int, int, int, int] | None = None
    method: SfrMethod = "robust"

    @property
    def mtf_at_nyquist_half(self) -> float:
        """MTF at Nyquist/2 = 0.25 cy/px (a usual limit figure)."""
        return self.mtf_at_025

    def as_dict(self) -> dict[str, Any]:
        """The ``harness analyze sfr --json`` record of this ROI."""
        return {
            "label": self.label,
            "method": self.method,
            "roi": list(self.roi_xywh) if self.roi_xywh is not None else None,
            "orientation": self.orientation,
            "channel": self.channel,
            "edge_angle_deg": self.edge_angle_deg,
            "contrast": self.contrast,
            "mtf50_cy_per_px": self.mtf50_cy_per_px,
            "mtf_at_0125": self.mtf_at_0125,
            "mtf_at_025": self.mtf_at_025,
            "mtf_at_05": self.mtf_at_05,
            "frequencies": list(self.frequencies_cy_per_px),
            "mtf": list(self.mtf),
            "warnings": list(self.warnings),
        }


def lsf_window_hamming(u: FloatArray) -> FloatArray:
    """Hamming window 0.54 + 0.46 cos(2 pi u) at ``u`` = position / window length, centred
    (-0.5 .. 0.5 inside; the caller zeroes outside). sfrmat3's full-length LSF window.

    >>> lsf_window_hamming(np.array([0.0, 0.5])).round(2).tolist()
    [1.0, 0.08]
    """
    return 0.54 + 0.46 * np.cos(2.0 * np.pi * u)


def lsf_window_tukey(u: FloatArray) -> FloatArray:
    """Tukey window, alpha = 0.5, at ``u`` as for :func:`lsf_window_hamming`: flat over the
    central half, cosine tapers outside it (docs/standards.md#e-sfr-lsf-window).

    >>> lsf_window_tukey(np.array([0.0, 0.25, 0.375, 0.5])).tolist()
    [1.0, 1.0, 0.5, 0.0]
    """
    a = 0.5
    r = np.clip((np.abs(u) - (0.5 - a / 2)) / (a / 2), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * r))


#: The LSF windows of :func:`measure_sfr` by name (its ``window`` parameter).
LSF_WINDOW_METHODS: Mapping[str, Callable[[FloatArray], FloatArray]] = MappingProxyType({
    "hamming": lsf_window_hamming,
    "tukey": lsf_window_tukey,
})


def _window(name: WindowName, n: float, centre: float, x: FloatArray) -> FloatArray:
    """Window ``name`` of total length ``n`` centred at ``centre``, evaluated at ``x`` (0
    outside)."""
    u = (x - centre) / n  # -0.5 .. 0.5 inside
    return np.where(np.abs(u) <= 0.5, LSF_WINDOW_METHODS[name](u), 0.0)


def _crossing(f: FloatArray, mtf: FloatArray, level: float, band: float = 0.2) -> float:
    """Frequency where the MTF falls through ``level``, robust to noise ripple.

    The first crossing of a noisy curve is biased low (ripple crosses early). We fit a cubic to
    the MTF over the band where it falls from ``level + band`` to ``level - band`` around the
    first crossing (least squares averages the ripple) and solve it for ``level``; with too few
    points we fall back to linear interpolation of the first crossing.
    """
    below = np.nonzero(mtf < level)[0]
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = int(below[0])
    m0, m1 = mtf[i - 1], mtf[i]
    linear = float(f[i - 1] + (m0 - level) / (m0 - m1) * (f[i] - f[i - 1]))
    above_hi = np.nonzero(mtf[:i] >= level + band)[0]
    lo = int(above_hi[-1]) if above_hi.size else 0
    below_lo = np.nonzero(mtf[i:] <= level - band)[0]
    hi = i + int(below_lo[0]) if below_lo.size else mtf.size - 1
    if hi - lo < 8:
        return linear
    ff, mm = f[lo : hi + 1], mtf[lo : hi + 1]
    scale = float(ff[-1] - ff[0])
    coef = np.polyfit((ff - ff[0]) / scale, mm - level, 3)
    roots = np.roots(coef)
    real = roots[np.abs(roots.imag) < 1e-9].real
    real = real[(real >= 0.0) & (real <= 1.0)] * scale + ff[0]
    if real.size == 0:
        return linear
    return float(real[np.argmin(np.abs(real - linear))])


def _orient(
    img: FloatArray, locate: FloatArray, mask: NDArray[np.bool_] | None
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_] | None, Orientation, bool]:
    """Transpose a horizontal edge, flip so that the edge rises; returns the flags used."""
    gx = float(np.mean(np.abs(np.diff(locate, axis=1))))
    gy = float(np.mean(np.abs(np.diff(locate, axis=0))))
    orientation: Orientation = "vertical"
    if gy > gx:
        img, locate = img.T, locate.T
        mask = mask.T if mask is not None else None
        orientation = "horizontal"
    q = max(1, locate.shape[1] // 5)
    flipped = bool(locate[:, :q].mean() > locate[:, -q:].mean())
    if flipped:
        img, locate = img[:, ::-1], locate[:, ::-1]
        mask = mask[:, ::-1] if mask is not None else None
    return img, locate, mask, orientation, flipped


def _fit_edge(locate: FloatArray, order: int, passes: int = 3
              ) -> tuple[NDArray[np.float64], FloatArray]:
    """Per-row windowed derivative centroids, then a polynomial fit of edge x against row y;
    ``passes`` times, each window centred on the previous fit.

    Returns the polynomial coefficients (np.polyval order) and the row coordinates used.
    """
    nrows, ncols = locate.shape
    deriv = np.diff(locate, axis=1)  # positive across a rising edge
    xd = np.arange(ncols - 1, dtype=np.float64) + 0.5  # derivative sits between pixels
    rows = np.arange(nrows, dtype=np.float64)
    mean_d = deriv.mean(axis=0)
    centre = np.full(nrows, float(xd[int(np.argmax(mean_d))]))
    coef = np.array([centre[0]])
    ph = 2.0 * np.pi * xd / ncols
    cx, sx = np.cos(ph), np.sin(ph)
    for _ in range(passes):
        # Hamming of length ncols centred per row: cos(a - b) expanded, no cos over the ROI.
        pc = 2.0 * np.pi * centre / ncols
        w = 0.54 + 0.46 * (np.outer(np.cos(pc), cx) + np.outer(np.sin(pc), sx))
        w[np.abs(xd[None, :] - centre[:, None]) > ncols / 2] = 0.0
        wd = w * deriv
        s = wd.sum(axis=1)
        ok = s > 1e-12 * max(1.0, float(np.abs(wd).max()))
        if ok.sum() < max(3, order + 2):
            raise ConfigError(f"no edge found ({int(ok.sum())} usable rows)", field="roi")
        cent = (wd[ok] * xd[None, :]).sum(axis=1) / s[ok]
        deg = min(order, int(ok.sum()) - 2)
        coef = np.polyfit(rows[ok], cent, deg)
        centre = np.polyval(coef, rows)
    return coef, rows


def _refine_edge(locate: FloatArray, coef: NDArray[np.float64], half_px: float
                 ) -> NDArray[np.float64]:
    """Robust method, step (a): two centroid passes per row under a Hann window of half-width
    ``half_px`` centred on the current fit, each followed by a refit of the same order.

    The centroid's noise grows with the window's extent (flat-field noise at distance x enters
    with weight x), so a window a few LSF widths wide locates each row far better than the full
    ROI width; a symmetric window on a symmetric LSF leaves the centroid unbiased.
    """
    nrows, ncols = locate.shape
    half = min(half_px, ncols / 2.0)
    deriv = np.diff(locate, axis=1)  # sample j sits at x = j + 0.5
    rows = np.arange(nrows, dtype=np.float64)
    deg = len(coef) - 1
    off = np.arange(-int(np.ceil(half)) - 1, int(np.ceil(half)) + 2)
    for _ in range(2):
        centre = np.polyval(coef, rows)
        j = np.rint(centre - 0.5).astype(np.int64)[:, None] + off[None, :]  # a band per row
        inside = (j >= 0) & (j < ncols - 1)
        j = np.clip(j, 0, ncols - 2)
        xd = j + 0.5
        u = (xd - centre[:, None]) / half
        w = np.where(inside & (np.abs(u) < 1.0), 0.5 + 0.5 * np.cos(np.pi * u), 0.0)
        wd = w * np.take_along_axis(deriv, j, axis=1)
        s = wd.sum(axis=1)
        ok = s > 1e-12 * max(1.0, float(np.abs(wd).max()))
        if ok.sum() < max(3, deg + 2):
            return coef
        coef = np.polyfit(rows[ok], (wd[ok] * xd[ok]).sum(axis=1) / s[ok], deg)
    return coef


def _plateaus(esf: FloatArray) -> tuple[float, float]:
    """Dark and bright levels of a rising ESF: medians of the outer tenth of its bins."""
    q = max(4, esf.size // 10)
    return float(np.median(esf[:q])), float(np.median(esf[-q:]))


def esf_rise_px(esf: FloatArray, h: float, centre: int) -> float | None:
    """10-90 % rise (px along the normal) of a rising ESF sampled at pitch ``h``, edge at bin
    ``centre``; None if the ESF does not cross both levels.

    Plateaus: :func:`_plateaus`. The ESF is smoothed by a 5-bin box, the 10 % and 90 % crossings
    nearest the edge are linearly interpolated. Used by the robust method as its length scale
    (a Gaussian LSF of sigma s rises in 2.563 s).

    >>> e = np.clip(np.arange(100.0) - 30.0, 0.0, 40.0)  # ramp over bins 30..70
    >>> round(esf_rise_px(e, 0.25, 50), 3)  # 10 % at bin 34, 90 % at bin 66
    8.0
    """
    n = esf.size
    lo, hi = _plateaus(esf)
    if n < 9 or hi - lo <= 0 or not 2 <= centre <= n - 3:
        return None
    v = (np.convolve(esf, np.full(5, 0.2), mode="valid") - lo) / (hi - lo)  # v[i] at bin i + 2
    c = centre - 2
    below = np.nonzero(v[: c + 1] < 0.1)[0]
    above = np.nonzero(v[c:] > 0.9)[0]
    if below.size == 0 or above.size == 0:
        return None
    i, j = int(below[-1]), c + int(above[0])
    if i + 1 >= v.size or j < 1:
        return None
    x10 = i + (0.1 - v[i]) / (v[i + 1] - v[i])
    x90 = j - 1 + (0.9 - v[j - 1]) / (v[j] - v[j - 1])
    return float(max(x90 - x10, 2.0) * h)


def _core_extent(esf: FloatArray, h: float, centre: int, rise: float) -> tuple[float, float]:
    """Robust method: distances (px) from the edge, dark side then bright side, to where the
    ESF box-smoothed over one ``rise`` first comes within CORE_RESIDUAL of the contrast of its
    plateau; at least CORE_MIN_RISES rises, at most the ESF's end."""
    n = esf.size
    lo, hi = _plateaus(esf)
    k = max(1, round(rise / h / 2))
    cs = np.concatenate(([0.0], np.cumsum(esf)))
    i = np.arange(n)
    a, b = np.maximum(i - k, 0), np.minimum(i + k + 1, n)
    v = ((cs[b] - cs[a]) / (b - a) - lo) / (hi - lo)
    left = np.nonzero(v[:centre] < CORE_RESIDUAL)[0]
    right = np.nonzero(v[centre:] > 1.0 - CORE_RESIDUAL)[0]
    xl = (centre - int(left[-1])) * h if left.size else centre * h
    xr = int(right[0]) * h if right.size else (n - centre) * h
    return max(xl, CORE_MIN_RISES * rise), max(xr, CORE_MIN_RISES * rise)


def _robust_spectrum(lsf: FloatArray, x: FloatArray, rise: float, core_px: tuple[float, float],
                     npad: int, h: float) -> FloatArray:
    """Robust method, step (b): |G F[lsf] + (1 - G) F[core * lsf]| on the padded grid.

    ``x``: normal distance of each LSF sample from the edge (px); ``core_px``: the core's reach
    on the dark and bright sides (:func:`_core_extent`). G(f) = exp(-2 pi^2 s^2 f^2) is the
    transfer function of a Gaussian of sigma s = TAIL_SIGMA_RISES * rise, so the tails
    (1 - core) * lsf are low-passed by it while the core is kept whole.
    """
    beyond = np.where(x < 0, -x - core_px[0], x - core_px[1])
    r = np.clip(beyond / (TAPER_RISES * rise), 0.0, 1.0)
    core = 0.5 * (1.0 + np.cos(np.pi * r))
    f = np.arange(npad // 2 + 1, dtype=np.float64) / (npad * h)
    g = np.exp(-2.0 * np.pi**2 * (TAIL_SIGMA_RISES * rise) ** 2 * f**2)
    full = np.fft.rfft(lsf, n=npad)
    spec: FloatArray = np.abs(g * full + (1.0 - g) * np.fft.rfft(lsf * core, n=npad))
    return spec


def _check_options(fit_order: int, window: str, method: str = "robust") -> None:
    if method not in SFR_METHODS:
        raise ConfigError(f"{method!r} is not one of {', '.join(SFR_METHODS)}", field="method")
    if not 1 <= fit_order <= 5:
        raise ConfigError(f"fit order must be 1..5, got {fit_order}", field="fit_order")
    if window not in LSF_WINDOW_METHODS:
        raise ConfigError(f"{window!r} is not one of {', '.join(LSF_WINDOW_METHODS)}",
                          field="window")


def measure_sfr(
    roi: NDArray[Any],
    *,
    method: SfrMethod = "robust",
    fit_order: int = 1,
    oversampling: int = 4,
    window: WindowName = "tukey",
    window_half_px: float | None = None,
    mask: NDArray[np.bool_] | None = None,
    locate: NDArray[Any] | None = None,
    phase_pitch: int = 1,
    saturation: float | None = None,
    label: str = "roi",
    channel: str = "Y",
    roi_xywh: tuple[int, int, int, int] | None = None,
) -> SfrResult:
    """e-SFR of one slanted edge (ISO 12233 Annex D; see the module docstring for the steps).

    ``roi``: 2-D linear pixel values holding one edge, vertical or horizontal (either polarity).
    ``fit_order``: 1 = straight edge (ISO 12233:2017); up to 5 for a distorted edge (2023).
    ``mask``: pixels that enter the ESF (e.g. one Bayer colour); the edge is located on
    ``locate`` (default ``roi``), e.g. a demosaiced luminance. ``phase_pitch``: column pitch of
    the sampled pixels (2 for Bayer R or B), so rows are kept for whole phase cycles of it.
    ``saturation``: the clip level of the data; pixels at or above it raise a warning.
    ``method``: ``"robust"`` (default) or ``"iso12233"`` (module docstring, :data:`SFR_METHODS`).
    """
    img = np.asarray(roi, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < MIN_ROI_SIDE:
        raise ConfigError(
            f"ROI must be a 2-D array at least {MIN_ROI_SIDE}x{MIN_ROI_SIDE} px, got shape "
            f"{img.shape}",
            field="roi",
        )
    _check_options(fit_order, window, method)
    loc = img if locate is None else np.asarray(locate, dtype=np.float64)
    if loc.shape != img.shape or (mask is not None and mask.shape != img.shape):
        raise ConfigError("locate/mask must have the ROI's shape", field="roi")
    warnings: list[str] = []
    if not np.all(np.isfinite(img)):
        raise ConfigError("ROI holds NaN or infinite values", field="roi")
    if saturation is not None:
        clipped = float(np.mean(img >= saturation))
        if clipped > 1e-3:
            warnings.append(f"clipped edge: {100 * clipped:.1f} % of pixels at the clip level")
    img, loc, mask, orientation, flipped = _orient(img, loc, mask)
    nrows, ncols = img.shape

    q = max(1, ncols // 5)
    lo, hi = float(loc[:, :q].mean()), float(loc[:, -q:].mean())
    contrast = (hi - lo) / (hi + lo) if hi + lo > 0 else 0.0
    if contrast < MIN_CONTRAST:
        warnings.append(f"low contrast {contrast:.3f} < {MIN_CONTRAST} ((hi-lo)/(hi+lo))")
    if hi - lo <= 0:
        raise ConfigError("ROI holds no edge (flat)", field="roi")

    if method == "robust":  # one full-width pass finds the edge, the narrow ones locate it
        coef, rows = _fit_edge(loc, fit_order, passes=1)
        coef = _refine_edge(loc, coef, REFINE_HALF_PX)
    else:
        coef, rows = _fit_edge(loc, fit_order)
    dcoef = np.polyder(coef) if len(coef) > 1 else np.array([0.0])
    slope_mid = float(np.polyval(dcoef, (nrows - 1) / 2))
    angle = float(np.degrees(np.arctan(slope_mid)))
    if abs(angle) < MIN_ANGLE_DEG:
        warnings.append(f"edge angle {abs(angle):.2f} deg < {MIN_ANGLE_DEG} deg from the axis")

    # Integer number of phase cycles (sfrmat3), rows centred in the ROI; the robust method keeps
    # every row of a full plane (step (c) of the module docstring).
    nuse = nrows
    whole_cycles = method == "iso12233" or mask is not None
    if abs(slope_mid) > 1e-9 and fit_order == 1 and whole_cycles:
        ncyc = np.floor(nrows * abs(slope_mid) / phase_pitch)
        if ncyc >= 1:
            nuse = int(min(nrows, round(ncyc * phase_pitch / abs(slope_mid))))
    r0 = (nrows - nuse) // 2
    sl = slice(r0, r0 + nuse)
    y = rows[sl]
    x_edge = np.polyval(coef, y)
    cos_t = np.cos(np.arctan(np.polyval(dcoef, y)))
    xs = np.arange(ncols, dtype=np.float64)
    d = (xs[None, :] - x_edge[:, None]) * cos_t[:, None]  # normal distance, pixels
    vals = img[sl]
    # Range covered by every row, symmetric about the edge.
    left = float(np.max(-x_edge * cos_t))
    right = float(np.min((ncols - 1 - x_edge) * cos_t))
    half = min(-left, right)
    h = float(np.mean(cos_t)) / oversampling
    nhalf = int(np.floor(half / h))
    if nhalf < 4 * oversampling:
        raise ConfigError(
            "edge too close to the ROI border (need 4 px of each side)", field="roi"
        )
    if half < 0.3 * max(-left, right):
        warnings.append(f"edge off-centre in the ROI: the ESF spans only +-{half:.1f} px")
    idx = np.floor(d / h).astype(np.int64) + nhalf
    keep = (idx >= 0) & (idx < 2 * nhalf)
    if mask is not None:
        keep &= mask[sl]
    nbins = 2 * nhalf
    counts = np.bincount(idx[keep], minlength=nbins).astype(np.float64)
    sums = np.bincount(idx[keep], weights=vals[keep], minlength=nbins)
    filled = counts > 0
    if filled.sum() < nbins // 2:
        raise ConfigError("too few samples to build the ESF", field="roi")
    centres = np.arange(nbins, dtype=np.float64)
    esf = np.interp(centres, centres[filled], sums[filled] / counts[filled])
    if not filled.all():
        warnings.append(f"{int((~filled).sum())} empty ESF bins interpolated")

    lsf = np.empty_like(esf)
    lsf[1:-1] = 0.5 * (esf[2:] - esf[:-2])
    lsf[0], lsf[-1] = lsf[1], lsf[-2]
    wlen = nbins if window_half_px is None else min(nbins, 2.0 * window_half_px / h)
    lsf *= _window(window, wlen, (nbins - 1) / 2, centres)

    npad = PAD_FACTOR * nbins
    rise = esf_rise_px(esf, h, nhalf) if method == "robust" else None
    if method == "robust" and rise is None:
        warnings.append("no 10-90 % ESF rise found: LSF tails not low-passed")
    if rise is not None:
        spec = _robust_spectrum(lsf, (centres - (nbins - 1) / 2) * h, rise,
                                _core_extent(esf, h, nhalf, rise), npad, h)
    else:
        spec = np.abs(np.fft.rfft(lsf, n=npad))
    if spec[0] <= 0:
        raise ConfigError("ROI holds no edge (zero LSF area)", field="roi")
    f = np.arange(spec.size, dtype=np.float64) / (npad * h)
    transfer = np.sinc(2.0 * f * h) * np.sinc(f * h)
    corr = np.minimum(1.0 / np.maximum(np.abs(transfer), 1e-12), MAX_CORRECTION)
    mtf = spec / spec[0] * corr

    mtf50 = _crossing(f, mtf, 0.5)
    if not np.isfinite(mtf50):
        warnings.append("MTF never falls below 0.5 up to 2x Nyquist")

    report = f <= F_MAX_CY_PER_PX + 1e-12
    step = PAD_FACTOR
    return SfrResult(
        edge_angle_deg=-angle if flipped else angle,
        orientation=orientation,
        contrast=float(contrast),
        mtf50_cy_per_px=mtf50,
        mtf_at_0125=float(np.interp(0.125, f, mtf)),
        mtf_at_025=float(np.interp(0.25, f, mtf)),
        mtf_at_05=float(np.interp(0.5, f, mtf)),
        frequencies_cy_per_px=tuple(float(v) for v in f[report][::step]),
        mtf=tuple(float(v) for v in mtf[report][::step]),
        esf_bin_px=h,
        rows_used=nuse,
        warnings=tuple(warnings),
        label=label,
        channel=channel,
        roi_xywh=roi_xywh,
        method=method,
    )


def measure_sfr_rois(
    plane: NDArray[Any],
    rois: list[EdgeRoi],
    *,
    mask: NDArray[np.bool_] | None = None,
    locate: NDArray[Any] | None = None,
    saturation: float | None = None,
    channel: str = "Y",
    method: str = "robust",
    fit_order: int = 1,
    oversampling: int = 4,
    phase_pitch: int = 1,
) -> list[SfrResult]:
    """:func:`measure_sfr` on each ROI of a full image (``mask``/``locate`` full-image too).
    An ROI that cannot be measured is an error naming it (field ``roi``); an unknown ``method``
    (:data:`SFR_METHODS`) is an error naming ``method``."""
    _check_options(fit_order, "tukey", method)
    checked = cast(SfrMethod, method)
    results = []
    for roi in rois:
        try:
            res = measure_sfr(
                roi.cut(plane),
                method=checked,
                fit_order=fit_order,
                oversampling=oversampling,
                mask=None if mask is None else roi.cut(mask),
                locate=None if locate is None else roi.cut(locate),
                phase_pitch=phase_pitch,
                saturation=saturation,
                label=roi.label,
                channel=channel,
                roi_xywh=roi.xywh,
            )
        except ConfigError as exc:
            raise ConfigError(f"ROI {roi.label} {roi.xywh}: {exc.detail}", field="roi") from None
        if roi.orientation is not None and res.orientation != roi.orientation:
            res = replace(res, warnings=(*res.warnings, f"expected a {roi.orientation} edge"))
        results.append(res)
    return results


@dataclass(frozen=True)
class FieldGaps:
    """Field ROIs (centre and corners x vertical/horizontal) a set of results lacks.

    ``not_found``: no result carries that ROI's label (the chart finder missed the square);
    ``no_finite_mtf50``: the ROI was measured but has no finite MTF50. Names read
    ``"top_left vertical"``.
    """

    not_found: tuple[str, ...] = ()
    no_finite_mtf50: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        return (*self.not_found, *self.no_finite_mtf50)

    @property
    def complete(self) -> bool:
        return not self.missing

    def message(self) -> str:
        parts = []
        if self.not_found:
            parts.append(f"edge ROI not found: {', '.join(self.not_found)}")
        if self.no_finite_mtf50:
            parts.append(f"edge ROI without a finite MTF50: {', '.join(self.no_finite_mtf50)}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"not_found": list(self.not_found), "no_finite_mtf50": list(self.no_finite_mtf50)}


@dataclass(frozen=True)
class FieldSummary:
    """Centre against corners, the figures a limit spec judges (worst corner, worst edge).

    ``missing``: field ROIs left out because they were not found or had no finite MTF50 (only a
    permissive :func:`summarise_field` returns a summary with some missing).
    """

    centre_mtf50_cy_per_px: float
    corner_mtf50_min_cy_per_px: float
    corner_to_centre_mtf50_ratio: float
    centre_mtf_at_025: float
    corner_mtf_at_025_min: float
    worst_corner: str
    missing: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "centre_mtf50_cy_per_px": self.centre_mtf50_cy_per_px,
            "corner_mtf50_min_cy_per_px": self.corner_mtf50_min_cy_per_px,
            "corner_to_centre_mtf50_ratio": self.corner_to_centre_mtf50_ratio,
            "centre_mtf_at_025": self.centre_mtf_at_025,
            "corner_mtf_at_025_min": self.corner_mtf_at_025_min,
            "worst_corner": self.worst_corner,
            "missing": list(self.missing),
        }


CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
#: Label given by :func:`harness.analysis.edges.find_edge_rois` -> (position, orientation).
_FIELD_LABELS = {f"{p}_{o}": (p, o) for p in FIELD_POSITIONS for o in ORIENTATIONS}


def _usable(results: list[SfrResult]) -> dict[tuple[str, str], list[SfrResult]]:
    """Results with a finite MTF50 per field (position, orientation), by ROI label (the measured
    orientation of a misfound edge may differ; it carries a warning then)."""
    out: dict[tuple[str, str], list[SfrResult]] = {}
    for r in results:
        key = _FIELD_LABELS.get(r.label)
        if key is not None and np.isfinite(r.mtf50_cy_per_px):
            out.setdefault(key, []).append(r)
    return out


def field_gaps(results: list[SfrResult]) -> FieldGaps:
    """Which field ROIs (:data:`~harness.analysis.edges.FIELD_POSITIONS`, each vertical and
    horizontal) ``results`` lack, or hold without a finite MTF50."""
    labelled = {_FIELD_LABELS[r.label] for r in results if r.label in _FIELD_LABELS}
    usable = _usable(results)
    not_found, no_mtf50 = [], []
    for p in FIELD_POSITIONS:
        for o in ORIENTATIONS:
            if (p, o) not in labelled:
                not_found.append(f"{p} {o}")
            elif (p, o) not in usable:
                no_mtf50.append(f"{p} {o}")
    return FieldGaps(tuple(not_found), tuple(no_mtf50))


def _summary(usable: dict[tuple[str, str], list[SfrResult]], missing: tuple[str, ...]
             ) -> FieldSummary | None:
    centre = [r for (p, _), rs in usable.items() if p == "centre" for r in rs]
    corner = [r for (p, _), rs in usable.items() if p in CORNERS for r in rs]
    if not centre or not corner:
        return None
    c50 = min(r.mtf50_cy_per_px for r in centre)
    worst = min(corner, key=lambda r: r.mtf50_cy_per_px)
    return FieldSummary(
        centre_mtf50_cy_per_px=c50,
        corner_mtf50_min_cy_per_px=worst.mtf50_cy_per_px,
        corner_to_centre_mtf50_ratio=worst.mtf50_cy_per_px / c50 if c50 > 0 else float("nan"),
        centre_mtf_at_025=min(r.mtf_at_025 for r in centre),
        corner_mtf_at_025_min=min(r.mtf_at_025 for r in corner),
        worst_corner=worst.label,
        missing=missing,
    )


def summarise_field(results: list[SfrResult]) -> FieldSummary | None:
    """Worst (lowest) centre edge and worst corner edge over the field ROIs that have a finite
    MTF50; None unless the centre and at least one corner have one (labels from
    :func:`harness.analysis.edges.find_edge_rois`). Permissive, for arbitrary images (the
    ``harness analyze sfr`` command): what is left out is listed in ``missing``. A qualification
    uses :func:`summarise_full_field`."""
    return _summary(_usable(results), field_gaps(results).missing)


def summarise_full_field(results: list[SfrResult]) -> FieldSummary:
    """:func:`summarise_field` over the complete field: the centre and the four corners, each
    with a vertical and a horizontal edge of finite MTF50; else :class:`MeasurementError`
    naming every missing ROI (an ERROR, never a PASS on fewer corner verdicts)."""
    gaps = field_gaps(results)
    if not gaps.complete:
        raise MeasurementError(gaps.message(), figure=", ".join(gaps.missing))
    summary = _summary(_usable(results), ())
    assert summary is not None  # complete: centre and corners are there
    return summary


__all__ = ["CORE_MIN_RISES", "CORE_RESIDUAL", "CORNERS", "F_MAX_CY_PER_PX", "LSF_WINDOW_METHODS",
           "MAX_CORRECTION", "MIN_ANGLE_DEG", "MIN_CONTRAST", "MIN_ROI_SIDE", "PAD_FACTOR",
           "REFINE_HALF_PX", "SFR_METHODS", "TAIL_SIGMA_RISES", "TAPER_RISES", "FieldGaps",
           "FieldSummary", "FloatArray", "Orientation", "SfrMethod", "SfrResult", "WindowName",
           "esf_rise_px", "field_gaps", "lsf_window_hamming", "lsf_window_tukey", "measure_sfr",
           "measure_sfr_rois", "summarise_field", "summarise_full_field"]
