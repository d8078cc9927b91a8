"""Flat-field correction against a shading known exactly: a chart imaged through a synthetic
relative illumination and colour shading comes back as the unshaded chart."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.flatfield import flat_field_correct, flat_field_gain
from harness.errors import ConfigError, MeasurementError


def shading(h: int, w: int, corner: float, red: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((y + 0.5 - h / 2) ** 2 + (x + 0.5 - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    s = 1.0 + (corner - 1.0) * r2
    s[0::2, 0::2] *= 1.0 + (red - 1.0) * r2[0::2, 0::2]  # RGGB: R sites shade further
    return s


def test_the_correction_removes_a_known_shading_and_keeps_the_centre() -> None:
    h, w, black = 120, 160, 64.0
    rng = np.random.default_rng(1)
    chart = rng.uniform(200, 2000, (h, w))
    s = shading(h, w, corner=0.4, red=0.85)
    flat = 3000.0 * s + black
    flat[50, 60] = black  # a dead pixel in the flat must not become a gain
    shaded = chart * s + black
    corrected = flat_field_correct(shaded, flat, black, "RGGB")
    centre = (slice(h // 2 - 4, h // 2 + 4), slice(w // 2 - 4, w // 2 + 4))
    # the gain is 1 at the centre of each plane (median of the central 10 %), so the corrected
    # image equals the chart scaled by the flat's own centre shading there (within 0.3 %)
    ratio = (corrected - black) / chart
    # the 5x5 median follows the smooth shading to ~0.1 % (its curvature over 5 px)
    assert ratio.std() / ratio.mean() < 2e-3
    assert ratio[centre].mean() == pytest.approx(1.0, abs=3e-3)


def test_mono_and_bad_input() -> None:
    flat = np.full((10, 10), 500.0)
    assert np.allclose(flat_field_gain(flat, 0.0, None), 1.0)
    with pytest.raises(ConfigError, match="differ in size"):
        flat_field_correct(np.zeros((4, 4)), flat, 0.0, None)
    with pytest.raises(MeasurementError, match="no signal above the black level"):
        flat_field_gain(np.full((10, 10), 60.0), 64.0, "RGGB")
