"""Evidence plots: valid PNGs that show the data given (colours, markers), clear input errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from harness.evidence import plots


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    return img[..., ::-1]  # RGB


def test_curves_render() -> None:
    mu = np.linspace(0, 3000, 20)
    ptc = plots.photon_transfer(mu, 0.1 * mu + 4, gain=0.1, intercept=4.0,
                                fit_mask=mu < 2500)
    lin = plots.linearity_residuals(mu * 10, np.sin(mu / 500) * 0.4, limit_pct=1.0)
    snr = plots.snr_curve(mu[1:] * 10, np.sqrt(mu[1:] * 5), model_snr=np.sqrt(mu[1:] * 5))
    f = np.linspace(0, 0.7, 60)
    mtf = plots.mtf_curves(f, {"centre": np.exp(-3 * f), "0.7 field": np.exp(-5 * f)})
    foc = plots.focus_sweep(np.arange(-5, 6), -np.arange(-5, 6) ** 2.0, best=0.0)
    yy, xx = np.mgrid[-1:1:12j, -1:1:16j]
    sh = plots.shading_map(100 - 30 * (xx**2 + yy**2))
    for png in (ptc, lin, snr, mtf, foc, sh):
        img = decode(png)
        assert img.std() > 10  # not a blank canvas


def test_colorchecker_shows_each_patch_colour() -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.05, 0.95, size=(24, 3))
    meas = np.clip(ref + rng.normal(0, 0.04, size=(24, 3)), 0, 1)
    png = plots.colorchecker(meas, ref, np.linspace(0.5, 6, 24))
    img = decode(png).reshape(-1, 3).astype(int)
    for colour in (meas, ref):
        for rgb in np.round(colour * 255).astype(int):
            near = np.all(np.abs(img - rgb) <= 2, axis=1).sum()
            assert near >= 40, f"patch colour {rgb} not visible ({near} px)"


def test_defect_map_marks_defects_only_when_there_are_some() -> None:
    dark = np.random.default_rng(0).normal(100, 3, size=(120, 160)).astype(np.float32)

    def red_pixels(png: bytes) -> int:
        img = decode(png).astype(int)
        return int(((img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)).sum())

    assert red_pixels(plots.defect_map(dark, np.array([]), np.array([]))) == 0
    marked = plots.defect_map(dark, np.array([10, 60, 100]), np.array([20, 80, 150]),
                              kinds=["hot", "hot", "dead"])
    assert red_pixels(marked) > 20


def test_input_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="same length: mean_dn=3, var_dn2=2"):
        plots.photon_transfer(np.ones(3), np.ones(2), gain=1, intercept=0)
    with pytest.raises(ValueError, match="curve 'edge' has 2 points for 3"):
        plots.mtf_curves(np.arange(3), {"edge": np.ones(2)})
    with pytest.raises(ValueError, match=r"must both be \(N, 3\)"):
        plots.colorchecker(np.ones((24, 3)), np.ones((24, 4)), np.ones(24))
    with pytest.raises(ValueError, match="2-D map"):
        plots.shading_map(np.ones(5))
    with pytest.raises(ValueError, match="photons must be > 0"):
        plots.snr_curve(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
