"""Fast reads of a series of single-image TIFF files that share one layout.

A sensor data set is hundreds of TIFFs written by one tool: byte for byte the same header and
tags, only the pixel data differ. tifffile parses one file and says where its uncompressed
pixels lie (:class:`TiffLayout`); a later file of the same size whose bytes outside that pixel
region are identical has, by construction, the same tags and therefore the same layout, so its
pixels are read straight into an array without parsing it again (per-file parsing was 60 % of
the time to load a 640 x 480 data set). A file that differs anywhere outside its pixels is
parsed in full, as before.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tifffile


@dataclass(frozen=True)
class TiffLayout:
    """Where a single-page, uncompressed, contiguous 2-D TIFF keeps its pixels, and the bytes
    around them (header, tags, padding) that identify files with the same layout."""

    size: int
    offset: int
    count: int
    dtype: np.dtype
    shape: tuple[int, int]
    head: bytes
    tail: bytes

    @classmethod
    def of(cls, path: Path) -> TiffLayout | None:
        """The layout of ``path`` as tifffile reads it; None unless the file is one 2-D page
        stored in final form (no compression, predictor or bit-order change) in one piece."""
        try:
            return cls.of_bytes(path.read_bytes())
        except OSError:
            return None

    @classmethod
    def of_bytes(cls, data: bytes) -> TiffLayout | None:
        """:meth:`of` for a file already in memory."""
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                if len(tif.pages) != 1:
                    return None
                page = tif.pages.first
                offsets = [int(n) for n in page.dataoffsets]
                counts = [int(n) for n in page.databytecounts]
                offset, count = offsets[0], sum(counts)
                ends = [o + c for o, c in zip(offsets, counts, strict=True)]
                adjacent = ends[:-1] == offsets[1:]
                shape = tuple(int(n) for n in page.shape)
                page_dtype = page.dtype
                if (page_dtype is None or not adjacent or not page.is_final
                        or len(shape) != 2 or offset % page_dtype.itemsize
                        or count != shape[0] * shape[1] * page_dtype.itemsize):
                    return None
                dtype = page_dtype.newbyteorder(tif.byteorder)
        except Exception:
            return None
        return cls(len(data), int(offset), int(count), dtype, (shape[0], shape[1]),
                   bytes(data[:offset]), bytes(data[offset + count:]))

    def read(self, path: Path) -> np.ndarray | None:
        """The image of ``path`` if it has this layout, else None (nothing raised: the caller
        then parses the file in full and reports what is wrong with it)."""
        try:
            with open(path, "rb", buffering=0) as fh:
                if os.fstat(fh.fileno()).st_size != self.size:
                    return None
                buffer = read_into_array(fh, self.size)
        except (OSError, ValueError):
            return None
        return None if buffer is None else self.match(buffer)

    def match(self, buffer: np.ndarray) -> np.ndarray | None:
        """The image in ``buffer`` (a whole file's bytes, uint8) if the file has this layout:
        a view, no copy."""
        end = self.offset + self.count
        if (buffer.size != self.size or buffer[:self.offset].tobytes() != self.head
                or buffer[end:].tobytes() != self.tail):
            return None
        image = buffer[self.offset:end].view(self.dtype).reshape(self.shape)
        return image if self.dtype.isnative else image.astype(self.dtype.newbyteorder("="))


class _Readable(Protocol):
    def readinto(self, buffer: Any, /) -> int | None: ...


def read_into_array(fh: _Readable, size: int) -> np.ndarray | None:
    """``size`` bytes of an open file as a new uint8 array (None if the file is shorter)."""
    buffer = np.empty(size, np.uint8)
    view, filled = memoryview(buffer.data), 0
    while filled < size:
        got = fh.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return buffer


class LayoutCache:
    """The layout of the last TIFF learned, tried first on the next file of a series.

    One per data set being read (not process-wide): after three files in a row that do not
    match what was learned (a writer that stamps a time in every file), it stops trying."""

    def __init__(self) -> None:
        self._layout: TiffLayout | None = None
        self._misses = 0

    def read(self, path: Path) -> np.ndarray | None:
        layout = self._layout
        return None if layout is None else self._count(layout.read(path))

    def match(self, buffer: np.ndarray) -> np.ndarray | None:
        """:meth:`read` for a file already in memory."""
        layout = self._layout
        return None if layout is None else self._count(layout.match(buffer))

    def _count(self, image: np.ndarray | None) -> np.ndarray | None:
        self._misses = 0 if image is not None else self._misses + 1
        if self._misses >= 3:
            self._layout = None
        return image

    def learn(self, path: Path) -> None:
        """Parse ``path`` (just decoded the slow way) for the next files, while worth it."""
        if self._misses < 3:
            self._layout = TiffLayout.of(path)

    def learn_bytes(self, data: bytes) -> None:
        """:meth:`learn` for a file already in memory."""
        if self._misses < 3:
            self._layout = TiffLayout.of_bytes(data)


__all__ = ["LayoutCache", "TiffLayout", "read_into_array"]
