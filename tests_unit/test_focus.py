"""Focus metrics and sweep fitting (harness.analysis.focus) on synthetic defocus sweeps.

Truth: a band-limited texture blurred by a Gaussian of sigma = k |z - z_best| px; the sharpest
frame is at z_best, which we place between sweep positions so interpolation is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.focus import (
    FOCUS_METHODS,
    METRICS,
    fit_peak,
    measure_focus,
    measure_focus_brenner,
    measure_focus_laplacian,
    measure_focus_sweep,
    measure_focus_tenengrad,
    region_slices,
)
from harness.errors import ConfigError
from tests_unit.optics_synth import defocus_sweep, texture

POSITIONS = np.arange(-3.0, 3.01, 0.5)


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return texture((192, 192), np.random.default_rng(0))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("model, tol", [("gaussian", 0.05), ("parabola", 0.1)])
def test_best_focus_between_steps(base: np.ndarray, metric: str, model: str, tol: float) -> None:
    # Step 0.5: measured errors <= 0.02 (Gaussian) and <= 0.06 (parabola) on this texture;
    # tolerances are 10 % / 20 % of a step.
    for z0 in (0.37, -0.8):
        res = measure_focus_sweep(defocus_sweep(base, POSITIONS, z0), POSITIONS, metric=metric,
                            model=model)
        assert abs(res.best_focus.best_position - z0) < tol
        assert res.best_focus.warnings == ()


def test_tenengrad_is_most_robust_to_noise(base: np.ndarray) -> None:
    # docs/standards.md#focus-metrics: at noise 0.03 the Laplacian's max/min collapses (~2) while Tenengrad keeps ~17.
    rng = np.random.default_rng(1)
    frames = defocus_sweep(base, POSITIONS, 0.2, noise_sigma=0.03, rng=rng)
    ratio = {}
    for m in METRICS:
        v = np.array([measure_focus(f, m) for f in frames])
        ratio[m] = v.max() / v.min()
    assert ratio["tenengrad"] > ratio["brenner"] > ratio["laplacian"]
    res = measure_focus_sweep(frames, POSITIONS)  # default metric: Tenengrad
    assert res.metric == "tenengrad"
    assert abs(res.best_focus.best_position - 0.2) < 0.15


def test_depth_of_focus_scales_inversely_with_blur_rate(base: np.ndarray) -> None:
    # With sigma = k |z - z0| the metric is a function of k (z - z0): DoF is exactly prop. to 1/k
    # up to the linear interpolation of the flanks (a few %).
    pos = np.arange(-4.0, 4.01, 0.25)
    d1 = measure_focus_sweep(defocus_sweep(base, pos, 0.1, blur_per_unit=1.0), pos).best_focus
    d2 = measure_focus_sweep(defocus_sweep(base, pos, 0.1, blur_per_unit=0.5), pos).best_focus
    assert d1.depth_of_focus > 0
    assert d2.depth_of_focus / d1.depth_of_focus == pytest.approx(2.0, rel=0.1)


def test_field_tilt_from_corner_best_focus(base: np.ndarray) -> None:
    regions = region_slices(base.shape)
    h, w = base.shape
    ax, ay = 0.004, -0.003  # focus units per pixel
    bests = []
    for sy, sx in regions.values():
        x = (sx.start + sx.stop - 1) / 2 - (w - 1) / 2
        y = (sy.start + sy.stop - 1) / 2 - (h - 1) / 2
        bests.append(0.1 + ax * x + ay * y)
    frames = defocus_sweep(base, POSITIONS, np.array(bests), regions=regions)
    res = measure_focus_sweep(frames, POSITIONS)
    for (name, fit), zb in zip(res.regions.items(), bests, strict=True):
        assert abs(fit.best_position - zb) < 0.05, name
    # corner positions are +-72 px: 0.05 error over 144 px -> 3.5e-4 per px
    assert res.field_tilt_x_per_px == pytest.approx(ax, abs=4e-4)
    assert res.field_tilt_y_per_px == pytest.approx(ay, abs=4e-4)
    assert res.field_tilt_range == pytest.approx(np.ptp(bests[1:]), abs=0.1)
    d = res.as_dict()
    assert set(d["regions"]) == set(regions) and "depth_of_focus" in d


def test_peak_at_sweep_end_and_flat_curve_warn() -> None:
    pos = [0.0, 1.0, 2.0, 3.0, 4.0]
    end = fit_peak(pos, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert any("end of the sweep" in w for w in end.warnings)
    flat = fit_peak(pos, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert flat.warnings


@pytest.mark.parametrize(
    "pos, val, kwargs, match",
    [
        ([0.0, 1.0], [1.0, 2.0], {}, ">= 3"),
        ([0.0, 1.0, 1.0], [1.0, 2.0, 1.0], {}, "distinct"),
        ([0.0, 1.0, 2.0], [1.0, 2.0, 1.0], {"model": "cubic"}, "parabola, gaussian"),
    ],
)
def test_bad_sweeps_rejected(pos: list[float], val: list[float], kwargs: dict[str, str],
                             match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fit_peak(pos, val, **kwargs)  # type: ignore[arg-type]


def test_bad_metric_rejected(base: np.ndarray) -> None:
    # the error names the parameter (the command line shows it as its --metric option)
    with pytest.raises(ConfigError, match=r"^metric: 'sobel' is not one of tenengrad") as bad:
        measure_focus(base, "sobel")
    assert bad.value.field == "metric"
    with pytest.raises(ConfigError, match=r"^metric: 'sobel'"):
        measure_focus_sweep([base] * 3, [0.0, 1.0, 2.0], metric="sobel")
    with pytest.raises(ConfigError, match=r"^model: 'cubic'"):
        measure_focus_sweep([base] * 3, [0.0, 1.0, 2.0], model="cubic")
    for measure in FOCUS_METHODS.values():
        with pytest.raises(ConfigError, match="2-D"):
            measure(np.zeros((3, 3)))


def test_methods_mapping_and_dispatcher(base: np.ndarray) -> None:
    """One function per published method, a mapping of them by name, one dispatcher (the
    default is Tenengrad); each function is the formula in its docstring."""
    assert dict(FOCUS_METHODS) == {"tenengrad": measure_focus_tenengrad,
                                   "laplacian": measure_focus_laplacian,
                                   "brenner": measure_focus_brenner}
    assert METRICS == ("tenengrad", "laplacian", "brenner")
    for name, measure in FOCUS_METHODS.items():
        assert measure_focus(base, name) == measure(base)
    assert measure_focus(base) == measure_focus_tenengrad(base)
    a = base.astype(np.float64)
    brenner = np.mean((a[:, 2:] - a[:, :-2]) ** 2)
    assert measure_focus_brenner(base) == pytest.approx(brenner, rel=1e-4)
    # A ramp of slope 1 along x: the 3x3 Sobel gives Gx = 8 (weights 1, 2, 1, difference over
    # 2 px) in the 14 inner columns, 0 in the two mirrored border ones, and Gy = 0.
    ramp = np.tile(np.arange(16, dtype=np.float32), (16, 1))
    assert measure_focus_tenengrad(ramp) == pytest.approx(8.0**2 * 14 / 16)
    # 4-neighbour Laplacian: 0 inside, +-2 in the mirrored border columns
    assert measure_focus_laplacian(ramp) == pytest.approx(np.var(np.r_[2.0, [0.0] * 14, -2.0]))
    with pytest.raises(TypeError):
        FOCUS_METHODS["sobel"] = measure_focus_tenengrad  # type: ignore[index]
