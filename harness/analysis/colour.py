"""Colour accuracy on a ColorChecker 24 (white balance, 3x3 CCM, CIEDE2000 per patch) and the
chromaticity of the light that lit it.

Every colour formula is colour-science's (0.4.x):

* reference: ``colour.CCS_COLOURCHECKERS['ColorChecker24 - After November 2014']`` (CIE xyY,
  D50), ``colour.xyY_to_XYZ``, adapted to the capture illuminant with
  ``colour.chromatic_adaptation`` (Bradford), ``colour.XYZ_to_Lab`` with that illuminant's white;
* camera RGB <-> XYZ: the linear sRGB primaries, ``colour.RGB_to_XYZ`` / ``colour.XYZ_to_RGB``
  with ``illuminant`` = the capture illuminant and the Bradford transform (so a corrected
  neutral is neutral under the capture illuminant); the CCM target is the reference XYZ taken to
  RGB that way (= plain linear sRGB for D65, IEC 61966-2-1's XYZ -> RGB matrix). RGB -> XYZ uses
  that matrix's exact inverse, not the standard's separately rounded RGB -> XYZ matrix (3.5e-5
  apart), so a perfect correction reads ΔE00 0, not ~0.002;
* CCM: ``colour.characterisation.matrix_colour_correction(method='Cheung 2004', terms=3)``
  (least squares, Cheung et al. 2004), applied with ``apply_matrix_colour_correction``: a CCM
  is 3x3, rows = output R, G, B, ``corrected = CCM @ (gains * camera RGB)``;
* colour difference: ``colour.delta_E(method='CIE 2000')`` (Sharma, Wu & Dalal 2005).

Procedure: patch RGB minus black level; *as delivered*: one exposure scale (least squares on the
neutral patches' green, i.e. no per-channel balance) gives the "before" Lab and ΔE00 and the
white-balance error = mean chromatic distance sqrt(Δa*^2 + Δb*^2) of the neutral patches 8, 6.5,
5 and 3.5 from their reference (white 9.5 and black 2 are left out: clipping and flare);
*corrected*: per-channel gains from the same neutral patches (least squares against the
reference), then the 3x3 CCM fitted on all unclipped patches. Three "after" figures (means and
maxima over the unclipped patches):

* **in-sample** (``*_in_sample``): every patch judged by the gains and CCM fitted on it. The
  best any 3x3 does on this chart, not the accuracy on colours the fit has not seen; it is
  what the limit spec's ``delta_e_2000_mean``/``_max`` still name (legacy aliases).
* **leave-one-out** (``*_loo``): patch i judged by gains and a CCM fitted without patch i
  (cross-validation, Stone 1974). A neutral patch that sets the gains is also left out of the
  gains it is judged by, so no figure sees its own patch. Note that an
  unconstrained least-squares 3x3 absorbs any diagonal pre-gain exactly, so this choice changes
  nothing in the ΔE today; it keeps the procedure honest if the CCM is ever constrained (e.g.
  white-preserving rows). Clipped patches are not in any fit, so their LOO equals in-sample.
* **production** (``*_production``, only with ``ccm=``): a fixed matrix, no fit; the gains are
  the given ``wb_gains`` or, without them, the fitted ones (an AWB on the neutral patches). The
  exposure is not part of a colour pipeline, so the output is scaled by one factor (least
  squares over the neutral patches' RGB) before ΔE00.

Illuminant check (:func:`compare_illuminant`): a measured CIE 1931 xy against a named reference,
as the CIE 1976 UCS distance Δu'v' (``colour.xy_to_Luv_uv``, CIE 15:2018), the correlated
colour temperature (``colour.xy_to_CCT``, McCamy 1992) and Duv (``colour.uv_to_CCT``, Ohno 2013,
as ANSI C78.377 bins LED sources).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import colour
import numpy as np
from colour.characterisation import apply_matrix_colour_correction, matrix_colour_correction
from numpy.typing import NDArray

from harness.analysis.charts import (
    CheckerLocation,
    PatchSamples,
    checker_from_corners,
    find_colour_checker,
    sample_patches,
)
from harness.errors import ConfigError, MeasurementError

FloatArray = NDArray[np.float64]
CHART = "ColorChecker24 - After November 2014"
OBSERVER = "CIE 1931 2 Degree Standard Observer"
#: Neutral patches used for exposure and white balance: neutral 8, 6.5, 5, 3.5.
NEUTRALS = (19, 20, 21, 22)
CLIP_FRACTION = 0.98


@lru_cache(maxsize=1)
def _srgb() -> Any:
    """colour-science's sRGB with RGB -> XYZ = the exact inverse of its XYZ -> RGB matrix."""
    space = colour.RGB_COLOURSPACES["sRGB"].copy()
    space.matrix_RGB_to_XYZ = np.linalg.inv(space.matrix_XYZ_to_RGB)
    return space


