"""GenICam pixel formats (PFNC) to numpy arrays, vectorised.

Codes are the 32-bit PFNC values (GenICam Pixel Format Naming Convention 2.x, section 5 and its
``PFNC.h`` value table; the same values as ``harvesters.util.pfnc.symbolics``, which the tests
cross-check). Bits 16-23 of a code are the bits a pixel occupies in the buffer.

Layouts (where each comes from):

* Unpacked ``Mono10/12/14/16`` and ``Bayer**10/12/16``: one little-endian ``uint16`` per pixel,
  the value in the low bits (PFNC 2.x, "Mono10"/"Mono12" unpacked figures).
* PFNC packed ``Mono10p``, ``Mono12p``, ``Bayer**10p``, ``Bayer**12p``: the pixels form one
  LSB-first bit stream over the whole image, no per-line padding: pixel *k* is bits
  ``[k*b, (k+1)*b)`` of the little-endian integer the bytes form (PFNC 2.3, "10p"/"12p" figures:
  ``Mono10p`` 5 bytes = 4 pixels, ``p0 = B0 | (B1 & 0x03) << 8``; ``Mono12p`` 3 bytes = 2 pixels,
  ``p0 = B0 | (B1 & 0x0F) << 8``, ``p1 = B1 >> 4 | B2 << 4``).
* GigE Vision ``Mono12Packed`` / ``Bayer**12Packed`` (GigE Vision 2.x pixel-format appendix,
  "GVSP_PIX_MONO12_PACKED"): 3 bytes = 2 pixels, MSB-first per pixel with the low nibbles shared
  in the middle byte: ``p0 = B0 << 4 | (B1 & 0x0F)``, ``p1 = B2 << 4 | B1 >> 4``.
  ``Mono10Packed`` likewise with 2-bit remainders: ``p0 = B0 << 2 | (B1 & 0x03)``,
  ``p1 = B2 << 2 | (B1 >> 4) & 0x03``. (The same layouts are implemented in
  ``harvesters.util.pfnc`` ``_GroupPacked_12`` / ``_10p``, which the tests compare against.)
* ``RGB8``/``BGR8``/``RGBa8``/``BGRa8``: interleaved bytes; returned as ``H x W x 3`` (R, G, B)
  or ``H x W x 4`` (R, G, B, A): BGR orders are flipped to RGB so that callers see one order.

Every function returns an array that owns its memory (never a view of a driver buffer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.errors import CameraError

Layout = Literal["u8", "u16", "lsb_packed", "gige_packed", "rgb", "bgr", "rgba", "bgra"]


@dataclass(frozen=True)
class PixelFormat:
    """One PFNC pixel format: its code, significant bits, storage layout and CFA pattern."""

    name: str
    code: int
    bits: int
    layout: Layout
    channels: int = 1
    cfa: str | None = None

    @property
    def bits_per_pixel(self) -> int:
        """Bits one pixel occupies in the buffer (PFNC code bits 16-23)."""
        return (self.code >> 16) & 0xFF

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        return np.uint8 if self.bits <= 8 else np.uint16

    def frame_bytes(self, width: int, height: int) -> int:
        """Bytes an unpadded ``width x height`` frame takes (packed streams rounded up)."""
        return (width * height * self.bits_per_pixel + 7) // 8


_FORMATS: list[PixelFormat] = [
    PixelFormat("Mono8", 0x01080001, 8, "u8"),
    PixelFormat("Mono10", 0x01100003, 10, "u16"),
    PixelFormat("Mono12", 0x01100005, 12, "u16"),
    PixelFormat("Mono14", 0x01100025, 14, "u16"),
    PixelFormat("Mono16", 0x01100007, 16, "u16"),
    PixelFormat("Mono10p", 0x010A0046, 10, "lsb_packed"),
    PixelFormat("Mono12p", 0x010C0047, 12, "lsb_packed"),
    PixelFormat("Mono10Packed", 0x010C0004, 10, "gige_packed"),
    PixelFormat("Mono12Packed", 0x010C0006, 12, "gige_packed"),
    PixelFormat("RGB8", 0x02180014, 8, "rgb", 3),
    PixelFormat("BGR8", 0x02180015, 8, "bgr", 3),
    PixelFormat("RGBa8", 0x02200016, 8, "rgba", 4),
    PixelFormat("BGRa8", 0x02200017, 8, "bgra", 4),
]
# Bayer codes per PFNC: order GR, RG, GB, BG within each family.
_BAYER: dict[str, tuple[int, int, int, int, int, Layout]] = {
    # suffix: (GR, RG, GB, BG, bits, layout)
    "8": (0x01080008, 0x01080009, 0x0108000A, 0x0108000B, 8, "u8"),
    "10": (0x0110000C, 0x0110000D, 0x0110000E, 0x0110000F, 10, "u16"),
    "12": (0x01100010, 0x01100011, 0x01100012, 0x01100013, 12, "u16"),
    "16": (0x0110002E, 0x0110002F, 0x01100030, 0x01100031, 16, "u16"),
    "10p": (0x010A0056, 0x010A0058, 0x010A0054, 0x010A0052, 10, "lsb_packed"),
    "12p": (0x010C0057, 0x010C0059, 0x010C0055, 0x010C0053, 12, "lsb_packed"),
    "10Packed": (0x010C0026, 0x010C0027, 0x010C0028, 0x010C0029, 10, "gige_packed"),
    "12Packed": (0x010C002A, 0x010C002B, 0x010C002C, 0x010C002D, 12, "gige_packed"),
}
for _suffix, (*_codes, _bits, _layout) in _BAYER.items():
    for _order, _code in zip(("GR", "RG", "GB", "BG"), _codes, strict=True):
        _cfa = {"GR": "GRBG", "RG": "RGGB", "GB": "GBRG", "BG": "BGGR"}[_order]
        _FORMATS.append(PixelFormat(f"Bayer{_order}{_suffix}", _code, _bits, _layout, 1, _cfa))

BY_NAME: dict[str, PixelFormat] = {f.name: f for f in _FORMATS}
BY_CODE: dict[int, PixelFormat] = {f.code: f for f in _FORMATS}


def pixel_format(key: str | int) -> PixelFormat:
    """The format named ``key`` (``"Mono12p"``) or with PFNC code ``key``."""
    found = BY_CODE.get(key) if isinstance(key, int) else BY_NAME.get(key)
    if found is None:
        shown = f"{key:#010x}" if isinstance(key, int) else repr(key)
        raise CameraError(f"unsupported pixel format {shown}; supported: "
                          f"{', '.join(sorted(BY_NAME))}")
    return found


def _lsb_packed(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """PFNC LSB-first bit stream of ``bits``-bit pixels to ``uint16``.

    Bytes are grouped so that each group holds a whole number of pixels (10 bits: 5 bytes = 4
    pixels; 12 bits: 3 bytes = 2 pixels); each group is read as a little-endian ``uint64`` and
    pixel *j* of the group is ``(group >> j*bits) & mask``.
    """
    group_bits = int(np.lcm(bits, 8))
    group_bytes, per_group = group_bits // 8, group_bits // bits
    groups = -(-count // per_group)
    padded = np.zeros(groups * group_bytes, np.uint8)
    n = min(data.size, padded.size)
    padded[:n] = data[:n]
    wide = np.zeros((groups, 8), np.uint8)
    wide[:, :group_bytes] = padded.reshape(groups, group_bytes)
    words = wide.view("<u8")  # (groups, 1)
    shifts = np.arange(per_group, dtype=np.uint64) * np.uint64(bits)
    pixels = (words >> shifts) & np.uint64((1 << bits) - 1)
    return pixels.astype(np.uint16).reshape(-1)[:count]


def _gige_packed(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """GigE Vision ``Mono10Packed``/``Mono12Packed``: 3 bytes = 2 pixels (see module doc)."""
    groups = -(-count // 2)
    padded = np.zeros(groups * 3, np.uint8)
    n = min(data.size, padded.size)
    padded[:n] = data[:n]
    b = padded.reshape(groups, 3).astype(np.uint16)
    low = bits - 8
    mask = (1 << low) - 1
    out = np.empty((groups, 2), np.uint16)
    out[:, 0] = (b[:, 0] << low) | (b[:, 1] & mask)
    out[:, 1] = (b[:, 2] << low) | ((b[:, 1] >> 4) & mask)
    return out.reshape(-1)[:count]


def unpack(buffer: bytes | bytearray | memoryview | np.ndarray, fmt: str | int | PixelFormat,
           width: int, height: int, *, offset: int = 0, padding_x: int = 0,
           out: np.ndarray | None = None) -> np.ndarray:
    """Pixels of one frame: ``height x width`` (mono, Bayer) or ``height x width x C`` (colour).

    ``offset`` skips bytes before the image; ``padding_x`` is the number of bytes after each
    line (GenTL ``BUFFER_INFO_PADDING_X``; byte-aligned formats only). The result is ``uint8``
    for 8-bit formats, else ``uint16`` with the value in the low bits, and always a copy:
    a new array, or ``out`` (of the right shape and dtype, e.g. one slot of a preallocated
    stack) filled in place, which saves a second copy of every frame in a burst.
    """
    spec = fmt if isinstance(fmt, PixelFormat) else pixel_format(fmt)
    if width <= 0 or height <= 0:
        raise CameraError(f"{spec.name}: bad frame size {width} x {height}")
    raw = np.frombuffer(buffer, np.uint8) if not isinstance(buffer, np.ndarray) else \
        buffer.reshape(-1).view(np.uint8)
    raw = raw[offset:]
    count = width * height
    if padding_x:
        line = width * spec.bits_per_pixel
        if line % 8:
            raise CameraError(f"{spec.name}: line padding with a line of {line} bits "
                              f"(not whole bytes) is not supported")
        need = (line // 8 + padding_x) * height
        if raw.size < need:
            raise CameraError(f"{spec.name} {width}x{height}: buffer holds {raw.size} bytes, "
                              f"needs {need}")
        raw = raw[:need].reshape(height, line // 8 + padding_x)[:, :line // 8].reshape(-1)
    need = spec.frame_bytes(width, height)
    if raw.size < need:
        raise CameraError(f"{spec.name} {width}x{height}: buffer holds {raw.size} bytes, "
                          f"needs {need}")
    raw = raw[:need]
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    if out is not None and (out.shape != shape or out.dtype != spec.dtype):
        raise ValueError(f"out has shape {out.shape} {out.dtype}, {spec.name} gives "
                         f"{shape} {np.dtype(spec.dtype)}")
    view: np.ndarray
    if spec.layout == "u8":
        view = raw.reshape(shape)
    elif spec.layout == "u16":
        view = raw.view("<u2").reshape(shape)
    elif spec.layout == "lsb_packed":
        view = _lsb_packed(raw, spec.bits, count).reshape(shape)
    elif spec.layout == "gige_packed":
        view = _gige_packed(raw, spec.bits, count).reshape(shape)
    else:
        view = raw.reshape(shape)
        if spec.layout in ("bgr", "bgra"):
            view = view[..., [2, 1, 0] + ([3] if spec.channels == 4 else [])]
    if out is None:
        out = np.empty(shape, spec.dtype)
    np.copyto(out, view)
    return out


def pack(pixels: np.ndarray, fmt: str | int | PixelFormat) -> bytes:
    """The buffer a camera would send for ``pixels`` (inverse of :func:`unpack`).

    For the simulated camera and for tests; colour formats take R, G, B(, A) order.
    """
    spec = fmt if isinstance(fmt, PixelFormat) else pixel_format(fmt)
    flat = np.ascontiguousarray(pixels)
    if spec.layout == "u8":
        return flat.astype(np.uint8).tobytes()
    if spec.layout == "u16":
        return flat.astype("<u2").tobytes()
    if spec.layout in ("rgb", "rgba"):
        return flat.astype(np.uint8).tobytes()
    if spec.layout in ("bgr", "bgra"):
        order = [2, 1, 0] + ([3] if spec.channels == 4 else [])
        return np.ascontiguousarray(flat[..., order]).astype(np.uint8).tobytes()
    values = flat.reshape(-1).astype(np.uint64) & np.uint64((1 << spec.bits) - 1)
    if spec.layout == "gige_packed":
        if values.size % 2:
            values = np.append(values, np.uint64(0))
        pairs = values.reshape(-1, 2)
        low = spec.bits - 8
        mask = np.uint64((1 << low) - 1)
        out = np.empty((pairs.shape[0], 3), np.uint8)
        out[:, 0] = pairs[:, 0] >> np.uint64(low)
        out[:, 1] = (pairs[:, 0] & mask) | ((pairs[:, 1] & mask) << np.uint64(4))
        out[:, 2] = pairs[:, 1] >> np.uint64(low)
        return out.tobytes()
    group_bits = int(np.lcm(spec.bits, 8))
    group_bytes, per_group = group_bits // 8, group_bits // spec.bits
    n = values.size
    groups = -(-n // per_group)
    padded = np.zeros(groups * per_group, np.uint64)
    padded[:n] = values
    shifts = np.arange(per_group, dtype=np.uint64) * np.uint64(spec.bits)
    words = np.bitwise_or.reduce(padded.reshape(groups, per_group) << shifts, axis=1)
    stream = words.astype("<u8").view(np.uint8).reshape(groups, 8)[:, :group_bytes].reshape(-1)
    return stream[:(n * spec.bits + 7) // 8].tobytes()


__all__ = ["BY_CODE", "BY_NAME", "Layout", "PixelFormat", "pack", "pixel_format", "unpack"]
