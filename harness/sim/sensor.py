"""EMVA 1288 linear sensor model, pixel by pixel (EMVA 1288 Release 4.0, section 2, Fig. 1).

For each pixel, per frame:

1. photons: mu_p = flux x pitch^2 x t_exp x (scene response, which already holds QE x
   reflectance x blur and the lens's distortion and lateral colour;
   :func:`harness.sim.scene.render`) x relative illumination x colour shading x particle
   shadows (:mod:`harness.sim.blemish`) x (1 + PRNU); dead/cold defects scale it;
2. dark signal mu_d = I_dark(T) t_exp with I_dark(T) = I_ref 2^((T - T_ref)/T_d) (doubling every
   ``dark_doubling_k``), plus the extra dark current of hot pixels;
3. shot noise on mu_p + mu_d: exact Poisson where the mean is below ``poisson_threshold_e``,
   Gaussian (same mean and variance) above it;
4. DSNU offsets (row + column + pixel parts, column defects), random-telegraph (blinking) pixels;
5. nonlinearity near saturation, then the full-well clip;
6. read noise sigma_r(G) = sqrt(read_noise_e^2 + (adc_noise_dn / K(G))^2), i.e. the noise before
   the analog gain plus the ADC noise referred back through it;
7. system gain K(G) = K_0 10^(G/20), black level, quantisation ONCE (round to nearest; no
   dither: the emva1288 simulator's extra uniform dither inflates dark noise,
   docs/standards.md#emva-reference-implementation),
   ADC clip at 2^bits - 1; stuck pixels forced last.

Speed (12 MP at >= 10 frames/s on one core; anchors in docs/standards.md#speed-anchors): the frame
is produced in row chunks with float32 buffers. Where no pixel is below the Poisson threshold or
near the full-well clip, steps 3-7 collapse exactly into y = round(mu_y + sigma_y n) with
mu_y = K(mu_e + DSNU) + black, sigma_y = K sqrt(mu_e + sigma_r^2) and one normal draw n per pixel.
The maps that depend on no operating point (scene response with PRNU and shading, DSNU) are kept; a
new exposure, gain or light level costs one map (sigma_y), and mu_y is formed while rendering, so an
exposure sweep does not regenerate fixed patterns. Row chunks render on :data:`RENDER_THREADS`
threads. The normal generator is, by default, the sum of two 256-level inverse-CDF samples of
N(0, 1/2) driven by raw PCG64 bytes: mean 0 and variance 1 exactly, distribution within ~1/500 of
normal in CDF, tails truncated at 4.07 sigma (an exact ``Generator.standard_normal`` is available
with ``exact_normal=True``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import cv2
import numpy as np
from scipy.special import ndtri

from harness.sim.blemish import apply_shadows
from harness.sim.module import Module
from harness.sim.optics import colour_shading, relative_illumination
from harness.sim.scene import Scene, render, render_through_lens

CHUNK_ROWS = 128
RENDER_THREADS = min(2, os.cpu_count() or 1)
"""Threads that render a frame's row chunks (1 renders on the calling thread only)."""
_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()
_BUFFERS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
"""Per render thread: two float32 chunk buffers, kept between frames (no page faults)."""


def release_buffers() -> None:
    """Drop the render threads' chunk buffers (they are made again on the next frame)."""
    _BUFFERS.clear()


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it makes its own pool when needed."""
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()
    _BUFFERS.clear()


os.register_at_fork(after_in_child=_forget_pool_after_fork)
_T = TypeVar("_T")
_R = TypeVar("_R")


def _strips(height: int) -> list[tuple[int, int]]:
    return [(r0, min(height, r0 + CHUNK_ROWS)) for r0 in range(0, height, CHUNK_ROWS)]


def _in_parallel(func: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[func(x) for x in items]`` on the render pool (in order; errors re-raised)."""
    pool = _render_pool() if len(items) > 1 else None
    if pool is None:
        return [func(item) for item in items]
    return list(pool.map(func, items))


def _render_pool() -> ThreadPoolExecutor | None:
    """The shared render pool for :data:`RENDER_THREADS` (None for one thread)."""
    global _POOL
    if RENDER_THREADS <= 1:
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != RENDER_THREADS:
            if _POOL is not None:
                _POOL[1].shutdown(wait=False)
            _POOL = (RENDER_THREADS, ThreadPoolExecutor(RENDER_THREADS,
                                                        thread_name_prefix="sim-render"))
        return _POOL[1]