def illuminant_xy(name: str) -> FloatArray:
    """CIE 1931 2-degree chromaticity of a named illuminant (one-line error if unknown)."""
    table = colour.CCS_ILLUMINANTS[OBSERVER]
    if name not in table:
        some = ", ".join(k for k in ("D50", "D55", "D65", "D75", "A", "FL2", "FL11") if k in table)
        raise ConfigError(f"unknown illuminant {name!r}; use a CIE name such as {some}",
                          field="illuminant")
    return np.asarray(table[name], dtype=np.float64)


@dataclass(frozen=True)
class ChartReference:
    """The ColorChecker under one illuminant: names, XYZ (Y of a perfect white = 1), Lab, RGB."""

    illuminant: str
    names: tuple[str, ...]
    xyz: FloatArray
    lab: FloatArray
    rgb: FloatArray  # CCM target: linear RGB, sRGB primaries, adapted (see module docstring)


def chart_reference(illuminant: str = "D65") -> ChartReference:
    """Reference chart data adapted from its D50 white to ``illuminant`` (Bradford)."""
    wp = illuminant_xy(illuminant)
    cc = colour.CCS_COLOURCHECKERS[CHART]
    xyz_d50 = colour.xyY_to_XYZ(np.array(list(cc.data.values())))
    xyz = colour.chromatic_adaptation(xyz_d50, colour.xy_to_XYZ(cc.illuminant),
                                      colour.xy_to_XYZ(wp), method="Von Kries",
                                      transform="Bradford")
    lab = colour.XYZ_to_Lab(xyz, wp)
    rgb = colour.XYZ_to_RGB(xyz, _srgb(), illuminant=wp, chromatic_adaptation_transform="Bradford")
    return ChartReference(illuminant, tuple(cc.data.keys()), np.asarray(xyz),
                          np.asarray(lab), np.asarray(rgb))


def rgb_to_lab(rgb: FloatArray, illuminant: str) -> FloatArray:
    """Linear RGB (sRGB primaries, scaled so a perfect white has Y = 1) to CIELAB."""
    wp = illuminant_xy(illuminant)
    xyz = colour.RGB_to_XYZ(rgb, _srgb(), illuminant=wp,
                            chromatic_adaptation_transform="Bradford")
    return np.asarray(colour.XYZ_to_Lab(xyz, wp), dtype=np.float64)


def fit_residual(means: FloatArray, ref: ChartReference) -> float:
    """Relative residual of the best 3x3 linear map from ``means`` to the reference RGB
    (ranks chart placement hypotheses in :func:`harness.analysis.charts.find_colour_checker`)."""
    m, *_ = np.linalg.lstsq(means, ref.rgb, rcond=None)
    return float(np.linalg.norm(means @ m - ref.rgb) / np.linalg.norm(ref.rgb))


