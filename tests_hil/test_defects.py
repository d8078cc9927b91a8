"""Defect pixels (hot, dead, stuck, clusters, lines) by zone, and DSNU/PRNU without defects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator
from harness.analysis.defects import detect_defects
from harness.evidence import plots

pytestmark = [pytest.mark.hil_requires("camera", "light"), pytest.mark.hil_family("defects")]


def stack_stats(cs, role):  # type: ignore[no-untyped-def]
    acc = StackAccumulator()
    for rec in cs.records(role=role, group="spatial"):
        acc.add(cs.load(rec))
    return acc.stats()


def test_defect_pixels(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """Hot/dead/stuck pixels by zone, clusters and column/row defects."""
    dark_cs = hil_suite.sequence("dark_stack", test_id)
    flat_cs = hil_suite.sequence("flat_stack", test_id)
    dark = stack_stats(dark_cs, "dark")
    flat = stack_stats(flat_cs, "flat")
    first = dark_cs.records(role="dark")[0]
    result = detect_defects(dark, flat, cfa=hil_suite.cfa,
                            conditions={"exposure_us": first.exposure_us,
                                        "gain_db": first.gain_db,
                                        "temperature_c": first.temperature_c})
    counts = result.counts
    for cls in ("hot", "dead", "stuck", "weak", "bright", "blinking"):
        if cls in counts:
            hil_check(f"defect_{cls}_count", float(counts[cls]), "px")
    for zone, by_class in result.zone_counts.items():
        hil_check("defect_count", float(sum(by_class.values())), "px", zone=zone)
    sizes = [c.size for c in result.clusters]
    hil_check("defect_cluster_count", float(len(sizes)), "clusters")
    hil_check("defect_cluster_max_size", float(max(sizes, default=0)), "px")
    hil_check("defect_line_count", float(len(result.lines)), "lines")
    marks = [(r, c, cls) for cls, pix in result.pixels.items() for r, c in pix]
    rows = np.array([m[0] for m in marks], dtype=int)
    cols = np.array([m[1] for m in marks], dtype=int)
    hil_suite.attach_png(test_id, plots.defect_map(dark.mean_img, rows, cols,
                                                   kinds=[m[2] for m in marks]), "defect map")
    hil_suite.attach_json(test_id, json.dumps(result.as_dict(), default=str).encode(),
                          "defects.json")


def test_dsnu_prnu(hil_suite, hil_check, test_id) -> None:  # type: ignore[no-untyped-def]
    """DSNU and PRNU (EMVA 1288 R4.0 §8) with defect pixels excluded."""
    from test_linearity import emva_result

    result = emva_result(hil_suite, test_id, mosaic=True)
    nu = result.nonuniformity
    assert nu is not None, "the exposure sweep has no spatial stacks"
    hil_check("dsnu_e", nu.dsnu_e, "e-")
    hil_check("dsnu_row_e", nu.dsnu_row_e, "e-")
    hil_check("dsnu_column_e", nu.dsnu_column_e, "e-")
    # with a lens in front, the total PRNU holds the lens shading (judged by the uniformity
    # test); the pixel part of the Release-4 split is the sensor's own
    hil_check("prnu_pixel_pct", nu.prnu_pixel_pct, "%")
    hil_check("prnu_pct", nu.prnu_pct, "%")
