"""Standard uncertainties of the EMVA 1288 figures checked against the spread of repeats.

The same simulated module (tests_unit/emva_synth: one fixed DSNU/PRNU pattern, CM12's golden
figures: K = 0.6 DN/e-, eta = 0.6, sigma_d = 2.17 e-, full well 6000 e-, DSNU 1 e-, PRNU 0.6 %,
5 e-/s) is measured REPEATS times with a new noise seed each time, at the size the
qualification analyses at 640x480: the central window 0.125 (80 x 60 pixels), 16 exposure
steps with a bright and a dark pair each, 8-frame spatial stacks (tests_hil/limits/cm12.yaml,
conditions exposure_sweep and emva1288). For each figure the RMS of the stated u over the
repeats must lie within 30 % of the observed standard deviation (issue 19).

Tolerance: the sample standard deviation of REPEATS = 80 values has a relative standard
error 1 / sqrt(2 (n - 1)) = 8 %, so the 30 % bound is ~3.8 of those; the stated u is itself
a ~1-2 % estimate (its inputs are measured). The seeds are fixed, so the run is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.emva1288 import Emva1288Result, EmvaReducer, measure_emva1288
from harness.errors import ConfigError
from tests_unit.emva_synth import Sensor, exposure_sweep

REPEATS = 80
TOLERANCE = 0.30
TOP_E = 1.15 * 6000.0  # the sweep runs to 1.15 x the saturation exposure (capture sequence)

#: figures whose u the fixed-sweep repeats validate (saturation and DR: see the phase test)
REPEATABLE = ("system_gain_dn_per_e", "temporal_dark_noise_e", "temporal_dark_noise_dn",
              "quantum_efficiency_pct", "responsivity_dn_per_photon", "dsnu_e", "dsnu_pixel_e",
              "prnu_pct", "prnu_pixel_pct", "linearity_error_min_pct",
              "linearity_error_max_pct", "dark_current_e_per_s")
GRID = ("saturation_capacity_e", "dynamic_range_db", "snr_max_db")


def module(noise_seed: int, *, height: int = 60, width: int = 80, **kw: float) -> Sensor:
    """The golden module (fixed pattern seed 1288) with its own noise seed."""
    params: dict[str, float] = {
        "k_dn_per_e": 0.6, "qe": 0.6, "read_noise_e": 2.17, "dark_current_e_per_s": 5.0,
        "full_well_e": 6000.0, "offset_dn": 64.0, "dsnu_e": 1.0, "prnu": 0.006,
        "nonlinearity": 0.002, **kw}
    sensor = Sensor(height=height, width=width, bits=12, seed=1288, **params)  # type: ignore[arg-type]
    sensor.rng = np.random.default_rng([19, noise_seed])
    return sensor


def measure(sensor: Sensor, *, cfa: str | None = None, photons: bool = True,
            **sweep: object) -> Emva1288Result:
    reducer = EmvaReducer(sensor.bits)
    for role, group, step, ns, ph, frame in exposure_sweep(sensor, **sweep):  # type: ignore[arg-type]
        reducer.add(frame, dark=role == "dark", spatial=group == "spatial", exposure_ns=ns,
                    photons=ph if photons else None, key=float(step))
    return measure_emva1288(reducer.finish(), cfa=cfa)


def ratios(results: list[Emva1288Result], names: tuple[str, ...]) -> dict[str, float]:
    """RMS of the stated u over the repeats / observed standard deviation, per figure."""
    out = {}
    for name in names:
        values = np.array([r.figures()[name] for r in results], dtype=np.float64)
        stated = [r.uncertainty(name) for r in results]
        assert all(u is not None for u in stated), f"{name}: no uncertainty in some repeats"
        rms = math.sqrt(float(np.mean(np.square(np.array(stated, dtype=np.float64)))))
        out[name] = rms / float(values.std(ddof=1))
    return out


@pytest.fixture(scope="module")
def fixed_sweep() -> list[Emva1288Result]:
    """REPEATS measurements of one module on the same exposure sweep."""
    return [measure(module(i), steps=16, spatial_frames=8, max_electrons=TOP_E)
            for i in range(REPEATS)]


@pytest.fixture(scope="module")
def shifted_sweep() -> list[Emva1288Result]:
    """REPEATS measurements whose sweeps end at 1.15 x saturation +-6 % (uniform): the steps
    fall at a different place relative to the saturation point each time, as they do when the
    sequence's saturation search lands on another exposure."""
    rng = np.random.default_rng(1919)
    return [measure(module(1000 + i), steps=16, spatial_frames=8,
                    max_electrons=TOP_E * float(rng.uniform(0.94, 1.06)))
            for i in range(REPEATS)]


