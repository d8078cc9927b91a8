"""Focus metrics, best focus from a sweep, depth of focus and field tilt.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import cv2
import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError

Floats = Sequence[float] | NDArray[Any]
Metric = Literal["tenengrad", "laplacian", "brenner"]
PeakModel = Literal["parabola", "gaussian"]
METRICS: tuple[str, ...] = get_args(Metric)
PEAK_MODELS: tuple[str, ...] = get_args(PeakModel)
REGIONS = ("centre", "top_left", "top_right", "bottom_left", "bottom_right")
#: Side of each field region as a fraction of the frame side.
REGION_FRACTION = 0.25


def focus_metric(img: NDArray[Any], metric: str = "tenengrad") -> float:
    """Sharpness of a 2-D image by ``metric`` (see the module docstring)."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 5:
        raise ConfigError(f"focus metric needs a 2-D image of at least 5x5, got {a.shape}",
                          field="image")
    if metric == "tenengrad":
        gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
        # sums of squares in one read each (cv2.norm), no squared temporaries
        return float(cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / a.size
    if metric == "laplacian":
        lap = cv2.Laplacian(a, cv2.CV_32F, ksize=1)
        _, std = cv2.meanStdDev(lap)
        return float(std[0, 0]) ** 2
    if metric == "brenner":
        n = a.shape[0] * (a.shape[1] - 2)
        return float(cv2.norm(a[:, 2:], a[:, :-2], cv2.NORM_L2SQR)) / n
    raise ConfigError(f"{metric!r} is not one of {', '.join(METRICS)}", field="--metric")


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
        raise ConfigError(f"{model!r} is not one of {', '.join(PEAK_MODELS)}", field="--fit")
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


def analyze_sweep(frames: Sequence[NDArray[Any]], positions: Floats, *,
                  metric: str = "tenengrad", model: str = "gaussian", top: int = 5,
                  dof_fraction: float = 0.8, positions_from: str = "") -> FocusResult:
    """Best focus, depth of focus and field tilt of a sweep of 2-D frames."""
    if len(frames) != len(positions):
        raise ConfigError(f"{len(frames)} frames but {len(positions)} positions",
                          field="positions")
    if metric not in METRICS:
        raise ConfigError(f"{metric!r} is not one of {', '.join(METRICS)}", field="--metric")
    shape = np.asarray(frames[0]).shape
    regions = region_slices(shape)
    whole: list[float] = []
    per: dict[str, list[float]] = {k: [] for k in regions}
    for fr in frames:
        a = np.asarray(fr, dtype=np.float32)
        whole.append(focus_metric(a, metric))
        for k, (sy, sx) in regions.items():
            per[k].append(focus_metric(a[sy, sx], metric))
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
