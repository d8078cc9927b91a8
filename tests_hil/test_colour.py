"""Colour accuracy: ΔE2000 after white balance + CCM (leave-one-out, and with the product's
production CCM when the spec gives one), raw white-balance error; under the light the meter
measured, never under an illuminant the spec merely assumes."""

from __future__ import annotations

import json

import colour
import numpy as np
import pytest
from conftest import sequence_mean

from harness.analysis.charts import sample_patches
from harness.analysis.colour import (
    chart_reference,
    compare_illuminant,
    locate_chart,
    measure_colour_patches,
)
from harness.analysis.flatfield import flat_field_gain
from harness.analysis.uncertainty import measure_colour_uncertainty, replicates_of
from harness.errors import MeasurementError
from harness.evidence import plots
from harness.inputs.image_input import prepare, rgb_image

pytestmark = [pytest.mark.hil_requires("camera", "light", "chart", "meter"),
              pytest.mark.hil_family("colour")]

#: Largest CIE 1976 u'v' distance between the measured light and the spec's reference
#: illuminant when the spec gives none (0.005: about the size of a 4-step MacAdam ellipse,
#: ANSI C78.377's tolerance for a nominal CCT).
DEFAULT_TOLERANCE_UV = 0.005


def measured_light(records, illuminant: str, tolerance: float):  # type: ignore[no-untyped-def]
    """The light the chart was captured under (the meter's xy at the capture) against the
    illuminant the verdict uses; beyond ``tolerance`` it is an ERROR naming both."""
    xs = [r.meter_x for r in records]
    ys = [r.meter_y for r in records]
    if any(v is None for v in (*xs, *ys)):
        raise MeasurementError("the station's meter gave no chromaticity (x, y) at the colour "
                               "chart capture: the colour verdict needs the light it measured")
    found = compare_illuminant((float(np.mean(xs)), float(np.mean(ys))), illuminant)
    if not found.delta_u_prime_v_prime <= tolerance:
        mx, my = found.measured_xy
        rx, ry = found.reference_xy
        raise MeasurementError(
            f"the light measured x={mx:.4f} y={my:.4f} (about {found.measured_cct_k:.0f} K) "
            f"but the spec's illuminant {illuminant} is x={rx:.4f} y={ry:.4f} "
            f"({found.reference_cct_k:.0f} K): delta u'v' {found.delta_u_prime_v_prime:.4f} "
            f"> {tolerance:g}", figure="illuminant")
    return found


def colour_rgb(session, raw, gain):  # type: ignore[no-untyped-def]
    """A mean of chart frames (DN) flat-field corrected with ``gain`` (as
    :func:`~harness.analysis.flatfield.flat_field_correct`), rounded to the ADC's integers, as
    linear RGB superpixels: the one preparation of the mean and of its replicates."""
    full = 2 ** session.bits - 1
    corrected = np.clip((raw - session.black_dn) * gain + session.black_dn, 0, full)
    img = prepare(np.rint(corrected).astype(np.uint16), "colour chart", bayer=session.cfa,
                  bits=session.bits)
    return rgb_image(img)


@pytest.mark.hil_measures("delta_e_2000_mean", "delta_e_2000_max", "white_balance_error",
                          "white_balance_gain")
