"""The kiosk's live thumbnail: a captured frame as a small 8-bit PNG.

The frame (a capture set's ``frames/<sha256>.tiff``, 8 or 16 bit, raw Bayer or mono) is
downscaled by pixel-area averaging (``cv2.INTER_AREA``) to at most :data:`MAX_WIDTH` pixels
wide, then stretched to 8 bits between its 0.5th and 99.5th percentiles so a dark or a flat
frame still shows its content. It is a preview for the operator, not evidence: the frame
itself stays untouched in its set. Results are cached by path (frames are content-addressed,
so a path never changes its content).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

MAX_WIDTH = 320
CACHE_SIZE = 16

_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def to_preview(frame: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """``frame`` (2-D, or H x W x C) downscaled to <= ``max_width`` wide, as uint8."""
    import cv2

    data = np.asarray(frame)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    height, width = data.shape[:2]
    if width > max_width:
        new_h = max(1, round(height * max_width / width))
        if data.dtype not in (np.uint8, np.uint16, np.float32):
            data = data.astype(np.float32)
        data = cv2.resize(data, (max_width, new_h), interpolation=cv2.INTER_AREA)
    values = data.astype(np.float32)
    lo, hi = np.percentile(values, (0.5, 99.5))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((values - lo) * (255.0 / (hi - lo)), 0, 255)
    return scaled.astype(np.uint8)


def png_bytes(frame: np.ndarray, max_width: int = MAX_WIDTH) -> bytes:
    """The preview of ``frame`` encoded as PNG (``cv2.imencode``)."""
    import cv2

    ok, encoded = cv2.imencode(".png", to_preview(frame, max_width))
    if not ok:
        raise ValueError("the preview could not be encoded as PNG")
    return bytes(encoded.tobytes())


def thumbnail_png(path: Path, max_width: int = MAX_WIDTH) -> bytes:
    """The PNG preview of the frame file ``path`` (cached)."""
    key = f"{path}:{max_width}"
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    import tifffile

    png = png_bytes(tifffile.imread(path), max_width)
    with _lock:
        _cache[key] = png
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return png


__all__ = ["CACHE_SIZE", "MAX_WIDTH", "png_bytes", "thumbnail_png", "to_preview"]
