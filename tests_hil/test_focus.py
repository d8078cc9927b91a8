"""Best focus by a sweep through the actuator; MTF50 and MTF at Nyquist/2, centre and corners."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import mean_frame, sequence_mean

from harness.analysis.chromatic import measure_lateral_ca
from harness.analysis.edges import FIELD_POSITIONS, find_edge_rois
from harness.analysis.flatfield import flat_field_correct
from harness.analysis.focus import measure_focus_sweep
from harness.analysis.sfr import measure_sfr_rois, summarise_full_field
from harness.evidence import plots
from harness.inputs.image_input import gray_image, prepare, sfr_plane

pytestmark = [pytest.mark.hil_requires("camera", "light", "focus", "chart"),
              pytest.mark.hil_family("focus")]


def _gray(session, frame):  # type: ignore[no-untyped-def]
    img = prepare(frame, "focus frame", bayer=session.cfa, bits=session.bits)
    return gray_image(img)


def best_focus(session):  # type: ignore[no-untyped-def]
    """The focus sweep analysed (once per run); the actuator is left at best focus."""
    def analyse():  # type: ignore[no-untyped-def]
        cs = session.sequence("focus_sweep")
        records = cs.records(role="focus")
        frames = [_gray(session, cs.load(r)) for r in records]
        positions = [float(r.focus_position) for r in records]  # type: ignore[arg-type]
        result = measure_focus_sweep(frames, positions)
        focus = session.station.device("focus")
        focus.move_to(float(result.best_focus.best_position))
        focus.wait_settled()
        return result

    return session.cached("focus_sweep", analyse)


@pytest.mark.hil_measures("best_focus_um", "depth_of_focus_um", "field_tilt_range_um")
def test_best_focus(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Best focus from a Tenengrad sweep (Gaussian fit through the top), depth of focus."""
    result = best_focus(hil_session)
    hil_check("best_focus_um", result.best_focus.best_position, "um")
    hil_check("depth_of_focus_um", result.best_focus.depth_of_focus, "um")
    hil_check("field_tilt_range_um", result.field_tilt_range, "um")
    hil_session.attach_png(plots.focus_sweep(
        np.array(result.positions), np.array(result.values),
        best=result.best_focus.best_position, position_unit="um", metric_name="Tenengrad"),
        "focus sweep")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "focus.json")


def edge_chart(session):  # type: ignore[no-untyped-def]
    """The edge chart at best focus, flat-field corrected, and its ten edge ROIs (once per
    run): the lens shading would leave the corner squares too dark for the finder; the
    correction is a smooth per-pixel gain, flat over an edge's ROI. A missing ROI is an ERROR
    naming it."""
    def analyse():  # type: ignore[no-untyped-def]
        best_focus(session)
        cs = session.sequence("edge")
        flat = sequence_mean(session, "flat_stack", "flat")
        raw = flat_field_correct(mean_frame(cs, "edge"), flat, session.black_dn, session.cfa)
        raw = np.clip(raw, 0, 2 ** session.bits - 1)
        img = prepare(np.rint(raw).astype(np.uint16), "edge chart", bayer=session.cfa,
                      bits=session.bits)
        session.attach_thumbnail(raw, "edge chart (mean)")
        # green pixels only on a colour sensor: demosaicing would add its own blur
        plane = sfr_plane(img, "G" if session.cfa is not None else "Y")
        rois = find_edge_rois(plane.plane, require=FIELD_POSITIONS)
        return img, plane, rois

    return session.cached("edge_chart", analyse)


@pytest.mark.hil_measures("mtf50_cy_per_px", "mtf_at_nyquist_half",
                          "corner_to_centre_mtf50_ratio")
def test_mtf_centre_and_corners(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """ISO 12233 e-SFR at best focus (the robust method, docs/standards.md#e-sfr-accuracy):
    MTF50 and MTF at Nyquist/2 at the centre and the four corners, vertical and horizontal
    edge each."""
    _, plane, rois = edge_chart(hil_session)
    results = measure_sfr_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                               channel=plane.channel, oversampling=plane.oversampling,
                               phase_pitch=plane.phase_pitch)
    summary = summarise_full_field(results)
    for r in results:
        zone = "centre" if r.label.startswith("centre") else "corner"
        hil_check("mtf50_cy_per_px", r.mtf50_cy_per_px, "cy/px", zone=zone, field=r.label)
        hil_check("mtf_at_nyquist_half", r.mtf_at_025, "1", zone=zone, field=r.label)
    hil_check("corner_to_centre_mtf50_ratio", summary.corner_to_centre_mtf50_ratio, "ratio")
    curves = {r.label: np.interp(np.linspace(0, 0.5, 51), r.frequencies_cy_per_px, r.mtf)
              for r in results}
    hil_session.attach_png(plots.mtf_curves(np.linspace(0, 0.5, 51), curves),
                           "MTF per field point")
    hil_session.attach_json(json.dumps([r.as_dict() for r in results]).encode(), "sfr.json")


@pytest.mark.hil_measures("lateral_ca_pct", "lateral_ca_max_px")
def test_lateral_chromatic_aberration(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Lateral chromatic displacement (ISO 19084's quantity) on the same ten edges: the
    largest R-G or B-G edge shift, judged as % of the half-diagonal (independent of the sensor
    size), recorded in px. A mono sensor has no colour planes: skipped."""
    if hil_session.cfa is None:
        pytest.skip("a mono sensor has no lateral colour to measure")
    img, _, rois = edge_chart(hil_session)
    result = measure_lateral_ca(img.data, rois, bayer=img.bayer, saturation=img.saturation)
    hil_check("lateral_ca_pct", result.lateral_ca_pct, "%")
    hil_check("lateral_ca_max_px", result.lateral_ca_max_px, "px")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "lateral_ca.json")
