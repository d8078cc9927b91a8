"""Best focus by a sweep through the actuator; MTF50 and MTF at Nyquist/2, centre and corners."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import mean_frame, sequence_mean

from harness.analysis.chromatic import measure_lateral_ca
from harness.analysis.edges import FIELD_POSITIONS, find_edge_rois
from harness.analysis.flatfield import flat_field_gain
from harness.analysis.sfr import measure_sfr_rois, summarise_full_field
from harness.analysis.uncertainty import FrameSequence, measure_sfr_uncertainty, replicates_of
from harness.evidence import plots
from harness.inputs.image_input import prepare, sfr_plane
from harness.run.capture_analyses import focus_sweep_of

pytestmark = [pytest.mark.hil_requires("camera", "light", "focus", "chart"),
              pytest.mark.hil_family("focus")]


def best_focus(session):  # type: ignore[no-untyped-def]
    """The focus sweep analysed (once per run; on a multi-up station every slot's in the
    analysis workers)."""
    return session.analysed("focus_sweep", "focus_sweep", focus_sweep_of,
                            lambda s: {"cfa": s.cfa, "bits": s.bits})


def at_best_focus(session):  # type: ignore[no-untyped-def]
    """The chart capture's focus position: the DUT's own best focus (on a focus stage that
    the slots of a multi-up station share, rounded to the station's shared_focus_step_um)."""
    return {"focus_um": float(best_focus(session).best_focus.best_position)}


def edge_set(session):  # type: ignore[no-untyped-def]
    """The edge chart's capture set, taken at the DUT's best focus."""
    return session.sequence_for("edge", at_best_focus)


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


def _edge_plane(session, raw, gain):  # type: ignore[no-untyped-def]
    """A mean of edge frames (DN) flat-field corrected with ``gain`` (``(raw - black) * gain +
    black``, :func:`~harness.analysis.flatfield.flat_field_correct`), rounded to the ADC's
    integers, and its e-SFR plane: the one preparation of the mean and of its replicates."""
    full = 2 ** session.bits - 1
    corrected = np.clip((raw - session.black_dn) * gain + session.black_dn, 0, full)
    img = prepare(np.rint(corrected).astype(np.uint16), "edge chart", bayer=session.cfa,
                  bits=session.bits)
    # green pixels only on a colour sensor: demosaicing would add its own blur
    return img, sfr_plane(img, "G" if session.cfa is not None else "Y"), corrected


def _edge_gain(session):  # type: ignore[no-untyped-def]
    flat = sequence_mean(session, "flat_stack", "flat")
    return session.cached("edge_flat_gain",
                          lambda: flat_field_gain(flat, session.black_dn, session.cfa))


def edge_chart(session):  # type: ignore[no-untyped-def]
    """The edge chart at best focus, flat-field corrected, and its ten edge ROIs (once per
    run): the lens shading would leave the corner squares too dark for the finder; the
    correction is a smooth per-pixel gain, flat over an edge's ROI. A missing ROI is an ERROR
    naming it."""
    def analyse():  # type: ignore[no-untyped-def]
        cs = edge_set(session)
        img, plane, raw = _edge_plane(session, mean_frame(cs, "edge"), _edge_gain(session))
        session.attach_thumbnail(raw, "edge chart (mean)")
        rois = find_edge_rois(plane.plane, require=FIELD_POSITIONS)
        return img, plane, rois

    return session.cached("edge_chart", analyse)


#: Groups of the flat stack's grouped jackknife (its component of the e-SFR and colour u).
FLAT_GROUPS = 2


def flat_gain_replicates(session):  # type: ignore[no-untyped-def]
    """Flat-field gains from the delete-a-group means of the flat stack (FLAT_GROUPS groups),
    frames read on demand: the flat's temporal noise is common to every chart frame, so the
    chart frames' spread misses it (measured: 20-40 % of the variance of ΔE00 and the white
    balance at the spec's 8 flat frames); None with fewer than 2 flat frames."""
    cs = session.sequence("flat_stack")
    records = cs.records(role="flat")
    if len(records) < 2:
        return None
    flats = FrameSequence(lambda i: cs.load(records[i]), len(records))
    return (flat_field_gain(f, session.black_dn, session.cfa)
            for f in replicates_of(flats, groups=min(FLAT_GROUPS, len(records))))


def edge_uncertainty(session):  # type: ignore[no-untyped-def]
    """Standard uncertainties of the e-SFR figures (once per run), or None with a single edge
    frame (harness.analysis.uncertainty): the jackknife over the edge frames (each delete-one
    mean corrected and prepared as the mean was, measured on the mean's ROIs) combined with
    the grouped jackknife over the flat stack (the mean corrected with each replicate flat)."""
    def analyse():  # type: ignore[no-untyped-def]
        _, _, rois = edge_chart(session)
        cs = edge_set(session)
        frames = [cs.load(r) for r in cs.records(role="edge")]
        if len(frames) < 2:
            return None
        gain = _edge_gain(session)
        planes = (_edge_plane(session, rep, gain)[1] for rep in replicates_of(frames))
        unc = measure_sfr_uncertainty(planes, rois, label="frames")
        gains = flat_gain_replicates(session)
        if gains is not None:
            mean = np.mean(frames, axis=0)
            unc = unc.combined(measure_sfr_uncertainty(
                (_edge_plane(session, mean, g)[1] for g in gains), rois, label="flat"))
        return unc

    return session.cached("edge_uncertainty", analyse)


@pytest.mark.hil_measures("mtf50_cy_per_px", "mtf_at_nyquist_half",
                          "corner_to_centre_mtf50_ratio")
def test_mtf_centre_and_corners(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """ISO 12233 e-SFR at best focus (the robust method, docs/standards.md#e-sfr-accuracy):
    MTF50 and MTF at Nyquist/2 at the centre and the four corners, vertical and horizontal
    edge each, each with its standard uncertainty from the frame-to-frame spread (jackknife
    over the edge frames; none from a single frame)."""
    _, plane, rois = edge_chart(hil_session)
    results = measure_sfr_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                               channel=plane.channel, oversampling=plane.oversampling,
                               phase_pitch=plane.phase_pitch)
    summary = summarise_full_field(results)
    unc = edge_uncertainty(hil_session)
    for r in results:
        zone = "centre" if r.label.startswith("centre") else "corner"
        hil_check("mtf50_cy_per_px", r.mtf50_cy_per_px, "cy/px", zone=zone, field=r.label,
                  uncertainty=None if unc is None else unc.mtf50_cy_per_px[r.label])
        hil_check("mtf_at_nyquist_half", r.mtf_at_025, "1", zone=zone, field=r.label,
                  uncertainty=None if unc is None else unc.mtf_at_025[r.label])
    hil_check("corner_to_centre_mtf50_ratio", summary.corner_to_centre_mtf50_ratio, "ratio",
              uncertainty=None if unc is None else unc.corner_to_centre_mtf50_ratio)
    curves = {r.label: np.interp(np.linspace(0, 0.5, 51), r.frequencies_cy_per_px, r.mtf)
              for r in results}
    hil_session.attach_png(plots.mtf_curves(np.linspace(0, 0.5, 51), curves),
                           "MTF per field point")
    hil_session.attach_json(json.dumps([r.as_dict() for r in results]).encode(), "sfr.json")
    if unc is not None:
        hil_session.attach_json(json.dumps(unc.as_dict()).encode(), "sfr-uncertainty.json")


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
