"""Shading: relative illumination (corner/centre per channel) and colour shading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import sequence_mean

from harness.analysis.uniformity import measure_uniformity
from harness.errors import MeasurementError
from harness.evidence import plots

pytestmark = [pytest.mark.hil_requires("camera", "light"), pytest.mark.hil_family("uniformity")]


@pytest.mark.hil_measures("relative_illumination_min", "colour_shading_max_pct")
def test_relative_illumination_and_colour_shading(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Relative illumination per channel and colour shading (R/G, B/G) over a grid."""
    flat = sequence_mean(hil_session, "flat_stack", "flat")
    dark = sequence_mean(hil_session, "dark_stack", "dark")
    if dark.shape != flat.shape:
        raise MeasurementError(f"dark {dark.shape} and flat {flat.shape} stacks differ in size")
    hil_session.attach_thumbnail(flat, "flat field (mean)")
    # the dark stack may use another exposure: only its offset (black level) is subtracted
    result = measure_uniformity(flat, dark_mean=np.full_like(dark, np.median(dark)),
                                cfa=hil_session.cfa)
    for channel, cu in result.channels.items():
        hil_check("relative_illumination_min", cu.relative_illumination_min, "ratio",
                  channel=channel)
    hil_check("relative_illumination_min", result.relative_illumination_min, "ratio",
              channel="all")
    for ratio, value in result.colour_shading_max_pct.items():
        hil_check("colour_shading_max_pct", value, "%", channel=ratio)
    first = next(iter(result.channels.values()))
    grid = np.asarray(first.grid, dtype=float)
    hil_session.attach_png(plots.shading_map(100.0 * grid / grid.max()), "shading map")
    iso = result.iso_grid
    hil_session.attach_png(plots.shading_grid_map(
        np.asarray(iso.luminance_pct),
        {ratio: np.asarray(cells) for ratio, cells in iso.colour_deviation_pct.items()}),
        "ISO 17957 shading grid")
    hil_session.attach_json(json.dumps(result.as_dict()).encode(), "uniformity.json")
