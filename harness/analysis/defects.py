"""Defect pixels: hot, dead, bright, weak, stuck, blinking; clusters; column and row defects.

EMVA 1288 only characterises defects (histograms); counting them against thresholds is harness
policy (docs/standards.md#defect-pixels). The defaults follow published sensor datasheets:

* **hot**: dark mean minus the local same-colour median (``median_size`` x ``median_size`` on
  the Bayer plane) above ``hot_dn`` DN, or, when ``hot_dn`` is None, above ``hot_sigma`` robust
  sigmas (1.4826 MAD) of that residual. The DN figure only means something at a stated
  exposure, gain and temperature: pass them as ``conditions`` and they are kept in the result.
* **dead / bright / weak** on a flat field at ~50 % saturation (bright mean minus dark mean),
  relative deviation from the local same-colour median: below -30 % dead, above +30 % bright
  (Teledyne DALSA/Atmel class), and 9 % < abs(deviation) <= 30 % weak (ST VV6501 uses 8 %).
* **stuck**: temporal std below ``stuck_std_dn`` in the dark and the flat stack *and* no
  response (abs(flat) below ``stuck_response_rel`` of the local median flat).
* **blinking** (random telegraph): dark temporal variance s^2 above a chi-square quantile of
  the plane's typical variance sigma^2 (for a normal pixel (L - 1) s^2 / sigma^2 ~ chi^2(L - 1)
  over L frames), chosen for ``blink_false_alarms`` expected false alarms per plane, and at
  least ``blink_min_std_dn`` of extra standard deviation. A two-level pixel of step A that sits
  high in a fraction f of the frames adds A^2 f (1 - f) L / (L - 1) to its variance, about
  A^2 / 4 at most (f = 1/2). So the stack length, not the threshold, decides what is found:
  with 3 M pixels per plane (12 MP Bayer) the limit is 8.3 sigma^2 for L = 8, 5.1 for 16 and
  3.4 for 32, and a step of 5 sigma (the simulated module's 12 e- telegraph in 2.3 e- of dark
  noise) gives at most ~8 sigma^2: a Monte Carlo of such a pixel (switching with probability
  0.3 per frame) finds it in 20 % of 8-frame stacks and 99.6 % of 32-frame stacks, the misses
  being stacks where it stays at one level nearly throughout. A looser threshold does not
  rescue short stacks: at one false alarm per plane, 8 frames still find only half of them.
* **blinking or hot**: a telegraph pixel's dark mean is raised by A f as well, over the hot
  threshold whenever it sits mostly high. A pixel that is both is classed by its duty cycle
  inferred from the excess mean m (over the local median) and excess variance v (over the
  plane's typical): a two-level signal gives m = A f and v = A^2 f (1 - f), so
  f = m^2 / (m^2 + v); a steady hot pixel's excess variance is the shot noise of its n extra
  dark electrons, v = K m (K in DN/e-), so f = n / (n + 1). f <= ``blink_max_duty`` (0.9: the
  pixel spends at least a tenth of the frames at its normal level) is blinking, otherwise hot.
  A hot pixel is taken for a blinking one only if it holds fewer than 9 extra dark electrons
  *and* that shot noise alone passes the chi-square test above, i.e. a marginal hot pixel of
  a sensor with less than ~2 e- of dark noise (at 32 frames).
* **clusters**: 8-connected groups (``cv2.connectedComponentsWithStats``) of >= 2 defect pixels
  on one Bayer plane (same-colour neighbours: what a defect corrector cannot repair).
* **column/row defects**: a run of >= ``line_min_run`` defect pixels in one column/row of a
  plane, or a whole column/row whose mean (point defects excluded) departs from the median of
  its neighbouring same-colour lines by more than ``line_sigma`` robust sigmas (dark, DN) or
  ``line_flat_rel`` (flat, relative). The pixels of a defective line count as that line, not
  as point defects or a cluster (a column defect is one defect, corrected as a column).

**Count uncertainty** (from the detection margin): each pixel's classification statistic has
a standard error from the temporal noise and the number of frames averaged: the dark mean's
se^2 = s_d^2 / L_d (s_d^2 the pixel's dark temporal variance over L_d frames) plus that of its
local median, pi/2 * sigma^2 / (L m^2) for the median of m^2 neighbours (the asymptotic variance
of a sample median, Kendall & Stuart, *The Advanced Theory of Statistics* vol. 1, 10.10);
the relative flat response's se^2 = (s_f^2 / L_f + s_d^2 / L_d) / median^2 plus its median's
part. With p_i = Phi(margin_i / se_i), the normal probability that pixel i falls on the
defective side of its threshold again, a count is a sum of independent Bernoulli variables and
its standard uncertainty is sqrt(sum p_i (1 - p_i)) (GUM, JCGM 100:2008, 4.2 for the
standard errors, 5.1.2 for the sum). Only pixels within ``MARGIN_SE`` standard errors of a
threshold are evaluated (the others contribute < 1e-9 each). A class counts the pixels that
could fall into it: those of no class, of that class or of a class of lower priority (a dead
pixel near the dead threshold may turn weak); a telegraph pixel's hot/blinking choice is taken
as found. The stuck test's three conditions multiply. Stated for stuck, hot, dead, bright, weak
and the zone totals (a pixel counts in its zone if any test flags it; the blinking test taken
as found); None for blinking (the statistic is a variance, chi-square and not normal, and a
telegraph pixel's variance depends on whether it switched during the stack: the stack gives
no standard error of it) and for clusters and lines (a count of connected groups or runs, not
a sum over pixels). None too when a stack has fewer than 2 frames.

Each pixel gets one class, by priority stuck > hot > dead > bright > blinking > weak (a hot
pixel with a telegraph's duty cycle being blinking, above). Work is
per Bayer plane on stack means (sums from :mod:`harness.analysis.accumulators`), so a 12 MP
stack streams. All coordinates are (row, col) in full-frame pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from harness.analysis.accumulators import StackStats
from harness.errors import ConfigError

CFA_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")
CLASSES = ("stuck", "hot", "dead", "bright", "blinking", "weak")
_MAD_TO_SIGMA = 1.4826
#: Pixels further than this many standard errors from every threshold are not evaluated for
#: the count uncertainty (Phi(-6) = 1e-9).
MARGIN_SE = 6.0
#: The classes whose count uncertainty is stated (module docstring).
UNCERTAIN_CLASSES = ("stuck", "hot", "dead", "bright", "weak")


@dataclass(frozen=True)
class DefectThresholds:
    """Every threshold of the defect classes (see the module docstring for their sources)."""

    hot_dn: float | None = None
    hot_sigma: float = 8.0
    dead_rel: float = 0.30
    bright_rel: float = 0.30
    weak_rel: float = 0.09
    stuck_std_dn: float = 0.5
    stuck_response_rel: float = 0.10
    blink_false_alarms: float = 1e-3
    blink_min_std_dn: float = 1.0
    blink_max_duty: float = 0.9
    median_size: int = 5
    line_min_run: int = 10
    line_sigma: float = 8.0
    line_flat_rel: float = 0.03
    line_window: int = 5
    #: Zones by normalised radius (distance from the centre / half-diagonal): (name, outer).
    zones: tuple[tuple[str, float], ...] = (("centre", 0.5), ("edge", 1.0))

    def __post_init__(self) -> None:
        if self.median_size not in (3, 5):
            raise ConfigError(f"median_size {self.median_size} not allowed; allowed: 3, 5",
                              field="median_size")
        positive = ("hot_sigma", "dead_rel", "bright_rel", "weak_rel", "stuck_std_dn",
                    "stuck_response_rel", "blink_false_alarms", "line_sigma", "line_flat_rel")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{getattr(self, name)} must be > 0", field=name)
        if not 0.0 < self.blink_max_duty < 1.0:
            raise ConfigError(f"{self.blink_max_duty} must be between 0 and 1 (exclusive)",
                              field="blink_max_duty")
        if self.hot_dn is not None and not self.hot_dn > 0:
            raise ConfigError(f"{self.hot_dn} must be > 0 DN", field="hot_dn")
        if not self.weak_rel < min(self.dead_rel, self.bright_rel):
            raise ConfigError("weak_rel must be below dead_rel and bright_rel", field="weak_rel")
        if self.line_min_run < 2 or self.line_window < 3 or self.line_window % 2 == 0:
            raise ConfigError("line_min_run >= 2 and an odd line_window >= 3 are required",
                              field="line_min_run")
        outers = [outer for _, outer in self.zones]
        if not outers or outers != sorted(outers) or outers[-1] < 1.0:
            raise ConfigError("zones must be (name, outer radius) in increasing order, the last "
                              ">= 1.0 (the corners)", field="zones")


@dataclass(frozen=True)
class Cluster:
    """An 8-connected group of defect pixels on one Bayer plane (full-frame coordinates)."""

    plane: str
    size: int
    top: int
    left: int
    bottom: int
    right: int
    pixels: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class LineDefect:
    """A defective column or row: ``axis`` "column"/"row", ``index`` full-frame col/row,
    ``kind`` "run" (contiguous defect pixels, ``value`` = longest run), "dark_offset" (DN)
    or "flat_offset" (relative)."""

    plane: str
    axis: str
    index: int
    kind: str
    value: float


@dataclass(frozen=True)
class DefectResult:
    """Defects of one sensor: per-class (row, col) lists, clusters, lines and zone counts.

    ``zone_counts[zone]`` holds the count of every class *and* their sum under ``"total"``:
    summing its values counts every pixel twice. Use :meth:`zone_total` and
    :meth:`zone_class_counts`."""

    height: int
    width: int
    cfa: str | None
    pixels: Mapping[str, tuple[tuple[int, int], ...]]
    clusters: tuple[Cluster, ...]
    lines: tuple[LineDefect, ...]
    zone_counts: Mapping[str, Mapping[str, int]]
    hot_threshold_dn: Mapping[str, float]
    thresholds: DefectThresholds
    conditions: Mapping[str, float | None]
    frames_dark: int
    frames_flat: int
    mask: np.ndarray = field(repr=False, compare=False)
    #: Standard uncertainty of each class count (None where not stated; module docstring).
    count_uncertainty: Mapping[str, float | None] = field(default_factory=dict)
    #: Standard uncertainty of each zone's total.
    zone_uncertainty: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Number of pixels per class."""
        return {name: len(self.pixels[name]) for name in CLASSES}

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def zone_total(self, zone: str) -> int:
        """Defect pixels of every class in ``zone``."""
        return int(self._zone(zone)["total"])

    def zone_class_counts(self, zone: str) -> dict[str, int]:
        """Defect pixels per class in ``zone`` (no ``"total"``: the values sum to
        :meth:`zone_total`)."""
        counts = self._zone(zone)
        return {name: int(counts[name]) for name in CLASSES}

    def _zone(self, zone: str) -> Mapping[str, int]:
        counts = self.zone_counts.get(zone)
        if counts is None:
            raise ConfigError(f"unknown zone {zone!r}; allowed: {', '.join(self.zone_counts)}",
                              field="zone")
        return counts

    def class_mask(self, *classes: str) -> np.ndarray:
        """Boolean image of the pixels in any of ``classes``."""
        codes = [CLASSES.index(name) + 1 for name in classes]
        return np.isin(self.mask, codes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, per-class coordinates, clusters, lines, zones, thresholds."""
        return {
            "height": self.height, "width": self.width, "cfa": self.cfa,
            "frames_dark": self.frames_dark, "frames_flat": self.frames_flat,
            "conditions": dict(self.conditions),
            "counts": self.counts, "total": self.total,
            "pixels": {name: [list(p) for p in self.pixels[name]] for name in CLASSES},
            "clusters": [asdict(c) | {"pixels": [list(p) for p in c.pixels]}
                         for c in self.clusters],
            "cluster_count": len(self.clusters),
            "max_cluster_size": max((c.size for c in self.clusters), default=0),
            "lines": [asdict(line) for line in self.lines],
            "zone_counts": {z: dict(c) for z, c in self.zone_counts.items()},
            "hot_threshold_dn": dict(self.hot_threshold_dn),
            "thresholds": asdict(self.thresholds),
            "count_uncertainty": dict(self.count_uncertainty),
            "zone_uncertainty": dict(self.zone_uncertainty),
        }


def bayer_planes(cfa: str | None) -> list[tuple[str, int, int, int]]:
    """(name, row offset, col offset, stride) of each same-colour plane; mono is one plane."""
    if cfa is None:
        return [("Y", 0, 0, 1)]
    if cfa not in CFA_PATTERNS:
        raise ConfigError(f"CFA {cfa!r} not allowed; allowed: {', '.join(CFA_PATTERNS)} or none",
                          field="cfa")
    names = []
    for i, colour in enumerate(cfa):
        # the two greens are told apart by the colour sharing their row: Gr (red row), Gb.
        if colour == "G":
            row_mate = cfa[1 - i] if i < 2 else cfa[5 - i]
            colour = "Gr" if row_mate == "R" else "Gb"
        names.append((colour, i // 2, i % 2, 2))
    return names


def _sample(values: np.ndarray, most: int = 1 << 16) -> np.ndarray:
    """A regular subsample of at most ~``most`` finite values: medians of 12 MP planes cost
    ~50 ms each, and 65 536 values fix a median to ~0.5 % of sigma (1.25 sigma / sqrt(n))."""
    flat = values.ravel()
    flat = flat[:: max(1, flat.size // most)]
    return flat[np.isfinite(flat)]


def _median(values: np.ndarray) -> float:
    sample = _sample(values)
    return float(np.median(sample)) if sample.size else math.nan


def _robust_sigma(values: np.ndarray) -> float:
    sample = _sample(values)
    if sample.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(sample - np.median(sample))))


def _local_median(plane: np.ndarray, size: int) -> np.ndarray:
    return cv2.medianBlur(np.ascontiguousarray(plane, dtype=np.float32), size)


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of each value's centred neighbourhood of odd length ``window``, the ends
    extended by repeating the first and last value."""
    half = window // 2
    padded = np.concatenate([np.repeat(values[:1], half), values, np.repeat(values[-1:], half)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def _line_offsets(values: np.ndarray, window: int) -> np.ndarray:
    """Residual of each line mean against the median of its neighbourhood (1-D)."""
    finite = np.where(np.isfinite(values), values, np.nanmedian(values))
    return finite - _running_median(finite, window)


# ---- chi-square quantiles (the blinking test), from the regularised incomplete gamma function,
# so that defect analysis needs neither scipy.stats nor scipy.special (together ~0.6 s to import)

def _gamma_upper(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), the regularised upper incomplete gamma function: by
    its power series for x < a + 1 (as 1 - P), else by its continued fraction (evaluated with
    the modified Lentz method), each summed to double precision."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-17:
            n += 1.0
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_front) * h


def chi2_isf(p: float, dof: int) -> float:
    """The value a chi-square variable of ``dof`` >= 1 degrees of freedom exceeds with
    probability ``p``: the root of Q(dof / 2, x / 2) = p, found by bisection to double
    precision (0 for p >= 1, infinity for p <= 0). ``chi2_isf(0.5, dof)`` is the median.

    >>> round(chi2_isf(0.05, 1), 4), round(chi2_isf(0.5, 2), 4)
    (3.8415, 1.3863)
    """
    if p >= 1.0:
        return 0.0
    if p <= 0.0:
        return math.inf
    a = dof / 2.0
    lo, hi = 0.0, max(1.0, float(dof))
    while _gamma_upper(a, hi / 2.0) > p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _gamma_upper(a, mid / 2.0) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4e-16 * hi:
            break
    return 0.5 * (lo + hi)


def _longest_runs(mask: np.ndarray, axis: int, min_run: int) -> dict[int, int]:
    """Lines (columns for axis 0, rows for axis 1) holding >= min_run contiguous True."""
    kernel = np.ones((min_run, 1) if axis == 0 else (1, min_run), np.uint8)
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)
    found: dict[int, int] = {}
    lines = np.unique(np.nonzero(eroded)[1 - axis])
    for line in lines:
        seq = mask[:, line] if axis == 0 else mask[line, :]
        padded = np.concatenate(([0], seq.astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(padded))
        found[int(line)] = int(np.max(edges[1::2] - edges[0::2]))
    return found


def _check_stacks(dark: StackStats, flat: StackStats) -> None:
    if dark.sum_img.shape != flat.sum_img.shape:
        raise ConfigError(f"dark stack is {dark.sum_img.shape[1]}x{dark.sum_img.shape[0]}, "
                          f"flat stack {flat.sum_img.shape[1]}x{flat.sum_img.shape[0]}; "
                          "they must match")
    if dark.sum_img.shape[0] < 4 or dark.sum_img.shape[1] < 4:
        raise ConfigError("frames are too small for defect analysis (need >= 4x4)")


def measure_defects(dark: StackStats, flat: StackStats, *, cfa: str | None = None,
                    thresholds: DefectThresholds | None = None,
                    conditions: Mapping[str, float | None] | None = None) -> DefectResult:
    """Classify defect pixels from a dark stack and a flat stack (~50 % saturation).

    ``conditions`` (e.g. exposure_us, gain_db, temperature_c) are recorded with the result:
    a DN threshold is meaningful only at stated conditions (docs/standards.md#defect-conditions).
    """
    th = thresholds or DefectThresholds()
    _check_stacks(dark, flat)
    height, width = dark.sum_img.shape
    codes = np.zeros((height, width), np.uint8)
    hot_thresholds: dict[str, float] = {}
    planes = bayer_planes(cfa)
    lines: list[LineDefect] = []
    margins: list[dict[str, np.ndarray]] | None = (
        [] if dark.frames >= 2 and flat.frames >= 2 else None)
    for name, r0, c0, stride in planes:
        view = (slice(r0, None, stride), slice(c0, None, stride))
        # float32 is ample for thresholds (0.004 DN at 65535) and halves the memory at 12 MP
        d_mean = dark.mean(view, np.float32)
        f_sig = flat.mean(view, np.float32)
        f_sig -= d_mean
        d_res = d_mean - _local_median(d_mean, th.median_size)
        f_med = _local_median(f_sig, th.median_size)
        if not _median(f_med) > 0:
            raise ConfigError("flat stack has no signal above the dark stack on plane "
                              f"{name}; a flat field at ~50 % saturation is needed")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(f_med > 0, f_sig / f_med - 1.0, -1.0)
        floor = math.sqrt(1.0 / 12.0 / max(dark.frames, 1))
        hot_t = th.hot_dn if th.hot_dn is not None else th.hot_sigma * max(
            _robust_sigma(d_res), floor)
        hot_thresholds[name] = float(hot_t)
        plane_codes = np.zeros(d_mean.shape, np.uint8)
        masks: dict[str, np.ndarray] = {
            "weak": np.abs(rel) > th.weak_rel,
            "bright": rel > th.bright_rel,
            "dead": rel < -th.dead_rel,
            "hot": d_res > hot_t,
        }
        d_var = dark.var_img(view, np.float32) if dark.frames >= 2 else None
        if d_var is not None and dark.frames >= 3:
            dof = dark.frames - 1
            factor = chi2_isf(th.blink_false_alarms / d_var.size, dof) / dof
            typical = _median(d_var) / (chi2_isf(0.5, dof) / dof)
            limit = max(factor * typical, typical + th.blink_min_std_dn**2)
            masks["blinking"] = d_var > limit
            both = np.flatnonzero(masks["blinking"] & masks["hot"])  # a few pixels at most
            if both.size:
                m = d_res.flat[both].astype(np.float64)
                v = d_var.flat[both].astype(np.float64) - typical
                # inferred duty cycle m^2 / (m^2 + v) <= blink_max_duty: a telegraph
                telegraph = m * m * (1.0 - th.blink_max_duty) <= th.blink_max_duty * v
                masks["hot"].flat[both[telegraph]] = False
        if d_var is not None and flat.frames >= 2:
            quiet = th.stuck_std_dn**2
            masks["stuck"] = ((d_var <= quiet) & (flat.var_img(view, np.float32) <= quiet)
                              & (np.abs(f_sig) < th.stuck_response_rel * f_med))
        for cls in reversed(CLASSES):  # highest priority written last
            if cls in masks:
                plane_codes[masks[cls]] = CLASSES.index(cls) + 1
        if margins is not None and d_var is not None:
            margins.append(_near_thresholds(
                d_res, float(hot_t), rel, f_med, d_var, flat.var_img(view, np.float32),
                dark.frames, flat.frames, masks.get("blinking"), th, (r0, c0, stride, width)))
        del masks, d_var, d_res, f_med, rel
        found = _plane_lines(name, r0, c0, stride, plane_codes > 0, d_mean, f_sig, th)
        for line in found:
            _clear_line(plane_codes, line, r0, c0, stride)
        codes[view] = plane_codes
        lines.extend(found)
        del d_mean, f_sig
    flagged = np.flatnonzero(codes)
    flagged_codes = codes.ravel()[flagged]
    pixels = {}
    for i, cls in enumerate(CLASSES):
        rows, cols = np.divmod(flagged[flagged_codes == i + 1], width)
        pixels[cls] = tuple(zip(rows.tolist(), cols.tolist(), strict=True))
    clusters = _clusters(codes > 0, planes)
    count_u, zone_u = _count_uncertainty(margins, codes, height, width, th.zones)
    return DefectResult(
        height=height, width=width, cfa=cfa, pixels=pixels, clusters=tuple(clusters),
        lines=tuple(lines), zone_counts=_zone_counts(pixels, height, width, th.zones),
        hot_threshold_dn=hot_thresholds, thresholds=th, conditions=dict(conditions or {}),
        frames_dark=dark.frames, frames_flat=flat.frames, mask=codes,
        count_uncertainty=count_u, zone_uncertainty=zone_u)


def _phi(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF of a small array (math.erfc elementwise: no scipy)."""
    erfc = np.frompyfunc(math.erfc, 1, 1)
    return np.asarray(0.5 * erfc(-np.asarray(z, np.float64) / math.sqrt(2.0)), np.float64)


def _p_above(margin: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Phi(margin / se): the probability a statistic ``margin`` above its threshold, of
    standard error ``se``, is above it again; a zero ``se`` gives 0 or 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, margin / np.where(se > 0, se, 1.0),
                     np.where(margin > 0, np.inf, -np.inf))
    return _phi(z)


def _near_thresholds(d_res: np.ndarray, hot_t: float, rel: np.ndarray, f_med: np.ndarray,
                     d_var: np.ndarray, f_var: np.ndarray, frames_dark: int, frames_flat: int,
                     blinking: np.ndarray | None, th: DefectThresholds,
                     place: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    """The classification probabilities (module docstring) of one plane's pixels within
    :data:`MARGIN_SE` standard errors of a threshold, with their full-frame flat indices.
    The full-plane temporaries are float32, like the plane's own."""
    r0, c0, stride, width = place
    k = np.float32(MARGIN_SE)
    med = np.float32(math.pi / 2.0 / th.median_size**2)
    typ_d, typ_f = np.float32(_median(d_var)), np.float32(_median(f_var))
    var_d = (d_var + med * typ_d) / np.float32(frames_dark)
    se_d = np.sqrt(var_d)
    near = np.abs(d_res - np.float32(hot_t)) < k * se_d
    with np.errstate(divide="ignore", invalid="ignore"):
        se_r = np.sqrt((f_var + med * typ_f) / np.float32(frames_flat) + var_d) / np.abs(f_med)
    se_r[~np.isfinite(se_r)] = 0.0
    near |= np.abs(np.abs(rel) - np.float32(th.weak_rel)) < k * se_r
    near |= np.abs(rel + np.float32(th.dead_rel)) < k * se_r
    near |= np.abs(rel - np.float32(th.bright_rel)) < k * se_r
    near |= np.abs(rel + 1.0) < np.float32(th.stuck_response_rel) + k * se_r
    at = np.flatnonzero(near)
    del near
    rows, cols = np.divmod(at, d_res.shape[1])
    g = {name: arr.ravel()[at].astype(np.float64) for name, arr in (
        ("d_res", d_res), ("se_d", se_d), ("rel", rel), ("se_r", se_r), ("d_var", d_var),
        ("f_var", f_var))}
    rel_c, se = g["rel"], g["se_r"]
    flat_any = (_p_above(rel_c - th.weak_rel, se) + _p_above(-th.weak_rel - rel_c, se))
    dead = _p_above(-th.dead_rel - rel_c, se)
    bright = _p_above(rel_c - th.bright_rel, se)
    quiet = th.stuck_std_dn**2
    stuck = (_p_above(quiet - g["d_var"], g["d_var"] * math.sqrt(2.0 / (frames_dark - 1)))
             * _p_above(quiet - g["f_var"], g["f_var"] * math.sqrt(2.0 / (frames_flat - 1)))
             * _p_above(th.stuck_response_rel - np.abs(rel_c + 1.0), se))
    hot = _p_above(g["d_res"] - hot_t, g["se_d"])
    blink = (np.zeros(at.size) if blinking is None
             else blinking.ravel()[at].astype(np.float64))
    return {
        "index": (r0 + stride * rows) * width + (c0 + stride * cols),
        "stuck": stuck, "hot": hot, "dead": dead, "bright": bright,
        "weak": np.clip(flat_any - dead - bright, 0.0, 1.0),
        "any": 1.0 - (1.0 - stuck) * (1.0 - hot) * (1.0 - flat_any) * (1.0 - blink),
    }


#: The classes a pixel found in may move into each class (besides none): its own, and those
#: of lower priority (a telegraph pixel's hot/blinking choice is taken as found).
_CAN_BECOME: dict[str, tuple[str, ...]] = {
    "stuck": CLASSES,
    "hot": ("hot", "dead", "bright", "weak"),
    "dead": ("dead", "blinking", "weak"),
    "bright": ("bright", "blinking", "weak"),
    "weak": ("weak", "dead", "bright", "blinking"),
}


def _count_uncertainty(margins: list[dict[str, np.ndarray]] | None, codes: np.ndarray,
                       height: int, width: int, zones: tuple[tuple[str, float], ...]
                       ) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """sqrt(sum p (1 - p)) per class and per zone total (module docstring)."""
    if margins is None:
        return dict.fromkeys(CLASSES), {name: None for name, _ in zones}
    near = {key: np.concatenate([m[key] for m in margins]) for key in margins[0]}
    index = near["index"].astype(np.int64)
    found = codes.ravel()[index]
    count_u: dict[str, float | None] = dict.fromkeys(CLASSES)
    for cls in UNCERTAIN_CLASSES:
        allowed = np.isin(found, [0, *(CLASSES.index(c) + 1 for c in _CAN_BECOME[cls])])
        p = near[cls][allowed]
        count_u[cls] = float(math.sqrt(float(np.sum(p * (1.0 - p)))))
    rows, cols = np.divmod(index, width)
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    radius = np.hypot(rows - cy, cols - cx) / max(math.hypot(cy, cx), 1e-9)
    outers = np.array([outer for _, outer in zones])
    which = np.minimum(np.searchsorted(outers, radius, side="left"), len(zones) - 1)
    p_any = near["any"]
    zone_u: dict[str, float | None] = {}
    for i, (name, _) in enumerate(zones):
        p = p_any[which == i]
        zone_u[name] = float(math.sqrt(float(np.sum(p * (1.0 - p)))))
    return count_u, zone_u


_LINE_CLASSES = {"dark_offset": ("hot",), "flat_offset": ("weak", "bright", "dead")}


def _clear_line(plane_codes: np.ndarray, line: LineDefect, r0: int, c0: int,
                stride: int) -> None:
    """The pixels a line defect flagged count as the line, not as point defects or a cluster:
    on the line, the classes it shows as are cleared (a dark offset shows as hot pixels, a
    flat offset as weak, bright or dead ones, a run as its most common class); a point
    defect of another kind on the same line stays."""
    at = (line.index - (c0 if line.axis == "column" else r0)) // stride
    view = plane_codes[:, at] if line.axis == "column" else plane_codes[at, :]
    if line.kind == "run":
        flagged = view[view > 0]
        if not flagged.size:
            return
        codes = [int(np.bincount(flagged).argmax())]
    else:
        codes = [CLASSES.index(cls) + 1 for cls in _LINE_CLASSES.get(line.kind, ())]
    view[np.isin(view, codes)] = 0


def _plane_lines(name: str, r0: int, c0: int, stride: int, defect: np.ndarray,
                 d_mean: np.ndarray, f_sig: np.ndarray, th: DefectThresholds) -> list[LineDefect]:
    found: list[LineDefect] = []
    keep = ~defect
    clean_dark = np.where(keep, d_mean, 0.0)
    clean_flat = np.where(keep, f_sig, 0.0)
    for axis, label, offset in ((0, "column", c0), (1, "row", r0)):
        for line, run in _longest_runs(defect, axis, th.line_min_run).items():
            found.append(LineDefect(name, label, offset + stride * line, "run", float(run)))
        good = np.count_nonzero(keep, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):  # an all-defect line is NaN
            dark_lines = clean_dark.sum(axis=axis, dtype=np.float64) / good
            flat_lines = clean_flat.sum(axis=axis, dtype=np.float64) / good
        if dark_lines.size < th.line_window:
            continue
        d_off = _line_offsets(dark_lines, th.line_window)
        sigma = max(_robust_sigma(d_off), 0.01)
        for idx in np.flatnonzero(np.abs(d_off) > th.line_sigma * sigma):
            found.append(LineDefect(name, label, offset + stride * int(idx), "dark_offset",
                                    float(d_off[idx])))
        f_ref = flat_lines - _line_offsets(flat_lines, th.line_window)
        with np.errstate(divide="ignore", invalid="ignore"):
            f_rel = np.where(f_ref > 0, flat_lines / f_ref - 1.0, 0.0)
        for idx in np.flatnonzero(np.abs(f_rel) > th.line_flat_rel):
            found.append(LineDefect(name, label, offset + stride * int(idx), "flat_offset",
                                    float(f_rel[idx])))
    return found


def _clusters(defect: np.ndarray, planes: list[tuple[str, int, int, int]]) -> list[Cluster]:
    clusters: list[Cluster] = []
    for name, r0, c0, stride in planes:
        plane = np.ascontiguousarray(defect[r0::stride, c0::stride]).astype(np.uint8)
        if not plane.any():
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(plane, connectivity=8)
        rows, cols = np.nonzero(plane)
        member = labels[rows, cols]
        big = stats[:, cv2.CC_STAT_AREA] >= 2
        big[0] = False  # background
        keep = big[member]
        rows, cols, member = rows[keep], cols[keep], member[keep]
        order = np.argsort(member, kind="stable")  # one pass, however many clusters
        rows, cols, member = rows[order], cols[order], member[order]
        if not member.size:
            continue
        starts = np.flatnonzero(np.r_[True, member[1:] != member[:-1]])
        stops = np.r_[starts[1:], member.size]
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            label = int(member[start])
            x, y, w, h, area = (int(v) for v in stats[label, :5])
            full = tuple(zip((r0 + stride * rows[start:stop]).tolist(),
                             (c0 + stride * cols[start:stop]).tolist(), strict=True))
            clusters.append(Cluster(
                plane=name, size=area, top=r0 + stride * y, left=c0 + stride * x,
                bottom=r0 + stride * (y + h - 1), right=c0 + stride * (x + w - 1),
                pixels=full))
    clusters.sort(key=lambda c: (-c.size, c.top, c.left))
    return clusters


def zone_of(row: int, col: int, height: int, width: int,
            zones: tuple[tuple[str, float], ...]) -> str:
    """Zone name of a pixel by normalised radius (distance from the centre / half-diagonal)."""
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    radius = math.hypot(row - cy, col - cx) / max(math.hypot(cy, cx), 1e-9)
    for name, outer in zones:
        if radius <= outer:
            return name
    return zones[-1][0]


def _zone_counts(pixels: Mapping[str, tuple[tuple[int, int], ...]], height: int, width: int,
                 zones: tuple[tuple[str, float], ...]) -> dict[str, dict[str, int]]:
    counts = {name: dict.fromkeys((*CLASSES, "total"), 0) for name, _ in zones}
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    scale = max(math.hypot(cy, cx), 1e-9)
    outers = np.array([outer for _, outer in zones])
    for cls, coords in pixels.items():
        if not coords:
            continue
        rc = np.asarray(coords, dtype=np.float64)
        radius = np.hypot(rc[:, 0] - cy, rc[:, 1] - cx) / scale
        which = np.minimum(np.searchsorted(outers, radius, side="left"), len(zones) - 1)
        for index, n in zip(*np.unique(which, return_counts=True), strict=True):
            name = zones[int(index)][0]
            counts[name][cls] += int(n)
            counts[name]["total"] += int(n)
    return counts


__all__ = ["CFA_PATTERNS", "CLASSES", "MARGIN_SE", "UNCERTAIN_CLASSES", "Cluster", "DefectResult",
           "DefectThresholds", "LineDefect", "bayer_planes", "chi2_isf", "measure_defects",
           "zone_of"]