def check_ccm(value: Any, *, field: str = "ccm", source: str | None = None) -> FloatArray:
    """``value`` as a 3x3 CCM (rows = output R, G, B), or a one-line :class:`ConfigError`."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"must be a 3x3 matrix of numbers, got {value!r:.80}", field=field,
                          source=source) from None
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ConfigError(f"must be a 3x3 matrix of finite numbers, got shape {m.shape}",
                          field=field, source=source)
    return m


def check_wb_gains(value: Any, *, field: str = "wb_gains",
                   source: str | None = None) -> FloatArray:
    """``value`` as 3 positive finite gains (R, G, B), or a one-line :class:`ConfigError`."""
    try:
        g = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"must be 3 numbers (R, G, B gains), got {value!r:.80}", field=field,
                          source=source) from None
    if g.shape != (3,) or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ConfigError(f"must be 3 positive finite numbers (R, G, B gains), got "
                          f"{np.array2string(g, separator=', ')}", field=field, source=source)
    return g


def _production_inputs(ccm: Any, wb_gains: Any) -> tuple[FloatArray | None, FloatArray | None]:
    """The checked production matrix and gains (gains alone are refused)."""
    if ccm is None:
        if wb_gains is not None:
            raise ConfigError("fixed gains need a fixed matrix (ccm) as well", field="wb_gains")
        return None, None
    return check_ccm(ccm), None if wb_gains is None else check_wb_gains(wb_gains)


def _gains(cam: FloatArray, target: FloatArray, rows: NDArray[np.intp]) -> FloatArray:
    """Per-channel gains g_c minimising sum over ``rows`` of (g_c cam_c - target_c)^2."""
    c, t = cam[rows], target[rows]
    return np.asarray(np.einsum("ij,ij->j", c, t) / np.einsum("ij,ij->j", c, c))


def _fit_ccm(rgb: FloatArray, target: FloatArray) -> FloatArray:
    return np.asarray(matrix_colour_correction(rgb, target, method="Cheung 2004", terms=3))


def _apply_ccm(rgb: FloatArray, ccm: FloatArray) -> FloatArray:
    return np.asarray(apply_matrix_colour_correction(rgb, ccm, method="Cheung 2004", terms=3),
                      dtype=np.float64)


def _leave_one_out(cam: FloatArray, target: FloatArray, neutral: NDArray[np.intp],
                   fit: NDArray[np.bool_]) -> FloatArray:
    """Corrected RGB of each patch by gains and a CCM fitted without it (module docstring)."""
    out = np.empty_like(cam)
    for i in range(cam.shape[0]):
        balanced = cam * _gains(cam, target, neutral[neutral != i])
        keep = fit.copy()
        keep[i] = False
        out[i] = _apply_ccm(balanced[i], _fit_ccm(balanced[keep], target[keep]))
    return out


def _exposure_scale(rgb: FloatArray, target: FloatArray, rows: NDArray[np.intp],
                    figure: str) -> float:
    """The one factor k minimising sum over ``rows`` of |k rgb - target|^2 (all channels)."""
    k = float(np.sum(rgb[rows] * target[rows]) / np.sum(rgb[rows] ** 2))
    if not np.isfinite(k) or k <= 0:
        raise MeasurementError("the neutral patches come out at or below zero through this "
                               "CCM and gains", figure=figure)
    return k


def _triple(v: FloatArray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


@dataclass(frozen=True)
class PatchResult:
    """One patch: camera RGB (black-subtracted), reference Lab, and per figure (in-sample,
    leave-one-out, production, as delivered) its corrected Lab and ΔE00."""

    name: str
    rgb: tuple[float, float, float]
    lab_reference: tuple[float, float, float]
    lab_in_sample: tuple[float, float, float]
    delta_e_2000_in_sample: float
    lab_loo: tuple[float, float, float]
    delta_e_2000_loo: float
    delta_e_2000_before: float
    noise_rgb: tuple[float, float, float]
    clipped: bool
    lab_production: tuple[float, float, float] | None = None
    delta_e_2000_production: float | None = None

    @property
    def lab(self) -> tuple[float, float, float]:
        """Legacy name of :attr:`lab_in_sample`."""
        return self.lab_in_sample

    @property
    def delta_e_2000(self) -> float:
        """Legacy name of :attr:`delta_e_2000_in_sample`."""
        return self.delta_e_2000_in_sample

    def as_dict(self) -> dict[str, Any]:
        """JSON record; ``lab`` and ``delta_e_2000`` are the legacy (in-sample) keys."""
        return {
            "name": self.name, "rgb": list(self.rgb), "lab_reference": list(self.lab_reference),
            "lab_in_sample": list(self.lab_in_sample),
            "delta_e_2000_in_sample": self.delta_e_2000_in_sample,
            "lab_loo": list(self.lab_loo), "delta_e_2000_loo": self.delta_e_2000_loo,
            "lab_production": None if self.lab_production is None else list(self.lab_production),
            "delta_e_2000_production": self.delta_e_2000_production,
            "delta_e_2000_before": self.delta_e_2000_before, "noise_rgb": list(self.noise_rgb),
            "clipped": self.clipped,
            "lab": list(self.lab_in_sample), "delta_e_2000": self.delta_e_2000_in_sample,
        }


@dataclass(frozen=True)
class ColourResult:
    """Colour accuracy of one ColorChecker capture: ΔE00 after white balance + CCM in-sample,
    leave-one-out and (with a given CCM) production, and as delivered."""

    illuminant: str
    patches: tuple[PatchResult, ...]
    delta_e_2000_mean_in_sample: float
    delta_e_2000_max_in_sample: float
    delta_e_2000_mean_loo: float
    delta_e_2000_max_loo: float
    delta_e_2000_mean_before: float
    delta_e_2000_max_before: float
    white_balance_error_dc_ab: float
    wb_gains: tuple[float, float, float]
    ccm: tuple[tuple[float, float, float], ...]
    black_level: tuple[float, float, float]
    chart_centres_px: tuple[tuple[float, float], ...]
    chart_method: str
    delta_e_2000_mean_production: float | None = None
    delta_e_2000_max_production: float | None = None
    ccm_production: tuple[tuple[float, float, float], ...] | None = None
    wb_gains_production: tuple[float, float, float] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def delta_e_2000_mean(self) -> float:
        """Legacy name of :attr:`delta_e_2000_mean_in_sample` (limit spec id)."""
        return self.delta_e_2000_mean_in_sample

    @property
    def delta_e_2000_max(self) -> float:
        """Legacy name of :attr:`delta_e_2000_max_in_sample` (limit spec id)."""
        return self.delta_e_2000_max_in_sample

    @property
    def camera_matrix(self) -> FloatArray:
        """Estimated camera response to reference RGB: inverse of CCM x diag(gains)."""
        return np.asarray(np.linalg.inv(np.array(self.ccm) @ np.diag(self.wb_gains)))

    def as_dict(self) -> dict[str, Any]:
        """The ``harness analyze colour --json`` record; ``delta_e_2000_mean``/``_max`` are the
        legacy (in-sample) keys."""
        return {
            "illuminant": self.illuminant,
            "patches": [p.as_dict() for p in self.patches],
            "delta_e_2000_mean_in_sample": self.delta_e_2000_mean_in_sample,
            "delta_e_2000_max_in_sample": self.delta_e_2000_max_in_sample,
            "delta_e_2000_mean_loo": self.delta_e_2000_mean_loo,
            "delta_e_2000_max_loo": self.delta_e_2000_max_loo,
            "delta_e_2000_mean_production": self.delta_e_2000_mean_production,
            "delta_e_2000_max_production": self.delta_e_2000_max_production,
            "delta_e_2000_mean_before": self.delta_e_2000_mean_before,
            "delta_e_2000_max_before": self.delta_e_2000_max_before,
            "delta_e_2000_mean": self.delta_e_2000_mean_in_sample,
            "delta_e_2000_max": self.delta_e_2000_max_in_sample,
            "white_balance_error": self.white_balance_error_dc_ab,
            "wb_gains": list(self.wb_gains),
            "ccm": [list(r) for r in self.ccm],
            "ccm_production": (None if self.ccm_production is None
                               else [list(r) for r in self.ccm_production]),
            "wb_gains_production": (None if self.wb_gains_production is None
                                    else list(self.wb_gains_production)),
            "black_level": list(self.black_level),
            "chart_centres_px": [list(c) for c in self.chart_centres_px],
            "chart_method": self.chart_method,
            "warnings": list(self.warnings),
        }


def locate_chart(rgb: NDArray[Any], *, corners: Sequence[float] | None = None,
                 illuminant: str = "D65") -> CheckerLocation:
    """Find the chart (or place it from ``corners``, see :mod:`harness.analysis.charts`)."""
    if corners is not None:
        return checker_from_corners(corners, np.asarray(rgb).shape)
    ref = chart_reference(illuminant)
    return find_colour_checker(rgb, lambda means: fit_residual(means, ref))


def measure_colour_patches(samples: PatchSamples, *, illuminant: str = "D65",
                           black_level: float | Sequence[float] = 0.0,
                           saturation: float | None = 1.0,
                           location: CheckerLocation | None = None,
                           ccm: Any = None, wb_gains: Any = None) -> ColourResult:
    """White balance, CCM and ΔE00 from sampled patches (see the module docstring).

    ``ccm`` (3x3, rows = output R, G, B) and ``wb_gains`` (R, G, B) describe a fixed production
    pipeline to judge as well; ``wb_gains`` without ``ccm`` is refused.
    """
    prod_ccm, prod_gains = _production_inputs(ccm, wb_gains)
    ref = chart_reference(illuminant)
    if samples.mean.shape != (24, 3):
        raise ConfigError(f"need 24 RGB patch means, got shape {samples.mean.shape}",
                          field="patches")
    black = np.broadcast_to(np.asarray(black_level, dtype=np.float64), (3,)).copy()
    cam = samples.mean - black
    warnings: list[str] = []
    clipped = (np.any(samples.max_value >= CLIP_FRACTION * saturation, axis=1)
               if saturation is not None else np.zeros(24, dtype=bool))
    if clipped.any():
        warnings.append(f"clipped patches left out of the CCM fit: "
                        f"{', '.join(ref.names[i] for i in np.nonzero(clipped)[0])}")
    neutral = np.array([i for i in NEUTRALS if not clipped[i]], dtype=np.intp)
    if neutral.size < 2:
        raise ConfigError("fewer than 2 unclipped neutral patches: lower the exposure",
                          field="image")
    if np.any(cam[neutral] <= 0):
        raise ConfigError("neutral patches at or below the black level",
                          field="black_level")
    # As delivered: one exposure scale on green (least squares over the neutrals).
    g = cam[neutral, 1]
    exposure = float(g @ ref.rgb[neutral, 1] / (g @ g))
    lab_before = rgb_to_lab(cam * exposure, illuminant)
    de_before = np.asarray(colour.delta_E(lab_before, ref.lab, method="CIE 2000"))
    dab = lab_before[neutral, 1:] - ref.lab[neutral, 1:]
    wb_error = float(np.mean(np.hypot(dab[:, 0], dab[:, 1])))
    # Corrected: per-channel gains, then the 3x3 CCM on the unclipped patches.
    gains = _gains(cam, ref.rgb, neutral)
    balanced = cam * gains
    fit = ~clipped
    if fit.sum() < 6:
        raise ConfigError(f"only {int(fit.sum())} unclipped patches: lower the exposure",
                          field="image")
    fitted_ccm = _fit_ccm(balanced[fit], ref.rgb[fit])
    # in-sample, leave-one-out and (optionally) production, as rows of one Lab/ΔE00 call
    corrected = [_apply_ccm(balanced, fitted_ccm), _leave_one_out(cam, ref.rgb, neutral, fit)]
    if prod_ccm is not None:
        used_gains = gains if prod_gains is None else prod_gains
        out = _apply_ccm(cam * used_gains, prod_ccm)
        corrected.append(out * _exposure_scale(out, ref.rgb, neutral,
                                               "delta_e_2000_mean_production"))
    lab = rgb_to_lab(np.concatenate(corrected), illuminant).reshape(len(corrected), 24, 3)
    de = np.asarray(colour.delta_E(lab, ref.lab[None], method="CIE 2000"))
    lab_prod = lab[2] if prod_ccm is not None else None
    patches = tuple(
        PatchResult(
            name=ref.names[i],
            rgb=_triple(cam[i]),
            lab_reference=_triple(ref.lab[i]),
            lab_in_sample=_triple(lab[0, i]),
            delta_e_2000_in_sample=float(de[0, i]),
            lab_loo=_triple(lab[1, i]),
            delta_e_2000_loo=float(de[1, i]),
            delta_e_2000_before=float(de_before[i]),
            noise_rgb=_triple(samples.noise[i]),
            clipped=bool(clipped[i]),
            lab_production=_triple(lab_prod[i]) if lab_prod is not None else None,
            delta_e_2000_production=float(de[2, i]) if lab_prod is not None else None,
        )
        for i in range(24)
    )
    judged = de[:, fit]
    centres = location.centres_px if location is not None else np.full((24, 2), np.nan)
    return ColourResult(
        illuminant=illuminant,
        patches=patches,
        delta_e_2000_mean_in_sample=float(judged[0].mean()),
        delta_e_2000_max_in_sample=float(judged[0].max()),
        delta_e_2000_mean_loo=float(judged[1].mean()),
        delta_e_2000_max_loo=float(judged[1].max()),
        delta_e_2000_mean_before=float(de_before.mean()),
        delta_e_2000_max_before=float(de_before.max()),
        white_balance_error_dc_ab=wb_error,
        wb_gains=_triple(gains),
        ccm=tuple(_triple(r) for r in fitted_ccm),
        black_level=_triple(black),
        chart_centres_px=tuple((float(c[0]), float(c[1])) for c in centres),
        chart_method=location.method if location is not None else "samples",
        delta_e_2000_mean_production=float(judged[2].mean()) if prod_ccm is not None else None,
        delta_e_2000_max_production=float(judged[2].max()) if prod_ccm is not None else None,
        ccm_production=(tuple(_triple(r) for r in prod_ccm) if prod_ccm is not None else None),
        wb_gains_production=(_triple(gains if prod_gains is None else prod_gains)
                             if prod_ccm is not None else None),
        warnings=tuple(warnings),
    )


def measure_colour(rgb: NDArray[Any], *, illuminant: str = "D65",
                   corners: Sequence[float] | None = None,
                   black_level: float | Sequence[float] = 0.0,
                   saturation: float | None = 1.0,
                   ccm: Any = None, wb_gains: Any = None) -> ColourResult:
    """Find (or place) the ColorChecker in linear RGB and measure its colour accuracy; with
    ``ccm`` (and optionally ``wb_gains``) also that fixed production pipeline's."""
    illuminant_xy(illuminant)
    _production_inputs(ccm, wb_gains)  # before the slow part
    loc = locate_chart(rgb, corners=corners, illuminant=illuminant)
    samples = sample_patches(rgb, loc)
    return measure_colour_patches(samples, illuminant=illuminant, black_level=black_level,
                                  saturation=saturation, location=loc, ccm=ccm,
                                  wb_gains=wb_gains)


