"""Ground truth of a simulated module: the exact parameters its frames are made from.

Analysis code (EMVA 1288, slanted-edge MTF, defects, colour) is validated against this, and the
qualification suites check each faulty module fails exactly its limits. Every number here comes
from the same functions the frame generator uses (:class:`harness.sim.sensor.SensorModel`,
:mod:`harness.sim.optics`, :mod:`harness.sim.blemish`, :mod:`harness.sim.colour_response`),
never from a second copy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.sim.blemish import particle_shadows
from harness.sim.colour_response import colour_truth, effective_qe, parse_band, qe_at
from harness.sim.module import Module
from harness.sim.optics import distortion_pct, image_point, mtf, mtf50, optical_centre, psf_at
from harness.sim.scene import EDGE_ANGLE_DEG, layout
from harness.sim.sensor import SensorModel

TRUTH_ILLUMINANTS = ("D65", "D50", "A", "F11")


def _r(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def saturation_e(module: Module, k: float, black_level_dn: float) -> tuple[float, str]:
    """Electrons at which the output stops rising at system gain ``k``, and what limits it."""
    s = module.sensor
    adc = (s.max_dn - black_level_dn) / k
    return (adc, "adc") if adc < s.full_well_e else (s.full_well_e, "full well")


def lens_truth(module: Module, focus_um: float) -> list[dict[str, Any]]:
    """PSF and MTF at the centre of every slanted-edge square (the field points of the chart),
    where the lens images it (a distorting lens moves it; :func:`image_point`)."""
    scene = layout("edge", module.sensor.width, module.sensor.height)
    w, h = module.sensor.width, module.sensor.height
    half_diag = math.hypot(w / 2, h / 2)
    fill = module.optics.fill_factor
    out = []
    for rect in scene.rects:
        x, y, _, _ = image_point(module, rect.cx, rect.cy)
        psf = psf_at(module, focus_um, x, y)
        system = mtf(np.array([0.125, 0.25, 0.5]), psf, fill, EDGE_ANGLE_DEG)
        out.append({
            "field_point": rect.name,
            "x_px": _r(x), "y_px": _r(y),
            "field_radius": _r(math.hypot(x - w / 2, y - h / 2) / half_diag, 4),
            "sigma_px": _r(psf.sigma_px), "defocus_radius_px": _r(psf.defocus_radius_px),
            "mtf50_lens_cy_px": _r(mtf50(psf, fill, EDGE_ANGLE_DEG, lens_only=True)),
            "mtf50_cy_px": _r(mtf50(psf, fill, EDGE_ANGLE_DEG)),
            "mtf_at_0.125": _r(float(system[0])), "mtf_at_0.25": _r(float(system[1])),
            "mtf_at_0.5": _r(float(system[2])),
        })
    return out


DISTORTION_RADII = (0.5, 0.7, 0.9)


def lens_geometry_truth(module: Module) -> dict[str, Any]:
    """Optical centre, distortion and lateral colour (:mod:`harness.sim.optics`).

    Positions are pixel indices (pixel centres at integer coordinates, as the analyses report;
    the image centre is ((W - 1)/2, (H - 1)/2); the ``lens`` field points, in continuous
    coordinates with pixel (i, j) covering [j, j+1] x [i, i+1], are 0.5 px more).
    ``distortion.D_pct`` is 100 (r_d - r_u) / r_u at the ideal radius r_u (fraction of the
    half-diagonal); ``lateral_ca`` gives the red and blue images' radial displacement from the
    green one at the corner (m x half-diagonal, px, + outwards) and as % of the half-diagonal
    (None for a mono sensor).
    """
    o, s = module.optics, module.sensor
    cx, cy = optical_centre(module)
    half_diag = math.hypot(s.width / 2.0, s.height / 2.0)
    k1, k2 = o.distortion.k1, o.distortion.k2
    out: dict[str, Any] = {
        "optical_centre_px": {"x": _r(cx - 0.5), "y": _r(cy - 0.5)},
        "decentre_px": {"x": _r(o.decentre_px.x), "y": _r(o.decentre_px.y),
                        "radial": _r(math.hypot(o.decentre_px.x, o.decentre_px.y))},
        "half_diagonal_px": _r(half_diag),
        "distortion": {"k1": k1, "k2": k2,
                       "D_pct": {f"{r}": _r(distortion_pct(k1, k2, r)) for r in DISTORTION_RADII}},
        "lateral_ca": None,
    }
    if module.is_colour:
        ca = o.lateral_ca
        out["lateral_ca"] = {"m_R": ca.R, "m_B": ca.B,
                             "R_G_corner_px": _r(ca.R * half_diag),
                             "B_G_corner_px": _r(ca.B * half_diag),
                             "R_G_pct": _r(100.0 * ca.R), "B_G_pct": _r(100.0 * ca.B)}
    return out


def particles_truth(module: Module) -> list[dict[str, Any]]:
    """Each particle's shadow (:mod:`harness.sim.blemish`): centre (column, row: pixel indices,
    as the module file gives it), diameter at half contrast (FWHM, px), centre contrast (%),
    and the particle's size and distance."""
    return [{"x_px": _r(sh.x_px), "y_px": _r(sh.y_px), "fwhm_px": _r(sh.fwhm_px, 5),
             "contrast_pct": _r(100.0 * sh.contrast, 5), "diameter_um": p.diameter_um,
             "distance_um": p.distance_um,
             "shadow_diameter_px": _r(sh.pupil_px + sh.particle_px, 5)}
            for p, sh in zip(module.optics.particles, particle_shadows(module), strict=True)]


