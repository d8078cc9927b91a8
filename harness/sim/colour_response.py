"""Spectral response of the simulated sensor: illuminants, QE curves, ColorChecker, colour matrix.

Everything is integrated on one 5 nm grid (380-780 nm) with colour-science 0.4.7 data
(docs/standards.md#colorchecker-reference-data): CIE illuminants D65, D50, A and FL11
(= TL84-like triband), a Planckian source of any CCT, a monochromatic line, or a narrow band
``band:<nm>/<fwhm>`` (a Gaussian in power, the narrow-band light EMVA 1288 measures the quantum
efficiency with: a known centre wavelength, FWHM <= 50 nm; docs/standards.md#emva-linear-model);
the 24
ColorChecker reflectances of ``colour.SDS_COLOURCHECKERS['ColorChecker N Ohta']``; the CIE 1931
2 degree observer.

The light is described by its photon flux at the sensor (photons/um^2/s for a perfect white,
reflectance 1) and the *photon* spectral distribution p(lambda) = P(lambda) lambda / (h c),
normalised to sum 1. A pixel of channel c behind a surface of reflectance R(lambda) then
collects ``flux x area x t x sum(p R QE_c)`` electrons (EMVA 1288 4.0 Eq. 1, mu_e = eta mu_p,
with eta averaged over the spectrum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.errors import ConfigError
from harness.sim.module import Band, Module

WAVELENGTHS = np.arange(380.0, 781.0, 5.0)
H_PLANCK = 6.62607015e-34
C_LIGHT = 299_792_458.0
ILLUMINANT_NAMES = ("D65", "D50", "A", "F11", "TL84", "E")


@lru_cache(maxsize=64)
def _illuminant_power(name: str) -> tuple[float, ...]:
    import colour

    shape = colour.SpectralShape(380, 780, 5)
    key = name.upper()
    if key.startswith("BAND:"):
        centre, fwhm = parse_band(name)
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        power = np.exp(-0.5 * ((WAVELENGTHS - centre) / sigma) ** 2)
        return tuple(float(v) for v in power)
    if key.startswith("MONO:"):
        try:
            nm = float(key[5:])
        except ValueError:
            raise ConfigError(f"illuminant {name!r}: expected mono:<nm>") from None
        if not 380.0 <= nm <= 780.0:
            raise ConfigError(f"illuminant {name!r}: wavelength outside 380..780 nm")
        power = np.exp(-0.5 * ((WAVELENGTHS - nm) / 2.0) ** 2)
        return tuple(float(v) for v in power)
    if key.endswith("K") and key[:-1].replace(".", "", 1).isdigit():
        cct = float(key[:-1])
        if not 1000.0 <= cct <= 25000.0:
            raise ConfigError(f"illuminant {name!r}: CCT outside 1000..25000 K")
        sd = colour.sd_blackbody(cct, shape)
        return tuple(float(v) for v in sd.values)
    table = {"D65": "D65", "D50": "D50", "A": "A", "F11": "FL11", "TL84": "FL11", "E": "E"}
    if key not in table:
        raise ConfigError(f"unknown illuminant {name!r}; allowed: "
                          f"{', '.join(ILLUMINANT_NAMES)}, <CCT>K (e.g. 3200K), mono:<nm>, "
                          f"band:<nm>/<fwhm> (e.g. band:525/30)")
    if key == "E":
        return tuple(1.0 for _ in WAVELENGTHS)
    sd = colour.SDS_ILLUMINANTS[table[key]].copy().align(shape)
    return tuple(float(v) for v in sd.values)


BAND_FWHM_NM = (5.0, 100.0)
"""FWHM range of a ``band:`` illuminant (the 5 nm grid resolves 5 nm; wider is not narrow)."""


def band_name(centre_nm: float, fwhm_nm: float) -> str:
    """The illuminant name of a narrow band (``band:525/30``)."""
    return f"band:{centre_nm:g}/{fwhm_nm:g}"


def parse_band(name: str) -> tuple[float, float]:
    """(centre, FWHM) in nm of a ``band:<nm>/<fwhm>`` illuminant name; a malformed name, a
    centre outside 400..740 nm (the band must fit the 380-780 nm grid) or a FWHM outside
    :data:`BAND_FWHM_NM` raise :class:`ConfigError`."""
    body = name[5:] if name.upper().startswith("BAND:") else ""
    centre_s, sep, fwhm_s = body.partition("/")
    try:
        centre, fwhm = float(centre_s), float(fwhm_s)
    except ValueError:
        centre = fwhm = math.nan
    if not sep or not (math.isfinite(centre) and math.isfinite(fwhm)):
        raise ConfigError(f"illuminant {name!r}: expected band:<nm>/<fwhm> (e.g. band:525/30)",
                          field="illuminant")
    if not 400.0 <= centre <= 740.0:
        raise ConfigError(f"illuminant {name!r}: centre {centre:g} nm outside 400..740 nm",
                          field="illuminant")
    lo, hi = BAND_FWHM_NM
    if not lo <= fwhm <= hi:
        raise ConfigError(f"illuminant {name!r}: FWHM {fwhm:g} nm outside {lo:g}..{hi:g} nm",
                          field="illuminant")
    return centre, fwhm


def check_illuminant(name: str) -> str:
    """``name`` if known (raises :class:`ConfigError` with the allowed names otherwise)."""
    _illuminant_power(name)
    return name


def photon_spectrum(name: str) -> np.ndarray:
    """p(lambda): photon fraction per 5 nm bin, summing to 1."""
    power = np.asarray(_illuminant_power(name))
    photons = power * WAVELENGTHS
    return np.asarray(photons / photons.sum())


def band_curve(band: Band, ir_cut_nm: float | None,
               wavelengths: np.ndarray | None = None) -> np.ndarray:
    """A Gaussian QE band times a steep IR-cut edge (10 nm logistic), on the 5 nm grid or at
    ``wavelengths``."""
    nm = WAVELENGTHS if wavelengths is None else np.asarray(wavelengths, dtype=float)
    sigma = band.fwhm_nm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    qe = band.peak_qe * np.exp(-0.5 * ((nm - band.peak_nm) / sigma) ** 2)
    if ir_cut_nm is not None:
        qe = qe / (1.0 + np.exp((nm - ir_cut_nm) / 10.0 * 4.0))
    return np.asarray(qe)


def qe_curves(module: Module, wavelengths: np.ndarray | None = None) -> np.ndarray:
    """QE(lambda) per channel (rows R, G, B after crosstalk, or one row for a mono sensor)."""
    sp = module.spectral
    if not module.is_colour:
        return band_curve(sp.mono, sp.ir_cut_nm, wavelengths)[None, :]
    rgb = np.stack([band_curve(b, sp.ir_cut_nm, wavelengths) for b in (sp.red, sp.green, sp.blue)])
    return np.asarray(np.asarray(sp.crosstalk, dtype=float) @ rgb)


def qe_at(module: Module, wavelength_nm: float) -> dict[str, float]:
    """eta(lambda) per channel at one wavelength (the spectral model itself, no averaging)."""
    qe = qe_curves(module, np.array([float(wavelength_nm)]))[:, 0]
    return {c: float(v) for c, v in zip(module.channels, qe, strict=True)}


@lru_cache(maxsize=4)
def colorchecker_reflectances() -> np.ndarray:
    """24 x wavelengths reflectance of the ColorChecker (N. Ohta), classic patch order."""
    import colour

    shape = colour.SpectralShape(380, 780, 5)
    sds = colour.SDS_COLOURCHECKERS["ColorChecker N Ohta"]
    return np.stack([sd.copy().align(shape).values for sd in sds.values()])


COLORCHECKER_NAMES: tuple[str, ...] = (
    "dark skin", "light skin", "blue sky", "foliage", "blue flower", "bluish green", "orange",
    "purplish blue", "moderate red", "purple", "yellow green", "orange yellow", "blue", "green",
    "red", "yellow", "magenta", "cyan", "white 9.5", "neutral 8", "neutral 6.5", "neutral 5",
    "neutral 3.5", "black 2")


def channel_response(module: Module, illuminant: str,
                     reflectance: np.ndarray | float) -> np.ndarray:
    """Electrons per incident photon per channel: sum over lambda of p R QE_c.

    ``reflectance`` is a scalar (spectrally flat) or a spectrum (..., wavelengths); the result
    has a trailing channel axis.
    """
    p = photon_spectrum(illuminant)
    qe = qe_curves(module)
    refl = np.asarray(reflectance, dtype=float)
    if refl.ndim == 0:
        return np.asarray(float(refl) * (qe @ p))
    return np.asarray((refl * p) @ qe.T)


def effective_qe(module: Module, illuminant: str) -> dict[str, float]:
    """eta per channel for a white target (what EMVA 1288 measures under this light)."""
    eta = channel_response(module, illuminant, np.float64(1.0))
    return {c: float(v) for c, v in zip(module.channels, eta, strict=True)}


def irradiance_w_m2(photons_per_um2_s: float, illuminant: str) -> float:
    """Radiometric irradiance of a photon flux with this spectrum."""
    p = photon_spectrum(illuminant)
    energy = float(np.sum(p * H_PLANCK * C_LIGHT / (WAVELENGTHS * 1e-9)))
    return photons_per_um2_s * 1e12 * energy


def illuminance_lux(photons_per_um2_s: float, illuminant: str) -> float:
    """Photometric illuminance (683 lm/W x V(lambda)) of a photon flux with this spectrum."""
    import colour

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(
        colour.SpectralShape(380, 780, 5))
    v = cmfs.values[:, 1]
    p = photon_spectrum(illuminant)
    watts = photons_per_um2_s * 1e12 * p * H_PLANCK * C_LIGHT / (WAVELENGTHS * 1e-9)
    return float(683.0 * np.sum(watts * v))


@dataclass(frozen=True)
class ColourTruth:
    """The camera's colour response under one illuminant.

    ``patch_rgb``: camera RGB of the 24 patches (electrons per photon, normalised so the perfect
    white has G = 1, no white balance); ``white_balance``: gains making a grey neutral (G = 1);
    ``matrix``: 3x3 least-squares matrix (Cheung 2004, 3 terms) taking white-balanced camera
    RGB to CIE XYZ of the patches under the same illuminant (Y of the perfect white = 1);
    ``patch_xyz`` the reference XYZ; ``delta_e00`` the CIE 2000 colour difference per patch
    that this best matrix leaves (Lab relative to the illuminant's white): the floor any
    3x3 colour correction of this module can reach.
    """

    illuminant: str
    patch_rgb: np.ndarray
    white_balance: np.ndarray
    matrix: np.ndarray
    patch_xyz: np.ndarray
    delta_e00: np.ndarray

    def as_dict(self) -> dict[str, object]:
        return {"illuminant": self.illuminant,
                "white_balance": [round(float(v), 6) for v in self.white_balance],
                "matrix_rgb_to_xyz": [[round(float(v), 6) for v in row] for row in self.matrix],
                "ccm_delta_e00_mean": round(float(self.delta_e00.mean()), 4),
                "ccm_delta_e00_max": round(float(self.delta_e00.max()), 4),
                "patch_rgb": [[round(float(v), 6) for v in row] for row in self.patch_rgb]}


def colour_truth(module: Module, illuminant: str) -> ColourTruth:
    """Camera RGB and colour matrix of a colour module under ``illuminant``."""
    import colour

    if not module.is_colour:
        raise ConfigError(f"module {module.name!r} is monochrome: it has no colour matrix")
    refl = colorchecker_reflectances()
    rgb = channel_response(module, illuminant, refl)
    white = channel_response(module, illuminant, np.float64(1.0))
    rgb = rgb / white[1]
    wb = white[1] / white
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(
        colour.SpectralShape(380, 780, 5)).values
    power = np.asarray(_illuminant_power(illuminant))
    xyz = (refl * power) @ cmfs
    xyz = xyz / float(power @ cmfs[:, 1])
    balanced = rgb * wb
    matrix = colour.characterisation.matrix_colour_correction(balanced, xyz,
                                                              method="Cheung 2004", terms=3)
    fitted = balanced @ np.asarray(matrix).T
    white_xy = colour.XYZ_to_xy(power @ cmfs / float(power @ cmfs[:, 1]))
    delta = colour.delta_E(colour.XYZ_to_Lab(fitted, white_xy), colour.XYZ_to_Lab(xyz, white_xy),
                           method="CIE 2000")
    return ColourTruth(illuminant, rgb, wb, np.asarray(matrix), xyz, np.asarray(delta))


__all__ = [
    "BAND_FWHM_NM",
    "COLORCHECKER_NAMES",
    "C_LIGHT",
    "H_PLANCK",
    "ILLUMINANT_NAMES",
    "WAVELENGTHS",
    "ColourTruth",
    "band_curve",
    "band_name",
    "channel_response",
    "check_illuminant",
    "colorchecker_reflectances",
    "colour_truth",
    "effective_qe",
    "illuminance_lux",
    "irradiance_w_m2",
    "parse_band",
    "photon_spectrum",
    "qe_at",
    "qe_curves",
]