# --------------------------------------------------------------------------- illuminant check

#: CIE standard and CIE 15:2018 tabulated illuminants among colour-science's chromaticities.
_CIE_NAME = re.compile(r"A|B|C|D50|D55|D65|D75|E|FL\d+(\.\d+)?|HP\d|ID50|ID65|LED-[A-Z0-9]+")
#: Names used elsewhere in the harness (the simulator's meter and bench) for colour's FL names.
_ALIASES = {"TL84": "FL11"}
_KELVIN = re.compile(r"(\d+(?:\.\d+)?)K")
#: CIE 15: a CCT is not to be quoted beyond this distance (CIE 1960 uv) from the Planckian locus.
MAX_DUV = 0.05


def cie_illuminant_names() -> tuple[str, ...]:
    """The illuminant names :func:`compare_illuminant` accepts besides ``<N>K``."""
    return tuple(k for k in colour.CCS_ILLUMINANTS[OBSERVER] if _CIE_NAME.fullmatch(k))


@lru_cache(maxsize=64)
def planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 xy of a Planckian radiator: Planck's law (CIE 15:2018, c2 = 1.4388e-2 m K,
    ``colour.sd_blackbody``) summed with the CIE 1931 2° CMFs over 360-830 nm in 1 nm steps
    (``colour.sd_to_XYZ``, method "Integration", CIE 15:2018's sum)."""
    cmfs = colour.MSDS_CMFS[OBSERVER]
    sd = colour.sd_blackbody(kelvin, cmfs.shape)
    xyz = colour.sd_to_XYZ(sd, cmfs, colour.sd_ones(cmfs.shape), method="Integration")
    x, y = colour.XYZ_to_xy(xyz)
    return float(x), float(y)


def _reference(name: str) -> tuple[str, FloatArray, float | None]:
    """(canonical name, xy, CCT if defined by the name) of a reference illuminant."""
    key = name.strip().upper()
    if (m := _KELVIN.fullmatch(key)) is not None:
        kelvin = float(m.group(1))
        if not 1000.0 <= kelvin <= 25000.0:
            raise ConfigError(f"{name!r}: colour temperature outside 1000..25000 K",
                              field="illuminant")
        return f"{kelvin:g}K", np.array(planckian_xy(kelvin)), kelvin
    key = _ALIASES.get(key, re.sub(r"^F(?=\d)", "FL", key))
    names = cie_illuminant_names()
    if key not in names:
        raise ConfigError(f"unknown illuminant {name!r}; allowed: <N>K (Planckian, "
                          f"1000..25000), {', '.join(names)}, TL84, F<n> (= FL<n>)",
                          field="illuminant")
    return key, np.asarray(colour.CCS_ILLUMINANTS[OBSERVER][key], dtype=np.float64), None


def _uv_prime(xy: FloatArray) -> FloatArray:
    return np.asarray(colour.xy_to_Luv_uv(xy), dtype=np.float64)


def _cct_duv(xy: FloatArray) -> tuple[float, float]:
    """(CCT in K by McCamy 1992, Duv by Ohno 2013) of a chromaticity."""
    cct = float(colour.xy_to_CCT(xy, method="McCamy 1992"))
    duv = float(colour.uv_to_CCT(colour.xy_to_UCS_uv(xy), method="Ohno 2013")[1])
    return cct, duv


@dataclass(frozen=True)
class IlluminantComparison:
    """A measured light's chromaticity against the illuminant a spec assumes.

    ``delta_u_prime_v_prime``: Euclidean distance in the CIE 1976 UCS u'v' diagram (CIE 15:2018,
    u' = 4x / (-2x + 12y + 3), v' = 9y / (-2x + 12y + 3)). CCTs by McCamy's cubic (McCamy 1992,
    Color Res. Appl. 17(2) 142-144; a few K from the Planckian locus' own between 2700 and
    6500 K); for ``<N>K`` the reference CCT is N by definition. ``measured_duv``: signed
    distance from the Planckian locus in CIE 1960 uv (Ohno 2013, LEUKOS 10(1) 47-55); beyond
    ``MAX_DUV`` the measured CCT is NaN (CIE 15 quotes none there).
    """

    illuminant: str
    measured_xy: tuple[float, float]
    reference_xy: tuple[float, float]
    delta_u_prime_v_prime: float
    measured_cct_k: float
    reference_cct_k: float
    measured_duv: float
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"illuminant": self.illuminant, "measured_xy": list(self.measured_xy),
                "reference_xy": list(self.reference_xy),
                "delta_u_prime_v_prime": self.delta_u_prime_v_prime,
                "measured_cct_k": self.measured_cct_k, "reference_cct_k": self.reference_cct_k,
                "measured_duv": self.measured_duv, "warnings": list(self.warnings)}


