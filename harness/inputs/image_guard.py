"""A header check run before any frame is decoded: a corrupt header that declares gigabytes
is refused before a decoder allocates them.

Its own module so that readers of plain TIFF/PNG series (an EMVA descriptor set) need neither
the capture-set manifest models nor pydantic to start.
"""

from __future__ import annotations

from pathlib import Path

import tifffile

from harness.errors import ConfigError

#: The most pixel data one frame (one TIFF page, one PNG) may declare: 1 GiB is a 512 MP 16-bit
#: mono or a 170 MP 16-bit RGB image, far beyond any camera module, while a corrupt header (a
#: flipped bit in ImageLength) that declares 8 GiB or 128 GiB is refused before a decoder
#: allocates, and fills, that much memory.
MAX_FRAME_BYTES = 1 << 30
#: Above 64 MiB a page may not declare more than 4096 x the file's size: lossless compression
#: of real frames stays far below that (a flat 12 MP frame deflates ~1000:1), while a 1.6 kB file
#: declaring 512 MiB is a corrupt header whose decoding costs seconds.
MAX_RATIO_ABOVE = 64 << 20
MAX_RATIO = 4096
#: The smallest image file directory: a 2-byte entry count, one 12-byte entry and a 4-byte
#: next-IFD offset (TIFF 6.0, section 2; BigTIFF's are larger). A file of n bytes holds at most
#: n // 18 of them, so a longer chain of pages revisits IFDs: a next-IFD offset pointing back
#: (one flipped bit suffices) would otherwise make every reader walk the chain forever.
MIN_IFD_BYTES = 18


def guard_image_size(path: Path) -> None:
    """Refuse a TIFF whose pages, or a PNG whose header, declare more than MAX_FRAME_BYTES.

    Reads headers only (TIFF IFDs via tifffile, the PNG IHDR chunk, PNG spec 11.2.2). Files
    that are not readable TIFF/PNG pass: the decoder then reports what is wrong with them. A
    TIFF whose chain of IFDs is longer than the file can hold (:data:`MIN_IFD_BYTES`) loops and
    is refused.
    """
    declared: list[tuple[tuple[int, ...], int]] = []
    looping, most = False, 0
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(33)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            depth, colour = head[24], head[25]
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
            declared.append(((height, width, channels), max(depth, 8) // 8))
        elif head[:2] in (b"II", b"MM"):
            most = max(1, size // MIN_IFD_BYTES)
            with tifffile.TiffFile(path) as tif:
                for count, page in enumerate(tif.pages, 1):
                    if count > most:
                        looping = True
                        break
                    dtype = getattr(page, "dtype", None)
                    shape = tuple(int(n) for n in getattr(page, "shape", ()))
                    declared.append((shape, dtype.itemsize if dtype is not None else 1))
    except Exception:  # not a TIFF/PNG header we can read: leave it to the decoder
        return
    if looping:
        raise ConfigError(f"TIFF has more than {most} page(s) in a {size}-byte "
                          "file: its chain of image file directories loops (corrupt file?)",
                          source=str(path))
    for shape, itemsize in declared:
        nbytes = itemsize
        for n in shape:
            nbytes *= n
        if nbytes > MAX_FRAME_BYTES or (nbytes > MAX_RATIO_ABOVE and nbytes > MAX_RATIO * size):
            raise ConfigError(f"image declares {'x'.join(map(str, shape))} pixels of {itemsize} "
                              f"byte(s) = {nbytes / 2**20:.4g} MiB in a {size}-byte file; at "
                              f"most {MAX_FRAME_BYTES >> 30} GiB per frame and {MAX_RATIO}:1 "
                              "compression are accepted (corrupt header?)", source=str(path))


__all__ = ["MAX_FRAME_BYTES", "MAX_RATIO", "MAX_RATIO_ABOVE", "MIN_IFD_BYTES",
           "guard_image_size"]
