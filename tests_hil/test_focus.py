"""Best focus by a sweep through the actuator; MTF50 and MTF at Nyquist/2, centre and corners."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import mean_frame

from harness.analysis.edges import find_edge_rois
from harness.analysis.focus import analyze_sweep
from harness.analysis.sfr import measure_rois, summarise_field
from harness.capture.image_input import gray_image, prepare, sfr_plane
from harness.evidence import plots

pytestmark = [pytest.mark.hil_requires("camera", "light", "focus", "chart"),
              pytest.mark.hil_family("focus")]


def _gray(suite, frame):  # type: ignore[no-untyped-def]
    img = prepare(frame, "focus frame", bayer=suite.cfa, bits=suite.bits)
    return gray_image(img)


def best_focus(suite, test_id):  # type: ignore[no-untyped-def]
    """The focus sweep analysed (once per session); the actuator is left at best focus."""
    if "focus_result" not in suite.captures:
        cs = suite.sequence("focus_sweep", test_id)
        records = cs.records(role="focus")
        frames = [_gray(suite, cs.load(r)) for r in records]
        positions = [float(r.focus_position) for r in records]  # type: ignore[arg-type]
        result = analyze_sweep(frames, positions)
        suite.captures["focus_result"] = result  # type: ignore[assignment]
        focus = suite.station.device("focus")
        focus.move_to(float(result.best_focus.best_position))
        focus.wait_settled()
    return suite.captures["focus_result"]


def test_best_focus(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """Best focus from a Tenengrad sweep (Gaussian fit through the top), depth of focus."""
    result = best_focus(hil_suite, test_id)
    hil_check("best_focus_um", result.best_focus.best_position, "um")
    hil_check("depth_of_focus_um", result.best_focus.depth_of_focus, "um")
    hil_check("field_tilt_range_um", result.field_tilt_range, "um")
    hil_suite.attach_png(test_id, plots.focus_sweep(
        np.array(result.positions), np.array(result.values),
        best=result.best_focus.best_position, position_unit="um", metric_name="Tenengrad"),
        "focus sweep")
    hil_suite.attach_json(test_id, json.dumps(result.as_dict()).encode(), "focus.json")


def test_mtf_centre_and_corners(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """ISO 12233 e-SFR at best focus: MTF50 and MTF at Nyquist/2 per field point."""
    best_focus(hil_suite, test_id)
    cs = hil_suite.sequence("edge", test_id)
    raw = mean_frame(cs, "edge")
    img = prepare(np.rint(raw).astype(np.uint16), "edge chart", bayer=hil_suite.cfa,
                  bits=hil_suite.bits)
    hil_suite.attach_thumbnail(raw, "edge chart (mean)")
    # green pixels only on a colour sensor: demosaicing would add its own blur
    plane = sfr_plane(img, "G" if hil_suite.cfa is not None else "Y")
    rois = find_edge_rois(plane.plane)
    results = measure_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                           channel=plane.channel, oversampling=plane.oversampling,
                           phase_pitch=plane.phase_pitch)
    for r in results:
        zone = "centre" if r.label.startswith("centre") else "corner"
        hil_check("mtf50_cy_per_px", r.mtf50_cy_per_px, "cy/px", zone=zone, field=r.label)
        hil_check("mtf_at_nyquist_half", r.mtf_at_025, "1", zone=zone, field=r.label)
    summary = summarise_field(results)
    if summary is None:
        raise AssertionError(f"the edge chart's centre and corners were not all found: "
                             f"{[r.label for r in results]}")
    hil_check("corner_to_centre_mtf50_ratio", summary.corner_to_centre_mtf50_ratio, "ratio")
    curves = {r.label: np.interp(np.linspace(0, 0.5, 51), r.frequencies_cy_per_px, r.mtf)
              for r in results}
    hil_suite.attach_png(test_id, plots.mtf_curves(np.linspace(0, 0.5, 51), curves),
                         "MTF per field point")
    hil_suite.attach_json(test_id, json.dumps([r.as_dict() for r in results]).encode(),
                          "sfr.json")
