"""Colour accuracy on a ColorChecker 24: white balance, 3x3 CCM, CIEDE2000 per patch.

Every colour formula is colour-science's (0.4.x):

* reference: ``colour.CCS_COLOURCHECKERS['ColorChecker24 - After November 2014']`` (CIE xyY,
  D50), ``colour.xyY_to_XYZ``, adapted to the capture illuminant with
  ``colour.chromatic_adaptation`` (Bradford), ``colour.XYZ_to_Lab`` with that illuminant's white;
* camera RGB <-> XYZ: the linear sRGB primaries, ``colour.RGB_to_XYZ`` / ``colour.XYZ_to_RGB``
  with ``illuminant`` = the capture illuminant and the Bradford transform (so a corrected
  neutral is neutral under the capture illuminant); the CCM target is the reference XYZ taken to
  RGB that way (= plain linear sRGB for D65);
* CCM: ``colour.characterisation.matrix_colour_correction(method='Cheung 2004', terms=3)``
  (least squares, Cheung et al. 2004), applied with ``apply_matrix_colour_correction``;
* colour difference: ``colour.delta_E(method='CIE 2000')`` (Sharma, Wu & Dalal 2005).

Procedure: patch RGB minus black level; *as delivered*: one exposure scale (least squares on the
neutral patches' green, i.e. no per-channel balance) gives the "before" Lab and ΔE00 and the
white-balance error = mean chromatic distance sqrt(Δa*^2 + Δb*^2) of the neutral patches 8, 6.5,
5 and 3.5 from their reference (white 9.5 and black 2 are left out: clipping and flare);
*corrected*: per-channel gains from the same neutral patches (least squares against the
reference), then the 3x3 CCM fitted on all unclipped patches; the "after" ΔE00 (unclipped
patches) is what the suites judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from harness.errors import ConfigError

FloatArray = NDArray[np.float64]
CHART = "ColorChecker24 - After November 2014"
OBSERVER = "CIE 1931 2 Degree Standard Observer"
#: Neutral patches used for exposure and white balance: neutral 8, 6.5, 5, 3.5.
NEUTRALS = (19, 20, 21, 22)
CLIP_FRACTION = 0.98


def illuminant_xy(name: str) -> FloatArray:
    """CIE 1931 2-degree chromaticity of a named illuminant (one-line error if unknown)."""
    table = colour.CCS_ILLUMINANTS[OBSERVER]
    if name not in table:
        some = ", ".join(k for k in ("D50", "D55", "D65", "D75", "A", "FL2", "FL11") if k in table)
        raise ConfigError(f"unknown illuminant {name!r}; use a CIE name such as {some}",
                          field="--illuminant")
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
    rgb = colour.XYZ_to_RGB(xyz, "sRGB", illuminant=wp, chromatic_adaptation_transform="Bradford")
    return ChartReference(illuminant, tuple(cc.data.keys()), np.asarray(xyz),
                          np.asarray(lab), np.asarray(rgb))


def rgb_to_lab(rgb: FloatArray, illuminant: str) -> FloatArray:
    """Linear RGB (sRGB primaries, scaled so a perfect white has Y = 1) to CIELAB."""
    wp = illuminant_xy(illuminant)
    xyz = colour.RGB_to_XYZ(rgb, "sRGB", illuminant=wp, chromatic_adaptation_transform="Bradford")
    return np.asarray(colour.XYZ_to_Lab(xyz, wp), dtype=np.float64)


def fit_residual(means: FloatArray, ref: ChartReference) -> float:
    """Relative residual of the best 3x3 linear map from ``means`` to the reference RGB
    (ranks chart placement hypotheses in :func:`harness.analysis.charts.find_colour_checker`)."""
    m, *_ = np.linalg.lstsq(means, ref.rgb, rcond=None)
    return float(np.linalg.norm(means @ m - ref.rgb) / np.linalg.norm(ref.rgb))


@dataclass(frozen=True)
class PatchResult:
    """One patch: camera RGB (black-subtracted), corrected Lab, reference Lab and ΔE00."""

    name: str
    rgb: tuple[float, float, float]
    lab: tuple[float, float, float]
    lab_reference: tuple[float, float, float]
    delta_e_2000: float
    delta_e_2000_before: float
    noise_rgb: tuple[float, float, float]
    clipped: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "rgb": list(self.rgb), "lab": list(self.lab),
            "lab_reference": list(self.lab_reference), "delta_e_2000": self.delta_e_2000,
            "delta_e_2000_before": self.delta_e_2000_before, "noise_rgb": list(self.noise_rgb),
            "clipped": self.clipped,
        }


@dataclass(frozen=True)
class ColourResult:
    """Colour accuracy of one ColorChecker capture (ΔE00 after white balance + CCM)."""

    illuminant: str
    patches: tuple[PatchResult, ...]
    delta_e_2000_mean: float
    delta_e_2000_max: float
    delta_e_2000_mean_before: float
    delta_e_2000_max_before: float
    white_balance_error_dc_ab: float
    wb_gains: tuple[float, float, float]
    ccm: tuple[tuple[float, float, float], ...]
    black_level: tuple[float, float, float]
    chart_centres_px: tuple[tuple[float, float], ...]
    chart_method: str
    warnings: tuple[str, ...] = ()

    @property
    def camera_matrix(self) -> FloatArray:
        """Estimated camera response to reference RGB: inverse of CCM x diag(gains)."""
        return np.asarray(np.linalg.inv(np.array(self.ccm) @ np.diag(self.wb_gains)))

    def as_dict(self) -> dict[str, Any]:
        """The ``harness analyze colour --json`` record."""
        return {
            "illuminant": self.illuminant,
            "patches": [p.as_dict() for p in self.patches],
            "delta_e_2000_mean": self.delta_e_2000_mean,
            "delta_e_2000_max": self.delta_e_2000_max,
            "delta_e_2000_mean_before": self.delta_e_2000_mean_before,
            "delta_e_2000_max_before": self.delta_e_2000_max_before,
            "white_balance_error": self.white_balance_error_dc_ab,
            "wb_gains": list(self.wb_gains),
            "ccm": [list(r) for r in self.ccm],
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


def analyze_colour_patches(samples: PatchSamples, *, illuminant: str = "D65",
                           black_level: float | Sequence[float] = 0.0,
                           saturation: float | None = 1.0,
                           location: CheckerLocation | None = None) -> ColourResult:
    """White balance, CCM and ΔE00 from sampled patches (see the module docstring)."""
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
    neutral = np.array([i for i in NEUTRALS if not clipped[i]])
    if neutral.size < 2:
        raise ConfigError("fewer than 2 unclipped neutral patches: lower the exposure",
                          field="image")
    if np.any(cam[neutral] <= 0):
        raise ConfigError("neutral patches at or below the black level: check --black-level",
                          field="black_level")
    # As delivered: one exposure scale on green (least squares over the neutrals).
    g = cam[neutral, 1]
    exposure = float(g @ ref.rgb[neutral, 1] / (g @ g))
    lab_before = rgb_to_lab(cam * exposure, illuminant)
    de_before = np.asarray(colour.delta_E(lab_before, ref.lab, method="CIE 2000"))
    dab = lab_before[neutral, 1:] - ref.lab[neutral, 1:]
    wb_error = float(np.mean(np.hypot(dab[:, 0], dab[:, 1])))
    # Corrected: per-channel gains, then the 3x3 CCM on the unclipped patches.
    gains = np.array([cam[neutral, c] @ ref.rgb[neutral, c] / (cam[neutral, c] @ cam[neutral, c])
                      for c in range(3)])
    balanced = cam * gains
    fit = ~clipped
    if fit.sum() < 6:
        raise ConfigError(f"only {int(fit.sum())} unclipped patches: lower the exposure",
                          field="image")
    ccm = np.asarray(matrix_colour_correction(balanced[fit], ref.rgb[fit],
                                              method="Cheung 2004", terms=3))
    corrected = np.asarray(apply_matrix_colour_correction(balanced, ccm, method="Cheung 2004",
                                                          terms=3), dtype=np.float64)
    lab_after = rgb_to_lab(corrected, illuminant)
    de_after = np.asarray(colour.delta_E(lab_after, ref.lab, method="CIE 2000"))
    patches = tuple(
        PatchResult(
            name=ref.names[i],
            rgb=(float(cam[i, 0]), float(cam[i, 1]), float(cam[i, 2])),
            lab=(float(lab_after[i, 0]), float(lab_after[i, 1]), float(lab_after[i, 2])),
            lab_reference=(float(ref.lab[i, 0]), float(ref.lab[i, 1]), float(ref.lab[i, 2])),
            delta_e_2000=float(de_after[i]),
            delta_e_2000_before=float(de_before[i]),
            noise_rgb=(float(samples.noise[i, 0]), float(samples.noise[i, 1]),
                       float(samples.noise[i, 2])),
            clipped=bool(clipped[i]),
        )
        for i in range(24)
    )
    judged = de_after[fit]
    centres = location.centres_px if location is not None else np.full((24, 2), np.nan)
    return ColourResult(
        illuminant=illuminant,
        patches=patches,
        delta_e_2000_mean=float(judged.mean()),
        delta_e_2000_max=float(judged.max()),
        delta_e_2000_mean_before=float(de_before.mean()),
        delta_e_2000_max_before=float(de_before.max()),
        white_balance_error_dc_ab=wb_error,
        wb_gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        ccm=tuple((float(r[0]), float(r[1]), float(r[2])) for r in ccm),
        black_level=(float(black[0]), float(black[1]), float(black[2])),
        chart_centres_px=tuple((float(c[0]), float(c[1])) for c in centres),
        chart_method=location.method if location is not None else "samples",
        warnings=tuple(warnings),
    )


def analyze_colour(rgb: NDArray[Any], *, illuminant: str = "D65",
                   corners: Sequence[float] | None = None,
                   black_level: float | Sequence[float] = 0.0,
                   saturation: float | None = 1.0) -> ColourResult:
    """Find (or place) the ColorChecker in linear RGB and measure its colour accuracy."""
    illuminant_xy(illuminant)
    loc = locate_chart(rgb, corners=corners, illuminant=illuminant)
    samples = sample_patches(rgb, loc)
    return analyze_colour_patches(samples, illuminant=illuminant, black_level=black_level,
                                  saturation=saturation, location=loc)
