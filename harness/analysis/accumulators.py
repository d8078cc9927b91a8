"""One-pass, exact reducers for frame pairs and frame stacks.

Frames are reduced as they arrive, so a 12 MP x 500-frame EMVA run never sits in memory: a
temporal pair keeps only its first frame until the second comes; a spatial stack keeps one
per-pixel sum (int32) and one per-pixel sum of squares (float64).

Exactness: every accumulator holds integers. ``cv2.sumElems`` and ``cv2.accumulateSquare``
add integer-valued terms in float64, exact while every partial sum stays below 2**53;
:func:`_blocks` splits a frame into row blocks small enough to guarantee that, and the Python
``int`` totals are exact. A pair's sum of squared differences comes from ``cv2.norm(A, B,
NORM_L2SQR)`` over row blocks whose sum stays below 2**48, rounded to the integer: OpenCV
accumulates the squares in float64 but returns the result through a square root and back
(relative error ~1e-16, measured), so the rounded block sum is exact with a wide margin; a
block whose result is not within 0.25 of an integer is recounted from the exact value
histogram of abs(A - B) (``cv2.absdiff`` + ``cv2.calcHist``), 6x slower. The int32 per-pixel
sum saturates only after 2**31 / max_value frames (32 768 for 16-bit data); a stack refuses
more frames than that. Floats appear only when the scalars of EMVA 1288 4.0 are formed
(pair mean and Eq. 18 variance; stack mean and variance images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from harness.errors import ConfigError

_EXACT = 1 << 53


def _check_frame(frame: np.ndarray, shape: tuple[int, int] | None, what: str) -> np.ndarray:
    if frame.ndim != 2:
        raise ConfigError(f"{what}: expected a 2-D frame, got shape {frame.shape}")
    if frame.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"{what}: pixel type {frame.dtype} not supported; allowed: uint8, "
                          "uint16")
    if shape is not None and frame.shape != shape:
        raise ConfigError(f"{what}: frame shape {frame.shape} differs from the first frame's "
                          f"{shape}")
    return frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)


def _blocks(frame: np.ndarray, per_pixel_max: int) -> Iterator[slice]:
    """Row blocks whose element count times ``per_pixel_max`` stays below 2**53."""
    rows, cols = frame.shape
    per_row = max(cols * per_pixel_max, 1)
    step = max(1, min(rows, (_EXACT - 1) // per_row))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def frame_sum(frame: np.ndarray) -> int:
    """Exact sum of all pixel values."""
    peak = int(np.iinfo(frame.dtype).max)
    return sum(int(cv2.sumElems(frame[b])[0]) for b in _blocks(frame, peak))


def _histogram(frame: np.ndarray, max_value: int | None = None) -> np.ndarray:
    """Exact int64 histogram of an unsigned integer frame (one bin per value 0..max_value).

    ``cv2.calcHist`` counts in integers and returns float32, exact below 2**24 counts per
    bin; blocks of fewer than 2**24 pixels keep it so. (``cv2.norm(NORM_L2SQR)`` is fast
    but not exact: it was off by one on 12 MP frames, caught by the unit tests.) A known
    ``max_value`` (the ADC range) keeps the bins few; values above it are detected by the
    count and trigger a full-range histogram, so the result never silently drops pixels."""
    full = int(np.iinfo(frame.dtype).max)
    bins = min(full, max_value if max_value is not None else full) + 1
    total = np.zeros(bins, np.int64)
    for block in _blocks(frame, 1 << 29):  # 2**53 / 2**29 = 2**24 pixels per block
        hist = cv2.calcHist([frame[block]], [0], None, [bins], [0, bins])
        total += hist.ravel().astype(np.int64)
    if bins <= full and int(total.sum()) != frame.size:
        return _histogram(frame, None)
    return total


def frame_sum_squares(frame: np.ndarray, max_value: int | None = None) -> int:
    """Exact sum of squared pixel values (from the value histogram)."""
    hist = _histogram(frame, max_value)
    values = np.arange(hist.size, dtype=np.int64)
    return int(np.dot(hist, values * values))  # int64: exact below 2**31 pixels


_NORM_BLOCK_SUM = 1 << 48


def pair_diff_squares(a: np.ndarray, b: np.ndarray, max_value: int | None = None,
                      scratch: np.ndarray | None = None) -> int:
    """Exact sum of (A - B)**2 over all pixels (see the module docstring for why it is exact).

    ``max_value`` (the ADC range) bounds the squares and so sizes the blocks: one block for a
    12 MP 12-bit frame. ``scratch`` (same shape and dtype) is used by the histogram fallback
    for abs(A - B): reusing it saves a page-faulting allocation (~24 MB at 12 MP)."""
    if scratch is not None and (scratch.shape != a.shape or scratch.dtype != a.dtype):
        scratch = None
    full = int(np.iinfo(a.dtype).max)
    peak = min(full, max_value) if max_value is not None else full
    rows, cols = a.shape
    step = max(1, min(rows, _NORM_BLOCK_SUM // max(cols * peak * peak, 1)))
    total = 0
    for start in range(0, rows, step):
        block = slice(start, min(rows, start + step))
        value = cv2.norm(a[block], b[block], cv2.NORM_L2SQR)
        nearest = round(value)
        if abs(value - nearest) > 0.25 or (max_value is not None and nearest > (
                block.stop - block.start) * cols * peak * peak):
            out = None if scratch is None else scratch[block]
            nearest = frame_sum_squares(cv2.absdiff(a[block], b[block], dst=out), None)
        total += nearest
    return total


@dataclass(frozen=True)
class PairStats:
    """Integer sums of one or more temporal pairs of one point (EMVA 1288 4.0 temporal data).

    ``sum_a``/``sum_b`` are the sums of the first/second frames, ``sum_d2`` the sum of squared
    differences, ``sum_delta2`` the sum over pairs of (sum A - sum B)^2, ``pixels`` the pixels
    per frame and ``pairs`` how many pairs were added.
    """

    sum_a: int
    sum_b: int
    sum_d2: int
    sum_delta2: int
    pixels: int
    pairs: int

    @property
    def mean_dn(self) -> float:
        """mu_y = sum(A + B) / 2P."""
        return (self.sum_a + self.sum_b) / (2.0 * self.pixels * self.pairs)

    @property
    def var_dn2(self) -> float:
        """sigma^2_y = sum((A-B)^2)/2P - (mu_A - mu_B)^2/2 = var(A - B)/2 (4.0 Eq. 18).

        With several pairs the per-pair (corrected) variances are averaged."""
        p = float(self.pixels)
        return (self.sum_d2 / (2.0 * p) - self.sum_delta2 / (2.0 * p * p)) / self.pairs


class PairAccumulator:
    """Reduce frames of one temporal point two at a time: (1st, 2nd), (3rd, 4th), ...

    ``max_value`` (e.g. 4095 for 12-bit data) only speeds up the exact histogram; ``scratch``
    is a reusable buffer for abs(A - B), shared by the points of a sweep."""

    def __init__(self, max_value: int | None = None,
                 scratch: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.max_value = max_value
        self._scratch = scratch
        self._held: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self.sum_a = self.sum_b = self.sum_d2 = self.sum_delta2 = 0
        self.pairs = 0

    def add(self, frame: np.ndarray) -> None:
        frame = _check_frame(frame, self._shape, "temporal pair")
        self._shape = (frame.shape[0], frame.shape[1])
        if self._held is None:
            self._held = frame
            return
        a, self._held = self._held, None
        sa, sb = frame_sum(a), frame_sum(frame)
        self.sum_a += sa
        self.sum_b += sb
        self.sum_delta2 += (sa - sb) ** 2
        buffer = self._scratch(frame) if self._scratch is not None else None
        self.sum_d2 += pair_diff_squares(a, frame, self.max_value, buffer)
        self.pairs += 1

    @property
    def pending(self) -> bool:
        """True while a first frame waits for its partner."""
        return self._held is not None

    def stats(self) -> PairStats:
        if self.pending:
            raise ConfigError("temporal point has an odd number of frames; pairs are needed")
        if self.pairs == 0 or self._shape is None:
            raise ConfigError("temporal point has no complete pair of frames")
        return PairStats(self.sum_a, self.sum_b, self.sum_d2, self.sum_delta2,
                         self._shape[0] * self._shape[1], self.pairs)


@dataclass(frozen=True)
class StackStats:
    """Per-pixel sums of an L-frame stack (EMVA 1288 4.0 spatial non-uniformity data).

    ``sum_img`` int32 per-pixel sum, ``sumsq_img`` float64 per-pixel sum of squares (exact
    integers), ``frames`` = L.
    """

    sum_img: np.ndarray
    sumsq_img: np.ndarray
    frames: int
    _var_cache: dict[tuple[Any, ...], np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def mean_img(self) -> np.ndarray:
        """<y>: the per-pixel mean image (float64)."""
        return self.mean()

    def mean(self, view: tuple[slice, slice] | None = None,
             dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
        """Per-pixel mean of the stack, optionally of a view (e.g. one Bayer plane)."""
        s = self.sum_img if view is None else self.sum_img[view]
        return np.divide(s, self.frames, dtype=dtype)

    def var_img(self, view: tuple[slice, slice] | None = None,
                dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
        """Per-pixel unbiased temporal variance (L * sum y^2 - (sum y)^2) / (L (L - 1)).

        The numerator is formed in int64, exactly: it is a small difference of two large
        numbers (catastrophic cancellation in floating point); both stay below 2**62 because
        the accumulator caps L * max_value**2 below 2**53 and L below 2**15.

        The image is computed once per view and dtype and returned read-only: the EMVA
        analysis and the defect search ask for the same images several times."""
        if self.frames < 2:
            raise ConfigError("a stack needs at least 2 frames for a temporal variance")
        key = (None if view is None else tuple((v.start, v.stop, v.step) for v in view),
               np.dtype(dtype).str)
        cached = self._var_cache.get(key)
        if cached is None:
            cached = self._var_cache[key] = self._compute_var(view, dtype)
            cached.flags.writeable = False
        return cached

    def _compute_var(self, view: tuple[slice, slice] | None,
                     dtype: type[np.floating[Any]]) -> np.ndarray:
        sums = self.sum_img if view is None else self.sum_img[view]
        squares = self.sumsq_img if view is None else self.sumsq_img[view]
        if self.frames * cv2.minMaxLoc(squares)[1] < _EXACT:
            # (sum y)^2 <= L * sum y^2 (Cauchy-Schwarz): both terms are integers below 2**53,
            # so float64 holds them and their difference exactly
            numerator = np.multiply(squares, float(self.frames))
            s = sums.astype(np.float64)
            np.multiply(s, s, out=s)
            np.subtract(numerator, s, out=numerator)
            return np.divide(numerator, self.frames * (self.frames - 1.0), dtype=dtype)
        s = sums.astype(np.int64)
        q = squares.astype(np.int64)
        np.multiply(q, self.frames, out=q)  # in place: two int64 images at most
        np.multiply(s, s, out=s)
        np.subtract(q, s, out=q)
        del s
        return np.divide(q, self.frames * (self.frames - 1.0), dtype=dtype)

    def temporal_var_dn2(self, mask: np.ndarray | None = None,
                         view: tuple[slice, slice] | None = None) -> float:
        """sigma^2_y.stack: mean per-pixel temporal variance over the pixels in ``mask`` (of
        the ``view``'s shape when a view is given)."""
        var = self.var_img(view, np.float32)
        return float(var.mean(dtype=np.float64) if mask is None
                     else var[mask].mean(dtype=np.float64))


class StackAccumulator:
    """Accumulate a spatial stack frame by frame into exact per-pixel sums."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self.frames = 0
        self._limit = 0

    def add(self, frame: np.ndarray) -> None:
        frame = _check_frame(frame, None if self._sum is None else self._sum.shape,
                             "spatial stack")
        if self._sum is None or self._sumsq is None:
            peak = int(np.iinfo(frame.dtype).max)
            self._sum = np.zeros(frame.shape, np.int32)
            self._sumsq = np.zeros(frame.shape, np.float64)
            self._limit = min((2**31 - 1) // max(peak, 1), (_EXACT - 1) // max(peak * peak, 1))
        if self.frames >= self._limit:
            raise ConfigError(f"spatial stack longer than {self._limit} frames would overflow "
                              "the exact accumulators")
        # int32 += uint16 in place: numpy's mixed-type loop took 0.087 ms per 800x600 frame
        # and 5.4 ms at 12 MP, cv2.add with dtype=CV_32S 0.42 ms and 6.5 ms (measured here)
        np.add(self._sum, frame, out=self._sum)
        cv2.accumulateSquare(frame, self._sumsq)
        self.frames += 1

    def stats(self) -> StackStats:
        if self._sum is None or self._sumsq is None:
            raise ConfigError("spatial stack has no frames")
        return StackStats(self._sum, self._sumsq, self.frames)


__all__ = ["PairAccumulator", "PairStats", "StackAccumulator", "StackStats", "frame_sum",
           "frame_sum_squares", "pair_diff_squares"]