def _narrowband_truth(module: Module, illuminant: str) -> dict[str, Any] | None:
    if not illuminant.upper().startswith("BAND:"):
        return None
    centre, fwhm = parse_band(illuminant)
    return {"wavelength_nm": centre, "fwhm_nm": fwhm,
            "qe_band": {c: _r(v) for c, v in effective_qe(module, illuminant).items()},
            "qe_at_wavelength": {c: _r(v) for c, v in qe_at(module, centre).items()}}


def module_truth(module: Module, *, gain_db: float = 0.0, temperature_c: float | None = None,
                 focus_um: float | None = None, illuminant: str = "D65",
                 black_level_dn: float | None = None) -> dict[str, Any]:
    """Everything the simulator knows about ``module`` at one operating point (JSON-ready).

    Defaults: die temperature = the dark-current reference temperature, focus = best focus on
    axis, black level = the module's default.

    ``saturation_e`` is the clip level in electrons (full well, or the ADC maximum referred to
    electrons, whichever comes first). EMVA 1288's saturation capacity is the signal at the
    temporal-variance maximum, which lies a little below it (measured on the small golden
    module: ~95 %); ``qe`` is the spectrally averaged eta under ``illuminant`` at the optical
    axis (relative illumination lowers it off axis, ``relative_illumination_corner``).
    """
    sensor = SensorModel(module)
    s = module.sensor
    temp = s.dark_ref_temp_c if temperature_c is None else temperature_c
    focus = module.optics.best_focus_um if focus_um is None else focus_um
    black = s.black_level_dn if black_level_dn is None else black_level_dn
    k = sensor.system_gain(gain_db)
    sigma_d = sensor.read_noise_e(gain_db)
    sat, limited = saturation_e(module, k, black)
    data: dict[str, Any] = {
        "module": {"name": module.name, "vendor": module.vendor, "model": module.model,
                   "serial": module.serial, "firmware": module.firmware,
                   "source": module.source},
        "sensor": {"width": s.width, "height": s.height, "pixel_pitch_um": s.pixel_pitch_um,
                   "pixel_area_um2": _r(s.pixel_pitch_um**2), "adc_bits": s.adc_bits,
                   "cfa": s.cfa},
        "operating_point": {"gain_db": gain_db, "temperature_c": temp, "focus_um": focus,
                            "illuminant": illuminant, "black_level_dn": black},
        "system_gain_dn_per_e": _r(k),
        "read_noise_e": _r(sigma_d),
        "dark_noise_dn": _r(math.sqrt(k**2 * sigma_d**2 + 1.0 / 12.0)),
        "full_well_e": s.full_well_e,
        "saturation_e": _r(sat),
        "saturation_limited_by": limited,
        "qe": {c: _r(v) for c, v in effective_qe(module, illuminant).items()},
        "qe_narrowband": _narrowband_truth(module, illuminant),
        "dark_current_e_per_s": _r(sensor.dark_current(temp)),
        "dark_doubling_k": s.dark_doubling_k,
        "dsnu_e": s.dsnu_e.model_dump(),
        "prnu_pct": s.prnu_pct.model_dump(),
        "realised": {kind: {part: _r(v) for part, v in parts.items()}
                     for kind, parts in sensor.realised_patterns().items()},
        "nonlinearity": s.nonlinearity.model_dump(),
        "relative_illumination_corner": module.optics.relative_illumination_corner,
        "colour_shading_corner": module.optics.colour_shading_corner.model_dump()
        if module.is_colour else None,
        "colour_shading_corner_pct": _r(100.0 * max(
            abs(1.0 - module.optics.colour_shading_corner.R),
            abs(1.0 - module.optics.colour_shading_corner.B))) if module.is_colour else None,
        "defects": [{"row": p.row, "col": p.col, "class": p.cls, "value": p.value}
                    for p in sensor.defects],
        "column_defects": [{"col": c, "offset_e": v} for c, v in sensor.column_defects],
        "lens": lens_truth(module, focus),
        **lens_geometry_truth(module),
        "particles": particles_truth(module),
    }
    if module.is_colour:
        data["colour"] = {name: colour_truth(module, name).as_dict()
                          for name in TRUTH_ILLUMINANTS}
    return data


__all__ = ["DISTORTION_RADII", "TRUTH_ILLUMINANTS", "lens_geometry_truth", "lens_truth",
           "module_truth", "particles_truth", "saturation_e"]
