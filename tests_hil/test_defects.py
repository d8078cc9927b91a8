"""Defect pixels (hot, dead, stuck, blinking, clusters, lines) by zone; DSNU/PRNU without
defects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.analysis.defects import CLASSES, measure_defects
from harness.errors import MeasurementError
from harness.evidence import plots
from harness.run.capture_analyses import role_stack_stats

pytestmark = [pytest.mark.hil_requires("camera", "light"), pytest.mark.hil_family("defects")]


def stack_stats(session, sequence, role):  # type: ignore[no-untyped-def]
    """The per-pixel sums of a sequence's ``role`` stack (every slot's in the analysis
    workers on a multi-up station)."""
    return session.analysed(f"stack:{sequence}:{role}", sequence, role_stack_stats,
                            lambda _: {"role": role})


def zone_totals(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Defect pixels per zone, checked against the class counts (every pixel has one class
    and one zone, so the zone totals must add up to the number of defect pixels)."""
    totals = {zone: result.zone_total(zone) for zone in result.zone_counts}
    if sum(totals.values()) != result.total:
        raise MeasurementError(f"defect zone totals {totals} do not add up to the "
                               f"{result.total} defect pixels found", figure="defect_count")
    return totals


@pytest.mark.hil_measures(*(f"defect_{cls}_count" for cls in CLASSES), "defect_count",
                          "defect_cluster_count", "defect_cluster_max_size",
                          "defect_line_count")
def test_defect_pixels(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """Hot/dead/stuck/blinking pixels by zone, clusters and column/row defects; the class
    and zone counts with their standard uncertainty from the detection margin."""
    dark_cs = hil_session.sequence("dark_stack")
    dark = stack_stats(hil_session, "dark_stack", "dark")
    flat = stack_stats(hil_session, "flat_stack", "flat")
    first = dark_cs.records(role="dark")[0]
    result = measure_defects(dark, flat, cfa=hil_session.cfa,
                             conditions={"exposure_us": first.exposure_us,
                                         "gain_db": first.gain_db,
                                         "temperature_c": first.temperature_c})
    # u from the detection margin (harness.analysis.defects); None for blinking, clusters, lines
    for cls, count in result.counts.items():
        hil_check(f"defect_{cls}_count", float(count), "px",
                  uncertainty=result.count_uncertainty.get(cls))
    for zone, total in zone_totals(result).items():
        hil_check("defect_count", float(total), "px", zone=zone,
                  uncertainty=result.zone_uncertainty.get(zone))
    sizes = [c.size for c in result.clusters]
    hil_check("defect_cluster_count", float(len(sizes)), "clusters")
    hil_check("defect_cluster_max_size", float(max(sizes, default=0)), "px")
    hil_check("defect_line_count", float(len(result.lines)), "lines")
    marks = [(r, c, cls) for cls, pix in result.pixels.items() for r, c in pix]
    rows = np.array([m[0] for m in marks], dtype=int)
    cols = np.array([m[1] for m in marks], dtype=int)
    hil_session.attach_png(plots.defect_map(dark.mean_img, rows, cols,
                                            kinds=[m[2] for m in marks]), "defect map")
    hil_session.attach_json(json.dumps(result.as_dict(), default=str).encode(), "defects.json")


@pytest.mark.hil_measures("dsnu_e", "dsnu_row_e", "dsnu_column_e", "prnu_pixel_pct",
                          "prnu_pct")
def test_dsnu_prnu(hil_session, hil_check) -> None:  # type: ignore[no-untyped-def]
    """DSNU and PRNU (EMVA 1288 R4.0 §8) with defect pixels excluded."""
    from test_linearity import emva_result

    result = emva_result(hil_session, mosaic=True)
    nu = result.nonuniformity
    if nu is None:
        raise MeasurementError("the exposure sweep has no spatial stacks: DSNU and PRNU "
                               "cannot be measured", figure="dsnu_e")
    # with a lens in front, the total PRNU holds the lens shading (judged by the uniformity
    # test); the pixel part of the Release-4 split is the sensor's own
    for name, unit in (("dsnu_e", "e-"), ("dsnu_row_e", "e-"), ("dsnu_column_e", "e-"),
                       ("prnu_pixel_pct", "%"), ("prnu_pct", "%")):
        hil_check(name, getattr(nu, name), unit, flag=result.flag(name))
