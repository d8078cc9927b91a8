"""Station self-test: a short sequence on the station's reference module, compared with the
figures stored for that station; drift beyond the tolerance fails.

It uses the statistics of the measurement system analysis (docs/standards.md#decision-rules):
each stack is split into ``GROUPS`` groups of ``GROUP_FRAMES`` frames, so every figure has a
repeatability standard deviation s from its groups and a standard uncertainty s/√GROUPS for
their mean (GUM 4.2.3). Recording a reference stores the mean and s, and refuses a figure whose
repeatability is too coarse to see a drift of its tolerance (%GRR of the drift band over 30 %,
AIAG MSA). A check judges the drift band ``reference ± tolerance`` with guarded acceptance,
band k·u, k = 2, u = √(u_now² + u_reference²): PASS only when the figure is proven inside.

Run it on its own (it is left out of a normal qualification run)::

    pytest tests_hil -m selftest --station stations/sim.yaml                 # compare
    pytest tests_hil -m selftest --station stations/sim.yaml --selftest-record  # store

The reference lives next to the station file as ``<station>.selftest.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.accumulators import StackAccumulator
from harness.analysis.grr import measure_repeatability
from harness.errors import ConfigError, MeasurementError

pytestmark = [pytest.mark.selftest, pytest.mark.hil_requires("camera", "light"),
              pytest.mark.hil_family("selftest")]

#: figure -> (unit, allowed relative drift)
FIGURES = {
    "selftest_dark_mean_dn": ("DN", 0.02),
    "selftest_dark_noise_dn": ("DN", 0.10),
    "selftest_flat_signal_dn_per_ms": ("DN/ms", 0.05),
    "selftest_flat_noise_dn": ("DN", 0.10),
}
GROUPS = 4
GROUP_FRAMES = 4
COVERAGE_K = 2.0


def reference_path(station_file: Path) -> Path:
    return station_file.with_name(station_file.stem + ".selftest.json")


def group_figures(cs, role):  # type: ignore[no-untyped-def]
    """(mean, temporal noise) of each group of ``GROUP_FRAMES`` frames, and the first record."""
    records = cs.records(role=role, group="spatial")
    out = []
    for g in range(GROUPS):
        acc = StackAccumulator()
        for rec in records[g * GROUP_FRAMES:(g + 1) * GROUP_FRAMES]:
            acc.add(cs.load(rec))
        stats = acc.stats()
        out.append((float(stats.mean_img.mean()), float(np.sqrt(stats.temporal_var_dn2()))))
    return out, records[0]


def measure(hil_session) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Each figure once per group."""
    frames = GROUPS * GROUP_FRAMES
    dark, _ = group_figures(hil_session.sequence("dark_stack", frames=frames,
                                                 exposure_us=10000.0), "dark")
    flat, rec = group_figures(hil_session.sequence("flat_stack", frames=frames,
                                                   target_fraction=0.5), "flat")
    exposure_ms = float(rec.exposure_us or rec.exposure_us_set) / 1000.0
    return {
        "selftest_dark_mean_dn": [d[0] for d in dark],
        "selftest_dark_noise_dn": [d[1] for d in dark],
        "selftest_flat_signal_dn_per_ms": [(f[0] - d[0]) / exposure_ms
                                           for f, d in zip(flat, dark, strict=True)],
        "selftest_flat_noise_dn": [f[1] for f in flat],
    }


def limit_id(name: str) -> str:
    return f"SELFTEST-{name[9:].upper()}"


@pytest.mark.hil_measures(*FIGURES)
def test_station_selftest(hil_session, hil_check, request) -> None:  # type: ignore[no-untyped-def]
    """Dark and flat stacks on the reference module against the station's stored figures."""
    groups = measure(hil_session)
    path = reference_path(hil_session.station.config.source)
    if request.config.getoption("selftest_record"):
        record(hil_session, hil_check, path, groups)
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no self-test reference for this station; record one "
                                f"with --selftest-record on a known-good reference module")
    stored = json.loads(path.read_text())["figures"]
    for name, values in groups.items():
        ref = stored[name]
        if "sd" not in ref:
            raise ConfigError(f"{name} has no repeatability sd (recorded before the self-test "
                              "kept one); record the reference again with --selftest-record",
                              source=str(path), field=f"figures.{name}.sd")
        mean, u_now = mean_and_u(values)
        u_ref = float(ref["sd"]) / math.sqrt(int(ref["groups"]))
        tol = float(ref["tolerance"]) * abs(float(ref["value"]))
        hil_check.against(name, mean, FIGURES[name][0], limit_id=limit_id(name),
                          low=float(ref["value"]) - tol, high=float(ref["value"]) + tol,
                          uncertainty=math.hypot(u_now, u_ref), k=COVERAGE_K)


def mean_and_u(values: list[float]) -> tuple[float, float]:
    """The mean of the groups and its standard uncertainty s/√n (GUM 4.2.3)."""
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


def record(hil_session, hil_check, path: Path, groups) -> None:  # type: ignore[no-untyped-def]
    """Store the reference: per figure the mean of the groups, their repeatability s and the
    drift tolerance; a figure the self-test cannot resolve (%GRR of the drift band > 30 %)
    is an ERROR and nothing is stored."""
    figures = {}
    for name, values in groups.items():
        mean, u = mean_and_u(values)
        tol = FIGURES[name][1] * abs(mean)
        study = measure_repeatability(values, low=mean - tol, high=mean + tol)
        if study.capability == "not capable":
            raise MeasurementError(
                f"{name}: the self-test's repeatability s = {study.sd:.4g} {FIGURES[name][0]} "
                f"is {study.pct_grr:.0f} % of its drift band ±{tol:.4g} (over 30 %): it could "
                "not see a drift of that size; not recorded", figure=name)
        figures[name] = {"value": mean, "unit": FIGURES[name][0],
                         "tolerance": FIGURES[name][1], "sd": study.sd, "groups": len(values),
                         "pct_grr": study.pct_grr}
        hil_check.against(name, mean, FIGURES[name][0], limit_id=limit_id(name),
                          uncertainty=u)  # recorded, not judged against itself
    path.write_text(json.dumps({
        "station": hil_session.station.id,
        "camera": hil_session.camera.identity().as_dict(),
        "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "figures": figures}, indent=1) + "\n")
