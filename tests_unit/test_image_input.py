"""Image and focus-stack loading for the optics analyses (harness.inputs.image_input)."""

from __future__ import annotations

from pathlib import Path

import colour
import cv2
import numpy as np
import pytest
import tifffile

from harness.capture.writer import CaptureSetWriter
from harness.errors import ConfigError
from harness.inputs.image_input import (
    BAYER_PATTERNS,
    bayer_mask,
    demosaic,
    gray_image,
    load_image,
    load_stack,
    rgb_image,
    sfr_plane,
    superpixel_rgb,
)


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    raw = np.zeros(rgb.shape[:2])
    for ch in "RGB":
        m = bayer_mask(raw.shape, pattern, ch)
        raw[m] = rgb[..., "RGB".index(ch)][m]
    return raw


def test_tiff_png_8_16_bit_scaled_to_unit(tmp_path: Path) -> None:
    a16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m16.tif", a16)
    img = load_image(tmp_path / "m16.tif")
    assert img.kind == "mono" and img.bit_depth == 16
    assert np.allclose(img.data, a16 / 65535.0)
    rgb8 = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb8[..., 0], rgb8[..., 1], rgb8[..., 2] = 10, 100, 250
    cv2.imwrite(str(tmp_path / "c8.png"), rgb8[..., ::-1])  # OpenCV writes BGR
    png = load_image(tmp_path / "c8.png")
    assert png.kind == "rgb" and png.bit_depth == 8
    assert np.allclose(png.data[0, 0], np.array([10, 100, 250]) / 255.0)  # RGB order kept
    rgb16 = (rgb8.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    assert np.allclose(load_image(tmp_path / "c16.png").data, png.data)


def test_srgb_encoding_decoded_by_colour_science(tmp_path: Path) -> None:
    a = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    tifffile.imwrite(tmp_path / "s.tif", a)
    img = load_image(tmp_path / "s.tif", encoding="srgb")
    assert np.allclose(img.data, colour.cctf_decoding(a / 255.0, function="sRGB"))


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_bayer_demosaic_and_superpixel_recover_flat_colour(pattern: str) -> None:
    colour_rgb = np.array([0.7, 0.4, 0.1])
    raw = mosaic(np.broadcast_to(colour_rgb, (8, 8, 3)), pattern)
    assert np.allclose(superpixel_rgb(raw, pattern), colour_rgb)
    assert np.allclose(demosaic(raw, pattern)[2:-2, 2:-2], colour_rgb, atol=1e-4)


def test_sfr_plane_choices(tmp_path: Path) -> None:
    raw = (np.random.default_rng(0).random((8, 8)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "raw.tif", raw)
    img = load_image(tmp_path / "raw.tif", bayer="grbg")
    assert img.kind == "bayer" and img.bayer == "GRBG"
    red = sfr_plane(img, "r")
    assert red.mask is not None and red.mask[0, 1] and not red.mask[0, 0]
    assert red.oversampling == 2 and red.phase_pitch == 2 and red.locate is not None
    assert sfr_plane(img, "G").oversampling == 4
    assert sfr_plane(img, "Y").mask is None
    assert rgb_image(img).shape == (4, 4, 3)
    assert gray_image(img).shape == (8, 8)
    mono = load_image(tmp_path / "raw.tif")
    with pytest.raises(ConfigError, match="--channel R needs an RGB image"):
        sfr_plane(mono, "R")
    with pytest.raises(ConfigError, match="colour analysis needs"):
        rgb_image(mono)


def test_bad_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_image(tmp_path / "nope.tif")
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unsupported file type"):
        load_image(tmp_path / "x.jpg")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ConfigError, match="unreadable image"):
        load_image(tmp_path / "bad.tif")
    tifffile.imwrite(tmp_path / "odd.tif", np.zeros((5, 6), np.uint16))
    with pytest.raises(ConfigError, match="even dimensions"):
        load_image(tmp_path / "odd.tif", bayer="RGGB")
    with pytest.raises(ConfigError, match="--bayer: 'RGBG' is not one of RGGB, GRBG"):
        load_image(tmp_path / "odd.tif", bayer="RGBG")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 4, 3), np.uint8), photometric="rgb")
    with pytest.raises(ConfigError, match="single-channel raw mosaic"):
        load_image(tmp_path / "rgb.tif", bayer="RGGB")
    tifffile.imwrite(tmp_path / "even.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(ConfigError, match="not raw Bayer"):
        load_image(tmp_path / "even.tif", bayer="RGGB", encoding="srgb")
    with pytest.raises(ConfigError, match="--encoding: 'gamma' is not one of linear, srgb"):
        load_image(tmp_path / "even.tif", encoding="gamma")


def test_stack_sources(tmp_path: Path) -> None:
    frames = [np.full((8, 8), 1000 * (i + 1), np.uint16) for i in range(4)]
    tifffile.imwrite(tmp_path / "stack.tif", np.stack(frames), photometric="minisblack")
    st = load_stack(tmp_path / "stack.tif")
    assert len(st.frames) == 4 and st.positions == (0.0, 1.0, 2.0, 3.0)
    assert st.positions_from == "frame index"
    st2 = load_stack(tmp_path / "stack.tif", positions="1.5,2,2.5,3")
    assert st2.positions == (1.5, 2.0, 2.5, 3.0) and st2.positions_from == "--positions"
    with pytest.raises(ConfigError, match="3 positions given for 4 frames"):
        load_stack(tmp_path / "stack.tif", positions="1,2,3")
    folder = tmp_path / "sweep"
    folder.mkdir()
    for z, fr in zip((-0.5, 0.0, 0.5), frames, strict=False):
        tifffile.imwrite(folder / f"focus_{z:+.2f}.tif", fr)
    st3 = load_stack(folder)
    assert st3.positions_from == "file names"
    assert sorted(st3.positions) == [-0.5, 0.0, 0.5]
    with CaptureSetWriter(tmp_path / "cs", bits=16) as w:
        for z, fr in zip((10.0, 20.0, 30.0), frames, strict=False):
            w.add(fr, role="focus", focus_position=z)
        w.add(frames[0], role="dark")
    st4 = load_stack(tmp_path / "cs")
    assert st4.positions == (10.0, 20.0, 30.0) and st4.positions_from == "capture set"
    assert np.allclose(st4.frames[0], 1000 / 65535)


def test_bad_stacks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_stack(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \.tif"):
        load_stack(tmp_path / "empty")
    tifffile.imwrite(tmp_path / "two.tif", np.zeros((2, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ConfigError, match="at least 3 frames"):
        load_stack(tmp_path / "two.tif")
    with pytest.raises(ConfigError, match="comma-separated numbers"):
        tifffile.imwrite(tmp_path / "three.tif", np.zeros((3, 8, 8), np.uint16),
                         photometric="minisblack")
        load_stack(tmp_path / "three.tif", positions="a,b,c")
    with CaptureSetWriter(tmp_path / "cs") as w:
        w.add(np.zeros((4, 4), np.uint16), role="dark")
    with pytest.raises(ConfigError, match="no frames of role 'focus'"):
        load_stack(tmp_path / "cs")


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_bayer_luminance_equals_demosaic_then_luminance(pattern: str) -> None:
    from harness.inputs.image_input import bayer_luminance, luminance

    raw = np.random.default_rng(8).random((40, 56))
    np.testing.assert_allclose(bayer_luminance(raw, pattern),
                               luminance(demosaic(raw, pattern)), rtol=0, atol=1e-14)
