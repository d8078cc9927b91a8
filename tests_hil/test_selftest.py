"""Station self-test: a short sequence on the station's reference module, compared with the
figures stored for that station; drift beyond the tolerance fails.

Run it on its own (it is left out of a normal qualification run)::

    pytest tests_hil -m selftest --station stations/sim.yaml                 # compare
    pytest tests_hil -m selftest --station stations/sim.yaml --selftest-record  # store

The reference lives next to the station file as ``<station>.selftest.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator

pytestmark = [pytest.mark.selftest, pytest.mark.hil_requires("camera", "light"),
              pytest.mark.hil_family("selftest")]

#: figure -> (unit, allowed relative drift)
FIGURES = {
    "selftest_dark_mean_dn": ("DN", 0.02),
    "selftest_dark_noise_dn": ("DN", 0.10),
    "selftest_flat_signal_dn_per_ms": ("DN/ms", 0.05),
    "selftest_flat_noise_dn": ("DN", 0.10),
}


def reference_path(station_file: Path) -> Path:
    return station_file.with_name(station_file.stem + ".selftest.json")


def stack_figures(cs, role):  # type: ignore[no-untyped-def]
    acc = StackAccumulator()
    records = cs.records(role=role, group="spatial")
    for rec in records:
        acc.add(cs.load(rec))
    stats = acc.stats()
    return float(stats.mean_img.mean()), float(np.sqrt(stats.temporal_var_dn2())), records[0]


@pytest.mark.hil_measures(*FIGURES)
def test_station_selftest(hil_session, hil_check, request) -> None:  # type: ignore[no-untyped-def]
    """Dark and flat stacks on the reference module against the station's stored figures."""
    dark_cs = hil_session.sequence("dark_stack", frames=4, exposure_us=10000.0)
    flat_cs = hil_session.sequence("flat_stack", frames=4, target_fraction=0.5)
    dark_mean, dark_noise, _ = stack_figures(dark_cs, "dark")
    flat_mean, flat_noise, flat_rec = stack_figures(flat_cs, "flat")
    exposure_ms = float(flat_rec.exposure_us or flat_rec.exposure_us_set) / 1000.0
    figures = {
        "selftest_dark_mean_dn": dark_mean,
        "selftest_dark_noise_dn": dark_noise,
        "selftest_flat_signal_dn_per_ms": (flat_mean - dark_mean) / exposure_ms,
        "selftest_flat_noise_dn": flat_noise,
    }
    path = reference_path(hil_session.station.config.source)
    if request.config.getoption("selftest_record"):
        path.write_text(json.dumps({
            "station": hil_session.station.id,
            "camera": hil_session.camera.identity().as_dict(),
            "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "figures": {k: {"value": v, "unit": FIGURES[k][0], "tolerance": FIGURES[k][1]}
                        for k, v in figures.items()}}, indent=1) + "\n")
        for name, value in figures.items():  # recorded, not judged against themselves
            hil_check.against(name, value, FIGURES[name][0],
                              limit_id=f"SELFTEST-{name[9:].upper()}")
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no self-test reference for this station; record one "
                                f"with --selftest-record on a known-good reference module")
    stored = json.loads(path.read_text())["figures"]
    for name, value in figures.items():
        ref = float(stored[name]["value"])
        tol = float(stored[name]["tolerance"]) * abs(ref)
        hil_check.against(name, value, FIGURES[name][0], limit_id=f"SELFTEST-{name[9:].upper()}",
                          low=ref - tol, high=ref + tol)
