"""Lens and module geometry: blemishes (particle shadows) and the optical centre on the flat
field, radial distortion on the dot-grid chart (docs/products/cm12.md#lens-geometry)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import mean_frame, sequence_mean

from harness.analysis.blemish import measure_blemishes
from harness.analysis.distortion import measure_distortion
from harness.analysis.geometry import measure_optical_centre
from harness.errors import MeasurementError
from harness.inputs.image_input import gray_image, prepare

pytestmark = [pytest.mark.hil_family("geometry")]


def _flat_without_offset(session):  # type: ignore[no-untyped-def]
    """The flat stack's mean with the measured black level subtracted: an offset left in
    dilutes a shadow's contrast (a 64 DN offset reads it ~13 % low)."""
    def subtract():  # type: ignore[no-untyped-def]
        flat = sequence_mean(session, "flat_stack", "flat")
        if session.black_dn is None:
            raise MeasurementError("no black level measured: the flat keeps its offset")
        return flat - float(session.black_dn)

    return session.cached("flat_without_offset", subtract)  # once per run, for both tests


@pytest.mark.hil_requires("camera", "light")
@pytest.mark.hil_measures("blemish_max_contrast_pct", "blemish_count")
def test_blemishes(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Particle shadows in the flat field: the strongest one's contrast is judged, the count of
    those above the analysis's 1 % / 6 px floor is recorded."""
    result = measure_blemishes(_flat_without_offset(hil_session), bayer=hil_session.cfa)
    hil_check("blemish_max_contrast_pct", result.max_contrast_pct, "%")
    hil_check("blemish_count", float(result.count), "blemishes")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "blemishes.json")


@pytest.mark.hil_requires("camera", "light")
@pytest.mark.hil_measures("optical_centre_offset_pct", "optical_centre_offset_px")
def test_optical_centre(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """The centre of the relative-illumination surface against the image centre: its distance
    as % of the half-diagonal is judged (independent of the sensor size), in px recorded."""
    flat = _flat_without_offset(hil_session)
    result = measure_optical_centre(flat, bayer=hil_session.cfa)
    height, width = flat.shape
    half_diagonal = 0.5 * math.hypot(width, height)
    radius = result.optical_centre_offset_radius_px
    hil_check("optical_centre_offset_pct", 100.0 * radius / half_diagonal, "%")
    hil_check("optical_centre_offset_px", radius, "px")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "optical_centre.json")


@pytest.mark.hil_requires("camera", "light", "chart")
@pytest.mark.hil_measures("radial_distortion_pct", "smia_tv_distortion_pct")
def test_distortion(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Radial distortion at 0.5, 0.7 and 0.9 of the half-diagonal and SMIA TV distortion from
    the dot-grid chart; a station whose chart wheel has no dot grid skips (the limits are then
    named unjudged)."""
    charts = hil_session.station.device("chart").charts()
    if "dotgrid" not in charts:
        pytest.skip(f"the station's chart wheel has no 'dotgrid' chart ({', '.join(charts)})")
    cs = hil_session.sequence("dotgrid")
    raw = mean_frame(cs, "dotgrid")
    img = prepare(np.rint(raw).astype(np.uint16), "dot-grid chart", bayer=hil_session.cfa,
                  bits=hil_session.bits)
    hil_session.attach_thumbnail(raw, "dot-grid chart (mean)")
    result = measure_distortion(gray_image(img))
    for radius, value in result.radial_distortion_pct.items():
        hil_check("radial_distortion_pct", value, "%", radius=radius)
    hil_check("smia_tv_distortion_pct", result.smia_tv_distortion_pct, "%")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "distortion.json")
