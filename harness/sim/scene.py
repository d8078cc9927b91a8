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
``dotgrid``
    black dots (reflectance 0.03) on white (0.80) for distortion measurement: dot pitch H / 20,
    dot diameter 0.35 x pitch, a dot at the image centre (W/2, H/2), the grid filling the frame
    and beyond (a barrel-distorting lens sees past the sensor's edges). Each dot is rendered as
    the edge-spread function of the PSF at its centre across the circle (exact but for the
    circle's curvature, an error of order sigma^2 / radius, and the pixel box taken along x).
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
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from harness.errors import ConfigError
from harness.sim.colour_response import channel_response, colorchecker_reflectances
from harness.sim.module import Module
from harness.sim.optics import esf_table, image_point, optical_centre, psf_at, source_scale

SCENES = ("dark", "flat", "edge", "colour", "focus", "dotgrid")

EDGE_ANGLE_DEG = 5.0
EDGE_SQUARE_SIDE_H = 0.14
EDGE_DARK, EDGE_LIGHT = 0.20, 0.80
EDGE_CENTRES = ((0.50, 0.50), (0.12, 0.15), (0.88, 0.15), (0.12, 0.85), (0.88, 0.85))
EDGE_NAMES = ("centre", "top-left", "top-right", "bottom-left", "bottom-right")
CHECKER_PATCH_H, CHECKER_GAP_H, CHECKER_SURROUND = 0.10, 0.025, 0.03
DOT_PITCH_H, DOT_DIAMETER_PITCH, DOT_DARK, DOT_LIGHT = 1.0 / 20.0, 0.35, 0.03, 0.80
DOT_MARGIN = 0.25
"""The dot grid extends this fraction of the frame beyond each edge."""


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
class Disc:
    """A disc in sensor pixels (centre, radius) of reflectance ``material``."""

    cx: float
    cy: float
    radius: float
    material: float


@dataclass(frozen=True)
class Scene:
    name: str
    background: float
    rects: tuple[Rect, ...]
    lit: bool = True
    discs: tuple[Disc, ...] = ()


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
    if name == "dotgrid":
        pitch = DOT_PITCH_H * h
        ni = math.ceil((0.5 + DOT_MARGIN) * w / pitch)
        nj = math.ceil((0.5 + DOT_MARGIN) * h / pitch)
        discs = tuple(Disc(w / 2.0 + i * pitch, h / 2.0 + j * pitch,
                           DOT_DIAMETER_PITCH * pitch / 2.0, DOT_DARK)
                      for j in range(-nj, nj + 1) for i in range(-ni, ni + 1))
        return Scene(name, DOT_LIGHT, (), discs=discs)
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


EsfTable = tuple[np.ndarray, np.ndarray]


def _esf_tables(module: Module, focus_um: float, x: float, y: float, angle_deg: float,
                ideal: bool) -> tuple[EsfTable, EsfTable]:
    """The edge-spread tables along the two axes (u, v) of a shape centred at (x, y) and
    rotated by ``angle_deg``: the lens's PSF there (one table for both), or, for an ideal image
    the lens then remaps (``ideal``), the PSF of the image position with its widths (and the
    pixel box) divided by the local magnification along each axis
    (sqrt((n.r)^2 M_r^2 + (n.t)^2 M_t^2), :func:`harness.sim.optics.image_point`), so that
    the remapped image has the lens's PSF."""
    fill, theta = module.optics.fill_factor, angle_deg % 90.0
    if not ideal:
        psf = psf_at(module, focus_um, x, y)
        table = esf_table(round(psf.sigma_px, 6), round(psf.defocus_radius_px, 6), fill, theta)
        return table, table
    xi, yi, m_r, m_t = image_point(module, x, y)
    psf = psf_at(module, focus_um, xi, yi)
    cx, cy = optical_centre(module)
    dist = math.hypot(xi - cx, yi - cy)
    cos_r, sin_r = ((xi - cx) / dist, (yi - cy) / dist) if dist > 0.0 else (1.0, 0.0)
    t = math.radians(angle_deg)
    tables = []
    for nx, ny in ((math.cos(t), -math.sin(t)), (math.sin(t), math.cos(t))):
        c2 = (nx * cos_r + ny * sin_r) ** 2
        mag = math.sqrt(c2 * m_r**2 + (1.0 - c2) * m_t**2)
        tables.append(esf_table(round(psf.sigma_px / mag, 6),
                                round(psf.defocus_radius_px / mag, 6), fill / mag, theta))
    return tables[0], tables[1]


def _window(cx: float, cy: float, reach: float, rows: slice, cols: slice,
            ) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1): the pixels within ``reach`` of (cx, cy) inside the rendered window,
    or None when the shape does not touch it."""
    r0, r1 = max(rows.start, math.floor(cy - reach)), min(rows.stop, math.ceil(cy + reach))
    c0, c1 = max(cols.start, math.floor(cx - reach)), min(cols.stop, math.ceil(cx + reach))
    return None if r0 >= r1 or c0 >= c1 else (r0, r1, c0, c1)


def _shapes(module: Module, scene: Scene, focus_um: float, rows: slice, cols: slice,
            ideal: bool = False) -> Iterator[tuple[slice, slice, np.ndarray, float | int]]:
    """(window rows, window cols, coverage, material) of every shape of the scene that reaches
    the window, in painting order (rectangles, then discs)."""
    fill = module.optics.fill_factor
    for rect in scene.rects:
        (xu, eu), (xv, ev) = _esf_tables(module, focus_um, rect.cx, rect.cy, rect.angle_deg,
                                         ideal)
        reach = 0.5 * math.hypot(rect.w, rect.h) + max(float(xu[-1]), float(xv[-1])) + 1.0
        window = _window(rect.cx, rect.cy, reach, rows, cols)
        if window is None:
            continue
        r0, r1, c0, c1 = window
        y = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - rect.cy
        x = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - rect.cx
        t = math.radians(rect.angle_deg)
        u = x * math.cos(t) - y * math.sin(t)
        v = x * math.sin(t) + y * math.cos(t)
        cov = ((np.interp(u + rect.w / 2, xu, eu) - np.interp(u - rect.w / 2, xu, eu))
               * (np.interp(v + rect.h / 2, xv, ev)
                  - np.interp(v - rect.h / 2, xv, ev))).astype(np.float32)
        yield (slice(r0 - rows.start, r1 - rows.start), slice(c0 - cols.start, c1 - cols.start),
               cov, rect.material)
    for disc in scene.discs:
        xi, yi, m_r, m_t = image_point(module, disc.cx, disc.cy) if ideal else (
            disc.cx, disc.cy, 1.0, 1.0)
        psf = psf_at(module, focus_um, xi, yi)
        mag = (m_r + m_t) / 2.0
        reach = disc.radius + (6.0 * psf.sigma_px + psf.defocus_radius_px + fill) / mag + 4.0
        if (disc.cy + reach < rows.start or disc.cy - reach > rows.stop
                or disc.cx + reach < cols.start or disc.cx - reach > cols.stop):
            continue
        x_tab, e_tab = esf_table(round(psf.sigma_px / mag, 6),
                                 round(psf.defocus_radius_px / mag, 6), fill / mag, 0.0)
        reach = disc.radius + float(x_tab[-1]) + 1.0
        window = _window(disc.cx, disc.cy, reach, rows, cols)
        if window is None:
            continue
        r0, r1, c0, c1 = window
        y = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - disc.cy
        x = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - disc.cx
        cov = np.interp(disc.radius - np.hypot(x, y), x_tab, e_tab).astype(np.float32)
        yield (slice(r0 - rows.start, r1 - rows.start), slice(c0 - cols.start, c1 - cols.start),
               cov, disc.material)


def render(module: Module, scene: Scene, illuminant: str, focus_um: float,
           rows: slice, cols: slice) -> np.ndarray:
    """Electrons per incident photon (QE x reflectance x blur) for each pixel of the window.

    Relative illumination, PRNU and the photon count are applied by the sensor model; a lens
    with distortion or lateral colour is rendered by :func:`render_through_lens` instead.
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
    for win_r, win_c, cov, material in _shapes(module, scene, focus_um, rows, cols):
        value = per_pixel(_response(module, illuminant, material), win_r, win_c)
        region = out[win_r, win_c]
        region += cov * (value - region)
    return out


def render_planes(module: Module, scene: Scene, illuminant: str, focus_um: float,
                  rows: slice, cols: slice) -> np.ndarray:
    """The ideal image of the window per channel (R, G, B; one plane for mono), float32
    (channels, rows, cols): what :func:`render` gives each pixel, for every channel at every
    pixel; for a lens that remaps the scene, each shape is blurred so that its image has the
    PSF of its image position (the input of :func:`render_through_lens`)."""
    n = 3 if module.is_colour else 1
    out = np.empty((n, rows.stop - rows.start, cols.stop - cols.start), np.float32)
    if not scene.lit:
        out.fill(0.0)
        return out
    bg = _response(module, illuminant, scene.background).astype(np.float32)
    for k in range(n):
        out[k].fill(bg[k])
    for win_r, win_c, cov, material in _shapes(module, scene, focus_um, rows, cols,
                                               module.optics.has_geometry):
        value = _response(module, illuminant, material).astype(np.float32)
        for k in range(n):
            region = out[k, win_r, win_c]
            region += cov * (value[k] - region)
    return out


Grid = tuple[int, slice, slice, np.ndarray, np.ndarray]


@lru_cache(maxsize=32)
def _lens_grids(module: Module, rows: tuple[int, int], cols: tuple[int, int]
                ) -> tuple[tuple[Grid, ...], tuple[int, int, int, int]]:
    """The remap grids of a window (one per CFA site: channel, output rows and cols, source x
    and y relative to the source window) and the source window (x0, x1, y0, y1); made once
    per module and window (a 12 MP frame's 24 row strips hold 96 MB of grids)."""
    cfa = module.sensor.cfa
    sites: list[tuple[int | None, int, int, int]] = [(None, 0, 0, 1)]
    if cfa is not None:
        sites = [("RGB".index(cfa[2 * a + b]), a, b, 2) for a in (0, 1) for b in (0, 1)]
    found = []
    for channel, a, b, step in sites:
        r = slice(rows[0] + (a - rows[0]) % step, rows[1], step)
        c = slice(cols[0] + (b - cols[0]) % step, cols[1], step)
        if r.start < r.stop and c.start < c.stop:
            found.append((0 if channel is None else channel, r, c,
                          *source_scale(module, channel, r, c)))
    x0 = math.floor(min(float(g[3].min()) for g in found)) - 3
    x1 = math.ceil(max(float(g[3].max()) for g in found)) + 3
    y0 = math.floor(min(float(g[4].min()) for g in found)) - 3
    y1 = math.ceil(max(float(g[4].max()) for g in found)) + 3
    for _, _, _, mx, my in found:
        mx -= np.float32(x0 + 0.5)  # continuous coordinates -> index in the source window
        my -= np.float32(y0 + 0.5)
    return tuple(found), (x0, x1, y0, y1)


def render_through_lens(module: Module, scene: Scene, illuminant: str, focus_um: float,
                        rows: slice, cols: slice) -> np.ndarray:
    """:func:`render` seen through the lens's distortion and lateral colour.

    Every pixel of the window takes its channel's ideal image at the point the lens maps onto
    its centre (:func:`harness.sim.optics.source_scale`): the ideal planes are rendered over the
    window those points span and resampled with cv2.remap (bicubic). On a colour sensor each
    of the four CFA sites of the 2 x 2 pattern is remapped on its own grid with its channel's
    magnification, so the remap costs one frame's worth of pixels whatever the channel count.
    """
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    out = np.zeros(shape, np.float32)
    if not scene.lit:
        return out
    grids, (x0, x1, y0, y1) = _lens_grids(module, (rows.start, rows.stop),
                                          (cols.start, cols.stop))
    planes = render_planes(module, scene, illuminant, focus_um, slice(y0, y1), slice(x0, x1))
    for channel, r, c, mx, my in grids:
        out[r.start - rows.start::r.step, c.start - cols.start::c.step] = cv2.remap(
            planes[channel], mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out


__all__ = [
    "DAMAGED_EDGE",
    "DOT_DARK",
    "DOT_DIAMETER_PITCH",
    "DOT_LIGHT",
    "DOT_PITCH_H",
    "EDGE_ANGLE_DEG",
    "EDGE_CENTRES",
    "EDGE_NAMES",
    "EDGE_SQUARE_SIDE_H",
    "SCENES",
    "Disc",
    "Rect",
    "Scene",
    "cfa_index",
    "check_scene",
    "layout",
    "render",
    "render_planes",
    "render_through_lens",
]
