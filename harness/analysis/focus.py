"""Focus metrics, best focus from a sweep, depth of focus and field tilt.

Public objects (colour-science's pattern: one function per published method, a mapping of the
methods by name and one dispatcher):

* :func:`measure_focus_tenengrad`, :func:`measure_focus_laplacian`,
  :func:`measure_focus_brenner`: the sharpness of one 2-D image by one focus metric.
* :data:`FOCUS_METHODS`: those functions by name (``tenengrad``, ``laplacian``, ``brenner``).
* :func:`measure_focus`: the dispatcher, ``measure_focus(img, metric="tenengrad")``.
* :func:`measure_focus_sweep`: best focus, depth of focus and field tilt of a sweep
  (:class:`FocusResult`); :func:`fit_peak` fits one curve.

Metrics (on linear luminance; Pertuz, Puig & García, Pattern Recognition 46(5):1415, 2013):

* ``tenengrad`` (default): mean(Gx^2 + Gy^2) with 3x3 Sobel derivatives (Tenenbaum 1970). The
  most robust to noise of the three (curve max/min 17.0 at noise 0.03 against 2.2 for the
  Laplacian, docs/standards.md#focus-metrics), so it drives sweeps by default.
* ``laplacian``: variance of the 3x3 Laplacian (Pech-Pacheco et al. 2000): narrowest peak on
  clean data, collapses first under noise.
* ``brenner``: mean((I(x + 2) - I(x))^2) (Brenner et al. 1976).

Best focus: a parabola through the top ``top`` points of the sweep, or a Gaussian (a parabola
through the logarithm of the metric, exact for a Gaussian-shaped peak); the vertex is the best
position. The Gaussian is the default: on synthetic sweeps (blur proportional to defocus, 0.5
steps) it lands within 0.02 of the true best against 0.06 for the parabola. Depth of focus
here is metric-relative: the span of positions over which the metric stays above
``dof_fraction`` of its peak (interpolated linearly on both flanks). Field tilt: best focus per
field region (centre and four corners); a plane z = z0 + a x + b y through the corner
values (x, y in pixels from the frame centre) gives the tilt, and the spread of the corner best
positions the tilt range. Pass/fail of sharpness belongs to the slanted-edge MTF, not to these
metrics (docs/standards.md#focus-metrics).

Errors name the parameter that was wrong (``metric``, ``model``, ``positions``, ``image``);
the command line maps those names to its options.

References:

* Pertuz, S., Puig, D., & García, M. A. (2013). Analysis of focus measure operators for
  shape-from-focus. Pattern Recognition, 46(5), 1415-1432. doi:10.1016/j.patcog.2012.11.011
* Tenenbaum, J. M. (1970). Accommodation in computer vision. PhD thesis, Stanford University.
* Pech-Pacheco, J. L., Cristóbal, G., Chamorro-Martínez, J., & Fernández-Valdivia, J. (2000).
  Diatom autofocusing in brightfield microscopy: a comparative study. ICPR 2000, vol. 3,
  314-317. doi:10.1109/ICPR.2000.903548
* Brenner, J. F., Dew, B. S., Horton, J. B., King, T., Neurath, P. W., & Selles, W. D. (1976).
  An automated microscope for cytologic research. J. Histochem. Cytochem. 24(1), 100-111.
  doi:10.1177/24.1.1254907
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

import cv2
import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError

__all__ = ["FOCUS_METHODS", "METRICS", "PEAK_MODELS", "REGIONS", "REGION_FRACTION", "Floats",
           "FocusResult", "Metric", "PeakFit", "PeakModel", "fit_peak", "measure_focus",
           "measure_focus_brenner", "measure_focus_laplacian", "measure_focus_sweep",
           "measure_focus_tenengrad", "region_slices"]

Floats = Sequence[float] | NDArray[Any]
Metric = Literal["tenengrad", "laplacian", "brenner"]
PeakModel = Literal["parabola", "gaussian"]
PEAK_MODELS: tuple[str, ...] = get_args(PeakModel)
REGIONS = ("centre", "top_left", "top_right", "bottom_left", "bottom_right")
#: Side of each field region as a fraction of the frame side.
REGION_FRACTION = 0.25


def _image(img: NDArray[Any]) -> NDArray[np.float32]:
    """``img`` as float32, refused unless 2-D and at least 5x5 (every metric's kernel fits)."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 5:
        raise ConfigError(f"focus metric needs a 2-D image of at least 5x5, got {a.shape}",
                          field="image")
    return a


def measure_focus_tenengrad(img: NDArray[Any]) -> float:
    """Tenengrad focus metric: mean(Gx^2 + Gy^2) over the image, 3x3 Sobel derivatives.

    Parameters: ``img``, a 2-D image of at least 5x5 (linear luminance).
    Returns: the metric (image units squared); larger is sharper.
    References: Tenenbaum (1970); Pertuz et al. (2013), operator GRA6 (see the module
    docstring). The most robust to noise of the three (docs/standards.md#focus-metrics).

    >>> measure_focus_tenengrad(np.zeros((8, 8)))
    0.0
    """
    a = _image(img)
    gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
    # sums of squares in one read each (cv2.norm), no squared temporaries
    return float(cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / a.size


def measure_focus_laplacian(img: NDArray[Any]) -> float:
    """Variance of the 3x3 Laplacian of the image.

    Parameters: ``img``, a 2-D image of at least 5x5 (linear luminance).
    Returns: the metric (image units squared); larger is sharper.
    References: Pech-Pacheco et al. (2000); Pertuz et al. (2013), operator LAP4. Narrowest
    peak on clean data, the first to collapse under noise (docs/standards.md#focus-metrics).

    >>> measure_focus_laplacian(np.ones((8, 8)))
    0.0
    """
    a = _image(img)
    lap = cv2.Laplacian(a, cv2.CV_32F, ksize=1)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def measure_focus_brenner(img: NDArray[Any]) -> float:
    """Brenner focus metric: mean((I(x + 2) - I(x))^2) along the rows.

    Parameters: ``img``, a 2-D image of at least 5x5 (linear luminance).
    Returns: the metric (image units squared); larger is sharper.
    References: Brenner et al. (1976); Pertuz et al. (2013), operator MIS2.

    >>> measure_focus_brenner(np.tile([0.0, 0.0, 1.0, 1.0], (5, 2)))
    1.0
    """
    a = _image(img)
    n = a.shape[0] * (a.shape[1] - 2)
    return float(cv2.norm(a[:, 2:], a[:, :-2], cv2.NORM_L2SQR)) / n


#: The focus metrics by name, one function per published method (see the module docstring).
FOCUS_METHODS: Mapping[str, Callable[[NDArray[Any]], float]] = MappingProxyType({
    "tenengrad": measure_focus_tenengrad,
    "laplacian": measure_focus_laplacian,
    "brenner": measure_focus_brenner,
})
#: The names of :data:`FOCUS_METHODS`, default first.
METRICS: tuple[str, ...] = tuple(FOCUS_METHODS)


def _method(metric: str) -> Callable[[NDArray[Any]], float]:
    try:
        return FOCUS_METHODS[metric]
    except (KeyError, TypeError):
        raise ConfigError(f"{metric!r} is not one of {', '.join(METRICS)}",
                          field="metric") from None


def measure_focus(img: NDArray[Any], metric: str = "tenengrad") -> float:
    """Sharpness of a 2-D image by the focus metric named ``metric``, one of
    :data:`FOCUS_METHODS` (``tenengrad``, ``laplacian``, ``brenner``).

    >>> measure_focus(np.zeros((8, 8)), metric="brenner")
    0.0
    """
    return _method(metric)(img)


def region_slices(shape: tuple[int, ...]) -> dict[str, tuple[slice, slice]]:
    """Centre and corner regions, each REGION_FRACTION of the frame in both directions."""
    h, w = shape[:2]
    rh, rw = max(5, round(h * REGION_FRACTION)), max(5, round(w * REGION_FRACTION))
    cy, cx = (h - rh) // 2, (w - rw) // 2
    return {
        "centre": (slice(cy, cy + rh), slice(cx, cx + rw)),
        "top_left": (slice(0, rh), slice(0, rw)),
        "top_right": (slice(0, rh), slice(w - rw, w)),
        "bottom_left": (slice(h - rh, h), slice(0, rw)),
        "bottom_right": (slice(h - rh, h), slice(w - rw, w)),
    }


@dataclass(frozen=True)
class PeakFit:
    """Best focus of one curve."""

    best_position: float
    peak_value: float
    best_index: int
    model: str
    depth_of_focus: float
    warnings: tuple[str, ...] = ()


def _flank(pos: NDArray[np.float64], val: NDArray[np.float64], i: int, level: float,
           step: int) -> float:
    """Position where the curve falls through ``level`` walking from index ``i`` by ``step``."""
    j = i
    while 0 <= j + step < len(val):
        if val[j + step] < level:
            v0, v1 = val[j], val[j + step]
            return float(pos[j] + (v0 - level) / (v0 - v1) * (pos[j + step] - pos[j]))
        j += step
    return float("nan")


def fit_peak(positions: Floats, values: Floats, *, model: str = "gaussian", top: int = 5,
             dof_fraction: float = 0.8) -> PeakFit:
    """Best focus by a parabola (or Gaussian) through the ``top`` points around the maximum."""
    pos = np.asarray(positions, dtype=np.float64)
    val = np.asarray(values, dtype=np.float64)
    if pos.shape != val.shape or pos.size < 3:
        raise ConfigError(f"need >= 3 (position, value) pairs, got {pos.size}", field="positions")
    if model not in PEAK_MODELS:
        raise ConfigError(f"{model!r} is not one of {', '.join(PEAK_MODELS)}", field="model")
    order = np.argsort(pos)
    pos, val = pos[order], val[order]
    if np.any(np.diff(pos) <= 0):
        raise ConfigError("focus positions must be distinct", field="positions")
    warnings: list[str] = []
    i = int(np.argmax(val))
    k = max(3, min(top, pos.size))
    lo = int(np.clip(i - k // 2, 0, pos.size - k))
    sel = slice(lo, lo + k)
    x, y = pos[sel], val[sel]
    best, peak = float(pos[i]), float(val[i])
    if i in (0, pos.size - 1):
        warnings.append("the maximum is at the end of the sweep: best focus may lie outside it")
    use_log = model == "gaussian" and bool(np.all(y > 0))
    if model == "gaussian" and not use_log:
        warnings.append("non-positive metric values: parabola used instead of Gaussian")
    yy = np.log(y) if use_log else y
    xc = float(x.mean())
    scale = float(np.ptp(x)) or 1.0
    a, b, c = np.polyfit((x - xc) / scale, yy, 2)
    if a < 0:
        v = -b / (2 * a)
        if x[0] <= v * scale + xc <= x[-1]:
            best = float(v * scale + xc)
            top_val = c - b * b / (4 * a)
            peak = float(np.exp(top_val) if use_log else top_val)
        else:
            warnings.append("fitted vertex outside the fitted points: sampled maximum used")
    else:
        warnings.append("top of the sweep is not peaked: sampled maximum used")
    level = dof_fraction * peak
    left, right = _flank(pos, val, i, level, -1), _flank(pos, val, i, level, +1)
    if np.isnan(left) or np.isnan(right):
        warnings.append(f"metric does not fall below {dof_fraction:.0%} of its peak on both "
                        "sides: depth of focus unknown")
    return PeakFit(best, peak, i, "gaussian" if use_log else "parabola", right - left,
                   tuple(warnings))


@dataclass(frozen=True)
class FocusResult:
    """A focus sweep analysed over the whole frame and per field region."""

    metric: str
    positions: tuple[float, ...]
    values: tuple[float, ...]
    best_focus: PeakFit
    regions: dict[str, PeakFit]
    region_values: dict[str, tuple[float, ...]]
    field_tilt_x_per_px: float
    field_tilt_y_per_px: float
    field_tilt_range: float
    positions_from: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The ``harness analyze focus --json`` record."""

        def peak(p: PeakFit) -> dict[str, Any]:
            return {"best_position": p.best_position, "peak_value": p.peak_value,
                    "model": p.model, "depth_of_focus": p.depth_of_focus,
                    "warnings": list(p.warnings)}

        return {
            "metric": self.metric,
            "positions": list(self.positions),
            "positions_from": self.positions_from,
            "values": list(self.values),
            "best_position": self.best_focus.best_position,
            "depth_of_focus": self.best_focus.depth_of_focus,
            "fit": peak(self.best_focus),
            "regions": {k: {**peak(v), "values": list(self.region_values[k])}
                        for k, v in self.regions.items()},
            "field_tilt_x_per_px": self.field_tilt_x_per_px,
            "field_tilt_y_per_px": self.field_tilt_y_per_px,
            "field_tilt_range": self.field_tilt_range,
        }


def measure_focus_sweep(frames: Sequence[NDArray[Any]], positions: Floats, *,
                        metric: str = "tenengrad", model: str = "gaussian", top: int = 5,
                        dof_fraction: float = 0.8, positions_from: str = "") -> FocusResult:
    """Best focus, depth of focus and field tilt of a sweep of 2-D frames, by the focus metric
    ``metric`` (one of :data:`FOCUS_METHODS`) and the peak ``model`` (see :func:`fit_peak`)."""
    if len(frames) != len(positions):
        raise ConfigError(f"{len(frames)} frames but {len(positions)} positions",
                          field="positions")
    measure = _method(metric)
    shape = np.asarray(frames[0]).shape
    regions = region_slices(shape)
    whole: list[float] = []
    per: dict[str, list[float]] = {k: [] for k in regions}
    for fr in frames:
        a = np.asarray(fr, dtype=np.float32)
        whole.append(measure(a))
        for k, (sy, sx) in regions.items():
            per[k].append(measure(a[sy, sx]))
    fits = {k: fit_peak(positions, v, model=model, top=top, dof_fraction=dof_fraction)
            for k, v in per.items()}
    h, w = shape[:2]
    pts, zs = [], []
    for k in REGIONS[1:]:
        sy, sx = regions[k]
        pts.append(((sx.start + sx.stop - 1) / 2 - (w - 1) / 2,
                    (sy.start + sy.stop - 1) / 2 - (h - 1) / 2))
        zs.append(fits[k].best_position)
    design = np.column_stack([np.ones(4), np.array(pts)])
    (_, tx, ty), *_ = np.linalg.lstsq(design, np.array(zs), rcond=None)
    return FocusResult(
        metric=metric,
        positions=tuple(float(p) for p in positions),
        values=tuple(whole),
        best_focus=fit_peak(positions, whole, model=model, top=top, dof_fraction=dof_fraction),
        regions=fits,
        region_values={k: tuple(v) for k, v in per.items()},
        field_tilt_x_per_px=float(tx),
        field_tilt_y_per_px=float(ty),
        field_tilt_range=float(np.ptp(zs)),
        positions_from=positions_from,
    )
