"""Pixel-format unpacking against hand-built buffers (bit layouts worked out by hand from the
PFNC 2.3 / GigE Vision figures quoted in the module docstring) and against harvesters' own,
independently written PFNC expanders. All comparisons are exact: integer bit manipulation."""

from __future__ import annotations

import numpy as np
import pytest
from harvesters.util.pfnc import Dictionary, dict_by_names

from harness.devices.camera.pixelformats import BY_CODE, BY_NAME, pack, pixel_format, unpack
from harness.errors import CameraError


def test_codes_agree_with_harvesters_pfnc_table() -> None:
    assert {n: f.code for n, f in BY_NAME.items()} == {n: dict_by_names[n] for n in BY_NAME}
    assert BY_CODE[0x01080001].name == "Mono8"
    assert all(f.bits_per_pixel in (8, 10, 12, 16, 24, 32) for f in BY_NAME.values())


def test_mono12p_hand_built() -> None:
    # p0 = 0x123, p1 = 0xABC: B0 = p0 low byte, B1 = p0 high nibble | p1 low nibble << 4,
    # B2 = p1 >> 4 (PFNC 12p, LSB first).
    out = unpack(bytes([0x23, 0xC1, 0xAB]), "Mono12p", 2, 1)
    assert out.tolist() == [[0x123, 0xABC]] and out.dtype == np.uint16


def test_mono10p_hand_built() -> None:
    # 0x3FF | 0x000 << 10 | 0x155 << 20 | 0x2AA << 30 = 0xAA955003FF, little-endian bytes.
    out = unpack(bytes([0xFF, 0x03, 0x50, 0x95, 0xAA]), "Mono10p", 4, 1)
    assert out.tolist() == [[0x3FF, 0x000, 0x155, 0x2AA]]


def test_gige_mono12packed_and_mono10packed_hand_built() -> None:
    # GigE: B0 = p0 >> 4, B1 = p0 & 0xF | (p1 & 0xF) << 4, B2 = p1 >> 4.
    assert unpack(bytes([0x12, 0xC3, 0xAB]), "Mono12Packed", 2, 1).tolist() == [[0x123, 0xABC]]
    # 10-bit: B0 = p0 >> 2, B1 = p0 & 3 | (p1 & 3) << 4, B2 = p1 >> 2.
    assert unpack(bytes([0xFF, 0x13, 0x55]), "Mono10Packed", 2, 1).tolist() == [[0x3FF, 0x155]]


def test_unpacked_mono_and_bayer() -> None:
    assert unpack(bytes([1, 2, 3, 4, 5, 6]), "Mono8", 3, 2).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert unpack(bytes([0x34, 0x12, 0xFF, 0x0F]), "Mono12", 2, 1).tolist() == [[0x1234, 0xFFF]]
    assert unpack(bytes([0x34, 0x12]), "Mono16", 1, 1).tolist() == [[0x1234]]
    assert unpack(bytes([0x34, 0x12]), "Mono14", 1, 1).dtype == np.uint16
    assert pixel_format("BayerRG12").cfa == "RGGB" and pixel_format("BayerGB8").cfa == "GBRG"
    assert pixel_format("BayerBG12p").cfa == "BGGR" and pixel_format("BayerGR10Packed").cfa == "GRBG"
    assert unpack(bytes([0x23, 0xC1, 0xAB]), "BayerRG12p", 2, 1).tolist() == [[0x123, 0xABC]]


def test_colour_formats_come_out_rgb() -> None:
    rgb = unpack(bytes([10, 20, 30, 40, 50, 60]), "RGB8", 2, 1)
    assert rgb.shape == (1, 2, 3) and rgb[0, 1].tolist() == [40, 50, 60]
    bgr = unpack(bytes([30, 20, 10, 60, 50, 40]), "BGR8", 2, 1)
    assert np.array_equal(bgr, rgb)
    rgba = unpack(bytes([1, 2, 3, 255, 4, 5, 6, 128]), "RGBa8", 2, 1)
    assert rgba.shape == (1, 2, 4) and rgba[0, 1].tolist() == [4, 5, 6, 128]
    bgra = unpack(bytes([3, 2, 1, 255, 6, 5, 4, 128]), "BGRa8", 2, 1)
    assert np.array_equal(bgra, rgba)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_matches_harvesters_expanders_and_round_trips(name: str) -> None:
    spec = BY_NAME[name]
    rng = np.random.default_rng(spec.code)
    h, w = 6, 8  # even width: every packed group is whole
    shape = (h, w, spec.channels) if spec.channels > 1 else (h, w)
    pixels = rng.integers(0, 1 << spec.bits, size=shape).astype(spec.dtype)
    buf = pack(pixels, name)
    assert len(buf) == spec.frame_bytes(w, h)
    out = unpack(buf, name, w, h)
    assert np.array_equal(out, pixels) and out.dtype == spec.dtype
    theirs = Dictionary.get_proxy(symbolic=name).expand(np.frombuffer(buf, np.uint8))
    if spec.layout in ("bgr", "bgra"):
        ours = unpack(buf, "RGB8" if spec.channels == 3 else "RGBa8", w, h)
    else:
        ours = out
    assert np.array_equal(np.asarray(theirs).reshape(-1), ours.reshape(-1))


def test_odd_pixel_count_packed_stream() -> None:
    pixels = np.array([[1, 2, 3], [4, 5, 1023]], np.uint16)  # 6 pixels: 10p needs 7.5 -> 8 bytes
    for name in ("Mono10p", "Mono12p", "Mono12Packed"):
        buf = pack(pixels, name)
        assert len(buf) == BY_NAME[name].frame_bytes(3, 2)
        assert np.array_equal(unpack(buf, name, 3, 2), pixels)
    odd = np.array([[7, 9, 11]], np.uint16)
    assert np.array_equal(unpack(pack(odd, "Mono10p"), "Mono10p", 3, 1), odd)


def test_offset_and_line_padding() -> None:
    lines = bytes([9, 9]) + bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE])  # 2-byte header, 1-byte pad
    out = unpack(lines, "Mono8", 3, 2, offset=2, padding_x=1)
    assert out.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_result_is_a_copy_not_a_view() -> None:
    src = bytearray([1, 2, 3, 4])
    out = unpack(src, "Mono8", 2, 2)
    src[0] = 99  # the driver re-queues the buffer and the camera overwrites it
    assert out[0, 0] == 1
    rgb = bytearray(range(12))
    out3 = unpack(rgb, "RGB8", 2, 2)
    rgb[0] = 99
    assert out3[0, 0, 0] == 0


def test_errors_are_one_line() -> None:
    with pytest.raises(CameraError, match=r"unsupported pixel format 'YUV422'; supported: .*Mono8"):
        unpack(b"\0" * 8, "YUV422", 2, 2)
    with pytest.raises(CameraError, match=r"unsupported pixel format 0x02100032"):
        pixel_format(0x02100032)
    with pytest.raises(CameraError, match=r"Mono12p 4x4: buffer holds 10 bytes, needs 24"):
        unpack(b"\0" * 10, "Mono12p", 4, 4)
    with pytest.raises(CameraError, match="bad frame size"):
        unpack(b"", "Mono8", 0, 4)