def compare_illuminant(measured_xy: Sequence[float], illuminant: str) -> IlluminantComparison:
    """Compare a measured CIE 1931 (x, y) (a colorimeter's reading of the light) with the named
    reference ``illuminant``: a CIE illuminant as colour-science names it (D65, D50, A, FL2,
    ...; ``F<n>`` and ``TL84`` as the simulator's meter names them) or ``<N>K``, a Planckian
    radiator (the simulated light's ``<CCT>K`` spectrum). See :class:`IlluminantComparison`."""
    name, ref_xy, ref_cct = _reference(illuminant)
    try:
        xy = np.asarray(measured_xy, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"expected (x, y), got {measured_xy!r:.80}", field="xy") from None
    if xy.shape != (2,):
        raise ConfigError(f"expected (x, y), got shape {xy.shape}", field="xy")
    if not (np.all(np.isfinite(xy)) and xy[0] > 0 and xy[1] > 0 and xy.sum() < 1):
        raise MeasurementError(f"chromaticity ({xy[0]:g}, {xy[1]:g}) is not a colour "
                               f"(need x > 0, y > 0, x + y < 1)", figure="chromaticity")
    duv_ref = float(np.linalg.norm(_uv_prime(xy) - _uv_prime(ref_xy)))
    cct, duv = _cct_duv(xy)
    warnings: list[str] = []
    if abs(duv) > MAX_DUV:
        warnings.append(f"measured chromaticity is {duv:+.3f} Duv from the Planckian locus "
                        f"(beyond {MAX_DUV}): no CCT")
        cct = float("nan")
    if ref_cct is None:
        ref_cct = _cct_duv(ref_xy)[0]
    return IlluminantComparison(
        illuminant=name,
        measured_xy=(float(xy[0]), float(xy[1])),
        reference_xy=(float(ref_xy[0]), float(ref_xy[1])),
        delta_u_prime_v_prime=duv_ref,
        measured_cct_k=cct,
        reference_cct_k=float(ref_cct),
        measured_duv=duv,
        warnings=tuple(warnings),
    )


__all__ = ["CHART", "CLIP_FRACTION", "MAX_DUV", "NEUTRALS", "OBSERVER", "ChartReference",
           "ColourResult", "FloatArray", "IlluminantComparison", "PatchResult", "chart_reference",
           "check_ccm", "check_wb_gains", "cie_illuminant_names", "compare_illuminant",
           "fit_residual", "illuminant_xy", "locate_chart", "measure_colour",
           "measure_colour_patches", "planckian_xy", "rgb_to_lab"]