BLOCK_ROWS = 64
"""Fixed-pattern maps are generated in 64-row blocks seeded by block index: any window of the
sensor sees the same pattern."""


@lru_cache(maxsize=1)
def _half_normal_lut() -> np.ndarray:
    q = ndtri((np.arange(256) + 0.5) / 256.0)
    q *= math.sqrt(0.5 / float(np.mean(q**2)))
    return q.astype(np.float32)


def fill_normal(rng: np.random.Generator, out: np.ndarray, exact: bool = False) -> np.ndarray:
    """Fill ``out`` (float32, C-contiguous) with N(0, 1) samples (see module docstring)."""
    if exact:
        rng.standard_normal(dtype=np.float32, out=out)
        return out
    n = out.size
    raw = rng.bit_generator.random_raw((2 * n + 7) // 8).view(np.uint8)
    a = raw[:n].reshape(out.shape)
    b = raw[n:2 * n].reshape(out.shape)
    lut = _half_normal_lut()
    np.add(cv2.LUT(a, lut), cv2.LUT(b, lut), out=out)
    return out


@lru_cache(maxsize=64)
def _poisson_thresholds(lam: float) -> np.ndarray:
    """uint32 thresholds t_k = round(P(K <= k) 2^32) while P(K > k) 2^32 >= 0.5."""
    from scipy.stats import poisson

    out = []
    k = 0
    while poisson.sf(k, lam) * 2.0**32 >= 0.5:
        out.append(min(2**32 - 1, round(float(poisson.cdf(k, lam)) * 2.0**32)))
        k += 1
    return np.asarray(out, np.uint32)


def fill_poisson(rng: np.random.Generator, lam: float, out: np.ndarray) -> np.ndarray:
    """Poisson(lam) counts for one scalar mean (lam <= ~8) by inverse-CDF threshold counting:
    K = #{k : U >= F(k)} with U uniform on 32 bits, exact but for a 2^-32 rounding of each
    probability, and 5-8x faster than ``Generator.poisson`` for the small means of dark frames.
    """
    n = out.size
    u = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(out.shape)
    counts = np.zeros(out.shape, np.uint8)
    for threshold in _poisson_thresholds(lam):
        counts += u >= threshold
    out[...] = counts
    return out


@dataclass(frozen=True)
class DefectPixel:
    row: int
    col: int
    cls: str
    value: float


@dataclass(frozen=True)
class Operating:
    """What the sensor is asked to do for one frame."""

    exposure_us: float
    gain_db: float
    black_level_dn: float
    temperature_c: float


@dataclass(frozen=True)
class Roi:
    offset_x: int
    offset_y: int
    width: int
    height: int

    @property
    def rows(self) -> slice:
        return slice(self.offset_y, self.offset_y + self.height)

    @property
    def cols(self) -> slice:
        return slice(self.offset_x, self.offset_x + self.width)


def resolve_defects(module: Module
                    ) -> tuple[tuple[DefectPixel, ...], tuple[tuple[int, float], ...]]:
    """Every defective pixel (listed, clusters expanded, then seeded) and the column defects.

    Seeded positions come from ``pattern_seed`` (2 px from the border); a seeded defect is an
    isolated point: no other defect lies within 2 px (the next same-colour pixel of a Bayer
    mosaic), so seeded pixels never form a cluster by chance — clusters are listed defects.
    """
    d = module.defects
    default = {"hot": d.hot_e_per_s, "cold": d.cold_response, "blinking": d.blinking_e,
               "dead": 0.0, "stuck_high": float(module.sensor.max_dn), "stuck_low": 0.0}
    pixels: dict[tuple[int, int], DefectPixel] = {}
    columns: list[tuple[int, float]] = []
    for entry in d.listed:
        value = entry.value if entry.value is not None else default.get(entry.cls, d.column_e)
        if entry.cls == "column":
            columns.append((entry.col, float(value)))
            continue
        for r in range(entry.row, entry.row + entry.rows):
            for c in range(entry.col, entry.col + entry.cols):
                pixels[(r, c)] = DefectPixel(r, c, entry.cls, float(value))
    rng = np.random.default_rng([module.pattern_seed, 99])
    h, w = module.sensor.height, module.sensor.width
    for cls in ("hot", "dead", "cold", "stuck_high", "stuck_low", "blinking"):
        wanted = getattr(d.seeded, cls)
        while wanted > 0:
            r, c = int(rng.integers(2, h - 2)), int(rng.integers(2, w - 2))
            if not any((r + dr, c + dc) in pixels for dr in range(-2, 3)
                       for dc in range(-2, 3)):
                pixels[(r, c)] = DefectPixel(r, c, cls, float(default[cls]))
                wanted -= 1
    return tuple(sorted(pixels.values(), key=lambda p: (p.row, p.col))), tuple(columns)


class _Cache:
    """Per-operating-point data. Fast path: ``a`` = sigma_y map (DN) and the scalars that form
    mu_y from the response and DSNU maps at render time; general path: ``a`` = mean signal
    (e-) map, or None when the frame is unlit (one dark mean everywhere, ``dark_e``)."""

    def __init__(self, key: tuple[object, ...], a: np.ndarray | None, fast: bool,
                 response: np.ndarray | None, mu_p: float, dark_e: float,
                 sparse: tuple[np.ndarray, ...]) -> None:
        self.key = key
        self.a = a
        self.fast = fast
        self.response = response
        self.mu_p = mu_p
        self.dark_e = dark_e
        self.sparse = sparse
        """(rows, cols, signal_e, offset_e) of defect pixels, simulated one by one."""


class _Dsnu:
    """The DSNU map of a window (e-; pixel + row + column parts and column defects; zero on
    defect pixels, which are simulated apart), its extremes, and the defect pixels in it."""

    def __init__(self, roi: Roi, off: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 values: np.ndarray) -> None:
        self.roi = roi
        self.off = off
        self.rows = rows
        self.cols = cols
        self.values = values
        self.low = float(off.min())
        self.high = float(off.max())


class SensorModel:
    """Frames of one module's sensor (stateless but for caches and blinking-pixel states)."""

    def __init__(self, module: Module, exact_normal: bool = False) -> None:
        self.module = module
        self.exact_normal = exact_normal
        self.defects, self.column_defects = resolve_defects(module)
        s = module.sensor
        seed = module.pattern_seed
        self._prnu_row = self._vector([seed, 3], s.height, s.prnu_pct.row / 100.0)
        self._prnu_col = self._vector([seed, 4], s.width, s.prnu_pct.column / 100.0)
        self._dsnu_row = self._vector([seed, 5], s.height, s.dsnu_e.row)
        self._dsnu_col = self._vector([seed, 6], s.width, s.dsnu_e.column)
        self._dsnu_col_clean = self._dsnu_col.copy()
        for col, value in self.column_defects:
            self._dsnu_col[col] += value
        self._defect_at = {(p.row, p.col): p for p in self.defects}
        self._blink = [p for p in self.defects if p.cls == "blinking"]
        self._blink_state = np.zeros(len(self._blink), bool)
        self._cache: _Cache | None = None
        self._response: tuple[tuple[object, ...], np.ndarray, float, float] | None = None
        self._dsnu: _Dsnu | None = None

    @staticmethod
    def _vector(seed: list[int], n: int, scale: float) -> np.ndarray:
        if scale == 0.0:
            return np.zeros(n, np.float32)
        return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)

    # -- physics in numbers (also the ground truth) -----------------------------------------

    def system_gain(self, gain_db: float) -> float:
        """K in DN/e- at analog gain ``gain_db``."""
        return self.module.sensor.system_gain_dn_per_e * 10.0 ** (gain_db / 20.0)

    def read_noise_e(self, gain_db: float) -> float:
        """Temporal dark noise referred to electrons (without quantisation), EMVA sigma_d."""
        s = self.module.sensor
        return math.sqrt(s.read_noise_e**2 + (s.adc_noise_dn / self.system_gain(gain_db)) ** 2)

    def dark_current(self, temperature_c: float) -> float:
        """Mean dark current, e-/s, at die temperature ``temperature_c``."""
        s = self.module.sensor
        return s.dark_current_e_per_s * 2.0 ** ((temperature_c - s.dark_ref_temp_c)
                                               / s.dark_doubling_k)

    def photons_per_pixel(self, photons_per_um2_s: float, exposure_us: float) -> float:
        """mu_p at the sensor centre for a white target (EMVA 1288 4.0 Eq. 1)."""
        return photons_per_um2_s * self.module.sensor.pixel_pitch_um**2 * exposure_us * 1e-6

    # -- fixed patterns ----------------------------------------------------------------------

    def _block(self, kind: int, block: int, scale: float) -> np.ndarray:
        w = self.module.sensor.width
        rows = min(BLOCK_ROWS, self.module.sensor.height - block * BLOCK_ROWS)
        out = np.empty((rows, w), np.float32)
        if scale == 0.0:
            out.fill(0.0)
            return out
        fill_normal(np.random.default_rng([self.module.pattern_seed, kind, block]), out)
        out *= np.float32(scale)
        return out

    def _pattern(self, kind: int, rows: slice, cols: slice) -> np.ndarray:
        """PRNU (kind 1, relative) or DSNU (kind 2, e-) pixel+row+column map of a window."""
        s = self.module.sensor
        part = s.prnu_pct if kind == 1 else s.dsnu_e
        scale = part.pixel / 100.0 if kind == 1 else part.pixel
        out = np.empty((rows.stop - rows.start, cols.stop - cols.start), np.float32)
        first, last = rows.start // BLOCK_ROWS, (rows.stop - 1) // BLOCK_ROWS
        for block in range(first, last + 1):
            b0 = block * BLOCK_ROWS
            r0, r1 = max(rows.start, b0), min(rows.stop, b0 + BLOCK_ROWS)
            data = self._block(kind, block, scale)
            out[r0 - rows.start:r1 - rows.start] = data[r0 - b0:r1 - b0, cols]
        row_v, col_v = ((self._prnu_row, self._prnu_col) if kind == 1
                        else (self._dsnu_row, self._dsnu_col))
        out += row_v[rows, None]
        out += col_v[None, cols]
        return out

    def realised_patterns(self) -> dict[str, dict[str, float]]:
        """Spatial standard deviations of the fixed patterns this unit actually has.

        For PRNU (% of signal) and DSNU (e-), over the whole sensor, without defects (column
        defects and defect pixels are separate in the truth): ``total`` = std of the map,
        ``row`` / ``column`` = std of the row / column means, ``pixel`` = std of what remains
        (the split of EMVA 1288 4.0 section 8.2 on a noise-free, infinitely averaged frame).
        """
        s = self.module.sensor
        out: dict[str, dict[str, float]] = {}
        for kind, name, scale in ((1, "prnu_pct", 100.0), (2, "dsnu_e", 1.0)):
            row_sum = np.zeros(s.height)
            col_sum = np.zeros(s.width)
            total = total_sq = 0.0
            saved = self._dsnu_col
            self._dsnu_col = self._dsnu_col_clean
            try:
                for r0 in range(0, s.height, BLOCK_ROWS * 4):
                    rows = slice(r0, min(s.height, r0 + BLOCK_ROWS * 4))
                    block = self._pattern(kind, rows, slice(0, s.width)).astype(np.float64)
                    block *= scale
                    row_sum[rows] = block.sum(axis=1)
                    col_sum += block.sum(axis=0)
                    total += float(block.sum())
                    total_sq += float(np.sum(block * block))
            finally:
                self._dsnu_col = saved
            n = s.width * s.height
            mean = total / n
            var = total_sq / n - mean**2
            var_row = float(np.var(row_sum / s.width))
            var_col = float(np.var(col_sum / s.height))
            out[name] = {"total": math.sqrt(max(var, 0.0)), "row": math.sqrt(var_row),
                         "column": math.sqrt(var_col),
                         "pixel": math.sqrt(max(var - var_row - var_col, 0.0))}
        return out

    # -- operating-point maps ----------------------------------------------------------------

    def _build(self, scene: Scene, illuminant: str, focus_um: float, photons_per_um2_s: float,
               op: Operating, roi: Roi) -> _Cache:
        """The per-operating-point data. The exposure-independent maps (scene response with
        PRNU and shading, DSNU) are kept across operating points; a new exposure, gain or
        light level costs one map (sigma_y, or the mean signal on the general path)."""
        s = self.module.sensor
        key = (scene.name, illuminant, focus_um, photons_per_um2_s, op, roi)
        if self._cache is not None and self._cache.key == key:
            return self._cache
        old, self._cache = self._cache, None
        t = op.exposure_us * 1e-6
        mu_p = self.photons_per_pixel(photons_per_um2_s, op.exposure_us)
        dark_e = self.dark_current(op.temperature_c) * t
        lit = scene.lit and mu_p > 0.0
        dsnu = self._dsnu_map(roi)
        found = self._response_map(scene, illuminant, focus_um, roi) if lit else None
        response = None if found is None else found[0]
        resp_low, resp_high = (0.0, 0.0) if found is None else found[1:]
        sr, sc = dsnu.rows, dsnu.cols
        sig_defects = (response[sr, sc].astype(np.float64) * mu_p if response is not None
                       else np.zeros(sr.size)) + dark_e
        for i, (r, c) in enumerate(zip(sr.tolist(), sc.tolist(), strict=True)):
            p = self._defect_at[(r + roi.offset_y, c + roi.offset_x)]
            if p.cls in ("dead", "cold"):
                sig_defects[i] = dark_e + (sig_defects[i] - dark_e) * p.value
            elif p.cls == "hot":
                sig_defects[i] += p.value * t
        sparse = (sr, sc, sig_defects, dsnu.values)
        k = self.system_gain(op.gain_db)
        sigma_r = self.read_noise_e(op.gain_db)
        limit = s.full_well_e * (s.nonlinearity.onset if s.nonlinearity.strength_pct > 0
                                 else 1.0)
        # bounds of the signal and of signal + DSNU over the window, from the maps' extremes
        low = resp_low * mu_p + dark_e
        top = resp_high * mu_p + dark_e + dsnu.high
        peak_sigma = math.sqrt(max(top, 0.0) + sigma_r**2)
        fast = low >= s.poisson_threshold_e and top + 6.0 * peak_sigma < limit
        a: np.ndarray | None = None
        if response is not None:
            a = old.a if old is not None and old.a is not None and \
                old.a.shape == response.shape else np.empty_like(response)
            del old

            def fill(strip_rows: tuple[int, int]) -> None:
                r0, r1 = strip_rows
                part = a[r0:r1]
                np.multiply(response[r0:r1], np.float32(mu_p), out=part)
                part += np.float32(dark_e + (sigma_r**2 if fast else 0.0))
                if fast:
                    np.sqrt(part, out=part)
                    part *= np.float32(k)

            _in_parallel(fill, _strips(roi.height))
        self._cache = _Cache(key, a, fast, response, mu_p, dark_e, sparse)
        return self._cache

    def _dsnu_map(self, roi: Roi) -> _Dsnu:
        """The DSNU map of ``roi``, made once (it depends on no operating point)."""
        if self._dsnu is not None and self._dsnu.roi == roi:
            return self._dsnu
        self._dsnu = None
        off = np.empty((roi.height, roi.width), np.float32)

        def fill(strip_rows: tuple[int, int]) -> None:
            r0, r1 = strip_rows
            off[r0:r1] = self._pattern(2, slice(roi.offset_y + r0, roi.offset_y + r1), roi.cols)

        _in_parallel(fill, _strips(roi.height))
        inside = [(p.row - roi.offset_y, p.col - roi.offset_x) for p in self.defects
                  if roi.offset_y <= p.row < roi.offset_y + roi.height
                  and roi.offset_x <= p.col < roi.offset_x + roi.width]
        sr = np.array([r for r, _ in inside], np.intp)
        sc = np.array([c for _, c in inside], np.intp)
        values = off[sr, sc].astype(np.float64)
        off[sr, sc] = 0.0  # defect pixels are simulated separately (_sparse)
        self._dsnu = _Dsnu(roi, off, sr, sc, values)
        return self._dsnu

    def _response_map(self, scene: Scene, illuminant: str, focus_um: float,
                      roi: Roi) -> tuple[np.ndarray, float, float]:
        """Scene response (through the lens's distortion and lateral colour, if any) x
        relative illumination x colour shading x particle shadows x (1 + PRNU) per pixel:
        everything of the signal that does not depend on exposure, gain or light level, kept
        across operating points so an exposure sweep renders the optics once (costs one float32
        map); with its minimum and maximum over the window."""
        key = (scene.name, illuminant, focus_um, roi)
        if self._response is not None and self._response[0] == key:
            return self._response[1:]
        self._response = None
        m = self.module
        out = np.empty((roi.height, roi.width), np.float32)
        lens_maps = m.optics.has_geometry

        def fill(strip_rows: tuple[int, int]) -> tuple[float, float]:
            r0, r1 = strip_rows
            strip = slice(roi.offset_y + r0, roi.offset_y + r1)
            resp = (render_through_lens if lens_maps else render)(m, scene, illuminant,
                                                                  focus_um, strip, roi.cols)
            resp *= relative_illumination(m, strip, roi.cols)
            shading = colour_shading(m, strip, roi.cols)
            if shading is not None:
                resp *= shading
            if m.optics.particles:
                apply_shadows(m, resp, strip, roi.cols)
            prnu = self._pattern(1, strip, roi.cols)
            prnu += 1.0
            resp *= prnu
            out[r0:r1] = resp
            return float(resp.min()), float(resp.max())

        extremes = _in_parallel(fill, _strips(roi.height))
        self._response = (key, out, min(lo for lo, _ in extremes),
                          max(hi for _, hi in extremes))
        return self._response[1:]

    def expected_response(self, scene: Scene, illuminant: str, focus_um: float,
                          roi: Roi) -> np.ndarray:
        """The noise-free signal per photon of a white target's flux at the sensor centre,
        e-/photon, per pixel of ``roi`` (a copy): what frames average to, less the dark signal
        and defects (mu_e = mu_p x this + mu_d; see :meth:`_response_map`)."""
        return self._response_map(scene, illuminant, focus_um, roi)[0].copy()

    # -- frames ------------------------------------------------------------------------------

    def frame(self, scene: Scene, illuminant: str, focus_um: float, photons_per_um2_s: float,
              op: Operating, roi: Roi, rng: np.random.Generator, out: np.ndarray) -> None:
        """Render one frame into ``out`` (uint16, roi.height x roi.width), in ADC DN.

        Row chunks draw from their own random streams spawned from ``rng`` (so a seed gives
        the same frame whatever the thread count) and are rendered by up to
        :data:`RENDER_THREADS` threads: numpy and OpenCV release the GIL, and a station's
        second core is otherwise idle while the camera renders."""
        cache = self._build(scene, illuminant, focus_um, photons_per_um2_s, op, roi)
        k = np.float32(self.system_gain(op.gain_db))
        sigma_r = np.float32(self.read_noise_e(op.gain_db))
        chunks = _strips(roi.height)
        streams = rng.spawn(len(chunks))

        def render_chunk(job: tuple[tuple[int, int], np.random.Generator]) -> None:
            (r0, r1), stream = job
            self._chunk(cache, op, k, sigma_r, r0, r1, stream, out)

        _in_parallel(render_chunk, list(zip(chunks, streams, strict=True)))
        self._sparse(cache, op, rng, out)
        self._finish(out, roi, k, rng)

    def _chunk(self, cache: _Cache, op: Operating, k: np.float32, sigma_r: np.float32,
               r0: int, r1: int, rng: np.random.Generator, out: np.ndarray) -> None:
        """Rows r0..r1 of the frame, with this thread's float32 buffers."""
        width = out.shape[1]
        buffers = _BUFFERS.get(threading.get_ident())
        if buffers is None or buffers[0].shape[1] != width:
            buffers = (np.empty((CHUNK_ROWS, width), np.float32),
                       np.empty((CHUNK_ROWS, width), np.float32))
            _BUFFERS[threading.get_ident()] = buffers
        e, tmp = buffers[0][:r1 - r0], buffers[1][:r1 - r0]
        dsnu = self._dsnu
        assert dsnu is not None
        if cache.fast:  # y = sigma_y n + K (mu_p R + mu_d + DSNU) + black (+ 0.5: rounding)
            fill_normal(rng, e, self.exact_normal)
            if cache.a is not None:
                e *= cache.a[r0:r1]
            else:  # unlit: one sigma everywhere
                e *= k * np.float32(math.sqrt(cache.dark_e + float(sigma_r) ** 2))
            if cache.response is not None:
                cv2.scaleAdd(cache.response[r0:r1], float(k) * cache.mu_p, e, dst=e)
            cv2.scaleAdd(dsnu.off[r0:r1], float(k), e, dst=e)
            e += np.float32(float(k) * cache.dark_e + op.black_level_dn + 0.5)
        else:
            self._general(cache, r0, r1, e, tmp, rng, sigma_r)
            e *= k
            e += np.float32(op.black_level_dn + 0.5)
        np.clip(e, 0.0, np.float32(self.module.sensor.max_dn), out=e)
        out[r0:r1] = e

    def _sparse(self, cache: _Cache, op: Operating, rng: np.random.Generator,
                out: np.ndarray) -> None:
        """Defect pixels through the full per-pixel chain (float64; a few hundred pixels)."""
        rows, cols, mean, offset = cache.sparse
        if rows.size == 0:
            return
        s = self.module.sensor
        e = np.where(mean < s.poisson_threshold_e, rng.poisson(np.maximum(mean, 0.0)),
                     mean + np.sqrt(np.maximum(mean, 0.0)) * rng.standard_normal(mean.size))
        e = e + offset
        nl = s.nonlinearity
        if nl.strength_pct > 0:
            x = np.clip((e - nl.onset * s.full_well_e) / (s.full_well_e * (1.0 - nl.onset)),
                        0.0, None)
            e = e - nl.strength_pct / 100.0 * s.full_well_e * x * x
        e = np.minimum(e, s.full_well_e) + self.read_noise_e(op.gain_db) * rng.standard_normal(
            mean.size)
        y = np.rint(e * self.system_gain(op.gain_db) + op.black_level_dn)
        out[rows, cols] = np.clip(y, 0, s.max_dn).astype(np.uint16)

    def _general(self, cache: _Cache, r0: int, r1: int, e: np.ndarray, tmp: np.ndarray,
                 rng: np.random.Generator, sigma_r: np.float32) -> None:
        s = self.module.sensor
        dsnu = self._dsnu
        assert dsnu is not None
        if cache.a is None:  # no light: one dark mean everywhere (defects are sparse)
            lam = cache.dark_e
            if lam <= 8.0:
                fill_poisson(rng, lam, e)
            else:
                e[...] = rng.poisson(lam, size=e.shape)
        else:
            mean = cache.a[r0:r1]
            fill_normal(rng, e, self.exact_normal)
            np.sqrt(np.maximum(mean, 0.0, out=tmp), out=tmp)
            e *= tmp
            e += mean
            low = mean < s.poisson_threshold_e
            if low.any():
                e[low] = rng.poisson(mean[low].astype(np.float64))
        e += dsnu.off[r0:r1]
        nl = s.nonlinearity
        if nl.strength_pct > 0:
            onset = np.float32(nl.onset * s.full_well_e)
            over = e > onset
            if over.any():
                x = (e[over] - onset) / np.float32(s.full_well_e * (1.0 - nl.onset))
                e[over] -= np.float32(nl.strength_pct / 100.0 * s.full_well_e) * x * x
        np.minimum(e, np.float32(s.full_well_e), out=e)
        fill_normal(rng, tmp, self.exact_normal)
        tmp *= sigma_r
        e += tmp

    def _finish(self, out: np.ndarray, roi: Roi, k: np.float32, rng: np.random.Generator) -> None:
        """Blinking (random-telegraph) and stuck pixels, applied to the quantised frame."""
        maxv = self.module.sensor.max_dn
        if self._blink:
            flips = rng.random(len(self._blink)) < self.module.defects.blinking_switch_prob
            self._blink_state ^= flips
        for i, p in enumerate(self._blink):
            r, c = p.row - roi.offset_y, p.col - roi.offset_x
            if self._blink_state[i] and 0 <= r < roi.height and 0 <= c < roi.width:
                out[r, c] = min(maxv, int(out[r, c]) + round(float(k) * p.value))
        for p in self.defects:
            if p.cls in ("stuck_high", "stuck_low"):
                r, c = p.row - roi.offset_y, p.col - roi.offset_x
                if 0 <= r < roi.height and 0 <= c < roi.width:
                    out[r, c] = int(min(maxv, p.value))


__all__ = [
    "BLOCK_ROWS",
    "CHUNK_ROWS",
    "RENDER_THREADS",
    "DefectPixel",
    "Operating",
    "Roi",
    "SensorModel",
    "fill_normal",
    "fill_poisson",
    "release_buffers",
    "resolve_defects",
]
