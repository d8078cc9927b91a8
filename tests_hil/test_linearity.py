"""EMVA 1288 photon transfer and linearity: K, dark noise, saturation, SNR_max, DR, LE."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.analysis import emva1288
from harness.capture.stack_input import reduce_capture_set_planes
from harness.evidence import plots

pytestmark = [pytest.mark.hil_requires("camera", "light"), pytest.mark.hil_family("linearity")]

FIGURES = (
    ("system_gain_dn_per_e", "DN/e-"),
    ("temporal_dark_noise_e", "e-"),
    ("saturation_capacity_e", "e-"),
    ("snr_max_db", "dB"),
    ("dynamic_range_db", "dB"),
    ("linearity_error_min_pct", "%"),
    ("linearity_error_max_pct", "%"),
    ("dark_current_e_per_s", "e-/s"),
)


def emva_result(suite, test_id, *, mosaic: bool = False):  # type: ignore[no-untyped-def]
    """The EMVA 1288 analysis of the session's exposure sweep (computed once).

    A colour sensor's photon transfer is analysed on its Gr plane (the channels saturate at
    different exposures, so the whole mosaic would blend their saturation points); with
    ``mosaic`` the whole frame is analysed with its CFA, for DSNU/PRNU per Bayer plane."""
    key = "emva-mosaic" if mosaic else "emva"
    if key not in suite.captures:
        cs = suite.sequence("exposure_sweep", test_id)
        # both views from one pass over the sweep's frames (each is read and checked once)
        reduced = reduce_capture_set_planes(cs.root, ("Gr", None) if suite.cfa else (None,))
        for name, plane in (("emva", "Gr" if suite.cfa else None), ("emva-mosaic", None)):
            data, cfa = reduced[plane]
            suite.captures[name] = emva1288.analyze(data, cfa=cfa)  # type: ignore[assignment]
    return suite.captures[key]


def test_photon_transfer(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """Photon transfer (EMVA 1288 R4.0): gain, dark noise, saturation, SNR, dynamic range."""
    result = emva_result(hil_suite, test_id)
    for name, unit in FIGURES:
        hil_check(name, getattr(result, name), unit)
    points = result.points
    mean = np.array([p.mean_dn - p.mean_dark_dn for p in points])
    var = np.array([p.var_dn2 - p.var_dark_dn2 for p in points])
    lo, hi = result.gain_fit_range
    mask = np.zeros(len(points), bool)
    mask[lo:hi + 1] = True
    hil_suite.attach_png(test_id, plots.photon_transfer(
        mean, var, gain=result.system_gain_dn_per_e, intercept=0.0, fit_mask=mask),
        "photon transfer")
    hil_suite.attach_json(test_id, json.dumps(result.to_json(), indent=1).encode(),
                          "emva1288.json")


def test_linearity_error(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """Linearity error over 5-95 % of saturation with the relative-residual fit."""
    result = emva_result(hil_suite, test_id)
    hil_check("linearity_error_min_pct", result.linearity_error_min_pct, "%")
    hil_check("linearity_error_max_pct", result.linearity_error_max_pct, "%")
    lo, hi = result.linearity_fit_range
    points = result.points[lo:hi + 1]
    x = np.array([p.photons if p.photons is not None else p.exposure_ns for p in points])
    y = np.array([p.mean_dn - p.mean_dark_dn for p in points])
    slope, offset = np.polynomial.polynomial.polyfit(x, y, 1, w=1.0 / y)[::-1]
    residual = 100.0 * (y - (slope * x + offset)) / (slope * x + offset)
    label = "photons per pixel" if points[0].photons is not None else "exposure [ns]"
    hil_suite.attach_png(test_id, plots.linearity_residuals(x, residual, x_label=label),
                         "linearity residuals")
