"""EMVA 1288 Release 4.0 (Linear): photon transfer, linearity, dark current, DSNU and PRNU.

Input: per exposure step a bright and a dark temporal pair, plus bright and dark spatial
stacks (L frames) at one step near 50 % saturation. :class:`EmvaReducer` reduces frames as they
stream in (one pass, exact integer sums, :mod:`harness.analysis.accumulators`);
:func:`measure_emva1288` turns the reduced data into :class:`Emva1288Result`.

Formulas (EMVA 1288 Release 4.0 Linear, summarised in docs/standards.md#emva-1288-release-40;
Eq. 18 is the standard's numbering):

* mean of a pair mu_y = sum(A + B) / 2P; temporal variance with the Release-4 mean-difference
  correction sigma^2_y = sum((A - B)^2) / 2P - (mu_A - mu_B)^2 / 2 (Eq. 18).
* saturation: the point of maximum temporal variance sigma^2_y (docs/standards.md#emva-saturation).
  Found as the global maximum, not by the reference package's backward walk, which stops inside a
  flat plateau when the full well is below the ADC range (2.7x error,
  docs/standards.md#emva-reference-implementation). Points past it are reported as the plateau
  (``saturation_reached``); ``full_well_e`` is the plateau level.
* system gain K: zero-offset least-squares slope of (sigma^2_y - sigma^2_y.dark) against
  (mu_y - mu_y.dark) from the first point up to 70 % of the saturation signal.
* responsivity R: zero-offset slope of (mu_y - mu_y.dark) against mu_p on that range;
  quantum efficiency eta = R / K.
* temporal dark noise: sigma^2_y.dark extrapolated to zero exposure by a line fit when more
  than two exposure times exist (removes dark-current shot noise), clamped at 0.24 DN^2
  (quantisation limit); sigma_d = sqrt(sigma^2_y.dark - 1/12) / K.
* saturation capacity mu_e.sat = eta mu_p.sat (or (mu_y.sat - mu_y.dark) / K without photon
  counts); SNR_max = sqrt(mu_e.sat); absolute sensitivity threshold from SNR = 1:
  mu_e.min = 1/2 + sqrt(1/4 + sigma^2_y.dark / K^2) (the exact root; the 3.1 approximation
  sigma_y.dark / K + 1/2 is kept as ``sensitivity_threshold_approx_e``); DR = mu_e.sat / mu_e.min.
* linearity: weighted line through (mu_p, mu_y - mu_y.dark) minimising relative residuals
  (weights 1/Y) over 5-95 % of the saturation signal; LE = 100 (Y - fit) / fit, min and max.
* dark current: slope of mu_y.dark against exposure time / K; from the variance: slope of
  sigma^2_y.dark / K^2.
* DSNU/PRNU: spatial variances of the mean images with the temporal-noise correction
  s^2_y = s^2_y.measured - sigma^2_y.stack / L and the row/column/pixel split of Release 4
  (docs/standards.md#emva-dsnu-and-prnu); DSNU = s_y.dark / K [e-], PRNU = 100 sqrt(s^2_y -
  s^2_y.dark) / (mu_y - mu_y.dark) [%]. Reported with all pixels and with defect pixels excluded
  (hot pixels inflate DSNU: 2 -> 16 e- for 20 hot pixels in the reference data set,
  docs/standards.md#emva-reference-implementation).
  With a CFA they are computed per Bayer plane (the raw frame's spread would mostly show the
  colour filters) and pooled as the RMS over the planes; the per-plane figures are kept.

Flags (``Emva1288Result.flags``: figure name -> reason). A figure that is physically impossible
or not supported by the data keeps its computed value, for the record, but is flagged, and
:meth:`Emva1288Result.require` turns the flag into :class:`~harness.errors.MeasurementError`
(an ERROR of the step: the DUT was not judged). Flagged are:

* a negative dark current. The dark signal grows linearly with exposure time (sections 2.2,
  7.1); a slope of the mean dark signal (or of the dark variance) that is below zero by more
  than ``DARK_SLOPE_SIGMAS`` = 3 standard errors of the fit is a drifting dark level (black-level
  clamp, temperature), not a dark current. Within 3 standard errors it is kept unflagged: a
  sensor with no measurable dark current reads slightly negative half the time.
* a negative temporal variance (of a pair in the photon-transfer fit, of a dark pair, or the
  dark variance extrapolated to zero exposure) and a photon-transfer slope K <= 0: by the
  noise model (section 2.3) sigma^2_y - sigma^2_y.dark = K (mu_y - mu_y.dark) with K > 0.
* a quantum efficiency above 100 % (with photon counts): eta = mu_e / mu_p, one photon gives
  at most one electron (section 2.1).
* the saturation point (the maximum temporal variance, section 6.6) at the first or last
  exposure step: saturation is not inside the sweep (a ``saturation_index`` given by the caller
  is taken as is).
* a fit with too few points. The minimum is the fit's number of parameters plus two: 3 points
  for the zero-offset slopes (K and R, up to 70 % of saturation), 4 for lines with an offset
  (linearity over 5-95 % of saturation, dark current over distinct exposure times). With no
  degree of freedom left a fit passes through its points and says nothing of their scatter;
  with one, the 95 % Student-t factor is 12.7; with two it is 4.3, the fewest points whose
  residuals bound the fit usefully (and the dark-current test above needs them). The standard's
  own sweeps are far longer; this only separates "computed" from "computed from nothing".

A figure computed from a flagged one is flagged too, the reason naming the source: SNR_max and
DR from a flagged saturation point, every figure in electrons from a flagged K, linearity (its
range is relative to saturation) from a flagged saturation point.

Uncertainties (``Emva1288Result.uncertainties``, :meth:`Emva1288Result.uncertainty`): the
standard uncertainty u (GUM JCGM 100:2008 2.3.1, coverage factor 1, in the figure's unit) of
each figure, evaluated from the data (Type A, GUM 4.2) and by the law of propagation (GUM
5.1.2) with independent inputs; the validation against repeats is tests_unit/
test_emva_uncertainty.py (docs/standards.md#emva-uncertainties).

* K: u of exactly the harness's estimator, the zero-offset least-squares slope, for points of
  unequal, known precision: u^2(K) = sum x_i^2 u^2(y_i) / (sum x_i^2)^2 with
  u^2(y_i) = 2 sigma_i^4 / (P - 1) + 2 sigma_i.dark^4 / (P - 1) per pair (the variance of a
  variance from P differences), sigma_i^2 = K x_i + sigma^2_i.dark from the fit. The
  residual-based u of an equal-weight fit is not used: the high-signal points carry both the
  slope and the largest scatter, and it read 0.68 of the observed spread.
* sigma^2_y.dark at zero exposure: u of the line's intercept (or mean) from the same
  2 sigma^4 / (P - 1) per dark pair. None while the variance sits at its quantisation floor.
* R: u of its zero-offset slope from the pair means' standard errors sqrt(sigma^2_y / 2P).
  The photon counts are taken as exact: the radiometer's calibration is a Type B input of
  the station, not in the data.
* saturation point: the sweep step of maximum variance; its resolution is one step, a
  rectangular distribution (GUM F.2.2.1, u = step / sqrt(12), the step the mean spacing of
  the exposures or photons around it), beside u(K) and u(R).
* the figures in electrons (dark noise, saturation capacity, SNR_max, thresholds, DR, QE,
  dark current) from K, R, sigma^2_y.dark, the saturation step and the dark-current slopes
  (their residual standard errors) by GUM 5.1.3 Note 2: Z_i = (f(x_i + u_i) - f(x_i - u_i)) / 2,
  u_c^2 = sum Z_i^2. K and sigma^2_y.dark share the dark pairs, but each dark variance's
  share of a bright point's u(y_i) is sigma^4_dark / sigma^4_y, under 1e-3 above a few
  hundred electrons, so they are treated as uncorrelated.
* linearity error: the covariance of the points' deviations from the pair means' standard
  errors through the weighted fit (GUM 5.2.2), and the spread of the minimum / maximum over
  the points by Clark's moments of the greatest of correlated normals (points that compete for
  the extreme share it; u of the extreme point alone overstated it 1.6-fold on a linear
  sensor). Only temporal noise: point-to-point instability of the light is not in the data.
* DSNU/PRNU: the temporal noise of the L-frame mean image and of the sigma^2_stack / L
  correction (:func:`_u_spatial_var`), and u(K) for DSNU in electrons. The pixels' fixed
  pattern is the measurand, not a sample of it, so the sampling spread s / sqrt(2 (N - 1))
  of a standard deviation is not included (it does not change on a repeat).

A figure that is flagged, absent or not a number has no uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from harness.analysis.accumulators import PairAccumulator, PairStats, StackAccumulator, StackStats
from harness.analysis.defects import (
    DefectResult,
    DefectThresholds,
    bayer_planes,
    measure_defects,
)
from harness.errors import ConfigError, MeasurementError

QUANTISATION_VAR_DN2 = 1.0 / 12.0
MIN_DARK_VAR_DN2 = 0.24
#: defect classes left out of DSNU/PRNU "without defects" (weak pixels are PRNU's own tail).
EXCLUDED_CLASSES = ("stuck", "hot", "dead", "bright", "blinking")
#: Least points of a fit, its parameters plus two (module docstring, "Flags"): zero-offset
#: slopes (system gain K, responsivity R) have one parameter, lines with an offset (linearity,
#: dark current over exposure times) two.
MIN_SLOPE_POINTS = 3
MIN_LINE_POINTS = 4
#: A falling dark signal is flagged when its slope is below zero by more than this many
#: standard errors (a true dark current of zero reads negative half the time).
DARK_SLOPE_SIGMAS = 3.0


@dataclass(frozen=True)
class EmvaPoint:
    """One photon-transfer point: bright pair and its dark pair at the same exposure."""

    exposure_ns: float
    photons: float | None
    mean_dn: float
    mean_dark_dn: float
    var_dn2: float
    var_dark_dn2: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EmvaData:
    """Everything the analysis needs, already reduced (no frames)."""

    bits: int
    height: int
    width: int
    points: tuple[EmvaPoint, ...]
    dark_points: tuple[tuple[float, PairStats], ...]
    spatial_bright: StackStats | None
    spatial_dark: StackStats | None
    spatial_exposure_ns: float | None
    spatial_photons: float | None
    #: (bright pairs, dark pairs) averaged into each of ``points``, in the same order; empty:
    #: one pair each (the uncertainties scale with 1 / pairs).
    pair_counts: tuple[tuple[int, int], ...] = ()


@dataclass
class _BrightPoint:
    exposure_ns: float
    acc: PairAccumulator
    photons: list[float | None] = field(default_factory=list)


class EmvaReducer:
    """Stream frames in, get :class:`EmvaData` out. Frames of one point must be added in
    order (pairs are consecutive frames); points may interleave.

    ``key`` groups frames of one point; the dark pair of a bright point is the dark point with
    the same key. Descriptor data use the exposure time as key (the reference package's rule);
    capture sets use the step index, so read-back jitter of the exposure does not split a step.
    """

    def __init__(self, bits: int) -> None:
        if not 1 <= bits <= 16:
            raise ConfigError(f"{bits} not allowed; allowed: 1..16", field="bits")
        self.bits = bits
        self._max = (1 << bits) - 1
        self._bright: dict[tuple[float, float], _BrightPoint] = {}
        self._dark: dict[float, tuple[float, PairAccumulator]] = {}
        self._stacks: dict[str, StackAccumulator] = {}
        self._spatial: dict[str, tuple[float, float | None]] = {}
        self._spatial_key: dict[str, float] = {}
        self._shape: tuple[int, int] | None = None
        self._buffer: np.ndarray | None = None

    def _scratch(self, like: np.ndarray) -> np.ndarray:
        """One abs(A - B) buffer for all pairs of the sweep."""
        if self._buffer is None or self._buffer.shape != like.shape or \
                self._buffer.dtype != like.dtype:
            self._buffer = np.empty_like(like)
        return self._buffer

    def add(self, frame: np.ndarray, *, dark: bool, spatial: bool, exposure_ns: float,
            photons: float | None = None, key: float | None = None) -> None:
        """Add one frame of a temporal pair (``spatial=False``) or a spatial stack."""
        if self._shape is None:
            self._shape = (frame.shape[0], frame.shape[1])
        elif frame.shape != self._shape:
            raise ConfigError(f"frame shape {frame.shape} differs from the first frame's "
                              f"{self._shape}")
        k = exposure_ns if key is None else float(key)
        if spatial:
            kind = "dark" if dark else "bright"
            where = (exposure_ns, None if dark else photons)
            if self._spatial_key.setdefault(kind, k) != k:
                raise ConfigError(f"spatial {kind} frames at more than one exposure/step; one "
                                  "spatial point is allowed")
            self._spatial.setdefault(kind, where)
            self._stacks.setdefault(kind, StackAccumulator()).add(frame)
        elif dark:
            dark_entry = (exposure_ns, PairAccumulator(self._max, self._scratch))
            self._dark.setdefault(k, dark_entry)[1].add(frame)
        else:
            # descriptor points are told apart by (exposure, photons); a capture-set step is
            # one point even if the read-back exposure or photon count jitters between frames
            pkey = (k, -1.0 if photons is None or key is not None else float(photons))
            point = self._bright.get(pkey)
            if point is None:
                point = self._bright[pkey] = _BrightPoint(
                    exposure_ns, PairAccumulator(self._max, self._scratch))
            point.acc.add(frame)
            point.photons.append(photons)

    def finish(self) -> EmvaData:
        if self._shape is None or not self._bright:
            raise ConfigError("no bright temporal pairs: an EMVA 1288 sweep needs a bright and "
                              "a dark pair per step")
        if not self._dark:
            raise ConfigError("no dark temporal pairs: every step needs a dark pair")
        darks = {k: (ns, acc.stats()) for k, (ns, acc) in self._dark.items()}
        only_dark = next(iter(darks.values())) if len(darks) == 1 else None
        points: list[tuple[EmvaPoint, tuple[int, int]]] = []
        for (k, _), bp in self._bright.items():
            found = darks.get(k, only_dark)
            if found is None:
                raise ConfigError(f"bright point at exposure {bp.exposure_ns:g} ns has no dark "
                                  "pair at the same exposure")
            bright, dark = bp.acc.stats(), found[1]
            given = [p for p in bp.photons if p is not None]
            if given and len(given) != len(bp.photons):
                raise ConfigError(f"bright point at exposure {bp.exposure_ns:g} ns has photon "
                                  "counts for some frames only")
            photons = float(np.mean(given)) if given else None
            points.append((EmvaPoint(bp.exposure_ns, photons, bright.mean_dn, dark.mean_dn,
                                     bright.var_dn2, dark.var_dn2), (bright.pairs, dark.pairs)))
        known = [p.photons is not None for p, _ in points]
        if any(known) and not all(known):
            raise ConfigError("photon counts are given for some bright points but not all")
        points.sort(key=lambda pc: (pc[0].exposure_ns, pc[0].photons or 0.0))
        stacks = {kind: acc.stats() for kind, acc in self._stacks.items()}
        if len(stacks) == 1:
            raise ConfigError(f"only a {next(iter(stacks))} spatial stack; DSNU/PRNU need "
                              "both a bright and a dark stack")
        dark_points = tuple(sorted(((ns, st) for ns, st in darks.values()), key=lambda x: x[0]))
        where = self._spatial.get("bright", (None, None))
        return EmvaData(self.bits, self._shape[0], self._shape[1],
                        tuple(p for p, _ in points), dark_points, stacks.get("bright"),
                        stacks.get("dark"), where[0], where[1], tuple(c for _, c in points))


@dataclass(frozen=True)
class SpatialVariances:
    """Spatial variances of one stack's mean image, DN^2 (EMVA 1288 Release 4.0 Linear;
    docs/standards.md#emva-dsnu-and-prnu)."""

    mean_dn: float
    total_dn2: float
    row_dn2: float
    column_dn2: float
    pixel_dn2: float
    temporal_dn2: float
    frames: int
    pixels: int


def spatial_variances(stack: StackStats, good: np.ndarray | None = None,
                      view: tuple[slice, slice] | None = None) -> SpatialVariances:
    """s^2_y, s^2_y.row, s^2_y.col, s^2_y.pixel with the sigma^2_stack / L correction; pixels
    outside ``good`` are left out (means of rows/columns over their good pixels). ``view``
    restricts everything to one Bayer plane (``good`` then has the plane's shape)."""
    frames = stack.frames
    if frames < 2:
        raise ConfigError("a spatial stack needs at least 2 frames")
    mean_img = stack.mean(view)
    rows, cols = mean_img.shape
    temporal = stack.temporal_var_dn2(good, view)
    if good is None or bool(good.all()):
        mu = float(mean_img.mean())
        measured = float(mean_img.var(ddof=1))
        col_means = mean_img.mean(axis=0)
        row_means = mean_img.mean(axis=1)
        count = mean_img.size
    else:
        values = mean_img[good]
        mu = float(values.mean())
        measured = float(values.var(ddof=1))
        weights = good.astype(np.float64)
        masked = np.where(good, mean_img, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            col_means = masked.sum(axis=0) / weights.sum(axis=0)
            row_means = masked.sum(axis=1) / weights.sum(axis=1)
        col_means = col_means[np.isfinite(col_means)]
        row_means = row_means[np.isfinite(row_means)]
        count = int(values.size)
    m, n = float(rows), float(cols)
    s2 = measured - temporal / frames
    s2_cav = float(np.mean((col_means - mu) ** 2)) - temporal / (frames * m)
    s2_rav = float(np.mean((row_means - mu) ** 2)) - temporal / (frames * n)
    d = m * n - m - n
    s2_col = ((m * n - m) / d) * s2_cav - (n / d) * (s2 - s2_rav)
    s2_row = ((m * n - n) / d) * s2_rav - (m / d) * (s2 - s2_cav)
    s2_pix = (m * n / d) * (s2 - s2_cav - s2_rav)
    return SpatialVariances(mu, s2, s2_row, s2_col, s2_pix, temporal, frames, count)


def _sqrt(value: float) -> float:
    """sqrt, NaN for a negative variance (what the reference package gives, issue #169)."""
    return math.sqrt(value) if value >= 0 else math.nan


@dataclass(frozen=True)
class NonUniformity:
    """DSNU (e-, and DN) and PRNU (%) with the Release-4 row/column/pixel split."""

    dsnu_e: float
    dsnu_dn: float
    dsnu_row_e: float
    dsnu_column_e: float
    dsnu_pixel_e: float
    prnu_pct: float
    prnu_row_pct: float
    prnu_column_pct: float
    prnu_pixel_pct: float
    excluded_pixels: int


def nonuniformity(bright: SpatialVariances, dark: SpatialVariances, k_dn_per_e: float,
                  excluded: int = 0) -> NonUniformity:
    signal = bright.mean_dn - dark.mean_dn

    def prnu(b: float, d: float) -> float:
        return 100.0 * _sqrt(b - d) / signal if signal > 0 else math.nan

    return NonUniformity(
        dsnu_e=_sqrt(dark.total_dn2) / k_dn_per_e,
        dsnu_dn=_sqrt(dark.total_dn2),
        dsnu_row_e=_sqrt(dark.row_dn2) / k_dn_per_e,
        dsnu_column_e=_sqrt(dark.column_dn2) / k_dn_per_e,
        dsnu_pixel_e=_sqrt(dark.pixel_dn2) / k_dn_per_e,
        prnu_pct=prnu(bright.total_dn2, dark.total_dn2),
        prnu_row_pct=prnu(bright.row_dn2, dark.row_dn2),
        prnu_column_pct=prnu(bright.column_dn2, dark.column_dn2),
        prnu_pixel_pct=prnu(bright.pixel_dn2, dark.pixel_dn2),
        excluded_pixels=excluded,
    )


def combine_planes(planes: Mapping[str, NonUniformity]) -> NonUniformity:
    """One figure from the Bayer planes: the RMS of each DSNU/PRNU figure over the planes
    (the pooled variance; a colour sensor's channels are evaluated separately, since the raw
    frame's spread mostly shows the colour filters). One plane (mono) is returned as is."""
    values = list(planes.values())
    if len(values) == 1:
        return values[0]
    pooled: dict[str, Any] = {}
    for name in asdict(values[0]):
        if name == "excluded_pixels":
            pooled[name] = sum(v.excluded_pixels for v in values)
        else:
            pooled[name] = math.sqrt(sum(getattr(v, name) ** 2 for v in values) / len(values))
    return NonUniformity(**pooled)


#: What each flaggable figure is computed from: a flag on a source flags the figure too.
#: (DSNU in electrons, every variant, depends on K; added where the figures are known.)
_DERIVED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("temporal_dark_noise_e", ("temporal_dark_noise_dn", "system_gain_dn_per_e")),
    ("quantum_efficiency_pct", ("system_gain_dn_per_e", "responsivity_dn_per_photon")),
    ("saturation_capacity_e",
     ("saturation_mean_dn", "system_gain_dn_per_e", "quantum_efficiency_pct")),
    ("full_well_e", ("saturation_mean_dn", "system_gain_dn_per_e")),
    ("snr_max", ("saturation_capacity_e",)),
    ("snr_max_db", ("saturation_capacity_e",)),
    ("sensitivity_threshold_e", ("temporal_dark_noise_dn", "system_gain_dn_per_e")),
    ("sensitivity_threshold_approx_e", ("temporal_dark_noise_dn", "system_gain_dn_per_e")),
    ("sensitivity_threshold_photons", ("sensitivity_threshold_e", "quantum_efficiency_pct")),
    ("dynamic_range", ("saturation_capacity_e", "sensitivity_threshold_e")),
    ("dynamic_range_db", ("saturation_capacity_e", "sensitivity_threshold_e")),
    ("linearity_error_min_pct", ("saturation_mean_dn",)),
    ("linearity_error_max_pct", ("saturation_mean_dn",)),
    ("dark_current_e_per_s", ("system_gain_dn_per_e",)),
    ("dark_current_from_variance_e_per_s", ("system_gain_dn_per_e",)),
    ("spatial_fraction_of_saturation", ("saturation_mean_dn",)),
)
#: Result fields that are not figures (indices, switches, ranges, containers).
_NOT_FIGURES = frozenset({
    "saturation_index", "saturation_reached", "dark_noise_quantisation_limited",
    "linearity_fit_range", "gain_fit_range", "nonuniformity", "nonuniformity_all_pixels",
    "nonuniformity_per_plane", "defects", "points", "flags", "uncertainties"})
#: Why a figure can be None: what the data lack.
_ABSENT = {
    "quantum_efficiency_pct": "the data have no photon counts",
    "responsivity_dn_per_photon": "the data have no photon counts",
    "sensitivity_threshold_photons": "the data have no photon counts",
    "dark_current_e_per_s": "the dark pairs are at one exposure time",
    "dark_current_from_variance_e_per_s": "the dark pairs are at one exposure time",
    "full_well_e": "the sweep does not go past saturation",
    "spatial_fraction_of_saturation": "the data have no spatial stacks",
}


@dataclass(frozen=True)
class Emva1288Result:
    """All EMVA 1288 figures; names carry their units. ``None``: not measurable from the data
    (no photon counts, a single exposure time, no spatial stacks).

    ``flags`` maps a figure's name to the reason it is physically impossible or not supported
    by the data (module docstring, "Flags"). A flagged figure keeps its computed value for the
    record; read figures for judging through :meth:`require`, which raises
    :class:`~harness.errors.MeasurementError` for a flagged or absent one.

    ``uncertainties`` maps a figure's name to its standard uncertainty u (coverage factor 1,
    GUM JCGM 100:2008 2.3.1, in the figure's own unit) evaluated from the data themselves
    (module docstring, "Uncertainties"); read it through :meth:`uncertainty`."""

    system_gain_dn_per_e: float
    temporal_dark_noise_e: float
    temporal_dark_noise_dn: float
    dark_var_dn2: float
    dark_noise_quantisation_limited: bool
    saturation_capacity_e: float
    saturation_mean_dn: float
    saturation_index: int
    saturation_reached: bool
    full_well_e: float | None
    snr_max: float
    snr_max_db: float
    sensitivity_threshold_e: float
    sensitivity_threshold_approx_e: float
    sensitivity_threshold_photons: float | None
    dynamic_range: float
    dynamic_range_db: float
    linearity_error_min_pct: float
    linearity_error_max_pct: float
    linearity_fit_range: tuple[int, int]
    gain_fit_range: tuple[int, int]
    responsivity_dn_per_photon: float | None
    quantum_efficiency_pct: float | None
    dark_current_e_per_s: float | None
    dark_current_from_variance_e_per_s: float | None
    nonuniformity: NonUniformity | None
    nonuniformity_all_pixels: NonUniformity | None
    nonuniformity_per_plane: Mapping[str, NonUniformity] | None
    spatial_fraction_of_saturation: float | None
    defects: DefectResult | None
    points: tuple[EmvaPoint, ...]
    flags: Mapping[str, str] = field(default_factory=dict)
    uncertainties: Mapping[str, float] = field(default_factory=dict)

    @property
    def dsnu_e(self) -> float | None:
        """DSNU with defect pixels excluded (see ``nonuniformity_all_pixels`` for all)."""
        return None if self.nonuniformity is None else self.nonuniformity.dsnu_e

    @property
    def prnu_pct(self) -> float | None:
        return None if self.nonuniformity is None else self.nonuniformity.prnu_pct

    @property
    def dsnu_all_pixels_e(self) -> float | None:
        nu = self.nonuniformity_all_pixels
        return None if nu is None else nu.dsnu_e

    @property
    def prnu_all_pixels_pct(self) -> float | None:
        nu = self.nonuniformity_all_pixels
        return None if nu is None else nu.prnu_pct

    def figures(self) -> dict[str, float | None]:
        """Every scalar figure by name: the fields, DSNU/PRNU with their Release-4 split (also
        ``all_pixels_`` and Bayer-plane prefixed, as in :meth:`as_dict`) and the aliases
        ``dsnu_all_pixels_e`` / ``prnu_all_pixels_pct``. These are the names of ``flags``."""
        out: dict[str, float | None] = {}
        for f in fields(self):
            if f.name not in _NOT_FIGURES:
                value = getattr(self, f.name)
                out[f.name] = None if value is None else float(value)
        nu_fields = [f.name for f in fields(NonUniformity) if f.name != "excluded_pixels"]
        planes = self.nonuniformity_per_plane or {}
        variants = (("", self.nonuniformity), ("all_pixels_", self.nonuniformity_all_pixels),
                    *((f"{plane}_", nu) for plane, nu in planes.items()))
        for prefix, nu in variants:
            for name in nu_fields:
                out[prefix + name] = None if nu is None else float(getattr(nu, name))
        out["dsnu_all_pixels_e"] = self.dsnu_all_pixels_e
        out["prnu_all_pixels_pct"] = self.prnu_all_pixels_pct
        return out

    def flag(self, name: str) -> str | None:
        """Why figure ``name`` is flagged, or None when it is not."""
        return self.flags.get(name)

    def uncertainty(self, name: str) -> float | None:
        """Standard uncertainty u of figure ``name`` (one of :meth:`figures`; k = 1, in its
        unit), or None where the analysis states none: the figure is absent, flagged or not a
        number, the dark variance sits at its quantisation floor, or no model for it exists
        (module docstring, "Uncertainties"). An unknown name is a
        :class:`~harness.errors.ConfigError`."""
        if name not in self.uncertainties and name not in self.figures():
            raise ConfigError(f"unknown EMVA 1288 figure {name!r}; known: "
                              f"{', '.join(sorted(self.figures()))}", field="measurement")
        return self.uncertainties.get(name)

    def require(self, name: str) -> float:
        """Figure ``name`` for judging: its value, or :class:`MeasurementError` (an ERROR of
        the step, never a FAIL) when it is flagged, absent (None) or not a number."""
        values = self.figures()
        if name not in values:
            raise ConfigError(f"unknown EMVA 1288 figure {name!r}; known: "
                              f"{', '.join(sorted(values))}", field="measurement")
        reason = self.flags.get(name)
        if reason is not None:
            raise MeasurementError(f"{name} = {_fmt_value(values[name])} is flagged: {reason}",
                                   figure=name)
        value = values[name]
        if value is None:
            why = _ABSENT.get(name, "the data have no spatial stacks")
            raise MeasurementError(f"{name} not measured: {why}", figure=name)
        if not math.isfinite(value):
            raise MeasurementError(f"{name} is not a number (a negative variance under a "
                                   "square root, or a division by zero)", figure=name)
        return value

    def _figure_json(self, name: str, value: Any) -> Any:
        """A figure for JSON: the plain number, or ``{"value", "flagged"}`` when flagged."""
        reason = self.flags.get(name)
        return _num(value) if reason is None else {"value": _num(value), "flagged": reason}

    def figure_json(self, name: str) -> Any:
        """Figure ``name`` (one of :meth:`figures`) ready for JSON: the number (NaN and
        absent become None), or ``{"value": number or None, "flagged": reason}`` when it is
        flagged, so a flagged figure is never read as a plain value."""
        return self._figure_json(name, self.figures()[name])

    def as_dict(self) -> dict[str, Any]:
        """Every figure by name (for limit judging and evidence), JSON-ready; flagged figures
        as in :meth:`figure_json`, ``flags``, and ``uncertainty`` (figure name -> standard
        uncertainty, for the figures that have one)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name in ("points", "defects", "nonuniformity", "nonuniformity_all_pixels",
                        "nonuniformity_per_plane", "flags", "uncertainties"):
                continue
            out[name] = list(value) if isinstance(value, tuple) else \
                self._figure_json(name, value)
        planes = self.nonuniformity_per_plane or {}
        variants = (("", self.nonuniformity), ("all_pixels_", self.nonuniformity_all_pixels),
                    *((f"{plane}_", nu) for plane, nu in planes.items()))
        for prefix, nu in variants:
            if nu is not None:
                for key, value in asdict(nu).items():
                    out[prefix + key] = self._figure_json(prefix + key, value)
        out["defect_counts"] = None if self.defects is None else self.defects.counts
        out["points"] = [{k: _num(v) for k, v in p.as_dict().items()} for p in self.points]
        out["flags"] = dict(self.flags)
        out["uncertainty"] = dict(self.uncertainties)
        return out


def _num(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def _fmt_value(value: float | None) -> str:
    return "None" if value is None else f"{value:.4g}"


class _Flags:
    """Flags under construction: reasons of the figures flagged in their own right, and for
    every flagged figure the names of those own flags it carries (itself, or its sources')."""

    def __init__(self) -> None:
        self.own: dict[str, str] = {}
        self.roots: dict[str, list[str]] = {}

    def add(self, name: str, reason: str) -> None:
        self.own[name] = f"{self.own[name]}; {reason}" if name in self.own else reason
        roots = self.roots.setdefault(name, [])
        if name not in roots:
            roots.insert(0, name)

    def derive(self, name: str, sources: tuple[str, ...]) -> None:
        found = [r for s in sources for r in self.roots.get(s, ())]
        if found:
            roots = self.roots.setdefault(name, [])
            roots.extend(r for r in dict.fromkeys(found) if r not in roots)

    def reasons(self, figures: Mapping[str, float | None]) -> dict[str, str]:
        """name -> reason for every flagged figure that has a value (None is not measured)."""
        out: dict[str, str] = {}
        for name, roots in self.roots.items():
            if figures.get(name) is None:
                continue
            parts = [self.own[name]] if name in self.own else []
            parts += [f"from flagged {r}: {self.own[r]}" for r in roots if r != name]
            out[name] = "; ".join(parts)
        return out


def _slope0(x: np.ndarray, y: np.ndarray) -> float:
    """Zero-offset least-squares slope sum(xy) / sum(x^2)."""
    den = float(np.dot(x, x))
    if den <= 0:
        raise ConfigError("photon transfer fit has no signal (all points at the dark level)")
    return float(np.dot(x, y) / den)


def _line_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error from the residuals
    (s / sqrt(sum (x - mean x)^2), s^2 = sum r^2 / (n - 2)); inf with fewer than 3 points."""
    slope, offset = np.polyfit(x, y, 1)
    n = x.size
    sxx = float(np.sum((x - x.mean()) ** 2))
    if n < 3 or sxx <= 0:
        return float(slope), math.inf
    residual = y - (slope * x + offset)
    return float(slope), math.sqrt(float(np.dot(residual, residual)) / (n - 2) / sxx)


def _var_of_variance(var_dn2: np.ndarray, pixels: int, pairs: np.ndarray) -> np.ndarray:
    """Variance of a pair's temporal-variance estimate (Eq. 18): half the sample variance of
    P independent differences A - B, each of variance 2 sigma^2, so 2 sigma^4 / (P - 1) (a
    normal sample variance, chi-square with P - 1 degrees of freedom; the Poisson excess
    kurtosis 1 / (2 mu_e) of a difference is neglected), divided by the pairs averaged."""
    return 2.0 * np.square(np.maximum(var_dn2, 0.0)) / ((pixels - 1.0) * pairs)


def _u_slope0(x: np.ndarray, u_y: np.ndarray) -> float:
    """u of the zero-offset least-squares slope sum(x y) / sum(x^2) for independent y_i of
    known standard uncertainties u(y_i): the slope is linear in y with sensitivity
    coefficients x_i / sum(x^2) (GUM 5.1.2; the x_i, means of 2P values, are taken as exact)."""
    return math.sqrt(float(np.dot(x * x, u_y * u_y))) / float(np.dot(x, x))


def _u_dark_intercept(t: np.ndarray, u_v: np.ndarray, line: bool) -> float:
    """u of the dark variance at zero exposure: the least-squares line's intercept (or the
    mean when ``line`` is False), linear in the variances with coefficients
    1/n - mean(t) (t_i - mean(t)) / sum((t - mean(t))^2) (GUM 5.1.2)."""
    n = t.size
    if line:
        dt = t - t.mean()
        coef = 1.0 / n - t.mean() * dt / float(np.dot(dt, dt))
    else:
        coef = np.full(n, 1.0 / n)
    return math.sqrt(float(np.dot(coef * coef, u_v * u_v)))


def _u_linearity(x: np.ndarray, y: np.ndarray, u_y: np.ndarray) -> np.ndarray:
    """Covariance of the points' linearity errors delta_i = 100 (Y_i - m_i) / m_i. The fit with
    weights 1/Y is linear in Y for fixed weights, m = H Y with H = A (A^T W^2 A)^-1 A^T W^2, so
    d delta / dY = 100 (diag(1/m) - diag(Y/m^2) H) and the covariance is
    J diag(u^2(Y)) J^T (GUM 5.1.2 and 5.2.2 for correlated outputs; the weights' own noise is
    second order)."""
    a = np.stack([np.ones_like(x), x / float(np.max(np.abs(x)))], axis=1)
    w2 = 1.0 / np.square(y)
    h = a @ np.linalg.solve(a.T @ (a * w2[:, None]), (a * w2[:, None]).T)
    m = h @ y
    jac = 100.0 * (np.diag(1.0 / m) - (y / np.square(m))[:, None] * h)
    return (jac * np.square(u_y)) @ jac.T


def _u_extreme(mean: np.ndarray, cov: np.ndarray) -> float:
    """Standard deviation of max_i X_i for jointly normal X_i (means ``mean``, covariance
    ``cov``) by Clark's moment recursion (C. E. Clark, "The greatest of a finite set of random
    variables", Operations Research 9 (1961) 145-162, Eqs. 2-5): the maximum of two normals
    has exact first two moments and correlations with a third; the running maximum is
    treated as normal and folded with the next point. With the measured deviations as the
    means, points that compete for the extreme share it, and its spread is below each one's u
    (the maximum of n equal normals has about 0.6 sigma for n = 11)."""
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    m1, s1 = float(mean[0]), float(sd[0])
    # covariance of the running maximum with every point
    c = cov[0].astype(np.float64).copy()
    for j in range(1, mean.size):
        m2, s2, c12 = float(mean[j]), float(sd[j]), float(c[j])
        a = math.sqrt(max(s1 * s1 + s2 * s2 - 2.0 * c12, 0.0))
        if a <= 1e-12 * max(s1, s2, 1e-300):
            if m2 > m1:
                m1, s1, c = m2, s2, cov[j].astype(np.float64).copy()
            continue
        alpha = (m1 - m2) / a
        big = 0.5 * (1.0 + math.erf(alpha / math.sqrt(2.0)))
        small = math.exp(-0.5 * alpha * alpha) / math.sqrt(2.0 * math.pi)
        first = m1 * big + m2 * (1.0 - big) + a * small
        second = ((m1 * m1 + s1 * s1) * big + (m2 * m2 + s2 * s2) * (1.0 - big)
                  + (m1 + m2) * a * small)
        c = c * big + cov[j] * (1.0 - big)
        m1, s1 = first, math.sqrt(max(second - first * first, 0.0))
    return s1


def _u_spatial_var(s2: float, sv: SpatialVariances) -> float:
    """u of a spatial variance s^2 of the L-frame mean image of N pixels after the temporal
    correction s^2_measured - sigma^2_stack / L, from the temporal noise of the stack (the
    pixels' fixed pattern is the measurand, not a sample). The mean image is pattern f plus
    noise e of variance sigma^2 / L per pixel; s^2_measured = s^2_f + 2 cov(f, e) + s^2_e with
    Var(2 cov) = 4 s^2_f sigma^2 / (L (N - 1)) and Var(s^2_e) = 2 (sigma^2 / L)^2 / (N - 1);
    the correction sigma^2_stack / L, a mean of N per-pixel variances with L - 1 degrees of
    freedom, adds 2 sigma^4 / (L^2 N (L - 1)) (normal noise; GUM 5.1.2, independent terms).
    For the pixel part of the Release-4 split s^2 is that part: the noise falls almost wholly
    into it."""
    n, frames, sig2 = float(sv.pixels), float(sv.frames), max(sv.temporal_dn2, 0.0)
    var = (4.0 * max(s2, 0.0) * sig2 / (frames * (n - 1.0))
           + 2.0 * (sig2 / frames) ** 2 / (n - 1.0)
           + 2.0 * sig2**2 / (frames**2 * n * (frames - 1.0)))
    return math.sqrt(var)


def _u_nonuniformity(bright: SpatialVariances, dark: SpatialVariances, k: float,
                     u_k: float | None) -> dict[str, float]:
    """u of DSNU (e-, DN) and PRNU (%) and of their pixel parts, from :func:`_u_spatial_var`
    and u(K) (DSNU in e- = s_y.dark / K; PRNU = 100 sqrt(s^2_y - s^2_y.dark) / (mu_y -
    mu_y.dark), the mean's relative u ~ 1e-4 neglected), by GUM 5.1.2 with independent
    bright and dark stacks and an independent K (the photon-transfer pairs are other frames)."""
    out: dict[str, float] = {}
    signal = bright.mean_dn - dark.mean_dn
    for part, b2, d2 in (("", bright.total_dn2, dark.total_dn2),
                         ("_pixel", bright.pixel_dn2, dark.pixel_dn2)):
        u_b2, u_d2 = _u_spatial_var(b2, bright), _u_spatial_var(d2, dark)
        if d2 > 0 and k > 0:
            s_dn = math.sqrt(d2)
            u_dn = u_d2 / (2.0 * s_dn)
            if not part:
                out["dsnu_dn"] = u_dn
            out[f"dsnu{part}_e"] = math.hypot(u_dn / k, s_dn * (u_k or 0.0) / k**2) \
                if u_k is not None else math.nan
        if b2 > d2 and signal > 0:
            out[f"prnu{part}_pct"] = 100.0 * math.hypot(u_b2, u_d2) / (
                2.0 * math.sqrt(b2 - d2) * signal)
    return out


def _u_combined_planes(planes: Mapping[str, NonUniformity],
                       u_planes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """u of the pooled figure sqrt(mean_i p_i^2) over the Bayer planes: sensitivity
    p_i / (n f) for each independent plane (GUM 5.1.2); one plane is returned as is."""
    if len(planes) == 1:
        return dict(next(iter(u_planes.values())))
    out: dict[str, float] = {}
    names = set.intersection(*(set(u) for u in u_planes.values()))
    for name in names:
        values = [float(getattr(nu, name)) for nu in planes.values()]
        pooled = math.sqrt(sum(v * v for v in values) / len(values))
        terms = [v * u_planes[plane][name] for v, plane in zip(values, planes, strict=True)]
        out[name] = math.sqrt(sum(t * t for t in terms)) / (len(values) * pooled)
    return out


def _propagate(func: Callable[[Mapping[str, float]], Mapping[str, float | None]],
               x: Mapping[str, float], u: Mapping[str, float]) -> dict[str, float]:
    """Combined standard uncertainty of every output of ``func`` for independent inputs
    ``x`` with standard uncertainties ``u`` (GUM 5.1.2), each sensitivity term by the
    central difference of GUM 5.1.3 Note 2, Z_i = (f(x_i + u_i) - f(x_i - u_i)) / 2 and
    u_c^2 = sum Z_i^2. An output that is not a finite number at every step is left out."""
    sums: dict[str, float] = {}
    bad: set[str] = set()
    for name, ui in u.items():
        up = func({**x, name: x[name] + ui})
        down = func({**x, name: x[name] - ui})
        for out, hi in up.items():
            lo = down.get(out)
            if hi is None or lo is None:
                continue
            z = 0.5 * (hi - lo)
            if not math.isfinite(z):
                bad.add(out)
            sums[out] = sums.get(out, 0.0) + z * z
    return {name: math.sqrt(v) for name, v in sums.items() if name not in bad}


def find_saturation(var_dn2: np.ndarray) -> tuple[int, bool]:
    """Index of the maximum temporal variance and whether the data go past it (a drop to
    below 50 % of the maximum, i.e. the variance collapses on a clipped plateau)."""
    index = int(np.argmax(var_dn2))
    after = var_dn2[index + 1:]
    reached = bool(after.size and float(after.min()) < 0.5 * float(var_dn2[index]))
    return index, reached


H_PLANCK_J_S = 6.62607015e-34
C_LIGHT_M_S = 299_792_458.0


def photons_per_pixel(irradiance_w_m2: float, pixel_pitch_um: float, exposure_us: float,
                      wavelength_nm: float) -> float:
    """Mean photons per pixel mu_p = E A t_exp lambda / (h c) for a narrow-band light of
    wavelength ``wavelength_nm`` and irradiance ``irradiance_w_m2`` on a square pixel of pitch
    ``pixel_pitch_um`` (A = pitch^2, the pixel's geometric area, as EMVA 1288 counts it) during
    ``exposure_us`` (docs/standards.md#emva-linear-model)."""
    for name, value in (("pixel_pitch_um", pixel_pitch_um), ("wavelength_nm", wavelength_nm)):
        if not (math.isfinite(value) and value > 0.0):
            raise ConfigError(f"{name} must be a positive number, got {value}", field=name)
    if not (math.isfinite(irradiance_w_m2) and irradiance_w_m2 >= 0.0):
        raise ConfigError(f"irradiance must be >= 0 W/m2, got {irradiance_w_m2}",
                          field="irradiance_w_m2")
    if not (math.isfinite(exposure_us) and exposure_us >= 0.0):
        raise ConfigError(f"exposure must be >= 0 us, got {exposure_us}", field="exposure_us")
    area_m2 = (pixel_pitch_um * 1e-6) ** 2
    return (irradiance_w_m2 * area_m2 * exposure_us * 1e-6 * wavelength_nm * 1e-9
            / (H_PLANCK_J_S * C_LIGHT_M_S))


def measure_emva1288(data: EmvaData, *, cfa: str | None = None,
                     defect_thresholds: DefectThresholds | None = None,
                     saturation_index: int | None = None) -> Emva1288Result:
    """Compute every EMVA 1288 figure from reduced data and flag those that are physically
    impossible or not supported by the data (see the module docstring). A ``saturation_index``
    given by the caller is taken as is (not flagged at the ends of the sweep)."""
    pts = data.points
    if len(pts) < 3:
        raise ConfigError(f"{len(pts)} bright point(s); the photon transfer fit needs >= 3")
    with_photons = pts[0].photons is not None
    order = np.argsort([float(p.photons or 0.0) if with_photons else p.exposure_ns for p in pts],
                       kind="stable")
    pts = tuple(pts[i] for i in order)
    counts = data.pair_counts if len(data.pair_counts) == len(order) else ((1, 1),) * len(order)
    pairs_b = np.array([counts[i][0] for i in order], dtype=np.float64)
    pairs_d = np.array([counts[i][1] for i in order], dtype=np.float64)
    mu = np.array([p.mean_dn for p in pts])
    mu_d = np.array([p.mean_dark_dn for p in pts])
    var = np.array([p.var_dn2 for p in pts])
    var_d = np.array([p.var_dark_dn2 for p in pts])
    photons = np.array([p.photons or 0.0 for p in pts]) if with_photons else None
    signal = mu - mu_d
    flags = _Flags()

    if saturation_index is None:
        isat, reached = find_saturation(var)
        if isat in (0, len(pts) - 1):
            where = ("last", "does not reach saturation") if isat else \
                ("first", "starts at or past saturation")
            flags.add("saturation_mean_dn", f"the variance maximum is at the {where[0]} of the "
                      f"{len(pts)} steps: the sweep {where[1]}")
    else:
        if not 0 <= saturation_index < len(pts):
            raise ConfigError(f"{saturation_index} outside 0..{len(pts) - 1}",
                              field="saturation_index")
        isat, reached = saturation_index, True
    y_sat = float(signal[isat])
    if y_sat <= 0:
        raise ConfigError("the saturation point has no signal above dark")

    below = np.flatnonzero(signal[: isat + 1] <= 0.7 * y_sat)
    gain_hi = int(below.max()) if below.size else 0
    fit = slice(0, gain_hi + 1)
    k = _slope0(signal[fit], var[fit] - var_d[fit])
    if gain_hi + 1 < MIN_SLOPE_POINTS:
        few = (f"{gain_hi + 1} point(s) below 70 % of saturation; at least {MIN_SLOPE_POINTS} "
               "are needed")
        flags.add("system_gain_dn_per_e", f"the photon-transfer fit has {few}")
        flags.add("responsivity_dn_per_photon", f"the responsivity fit has {few}")
    if not k > 0:
        flags.add("system_gain_dn_per_e", f"the photon-transfer slope is {k:.3g} DN/e- (<= 0): "
                  "the temporal variance does not grow with the signal")
    negative = np.flatnonzero((var[fit] < 0) | (var_d[fit] < 0))
    if negative.size:
        flags.add("system_gain_dn_per_e", "negative temporal variance at point(s) "
                  f"{', '.join(str(int(i)) for i in negative[:5])} of the photon-transfer fit")
    k_div = k if k != 0 else math.nan  # no ZeroDivisionError: a zero K is flagged above
    responsivity = _slope0(photons[fit], signal[fit]) if photons is not None else None
    if responsivity is not None and not responsivity > 0:
        flags.add("responsivity_dn_per_photon", f"the responsivity is {responsivity:.3g} "
                  "DN/photon (<= 0): the signal does not grow with the photons")
    eta = responsivity / k_div if responsivity is not None else None
    if eta is not None and eta > 1.0:
        flags.add("quantum_efficiency_pct", f"quantum efficiency {100.0 * eta:.4g} % is above "
                  "100 % (one photon gives at most one electron; check the photon counts)")

    dark_t = np.array([ns for ns, _ in data.dark_points]) * 1e-9
    dark_mu = np.array([st.mean_dn for _, st in data.dark_points])
    dark_var = np.array([st.var_dn2 for _, st in data.dark_points])
    distinct = len(set(dark_t.tolist()))  # not np.unique: it loads numpy.ma (30 ms)
    var_dark0 = (float(np.polyfit(dark_t, dark_var, 1)[1]) if distinct > 2
                 else float(dark_var.mean()))
    if var_dark0 < 0:
        flags.add("temporal_dark_noise_dn", f"the dark variance extrapolated to zero exposure "
                  f"is negative ({var_dark0:.3g} DN^2; shown at the quantisation limit)")
    if (dark_var < 0).any():
        flags.add("temporal_dark_noise_dn", "negative temporal variance of a dark pair")
    if "temporal_dark_noise_dn" in flags.own:
        flags.add("dark_var_dn2", flags.own["temporal_dark_noise_dn"])
    limited = var_dark0 < MIN_DARK_VAR_DN2
    var_dark0 = max(var_dark0, MIN_DARK_VAR_DN2)
    sigma_d = math.sqrt(var_dark0 - QUANTISATION_VAR_DN2) / k_div
    dark_current = dark_current_var = None
    if distinct >= 2:
        slope_mu, se_mu = _line_slope(dark_t, dark_mu)
        slope_var, se_var = _line_slope(dark_t, dark_var)
        dark_current = slope_mu / k_div
        dark_current_var = slope_var / k_div**2
        if distinct < MIN_LINE_POINTS:
            for name in ("dark_current_e_per_s", "dark_current_from_variance_e_per_s"):
                flags.add(name, f"the dark-current fit has {distinct} exposure times; at least "
                          f"{MIN_LINE_POINTS} are needed")
        else:
            if slope_mu < -DARK_SLOPE_SIGMAS * se_mu:
                flags.add("dark_current_e_per_s", "negative dark current: the mean dark signal "
                          f"falls with exposure time ({slope_mu:.3g} +- {se_mu:.2g} DN/s; a "
                          "drifting dark level?)")
            if slope_var < -DARK_SLOPE_SIGMAS * se_var:
                flags.add("dark_current_from_variance_e_per_s", "negative dark current: the "
                          f"dark variance falls with exposure time ({slope_var:.3g} +- "
                          f"{se_var:.2g} DN^2/s)")

    mu_e_sat = (eta * float(photons[isat]) if eta is not None and photons is not None
                else y_sat / k_div)
    plateau = signal[isat + 1:]
    full_well = float(np.median(plateau[-3:])) / k_div if reached and plateau.size else None
    e_min = 0.5 + math.sqrt(0.25 + var_dark0 / k_div**2)
    e_min_approx = math.sqrt(var_dark0) / k_div + 0.5
    snr_max = math.sqrt(mu_e_sat) if mu_e_sat > 0 else math.nan
    dr = mu_e_sat / e_min

    x_lin = photons if photons is not None else np.array([p.exposure_ns for p in pts])
    lo_idx = np.flatnonzero(signal[: isat + 1] >= 0.05 * y_sat)
    hi_idx = np.flatnonzero(signal[: isat + 1] <= 0.95 * y_sat)
    lo = int(lo_idx.min()) if lo_idx.size else 0
    hi = int(hi_idx.max()) if hi_idx.size else -1
    if hi - lo + 1 < MIN_LINE_POINTS:
        for name in ("linearity_error_min_pct", "linearity_error_max_pct"):
            flags.add(name, f"the linearity fit has {max(hi - lo + 1, 0)} point(s) between 5 % "
                      f"and 95 % of saturation; at least {MIN_LINE_POINTS} are needed")
    le_min = le_max = math.nan
    if hi - lo >= 1:
        lin = slice(lo, hi + 1)
        b0, a1 = np.polynomial.polynomial.polyfit(x_lin[lin], signal[lin], 1,
                                                  w=1.0 / signal[lin])
        model = a1 * x_lin[lin] + b0
        deviation = 100.0 * (signal[lin] - model) / model
        le_min, le_max = float(deviation.min()), float(deviation.max())

    nu = nu_all = None
    per_plane: dict[str, NonUniformity] | None = None
    per_plane_all: dict[str, NonUniformity] = {}
    spatial: dict[str, tuple[SpatialVariances, ...]] = {}
    frac = None
    defects = None
    if data.spatial_bright is not None and data.spatial_dark is not None:
        bright_st, dark_st = data.spatial_bright, data.spatial_dark
        frac = (float(bright_st.sum_img.mean()) / bright_st.frames
                - float(dark_st.sum_img.mean()) / dark_st.frames) / y_sat
        defects = measure_defects(dark_st, bright_st, cfa=cfa, thresholds=defect_thresholds)
        good = ~defects.class_mask(*EXCLUDED_CLASSES)
        per_plane = {}
        for name, r0, c0, stride in bayer_planes(cfa):
            view = (slice(r0, None, stride), slice(c0, None, stride))
            plane_good = good[view]
            sv = spatial[name] = (spatial_variances(bright_st, plane_good, view),
                                  spatial_variances(dark_st, plane_good, view),
                                  spatial_variances(bright_st, None, view),
                                  spatial_variances(dark_st, None, view))
            per_plane_all[name] = nonuniformity(sv[2], sv[3], k_div)
            per_plane[name] = nonuniformity(sv[0], sv[1], k_div,
                                            excluded=int(plane_good.size - plane_good.sum()))
        nu, nu_all = combine_planes(per_plane), combine_planes(per_plane_all)

    result = Emva1288Result(
        system_gain_dn_per_e=k,
        temporal_dark_noise_e=sigma_d,
        temporal_dark_noise_dn=math.sqrt(var_dark0),
        dark_var_dn2=var_dark0,
        dark_noise_quantisation_limited=limited,
        saturation_capacity_e=mu_e_sat,
        saturation_mean_dn=float(mu[isat]),
        saturation_index=isat,
        saturation_reached=reached,
        full_well_e=full_well,
        snr_max=snr_max,
        snr_max_db=20.0 * math.log10(snr_max) if snr_max > 0 else math.nan,
        sensitivity_threshold_e=e_min,
        sensitivity_threshold_approx_e=e_min_approx,
        sensitivity_threshold_photons=e_min / eta if eta else None,
        dynamic_range=dr,
        dynamic_range_db=20.0 * math.log10(dr) if dr > 0 else math.nan,
        linearity_error_min_pct=le_min,
        linearity_error_max_pct=le_max,
        linearity_fit_range=(lo, hi),
        gain_fit_range=(0, gain_hi),
        responsivity_dn_per_photon=responsivity,
        quantum_efficiency_pct=100.0 * eta if eta is not None else None,
        dark_current_e_per_s=dark_current,
        dark_current_from_variance_e_per_s=dark_current_var,
        nonuniformity=nu,
        nonuniformity_all_pixels=nu_all,
        nonuniformity_per_plane=per_plane if per_plane and len(per_plane) > 1 else None,
        spatial_fraction_of_saturation=frac,
        defects=defects,
        points=pts,
    )
    figures = result.figures()
    for name, sources in _DERIVED:
        flags.derive(name, sources)
    for name in figures:
        if "dsnu" in name and name.endswith("_e"):
            flags.derive(name, ("system_gain_dn_per_e",))
    reasons = flags.reasons(figures)

    # ---- uncertainties (module docstring, "Uncertainties") ----
    pixels = data.height * data.width
    inputs: dict[str, float] = {"k": k, "v0": var_dark0, "q": 1.0}
    u_in: dict[str, float] = {}
    if k > 0 and gain_hi + 1 >= MIN_SLOPE_POINTS:
        x_k = signal[fit]
        model = k * x_k + np.maximum(var_d[fit], 0.0)
        u_y = np.sqrt(_var_of_variance(model, pixels, pairs_b[fit])
                      + _var_of_variance(var_d[fit], pixels, pairs_d[fit]))
        u_in["k"] = _u_slope0(x_k, u_y)
    # u^2 of a pair mean mu_y - mu_y.dark: sigma^2_y / 2P per pair, bright and dark
    u_signal = np.sqrt(np.maximum(var, 0.0) / (2.0 * pixels * pairs_b)
                       + np.maximum(var_d, 0.0) / (2.0 * pixels * pairs_d))
    if responsivity is not None and photons is not None and gain_hi + 1 >= MIN_SLOPE_POINTS:
        inputs["r"] = responsivity
        u_in["r"] = _u_slope0(photons[fit], u_signal[fit])
    if not limited:
        dark_pixels = np.array([st.pixels for _, st in data.dark_points], dtype=np.float64)
        dark_pairs = np.array([st.pairs for _, st in data.dark_points], dtype=np.float64)
        u_v = np.sqrt(2.0 * np.square(np.maximum(dark_var, 0.0))
                      / ((dark_pixels - 1.0) * dark_pairs))
        u_in["v0"] = _u_dark_intercept(dark_t, u_v, distinct > 2)
    n_pts = len(pts)
    x_sat = x_lin[[max(isat - 1, 0), min(isat + 1, n_pts - 1)]]
    spans = min(isat + 1, n_pts - 1) - max(isat - 1, 0)
    if spans > 0 and x_lin[isat] > 0:
        # saturation is the sweep point of maximum variance: resolution one step (GUM F.2.2.1)
        u_in["q"] = float(x_sat[1] - x_sat[0]) / spans / math.sqrt(12.0) / float(x_lin[isat])
    if dark_current is not None and math.isfinite(se_mu):
        inputs["i_mu"], u_in["i_mu"] = slope_mu, se_mu
        inputs["i_var"], u_in["i_var"] = slope_var, se_var
    mu_p_sat = float(photons[isat]) if photons is not None else None
    plateau_dn = full_well * k if full_well is not None else None

    def electrons(v: Mapping[str, float]) -> dict[str, float | None]:
        """The photon-transfer figures as functions of the independent inputs (the formulas of
        the module docstring), for :func:`_propagate`."""
        k_, v0_ = v["k"], v["v0"]
        eta_ = v["r"] / k_ if "r" in v else None
        sat = (eta_ * mu_p_sat if eta_ is not None and mu_p_sat is not None
               else y_sat / k_) * v["q"]
        e_min_ = 0.5 + math.sqrt(0.25 + v0_ / k_**2)
        out: dict[str, float | None] = {
            "system_gain_dn_per_e": k_,
            "temporal_dark_noise_e": math.sqrt(max(v0_ - QUANTISATION_VAR_DN2, 0.0)) / k_,
            "temporal_dark_noise_dn": math.sqrt(v0_), "dark_var_dn2": v0_,
            "saturation_capacity_e": sat, "snr_max": math.sqrt(sat),
            "snr_max_db": 10.0 * math.log10(sat), "sensitivity_threshold_e": e_min_,
            "sensitivity_threshold_approx_e": math.sqrt(v0_) / k_ + 0.5,
            "dynamic_range": sat / e_min_, "dynamic_range_db": 20.0 * math.log10(sat / e_min_),
            "full_well_e": plateau_dn / k_ if plateau_dn is not None else None}
        if eta_ is not None:
            out.update(responsivity_dn_per_photon=v["r"], quantum_efficiency_pct=100.0 * eta_,
                       sensitivity_threshold_photons=e_min_ / eta_)
        if "i_mu" in v:
            out.update(dark_current_e_per_s=v["i_mu"] / k_,
                       dark_current_from_variance_e_per_s=v["i_var"] / k_**2)
        return out

    u_fig: dict[str, float] = {}
    if "k" in u_in and y_sat > 0 and var_dark0 > 0:
        u_fig = _propagate(electrons, inputs, u_in)
        if "v0" not in u_in:  # the dark variance is the floor, not an estimate
            for name in ("temporal_dark_noise_e", "temporal_dark_noise_dn", "dark_var_dn2",
                         "sensitivity_threshold_e", "sensitivity_threshold_approx_e",
                         "sensitivity_threshold_photons", "dynamic_range", "dynamic_range_db"):
                u_fig.pop(name, None)
    if hi - lo + 1 >= MIN_LINE_POINTS and not math.isnan(le_min):
        lin = slice(lo, hi + 1)
        cov_dev = _u_linearity(x_lin[lin], signal[lin], u_signal[lin])
        b0, a1 = np.polynomial.polynomial.polyfit(x_lin[lin], signal[lin], 1,
                                                  w=1.0 / signal[lin])
        dev = 100.0 * (signal[lin] - (a1 * x_lin[lin] + b0)) / (a1 * x_lin[lin] + b0)
        u_fig["linearity_error_min_pct"] = _u_extreme(-dev, cov_dev)
        u_fig["linearity_error_max_pct"] = _u_extreme(dev, cov_dev)
    if spatial and per_plane is not None:
        u_k = u_in.get("k")
        u_good = {p: _u_nonuniformity(sv[0], sv[1], k, u_k) for p, sv in spatial.items()}
        u_all = {p: _u_nonuniformity(sv[2], sv[3], k, u_k) for p, sv in spatial.items()}
        u_fig.update(_u_combined_planes(per_plane, u_good))
        u_fig.update({f"all_pixels_{n}": v for n, v in
                      _u_combined_planes(per_plane_all, u_all).items()})
        if len(spatial) > 1:
            for plane in spatial:
                u_fig.update({f"{plane}_{n}": v for n, v in u_good[plane].items()})
        for alias, name in (("dsnu_all_pixels_e", "all_pixels_dsnu_e"),
                            ("prnu_all_pixels_pct", "all_pixels_prnu_pct")):
            if name in u_fig:
                u_fig[alias] = u_fig[name]
    uncertainties = {
        name: u for name, u in sorted(u_fig.items())
        if math.isfinite(u) and u > 0 and name in figures and name not in reasons
        and figures[name] is not None and math.isfinite(figures[name] or math.nan)}
    return replace(result, flags=reasons, uncertainties=uncertainties)


__all__ = ["C_LIGHT_M_S", "DARK_SLOPE_SIGMAS", "EXCLUDED_CLASSES", "H_PLANCK_J_S",
           "MIN_DARK_VAR_DN2", "MIN_LINE_POINTS",
           "MIN_SLOPE_POINTS", "QUANTISATION_VAR_DN2", "Emva1288Result", "EmvaData", "EmvaPoint",
           "EmvaReducer", "NonUniformity", "SpatialVariances", "combine_planes", "find_saturation",
           "measure_emva1288", "nonuniformity", "photons_per_pixel", "spatial_variances"]
