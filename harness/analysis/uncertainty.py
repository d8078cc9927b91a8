"""Standard uncertainties of image figures from the frames they were averaged from (Type A).

A chart figure (MTF50, MTF at Nyquist/2, ΔE00, white-balance gain) is measured on the mean of
the n frames of a capture. Its standard uncertainty u (coverage factor 1) is evaluated from the
frame-to-frame spread of the same figure, measured on replicates of that mean with the same
flat-field correction, plane preparation, ROIs and chart location:

* ``scheme="jackknife"`` (the default; the suites use it): the replicates are the n delete-one
  means (:func:`delete_one_means`, each the mean of the other n - 1 frames) and
  u^2 = (n - 1) / n * sum_i (theta_(i) - theta_(.))^2, the delete-one jackknife variance
  (Quenouille 1956; Tukey 1958; Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
  eq. 11.5). For a figure linear in the pixels it equals s / sqrt(n) of the per-frame figures;
  for n = 2 the delete-one means are the two frames themselves and the two schemes agree
  exactly. For n > 2 the delete-one means carry nearly the noise of the full mean, so a figure
  that is nonlinear in the noise (an e-SFR) is evaluated where it is used.
* ``scheme="frames"``: the replicates are the single frames and u = s / sqrt(n), the
  experimental standard deviation of the mean (GUM, JCGM 100:2008, 4.2.2 and 4.2.3).

Both evaluate the temporal noise only: what is common to every frame (the flat field the
frames were corrected with, the fixed-pattern noise, the chart's placement) is not in the
spread. With n = 2 frames u has one degree of freedom (GUM 4.2.6, G.3): a single u is a rough
statement, its mean square over many runs is exact (E[s^2] = sigma^2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, overload

import numpy as np
from numpy.typing import NDArray

from harness.analysis.charts import CheckerLocation, sample_patches
from harness.analysis.colour import ColourResult, measure_colour_patches
from harness.analysis.edges import EdgeRoi
from harness.analysis.sfr import SfrResult, measure_sfr_rois, summarise_full_field
from harness.errors import ConfigError

Scheme = Literal["jackknife", "frames"]
SCHEMES: tuple[str, ...] = ("jackknife", "frames")


def _values(values: Any, what: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[0] < 2:
        raise ConfigError(f"{what} needs at least 2 values, got {arr.size}", field=what)
    return arr


def mean_standard_uncertainty(values: Any) -> NDArray[np.float64]:
    """s / sqrt(n) along the first axis: the experimental standard deviation of the mean of n
    observations (GUM, JCGM 100:2008, 4.2.2 and 4.2.3). A float for 1-D ``values``."""
    arr = _values(values, "values")
    return np.asarray(np.std(arr, axis=0, ddof=1) / np.sqrt(arr.shape[0]))


def jackknife_standard_uncertainty(replicates: Any) -> NDArray[np.float64]:
    """Delete-one jackknife standard error along the first axis:
    sqrt((n - 1) / n * sum_i (theta_(i) - theta_(.))^2) (Efron & Tibshirani 1993, eq. 11.5),
    ``replicates[i]`` being the estimate without observation i."""
    arr = _values(replicates, "replicates")
    n = arr.shape[0]
    dev = arr - arr.mean(axis=0)
    return np.asarray(np.sqrt((n - 1) / n * np.sum(dev * dev, axis=0)))


def replicate_uncertainty(replicates: Any, scheme: str = "jackknife") -> NDArray[np.float64]:
    """u from replicate estimates by ``scheme`` (module docstring): delete-one estimates
    (``jackknife``) or per-frame estimates (``frames``)."""
    if scheme == "jackknife":
        return jackknife_standard_uncertainty(replicates)
    if scheme == "frames":
        return mean_standard_uncertainty(replicates)
    raise ConfigError(f"scheme {scheme!r} not allowed; allowed: {', '.join(SCHEMES)}",
                      field="scheme")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme {scheme!r} not allowed; allowed: {', '.join(SCHEMES)}",
                          field="scheme")


def delete_one_means(frames: Sequence[NDArray[Any]], groups: int | None = None
                     ) -> Iterator[NDArray[np.float64]]:
    """The means of all frames but one (float64), one at a time: the replicates of the
    jackknife scheme; for two frames they are the frames themselves. With ``groups`` = g < n,
    the delete-a-group means (g contiguous groups of equal size, the remainder frames in
    none): the grouped jackknife, whose variance formula is the same with n -> g (Efron &
    Tibshirani 1993, 11.5 and problem 11.4); fewer replicates at the price of fewer degrees
    of freedom. ``frames`` may load each frame on demand (:class:`FrameSequence`): each is
    read twice and never kept."""
    n = len(frames)
    g = n if groups is None else groups
    if n < 2 or not 2 <= g <= n:
        raise ConfigError(f"replicates need at least 2 frames and 2 <= groups <= frames, got "
                          f"{n} frames, {g} groups", field="frames")
    size = n // g
    used = size * g
    total = np.zeros(np.shape(frames[0]), np.float64)
    for i in range(used):
        total += frames[i]
    for k in range(g):
        part = np.zeros_like(total)
        for i in range(k * size, (k + 1) * size):
            part += frames[i]
        yield (total - part) / (used - size)


@dataclass(frozen=True)
class FrameSequence(Sequence[NDArray[Any]]):
    """``length`` frames read on demand by ``load(i)`` (a 12 MP stack need not sit in memory
    for :func:`delete_one_means`)."""

    load: Callable[[int], NDArray[Any]]
    length: int

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> NDArray[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[NDArray[Any]]: ...

    def __getitem__(self, index: int | slice) -> NDArray[Any] | Sequence[NDArray[Any]]:
        if isinstance(index, slice):
            return [self.load(i) for i in range(self.length)[index]]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        return self.load(index % self.length)


def replicates_of(frames: Sequence[NDArray[Any]], scheme: str = "jackknife",
                  groups: int | None = None) -> Iterator[NDArray[np.float64]]:
    """The replicate images of ``scheme``: delete-one (or delete-a-group) means, or the
    frames (float64)."""
    _check_scheme(scheme)
    if scheme == "jackknife":
        yield from delete_one_means(frames, groups)
        return
    if len(frames) < 2:
        raise ConfigError(f"replicates need at least 2 frames, got {len(frames)}",
                          field="frames")
    for frame in frames:
        yield np.asarray(frame, dtype=np.float64)


def root_sum_square(*parts: float) -> float:
    """sqrt(sum u_i^2): the combined standard uncertainty of uncorrelated components with
    unit sensitivity coefficients (GUM, JCGM 100:2008, 5.1.2 and 5.1.3)."""
    return float(math.sqrt(sum(float(u) ** 2 for u in parts)))


def _rss_map(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {k: root_sum_square(v, b[k]) for k, v in a.items()}


# --------------------------------------------------------------------------- e-SFR


class PlaneLike(Protocol):
    """What :func:`harness.analysis.sfr.measure_sfr_rois` needs of one channel (the shape of
    ``harness.inputs.image_input.SfrPlane``)."""

    @property
    def plane(self) -> NDArray[Any]: ...
    @property
    def locate(self) -> NDArray[Any] | None: ...
    @property
    def mask(self) -> NDArray[np.bool_] | None: ...
    @property
    def oversampling(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def phase_pitch(self) -> int: ...


@dataclass(frozen=True)
class SfrUncertainty:
    """Standard uncertainties of the e-SFR figures of each edge ROI (by label) and of the
    corner-to-centre MTF50 ratio, with the replicate figures they come from."""

    scheme: str
    frames: int
    mtf50_cy_per_px: Mapping[str, float]
    mtf_at_025: Mapping[str, float]
    corner_to_centre_mtf50_ratio: float
    replicate_mtf50: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def combined(self, other: SfrUncertainty) -> SfrUncertainty:
        """This and an uncorrelated component (e.g. the flat field's, from replicates of the
        flat stack) combined by :func:`root_sum_square`."""
        return replace(self, scheme=f"{self.scheme}+{other.scheme}",
                       mtf50_cy_per_px=_rss_map(self.mtf50_cy_per_px, other.mtf50_cy_per_px),
                       mtf_at_025=_rss_map(self.mtf_at_025, other.mtf_at_025),
                       corner_to_centre_mtf50_ratio=root_sum_square(
                           self.corner_to_centre_mtf50_ratio,
                           other.corner_to_centre_mtf50_ratio))

    def as_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "frames": self.frames,
                "mtf50_cy_per_px": dict(self.mtf50_cy_per_px),
                "mtf_at_025": dict(self.mtf_at_025),
                "corner_to_centre_mtf50_ratio": self.corner_to_centre_mtf50_ratio,
                "replicate_mtf50": {k: list(v) for k, v in self.replicate_mtf50.items()}}


def measure_sfr_uncertainty(planes: Iterable[PlaneLike], rois: Sequence[EdgeRoi], *,
                            scheme: str = "jackknife", method: str = "robust",
                            full_field: bool = True, label: str = "") -> SfrUncertainty:
    """u of MTF50 and MTF at Nyquist/2 per ROI from replicate planes (:func:`replicates_of`
    the frames, each prepared exactly as the mean was), measured on the mean's ``rois``.

    The corner-to-centre ratio (worst corner MTF50 over worst centre MTF50,
    :func:`~harness.analysis.sfr.summarise_full_field`) is formed on each replicate and its u
    taken from those ratios: the min() selection and the noise shared by the two edges'
    replicates are carried as they are, which the first-order propagation of GUM 5.1.2 with
    uncorrelated inputs would not do. ``full_field=False`` (fewer ROIs than the full field)
    gives a NaN ratio uncertainty."""
    _check_scheme(scheme)
    runs: list[list[SfrResult]] = []
    for p in planes:
        runs.append(measure_sfr_rois(p.plane, list(rois), mask=p.mask, locate=p.locate,
                                     channel=p.channel, method=method,
                                     oversampling=p.oversampling, phase_pitch=p.phase_pitch))
    if len(runs) < 2:
        raise ConfigError(f"replicates need at least 2 frames, got {len(runs)}", field="frames")
    labels = [r.label for r in runs[0]]
    m50 = np.array([[r.mtf50_cy_per_px for r in run] for run in runs])
    nq2 = np.array([[r.mtf_at_025 for r in run] for run in runs])
    u50 = replicate_uncertainty(m50, scheme)
    unq = replicate_uncertainty(nq2, scheme)
    ratio = float("nan")
    if full_field:
        ratios = [summarise_full_field(run).corner_to_centre_mtf50_ratio for run in runs]
        ratio = float(replicate_uncertainty(ratios, scheme))
    return SfrUncertainty(
        scheme=label or scheme, frames=len(runs),
        mtf50_cy_per_px={label: float(u) for label, u in zip(labels, u50, strict=True)},
        mtf_at_025={label: float(u) for label, u in zip(labels, unq, strict=True)},
        corner_to_centre_mtf50_ratio=ratio,
        replicate_mtf50={label: tuple(float(v) for v in m50[:, k])
                         for k, label in enumerate(labels)})


# --------------------------------------------------------------------------- colour

#: The ColourResult figures a colour uncertainty covers: (ccm method, attribute of the mean,
#: attribute of the max).
_COLOUR_FIGURES = (("leave-one-out", "delta_e_2000_mean_loo", "delta_e_2000_max_loo"),
                   ("in-sample", "delta_e_2000_mean_in_sample", "delta_e_2000_max_in_sample"),
                   ("production", "delta_e_2000_mean_production",
                    "delta_e_2000_max_production"))


@dataclass(frozen=True)
class ColourUncertainty:
    """Standard uncertainties of the ΔE00 mean and max per CCM method (``leave-one-out``,
    ``in-sample``, ``production`` when a production CCM was judged), of the white-balance
    error (ΔC*ab) and of the R/G and B/G white-balance gains."""

    scheme: str
    frames: int
    delta_e_2000_mean: Mapping[str, float]
    delta_e_2000_max: Mapping[str, float]
    white_balance_error: float
    white_balance_gain: Mapping[str, float]

    def combined(self, other: ColourUncertainty) -> ColourUncertainty:
        """This and an uncorrelated component combined by :func:`root_sum_square`."""
        return replace(self, scheme=f"{self.scheme}+{other.scheme}",
                       delta_e_2000_mean=_rss_map(self.delta_e_2000_mean,
                                                  other.delta_e_2000_mean),
                       delta_e_2000_max=_rss_map(self.delta_e_2000_max, other.delta_e_2000_max),
                       white_balance_error=root_sum_square(self.white_balance_error,
                                                           other.white_balance_error),
                       white_balance_gain=_rss_map(self.white_balance_gain,
                                                   other.white_balance_gain))

    def as_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "frames": self.frames,
                "delta_e_2000_mean": dict(self.delta_e_2000_mean),
                "delta_e_2000_max": dict(self.delta_e_2000_max),
                "white_balance_error": self.white_balance_error,
                "white_balance_gain": dict(self.white_balance_gain)}


def colour_figures(result: ColourResult) -> dict[str, float]:
    """The judged colour figures of one result by name (``mean:<method>``, ``max:<method>``,
    ``wb_error``, ``wb_gain:R``, ``wb_gain:B``): what :func:`measure_colour_uncertainty`
    compares across replicates."""
    out: dict[str, float] = {}
    for method, mean, worst in _COLOUR_FIGURES:
        m, w = getattr(result, mean), getattr(result, worst)
        if m is not None and w is not None:
            out[f"mean:{method}"], out[f"max:{method}"] = float(m), float(w)
    out["wb_error"] = result.white_balance_error_dc_ab
    gains = result.wb_gains
    out["wb_gain:R"], out["wb_gain:B"] = gains[0] / gains[1], gains[2] / gains[1]
    return out


def measure_colour_uncertainty(images: Iterable[NDArray[Any]], location: CheckerLocation, *,
                               illuminant: str = "D65",
                               black_level: float | Sequence[float] = 0.0,
                               saturation: float | None = 1.0, ccm: Any = None,
                               wb_gains: Any = None, scheme: str = "jackknife",
                               label: str = "") -> ColourUncertainty:
    """u of the colour figures from replicate linear-RGB images (:func:`replicates_of` the
    frames, each prepared as the mean was), sampled at the mean's chart ``location`` and
    measured by :func:`~harness.analysis.colour.measure_colour_patches` with the same
    options. The ΔE00 max is taken per replicate (the worst patch may change between them)."""
    _check_scheme(scheme)
    rows: list[dict[str, float]] = []
    for rgb in images:
        res = measure_colour_patches(sample_patches(rgb, location), illuminant=illuminant,
                                     black_level=black_level, saturation=saturation,
                                     location=location, ccm=ccm, wb_gains=wb_gains)
        rows.append(colour_figures(res))
    if len(rows) < 2:
        raise ConfigError(f"replicates need at least 2 frames, got {len(rows)}", field="frames")
    names = list(rows[0])
    u = replicate_uncertainty(np.array([[row[k] for k in names] for row in rows]), scheme)
    by = {k: float(v) for k, v in zip(names, u, strict=True)}
    methods = [m for m, _, _ in _COLOUR_FIGURES if f"mean:{m}" in by]
    return ColourUncertainty(
        scheme=label or scheme, frames=len(rows),
        delta_e_2000_mean={m: by[f"mean:{m}"] for m in methods},
        delta_e_2000_max={m: by[f"max:{m}"] for m in methods},
        white_balance_error=by["wb_error"],
        white_balance_gain={"R": by["wb_gain:R"], "B": by["wb_gain:B"]})


__all__ = ["SCHEMES", "ColourUncertainty", "FrameSequence", "PlaneLike", "Scheme",
           "SfrUncertainty", "colour_figures", "delete_one_means",
           "jackknife_standard_uncertainty", "mean_standard_uncertainty",
           "measure_colour_uncertainty", "measure_sfr_uncertainty", "replicate_uncertainty",
           "replicates_of", "root_sum_square"]
