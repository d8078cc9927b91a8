"""Ground truth of a simulated module: the exact parameters its frames are made from.

Analysis code (EMVA 1288, slanted-edge MTF, defects, colour) is validated against this, and the
qualification suites check each faulty module fails exactly its limits. Every number here comes
from the same functions the frame generator uses (:class:`harness.sim.sensor.SensorModel`,
:mod:`harness.sim.optics`, :mod:`harness.sim.colour_response`), never from a second copy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.sim.colour_response import colour_truth, effective_qe
from harness.sim.module import Module
from harness.sim.optics import mtf, mtf50, psf_at
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
    """PSF and MTF at the centre of every slanted-edge square (the field points of the chart)."""
    scene = layout("edge", module.sensor.width, module.sensor.height)
    w, h = module.sensor.width, module.sensor.height
    half_diag = math.hypot(w / 2, h / 2)
    fill = module.optics.fill_factor
    out = []
    for rect in scene.rects:
        psf = psf_at(module, focus_um, rect.cx, rect.cy)
        system = mtf(np.array([0.125, 0.25, 0.5]), psf, fill, EDGE_ANGLE_DEG)
        out.append({
            "field_point": rect.name,
            "x_px": _r(rect.cx), "y_px": _r(rect.cy),
            "field_radius": _r(math.hypot(rect.cx - w / 2, rect.cy - h / 2) / half_diag, 4),
            "sigma_px": _r(psf.sigma_px), "defocus_radius_px": _r(psf.defocus_radius_px),
            "mtf50_lens_cy_px": _r(mtf50(psf, fill, EDGE_ANGLE_DEG, lens_only=True)),
            "mtf50_cy_px": _r(mtf50(psf, fill, EDGE_ANGLE_DEG)),
            "mtf_at_0.125": _r(float(system[0])), "mtf_at_0.25": _r(float(system[1])),
            "mtf_at_0.5": _r(float(system[2])),
        })
    return out


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
    }
    if module.is_colour:
        data["colour"] = {name: colour_truth(module, name).as_dict()
                          for name in TRUTH_ILLUMINANTS}
    return data


__all__ = ["TRUTH_ILLUMINANTS", "lens_truth", "module_truth", "saturation_e"]
