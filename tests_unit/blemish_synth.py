"""Flat fields with blemishes of known centre, FWHM diameter and centre contrast.

A particle at distance d in front of the sensor shades a soft disc about d / N across (the
exit pupil's shadow, N the f-number), its depth about the particle's area over the shadow's.
Two radial contrast profiles, both with an analytic centre contrast ``c`` and full width at
half that contrast ``D``:

* ``gauss``: c exp(-4 ln2 r^2 / D^2) (a small particle far from the sensor: blurred);
* ``disc``: c / (1 + (2 r / D)^6) (a flat-topped pupil shadow with soft edges; the
  Butterworth form of order 3, half its centre value at r = D / 2 for any order).

The image is ``level`` x shading x (1 + PRNU) x (1 - spots), plus Gaussian shot noise of
``electrons`` at the centre (the Poisson variance of that many electrons; a flat averaged
over n frames has the shot noise of n times the electrons of one), hot and dead pixels, and,
for a Bayer mosaic, per-colour gains. Shading is cos⁴-like: (1 + (r / f)^2)^-2 with f set so
that the corners fall to ``corner``. Values are point samples at pixel centres (x = column,
y = row, pixel centres at integers), the coordinates the analysis reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FULL = (3024, 4032)
PROFILES = ("gauss", "disc")


@dataclass(frozen=True)
class Spot:
    x: float
    y: float
    diameter: float
    contrast: float  # fraction, positive = dark
    profile: str = "gauss"


def spot_contrast(r: np.ndarray, spot: Spot) -> np.ndarray:
    """Contrast 1 - signal / background at distance ``r`` from the spot's centre."""
    u = 2.0 * r / spot.diameter
    if spot.profile == "gauss":
        return np.asarray(spot.contrast * np.exp(-math.log(2.0) * u * u))
    if spot.profile == "disc":
        return np.asarray(spot.contrast / (1.0 + u**6))
    raise ValueError(spot.profile)


def shading(shape: tuple[int, int], corner: float = 0.4) -> np.ndarray:
    """cos⁴-like relative illumination, 1 at the centre, ``corner`` at the corners."""
    h, w = shape
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2)[:, None]
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2)[None, :]
    rc2 = ((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2
    f2 = rc2 / (corner**-0.5 - 1.0)
    return np.asarray(1.0 / (1.0 + (x * x + y * y) / np.float32(f2)) ** 2, dtype=np.float32)


def random_spots(rng: np.random.Generator, n: int, shape: tuple[int, int] = FULL, *,
                 diameters: tuple[float, float] = (10.0, 80.0),
                 contrasts: tuple[float, float] = (0.015, 0.10),
                 margin: float = 0.0) -> list[Spot]:
    """``n`` spots, diameter and contrast log-uniform over the ranges, both profiles, centres
    anywhere in the frame (``margin`` px from the border) at least 1.5 (D1 + D2) apart."""
    h, w = shape
    spots: list[Spot] = []
    while len(spots) < n:
        d = float(np.exp(rng.uniform(*np.log(diameters))))
        c = float(np.exp(rng.uniform(*np.log(contrasts))))
        x = float(rng.uniform(margin, w - 1 - margin))
        y = float(rng.uniform(margin, h - 1 - margin))
        if all(math.hypot(x - s.x, y - s.y) > 1.5 * (d + s.diameter) for s in spots):
            spots.append(Spot(x, y, d, c, PROFILES[len(spots) % 2]))
    return spots


def render_flat(spots: list[Spot], shape: tuple[int, int] = FULL, *, level: float = 2000.0,
                electrons: float | None = 2000.0, prnu: float = 0.01, corner: float = 0.4,
                defects: int = 40, bayer_gains: tuple[float, float, float, float] | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """A float32 flat field (DN, centre ``level``) with ``spots`` (see the module docstring).
    ``electrons`` None: no shot noise. ``defects``: that many hot (x3) and as many dead (x0)
    pixels, and a few 2-pixel clusters. ``bayer_gains``: gains of the CFA sites (0,0), (0,1),
    (1,0), (1,1)."""
    rng = rng or np.random.default_rng(0)
    h, w = shape
    img = shading(shape, corner)
    img *= np.float32(level)
    if prnu > 0:
        img *= 1.0 + np.float32(prnu) * rng.standard_normal(shape, dtype=np.float32)
    for s in spots:
        r_max = 4.0 * s.diameter
        y0, y1 = max(0, int(s.y - r_max)), min(h, int(s.y + r_max) + 2)
        x0, x1 = max(0, int(s.x - r_max)), min(w, int(s.x + r_max) + 2)
        yy = np.arange(y0, y1, dtype=np.float64)[:, None] - s.y
        xx = np.arange(x0, x1, dtype=np.float64)[None, :] - s.x
        img[y0:y1, x0:x1] *= (1.0 - spot_contrast(np.hypot(xx, yy), s)).astype(np.float32)
    if bayer_gains is not None:
        for k, g in enumerate(bayer_gains):
            img[k // 2::2, k % 2::2] *= np.float32(g)
    if electrons is not None:
        # variance in DN^2 of `electrons` e- at `level` DN: DN^2/e- = level / electrons
        gain = np.float32(level / electrons)
        img += np.sqrt(np.maximum(img, 0) * gain) * rng.standard_normal(shape, dtype=np.float32)
    if defects:
        ys = rng.integers(0, h, 2 * defects)
        xs = rng.integers(0, w, 2 * defects)
        img[ys[:defects], xs[:defects]] *= 3.0
        img[ys[defects:], xs[defects:]] = 0.0
        for k in range(min(5, defects)):  # clusters: two hot neighbours, two dead neighbours
            yk, xk = int(ys[k]), min(int(xs[k]), w - 2)
            img[yk, xk:xk + 2] = 3.0 * level
            yk, xk = int(ys[defects + k]), min(int(xs[defects + k]), w - 2)
            img[yk, xk:xk + 2] = 0.0
    return img


__all__ = ["FULL", "PROFILES", "Spot", "random_spots", "render_flat", "shading", "spot_contrast"]