def test_colour_accuracy(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """ColorChecker 24 under each illuminant the spec names, measured by the meter, on the
    flat-field corrected chart (the lens shading is judged by the shading test). ΔE00 and the
    white-balance figures carry their standard uncertainty from the frame-to-frame spread
    (jackknife over the chart frames, each replicate sampled at the mean's chart location,
    combined with the flat stack's grouped jackknife; none from a single frame)."""
    if hil_session.cfa is None:
        pytest.skip("a monochrome camera has no colour to qualify")
    from test_focus import flat_gain_replicates

    cond = hil_session.condition("colour")
    # a tunable light is set to each listed illuminant; with none listed the chart is
    # captured under the light as it is, which must be the spec's reference illuminant
    illuminants = list(cond.get("illuminants") or [cond.get("reference_illuminant", "D65")])
    tolerance = float(cond.get("illuminant_tolerance_delta_uv", DEFAULT_TOLERANCE_UV))
    production = {"ccm": cond.get("ccm"), "wb_gains": cond.get("wb_gains")}
    cs = hil_session.sequence("colour")
    flat = sequence_mean(hil_session, "flat_stack", "flat")
    gain = flat_field_gain(flat, hil_session.black_dn, hil_session.cfa)
    black = hil_session.black_dn / (2 ** hil_session.bits - 1)
    for step, illuminant in enumerate(illuminants):
        records = [r for r in cs.records(role="colour") if r.step == step]
        light = measured_light(records, illuminant, tolerance)
        hil_session.attach_json(json.dumps(light.as_dict()).encode(),
                                f"light-{illuminant}.json")
        frames = [cs.load(r) for r in records]
        raw = np.mean(frames, axis=0)
        rgb = colour_rgb(hil_session, raw, gain)
        hil_session.attach_thumbnail(raw, f"colour chart {illuminant} (mean)")
        location = locate_chart(rgb, illuminant=illuminant)
        result = measure_colour_patches(sample_patches(rgb, location), illuminant=illuminant,
                                        black_level=black, location=location, **production)
        unc = None if len(frames) < 2 else measure_colour_uncertainty(
            (colour_rgb(hil_session, rep, gain) for rep in replicates_of(frames)), location,
            illuminant=illuminant, black_level=black, label="frames", **production)
        gains = flat_gain_replicates(hil_session)
        if unc is not None and gains is not None:  # the flat field's own component
            unc = unc.combined(measure_colour_uncertainty(
                (colour_rgb(hil_session, raw, g) for g in gains), location,
                illuminant=illuminant, black_level=black, label="flat", **production))
        for method, mean, worst in (
                ("leave-one-out", result.delta_e_2000_mean_loo, result.delta_e_2000_max_loo),
                ("in-sample", result.delta_e_2000_mean_in_sample,
                 result.delta_e_2000_max_in_sample),
                ("production", result.delta_e_2000_mean_production,
                 result.delta_e_2000_max_production)):
            if method == "production" and production["ccm"] is None:
                continue
            hil_check("delta_e_2000_mean", mean, "dE00", illuminant=illuminant, ccm=method,
                      uncertainty=None if unc is None else unc.delta_e_2000_mean[method])
            hil_check("delta_e_2000_max", worst, "dE00", illuminant=illuminant, ccm=method,
                      uncertainty=None if unc is None else unc.delta_e_2000_max[method])
        hil_check("white_balance_error", result.white_balance_error_dc_ab, "dCab",
                  illuminant=illuminant,
                  uncertainty=None if unc is None else unc.white_balance_error)
        gains = result.wb_gains  # per channel, on the neutral patches
        for channel, index in (("R", 0), ("B", 2)):
            hil_check("white_balance_gain", gains[index] / gains[1], "ratio",
                      illuminant=illuminant, channel=channel,
                      uncertainty=None if unc is None else unc.white_balance_gain[channel])
        ref = chart_reference(illuminant)
        measured = np.array([p.rgb for p in result.patches])
        measured = measured / max(float(measured.max()), 1e-9)
        display = np.clip(colour.cctf_encoding(np.clip(measured, 0, 1), function="sRGB"), 0, 1)
        reference = np.clip(colour.cctf_encoding(np.clip(ref.rgb, 0, 1), function="sRGB"), 0, 1)
        hil_session.attach_png(plots.colorchecker(
            display, reference, np.array([p.delta_e_2000_loo for p in result.patches]),
            names=[p.name for p in result.patches],
            title=f"ColorChecker under {illuminant} (leave-one-out)"),
            f"ColorChecker {illuminant}")
        hil_session.attach_json(json.dumps(result.as_dict()).encode(),
                                f"colour-{illuminant}.json")
        if unc is not None:
            hil_session.attach_json(json.dumps(unc.as_dict()).encode(),
                                    f"colour-uncertainty-{illuminant}.json")
