"""Colour accuracy: ΔE2000 after white balance + CCM (leave-one-out, and with the product's
production CCM when the spec gives one), raw white-balance error; under the light the meter
measured, never under an illuminant the spec merely assumes."""

from __future__ import annotations

import json

import colour
import numpy as np
import pytest
from conftest import sequence_mean

from harness.analysis.colour import chart_reference, compare_illuminant, measure_colour
from harness.analysis.flatfield import flat_field_correct
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


@pytest.mark.hil_measures("delta_e_2000_mean", "delta_e_2000_max", "white_balance_error",
                          "white_balance_gain")
def test_colour_accuracy(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """ColorChecker 24 under each illuminant the spec names, measured by the meter, on the
    flat-field corrected chart (the lens shading is judged by the shading test)."""
    if hil_session.cfa is None:
        pytest.skip("a monochrome camera has no colour to qualify")
    cond = hil_session.condition("colour")
    # a tunable light is set to each listed illuminant; with none listed the chart is
    # captured under the light as it is, which must be the spec's reference illuminant
    illuminants = list(cond.get("illuminants") or [cond.get("reference_illuminant", "D65")])
    tolerance = float(cond.get("illuminant_tolerance_delta_uv", DEFAULT_TOLERANCE_UV))
    production = {"ccm": cond.get("ccm"), "wb_gains": cond.get("wb_gains")}
    cs = hil_session.sequence("colour")
    flat = sequence_mean(hil_session, "flat_stack", "flat")
    black = hil_session.black_dn / (2 ** hil_session.bits - 1)
    for step, illuminant in enumerate(illuminants):
        records = [r for r in cs.records(role="colour") if r.step == step]
        light = measured_light(records, illuminant, tolerance)
        hil_session.attach_json(json.dumps(light.as_dict()).encode(),
                                f"light-{illuminant}.json")
        raw = np.mean([cs.load(r) for r in records], axis=0)
        corrected = flat_field_correct(raw, flat, hil_session.black_dn, hil_session.cfa)
        full = 2 ** hil_session.bits - 1
        img = prepare(np.rint(np.clip(corrected, 0, full)).astype(np.uint16), "colour chart",
                      bayer=hil_session.cfa, bits=hil_session.bits)
        hil_session.attach_thumbnail(raw, f"colour chart {illuminant} (mean)")
        result = measure_colour(rgb_image(img), illuminant=illuminant, black_level=black,
                                **production)
        for method, mean, worst in (
                ("leave-one-out", result.delta_e_2000_mean_loo, result.delta_e_2000_max_loo),
                ("in-sample", result.delta_e_2000_mean_in_sample,
                 result.delta_e_2000_max_in_sample),
                ("production", result.delta_e_2000_mean_production,
                 result.delta_e_2000_max_production)):
            if method == "production" and production["ccm"] is None:
                continue
            hil_check("delta_e_2000_mean", mean, "dE00", illuminant=illuminant, ccm=method)
            hil_check("delta_e_2000_max", worst, "dE00", illuminant=illuminant, ccm=method)
        hil_check("white_balance_error", result.white_balance_error_dc_ab, "dCab",
                  illuminant=illuminant)
        gains = result.wb_gains  # per channel, on the neutral patches
        for channel, index in (("R", 0), ("B", 2)):
            hil_check("white_balance_gain", gains[index] / gains[1], "ratio",
                      illuminant=illuminant, channel=channel)
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
