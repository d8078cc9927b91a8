"""Colour accuracy: ΔE2000 mean and max after white balance + CCM, white-balance error."""

from __future__ import annotations

import json

import colour
import numpy as np
import pytest

from harness.analysis.colour import analyze_colour, chart_reference
from harness.capture.image_input import prepare, rgb_image
from harness.evidence import plots

pytestmark = [pytest.mark.hil_requires("camera", "light", "chart"),
              pytest.mark.hil_family("colour")]


def test_colour_accuracy(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """ColorChecker 24 under each illuminant the spec names."""
    if hil_suite.cfa is None:
        pytest.skip("a monochrome camera has no colour to qualify")
    cond = hil_suite.condition("colour")
    # a tunable light is set to each listed illuminant (by CCT); with none listed the chart is
    # captured under the light as it is, whose illuminant the spec names
    illuminants = list(cond.get("illuminants") or [cond.get("reference_illuminant", "D65")])
    cs = hil_suite.sequence("colour", test_id)
    for step, illuminant in enumerate(illuminants):
        records = cs.records(role="colour")
        frames = [cs.load(r) for r in records if r.step == step]
        raw = np.mean(frames, axis=0)
        black = float(hil_suite.camera.get("BlackLevel"))
        img = prepare(np.rint(raw).astype(np.uint16), "colour chart", bayer=hil_suite.cfa,
                      bits=hil_suite.bits)
        hil_suite.attach_thumbnail(raw, f"colour chart {illuminant} (mean)")
        rgb = rgb_image(img)
        result = analyze_colour(rgb, illuminant=illuminant,
                                black_level=black / (2 ** hil_suite.bits - 1))
        hil_check("delta_e_2000_mean", result.delta_e_2000_mean, "dE00", illuminant=illuminant)
        hil_check("delta_e_2000_max", result.delta_e_2000_max, "dE00", illuminant=illuminant)
        hil_check("white_balance_error", result.white_balance_error_dc_ab, "dCab",
                  illuminant=illuminant)
        ref = chart_reference(illuminant)
        measured = np.array([p.rgb for p in result.patches])
        measured = measured / max(float(measured.max()), 1e-9)
        display = np.clip(colour.cctf_encoding(np.clip(measured, 0, 1), function="sRGB"), 0, 1)
        reference = np.clip(colour.cctf_encoding(np.clip(ref.rgb, 0, 1), function="sRGB"), 0, 1)
        hil_suite.attach_png(test_id, plots.colorchecker(
            display, reference, np.array([p.delta_e_2000 for p in result.patches]),
            names=[p.name for p in result.patches], title=f"ColorChecker under {illuminant}"),
            f"ColorChecker {illuminant}")
        hil_suite.attach_json(test_id, json.dumps(result.as_dict()).encode(),
                              f"colour-{illuminant}.json")
