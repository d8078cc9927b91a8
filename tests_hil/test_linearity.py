"""EMVA 1288 photon transfer and linearity: K, dark noise, saturation, SNR_max, DR, LE; with
a radiometer in the sensor plane, quantum efficiency, responsivity and the sensitivity
threshold in photons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.evidence import plots
from harness.run.capture_analyses import emva1288_views

pytestmark = [pytest.mark.hil_requires("camera", "light"), pytest.mark.hil_family("linearity")]

PHOTON_TRANSFER = (
    ("system_gain_dn_per_e", "DN/e-"),
    ("temporal_dark_noise_e", "e-"),
    ("saturation_capacity_e", "e-"),
    ("snr_max_db", "dB"),
    ("dynamic_range_db", "dB"),
    ("dark_current_e_per_s", "e-/s"),
)
SENSITIVITY = (
    ("quantum_efficiency_pct", "%"),
    ("responsivity_dn_per_photon", "DN/photon"),
    ("sensitivity_threshold_photons", "photons"),
)
LINEARITY = (
    ("linearity_error_min_pct", "%"),
    ("linearity_error_max_pct", "%"),
)


def emva_result(session, *, mosaic: bool = False):  # type: ignore[no-untyped-def]
    """The EMVA 1288 analysis of the run's exposure sweep (computed once per run).

    A colour sensor's photon transfer is analysed on its Gr plane (the channels saturate at
    different exposures, so the whole mosaic would blend their saturation points); with
    ``mosaic`` the whole frame is analysed with its CFA, for DSNU/PRNU per Bayer plane.
    EMVA 1288 assumes a uniformly irradiated sensor and the lens shades the frame: the photon
    transfer is measured on the spec's uniform central window (``emva1288: {window: ...}``),
    where the saturation point is sharp; DSNU/PRNU on ``nonuniformity_window``, larger, since
    the row/column split needs many rows and columns and the high-pass pixel part is blind to
    gentle shading."""
    views = session.analysed("emva1288", "exposure_sweep", emva1288_views, emva_params)
    return views["mosaic" if mosaic else "gr"]


def emva_params(session):  # type: ignore[no-untyped-def]
    """The CFA and the windows of the EMVA analysis of ``session``'s camera and spec."""
    cond = session.condition("emva1288")
    window = {"Gr": cond.get("window"), None: cond.get("nonuniformity_window")} if session.cfa \
        else {None: cond.get("window")}  # a mono sensor's one view serves the photon transfer
    planes = ("Gr", None) if session.cfa else (None,)
    return {"cfa": session.cfa,
            "window": {p: None if window.get(p) is None else float(window[p]) for p in planes}}


def judge(hil_check, result, figures, **condition) -> None:  # type: ignore[no-untyped-def]
    """Each figure with its unit and the standard uncertainty the analysis states for it; a
    figure the analysis flagged is an ERROR, not a verdict."""
    for name, unit in figures:
        hil_check(name, getattr(result, name), unit, flag=result.flag(name),
                  uncertainty=result.uncertainty(name), **condition)


@pytest.mark.hil_measures(*(name for name, _ in PHOTON_TRANSFER))
def test_photon_transfer(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Photon transfer (EMVA 1288 R4.0): gain, dark noise, saturation, SNR, DR, dark current."""
    result = emva_result(hil_session)
    judge(hil_check, result, PHOTON_TRANSFER)
    points = result.points
    mean = np.array([p.mean_dn - p.mean_dark_dn for p in points])
    var = np.array([p.var_dn2 - p.var_dark_dn2 for p in points])
    lo, hi = result.gain_fit_range
    mask = np.zeros(len(points), bool)
    mask[lo:hi + 1] = True
    hil_session.attach_png(plots.photon_transfer(
        mean, var, gain=result.system_gain_dn_per_e, intercept=0.0, fit_mask=mask),
        "photon transfer")
    hil_session.attach_json(json.dumps(result.as_dict(), indent=1).encode(), "emva1288.json")


@pytest.mark.hil_measures(*(name for name, _ in SENSITIVITY))
def test_quantum_efficiency(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Quantum efficiency eta = R / K, responsivity R and the absolute sensitivity threshold in
    photons (docs/standards.md#emva-linear-model), from photon counts mu_p = E A t lambda / (h c)
    with E read by the radiometer in the sensor plane during the narrow-band sweep (conditions
    ``emva1288: {pixel_pitch_um, wavelength_nm}``); on the Gr plane (``channel: G``) of a
    colour sensor. A station without a radiometer skips (the limits are then named
    unjudged)."""
    if not hil_session.station.has("radiometer"):
        pytest.skip("the station has no radiometer (optical power meter in the sensor plane): "
                    "no photon counts")
    result = emva_result(hil_session)
    channel = {"channel": "G"} if hil_session.cfa else {}
    judge(hil_check, result, SENSITIVITY, **channel)
    cs = hil_session.sequence("exposure_sweep")
    radiometry = cs.manifest.extra.get("radiometry", {})
    hil_session.attach_json(json.dumps({"radiometry": radiometry, **{
        name: result.figure_json(name) for name, _ in SENSITIVITY}}, indent=1).encode(),
        "quantum efficiency.json")


@pytest.mark.hil_measures(*(name for name, _ in LINEARITY))
def test_linearity_error(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Linearity error over 5-95 % of saturation with the relative-residual fit."""
    result = emva_result(hil_session)
    judge(hil_check, result, LINEARITY)
    lo, hi = result.linearity_fit_range
    points = result.points[lo:hi + 1]
    x = np.array([p.photons if p.photons is not None else p.exposure_ns for p in points])
    y = np.array([p.mean_dn - p.mean_dark_dn for p in points])
    slope, offset = np.polynomial.polynomial.polyfit(x, y, 1, w=1.0 / y)[::-1]
    residual = 100.0 * (y - (slope * x + offset)) / (slope * x + offset)
    label = "photons per pixel" if points[0].photons is not None else "exposure [ns]"
    hil_session.attach_png(plots.linearity_residuals(x, residual, x_label=label),
                           "linearity residuals")