def test_stated_u_matches_the_spread_of_repeats(fixed_sweep: list[Emva1288Result]) -> None:
    """K: u of the zero-offset least-squares slope from the known variance of each point's
    variance (2 sigma^4 / (P - 1)); dark noise: u of the dark-variance intercept; DSNU/PRNU:
    temporal noise of the L-frame means and of the correction; linearity: mean's standard
    error through the fit, Clark's moments for the extreme point; dark current: residuals of
    the dark-mean line; each propagated with u(K) (GUM 5.1.2). Within 30 % (module
    docstring)."""
    got = ratios(fixed_sweep, REPEATABLE)
    print("stated RMS u / observed sd (fixed sweep):",
          ", ".join(f"{n} {r:.3f}" for n, r in got.items()))
    bad = {n: round(r, 3) for n, r in got.items() if abs(r - 1.0) > TOLERANCE}
    assert not bad, f"stated u off the observed spread by more than 30 %: {bad}"


def test_saturation_u_covers_where_the_steps_fall(shifted_sweep: list[Emva1288Result],
                                                  fixed_sweep: list[Emva1288Result]) -> None:
    """The saturation point is one sweep step (the maximum of the variance), so its u holds
    the step's resolution, a rectangular distribution one step wide (GUM F.2.2.1), beside
    u(K) and u(R). Repeats on one sweep cannot show the resolution part (the same step wins
    every time), so the u is checked on sweeps whose steps fall differently each time: within
    30 % of the spread (module docstring). On the fixed sweep it must cover the spread."""
    got = ratios(shifted_sweep, GRID)
    fixed = ratios(fixed_sweep, GRID)
    print("stated RMS u / observed sd (shifted sweeps):",
          ", ".join(f"{n} {r:.3f}" for n, r in got.items()),
          "| fixed sweep:", ", ".join(f"{n} {r:.3f}" for n, r in fixed.items()))
    bad = {n: round(r, 3) for n, r in got.items() if abs(r - 1.0) > TOLERANCE}
    assert not bad, f"stated u off the observed spread by more than 30 %: {bad}"
    assert all(r >= 1.0 - TOLERANCE for r in fixed.values()), fixed


def test_uncertainties_are_finite_positive_and_in_the_record(
        fixed_sweep: list[Emva1288Result]) -> None:
    res = fixed_sweep[0]
    assert set(REPEATABLE + GRID) <= set(res.uncertainties)
    assert all(math.isfinite(u) and u > 0 for u in res.uncertainties.values())
    assert set(res.uncertainties) <= set(res.figures())
    out = res.as_dict()
    assert out["uncertainty"] == dict(res.uncertainties)
    assert "uncertainties" not in out and "uncertainties" not in res.figures()
    # u(K) relative propagates one to one into K's electrons (GUM 5.1.2, sensitivity -1/K)
    k, u_k = res.system_gain_dn_per_e, res.uncertainty("system_gain_dn_per_e")
    assert u_k is not None and u_k / k < 0.05


def test_unknown_name_raises_and_unstated_is_none() -> None:
    """An unknown figure is a ConfigError naming the field; a figure the analysis cannot
    state a u for is None: absent (no photon counts: QE), flagged (the sweep stops below
    saturation: the saturation capacity)."""
    res = measure(module(7, height=24, width=32), steps=16, spatial_frames=4,
                  max_electrons=0.7 * 6000.0, photons=False)
    with pytest.raises(ConfigError, match="measurement: unknown EMVA 1288 figure 'k_gain'"):
        res.uncertainty("k_gain")
    assert res.quantum_efficiency_pct is None and res.uncertainty("quantum_efficiency_pct") is None
    assert res.flag("saturation_capacity_e") is not None
    assert res.uncertainty("saturation_capacity_e") is None
    assert res.uncertainty("dynamic_range_db") is None
    assert res.uncertainty("system_gain_dn_per_e") is not None


def test_colour_planes_pool_their_uncertainties() -> None:
    """With a CFA, DSNU/PRNU are the RMS over the Bayer planes; their u combines the planes'
    (independent pixels): below each plane's, about 1/sqrt(4) of it for equal planes."""
    res = measure(module(3, height=120, width=160), cfa="RGGB", steps=16, spatial_frames=8,
                  max_electrons=TOP_E)
    pooled = res.uncertainty("prnu_pixel_pct")
    planes = [res.uncertainty(f"{p}_prnu_pixel_pct") for p in ("R", "Gr", "Gb", "B")]
    assert pooled is not None and all(u is not None for u in planes)
    mean_plane = float(np.mean([u for u in planes if u is not None]))
    assert 0.4 < pooled / mean_plane < 0.6
