"""Test charts seen by the simulated camera, rendered analytically at sub-pixel accuracy.

A scene is a background reflectance plus rectangles (centre, size, rotation, reflectance) painted
in order (later ones cover earlier ones). Every rectangle is rendered with the PSF at its own
centre (:func:`harness.sim.optics.psf_at`): a rotated rectangle blurred by the line-spread
function is the product of two 1-D edge profiles E(u + w/2) - E(u - w/2) along its axes, with
E tabulated by :func:`harness.sim.optics.esf_table` (Gaussian * defocus disk * pixel box), so
along every edge the pixel value is exact for the PSF and the sub-pixel edge position; only the
corners (within ~3 sigma of a vertex) are approximate for a non-Gaussian (defocused) PSF.

Charts (sizes as fractions of the sensor height H and width W; rotation counter-clockwise in the
image as displayed, i.e. x right, y down, angle from the x axis towards -y):

``dark``
    cap on: no light at all (signal = dark current only).
``flat``
    a uniform diffuser, reflectance 1.0 (the light level sets the signal; shading comes from the
    lens's relative illumination).
``edge``
    light background (reflectance 0.80) with five dark squares (reflectance 0.20, Michelson
    contrast 0.6), side 0.14 H, rotated by 5.0 degrees; centres at (0.50 W, 0.50 H) and at
    (0.12 W, 0.15 H), (0.88 W, 0.15 H), (0.12 W, 0.85 H), (0.88 W, 0.85 H). Each square has
    four slanted edges (two near-vertical, two near-horizontal, all 5 degrees off the axes).
``colour``
    ColorChecker 24 (N. Ohta spectra) on a black (reflectance 0.03) surround: 6 columns x 4 rows
    of axis-aligned square patches of side 0.10 H with a gap of 0.025 H, the grid centred on the
    sensor; patch k (0 = dark skin ... 23 = black 2, classic order) is at column k % 6, row k // 6.
``focus``
    a seeded "dead leaves" texture: 400 rotated squares of side 0.01-0.06 H and reflectance
    0.1-0.9 over a 0.5 background, covering the whole field (for focus-metric sweeps).
``edge-without-<square>[+<square>...]``
    a damaged ``edge`` chart whose named squares (``top-left``, ``top-right``, ``bottom-left``,
    ``bottom-right``, ``centre``) are missing: a station fault for the tests (a chart wheel's
    slot can carry it, :class:`harness.sim.instruments.chart_wheel.ChartWheelSpec`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.errors import ConfigError
from harness.sim.colour_response import channel_response, colorchecker_reflectances
from harness.sim.module import Module
from harness.sim.optics import esf_table, psf_at

SCENES = ("dark", "flat", "edge", "colour", "focus")

EDGE_ANGLE_DEG = 5.0
EDGE_SQUARE_SIDE_H = 0.14
EDGE_DARK, EDGE_LIGHT = 0.20, 0.80
EDGE_CENTRES = ((0.50, 0.50), (0.12, 0.15), (0.88, 0.15), (0.12, 0.85), (0.88, 0.85))
EDGE_NAMES = ("centre", "top-left", "top-right", "bottom-left", "bottom-right")
CHECKER_PATCH_H, CHECKER_GAP_H, CHECKER_SURROUND = 0.10, 0.025, 0.03


@dataclass(frozen=True)
class Rect:
    """A rectangle in sensor pixels; ``material`` is a reflectance or a ColorChecker index."""

    cx: float
    cy: float
    w: float
    h: float
    angle_deg: float
    material: float | int
    name: str = ""


@dataclass(frozen=True)
class Scene:
    name: str
    background: float
    rects: tuple[Rect, ...]
    lit: bool = True


DAMAGED_EDGE = "edge-without-"


def _missing_squares(name: str) -> tuple[str, ...]:
    """The squares a damaged edge chart lacks (``edge-without-top-left+centre``)."""
    missing = tuple(name.removeprefix(DAMAGED_EDGE).split("+"))
    unknown = [m for m in missing if m not in EDGE_NAMES]
    if unknown or not missing:
        raise ConfigError(f"unknown chart {name!r}: a damaged edge chart names its missing "
                          f"squares from {', '.join(EDGE_NAMES)} joined by '+'")
    return missing


def check_scene(name: str) -> str:
    if name.startswith(DAMAGED_EDGE):
        _missing_squares(name)
        return name
    if name not in SCENES:
        raise ConfigError(f"unknown chart {name!r}; allowed: {', '.join(SCENES)}, or "
                          f"{DAMAGED_EDGE}<square>")
    return name


@lru_cache(maxsize=32)
def layout(name: str, width: int, height: int) -> Scene:
    """The chart ``name`` laid out on a ``width`` x ``height`` sensor (see module docstring)."""
    check_scene(name)
    w, h = float(width), float(height)
    if name == "dark":
        return Scene(name, 0.0, (), lit=False)
    if name == "flat":
        return Scene(name, 1.0, ())
    if name == "edge" or name.startswith(DAMAGED_EDGE):
        missing = _missing_squares(name) if name != "edge" else ()
        side = EDGE_SQUARE_SIDE_H * h
        rects = tuple(Rect(fx * w, fy * h, side, side, EDGE_ANGLE_DEG, EDGE_DARK, label)
                      for (fx, fy), label in zip(EDGE_CENTRES, EDGE_NAMES, strict=True)
                      if label not in missing)
        return Scene(name, EDGE_LIGHT, rects)
    if name == "colour":
        patch, pitch = CHECKER_PATCH_H * h, (CHECKER_PATCH_H + CHECKER_GAP_H) * h
        x0, y0 = w / 2.0 - 2.5 * pitch, h / 2.0 - 1.5 * pitch
        rects = tuple(Rect(x0 + (k % 6) * pitch, y0 + (k // 6) * pitch, patch, patch, 0.0, k,
                           f"patch{k}") for k in range(24))
        return Scene(name, CHECKER_SURROUND, rects)
    rng = np.random.default_rng(20_251_125)
    sides = rng.uniform(0.01, 0.06, 400) * h
    xs, ys = rng.uniform(0.0, w, 400), rng.uniform(0.0, h, 400)
    angles, refl = rng.uniform(0.0, 90.0, 400), rng.uniform(0.1, 0.9, 400)
    rects = tuple(Rect(float(x), float(y), float(s), float(s), float(a), float(r))
                  for x, y, s, a, r in zip(xs, ys, sides, angles, refl, strict=True))
    return Scene(name, 0.5, rects)


def cfa_index(module: Module, rows: slice, cols: slice) -> np.ndarray | None:
    """Channel index (0 R, 1 G, 2 B) of every pixel of the window; None for a mono sensor."""
    if module.sensor.cfa is None:
        return None
    letters = module.sensor.cfa
    code = np.array([["RGB".index(letters[0]), "RGB".index(letters[1])],
                     ["RGB".index(letters[2]), "RGB".index(letters[3])]], np.uint8)
    r = np.arange(rows.start, rows.stop) % 2
    c = np.arange(cols.start, cols.stop) % 2
    return np.asarray(code[r[:, None], c[None, :]])


def _response(module: Module, illuminant: str, material: float | int) -> np.ndarray:
    if isinstance(material, int):
        return channel_response(module, illuminant, colorchecker_reflectances()[material])
    return channel_response(module, illuminant, np.float64(material))


def render(module: Module, scene: Scene, illuminant: str, focus_um: float,
           rows: slice, cols: slice) -> np.ndarray:
    """Electrons per incident photon (QE x reflectance x blur) for each pixel of the window.

    Relative illumination, PRNU and the photon count are applied by the sensor model.
    """
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if not scene.lit:
        return np.zeros(shape, np.float32)
    cfa = cfa_index(module, rows, cols)

    def per_pixel(resp: np.ndarray, r: slice, c: slice) -> np.ndarray | float:
        if cfa is None:
            return float(resp[0])
        return np.asarray(resp.astype(np.float32)[cfa[r, c]])

    out = np.empty(shape, np.float32)
    out[...] = per_pixel(_response(module, illuminant, scene.background),
                         slice(None), slice(None))
    fill = module.optics.fill_factor
    for rect in scene.rects:
        psf = psf_at(module, focus_um, rect.cx, rect.cy)
        x_tab, e_tab = esf_table(round(psf.sigma_px, 6), round(psf.defocus_radius_px, 6),
                                 fill, rect.angle_deg % 90.0)
        reach = 0.5 * math.hypot(rect.w, rect.h) + float(x_tab[-1]) + 1.0
        r0 = max(rows.start, math.floor(rect.cy - reach))
        r1 = min(rows.stop, math.ceil(rect.cy + reach))
        c0 = max(cols.start, math.floor(rect.cx - reach))
        c1 = min(cols.stop, math.ceil(rect.cx + reach))
        if r0 >= r1 or c0 >= c1:
            continue
        y = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - rect.cy
        x = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - rect.cx
        t = math.radians(rect.angle_deg)
        u = x * math.cos(t) - y * math.sin(t)
        v = x * math.sin(t) + y * math.cos(t)
        cov = ((np.interp(u + rect.w / 2, x_tab, e_tab) - np.interp(u - rect.w / 2, x_tab, e_tab))
               * (np.interp(v + rect.h / 2, x_tab, e_tab)
                  - np.interp(v - rect.h / 2, x_tab, e_tab))).astype(np.float32)
        win_r = slice(r0 - rows.start, r1 - rows.start)
        win_c = slice(c0 - cols.start, c1 - cols.start)
        value = per_pixel(_response(module, illuminant, rect.material), win_r, win_c)
        region = out[win_r, win_c]
        region += cov * (value - region)
    return out


__all__ = [
    "DAMAGED_EDGE",
    "EDGE_ANGLE_DEG",
    "EDGE_CENTRES",
    "EDGE_NAMES",
    "EDGE_SQUARE_SIDE_H",
    "SCENES",
    "Rect",
    "Scene",
    "cfa_index",
    "check_scene",
    "layout",
    "render",
]
