"""Series of TIFFs read without re-parsing (harness.inputs.tiff_layout) give exactly what a
full decode gives, and anything unusual goes the full way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import harness.inputs.emva_descriptor as descriptor_mod
from harness.errors import ConfigError
from harness.inputs.emva_descriptor import load_image
from harness.inputs.tiff_layout import LayoutCache, TiffLayout


def write_series(folder: Path, count: int, **kwargs: object) -> list[tuple[Path, np.ndarray]]:
    rng = np.random.default_rng(count)
    out = []
    for i in range(count):
        image = rng.integers(0, 4096, (48, 64), dtype=np.uint16)
        path = folder / f"f{i:03d}.tif"
        tifffile.imwrite(path, image, **kwargs)  # type: ignore[arg-type]
        out.append((path, image))
    return out


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths that went through the full decoder."""
    seen: list[Path] = []
    real = descriptor_mod._decode

    def counting(path: Path, suffix: str) -> np.ndarray:
        seen.append(path)
        return real(path, suffix)

    monkeypatch.setattr(descriptor_mod, "_decode", counting)
    return seen


def test_a_series_is_parsed_once_and_read_exactly(tmp_path: Path, decodes: list[Path]) -> None:
    series = write_series(tmp_path, 12)
    cache = LayoutCache()
    for path, image in series:
        loaded = load_image(path, bits=12, shape=(48, 64), layouts=cache)
        assert loaded.dtype == np.uint16
        np.testing.assert_array_equal(loaded, image)
    assert decodes == [series[0][0]]


def test_a_file_with_other_tags_is_decoded_in_full(tmp_path: Path, decodes: list[Path]) -> None:
    series = write_series(tmp_path, 3, description="run 1")
    odd = tmp_path / "odd.tif"
    other = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)
    tifffile.imwrite(odd, other, description="run 2")  # same size, one tag differs
    cache = LayoutCache()
    for path, _ in series:
        load_image(path, layouts=cache)
    np.testing.assert_array_equal(load_image(odd, layouts=cache), other)
    assert decodes == [series[0][0], odd]


def test_compressed_files_are_not_learned(tmp_path: Path, decodes: list[Path]) -> None:
    series = write_series(tmp_path, 3, compression="zlib")
    assert TiffLayout.of(series[0][0]) is None
    cache = LayoutCache()
    for path, image in series:
        np.testing.assert_array_equal(load_image(path, layouts=cache), image)
    assert len(decodes) == 3


def test_big_endian_files_are_read_directly_and_returned_native(
        tmp_path: Path, decodes: list[Path]) -> None:
    series = write_series(tmp_path, 3, byteorder=">")
    cache = LayoutCache()
    for path, image in series:
        loaded = load_image(path, layouts=cache)
        assert loaded.dtype == np.uint16 and loaded.dtype.isnative
        np.testing.assert_array_equal(loaded, image)
    assert decodes == [series[0][0]]


def test_a_truncated_file_is_reported_not_misread(tmp_path: Path) -> None:
    series = write_series(tmp_path, 2)
    data = series[1][0].read_bytes()
    series[1][0].write_bytes(data[: len(data) // 2])
    cache = LayoutCache()
    load_image(series[0][0], layouts=cache)
    with pytest.raises(ConfigError, match=r"f001\.tif"):
        load_image(series[1][0], layouts=cache)


def test_range_and_shape_are_checked_on_the_fast_path(tmp_path: Path,
                                                        decodes: list[Path]) -> None:
    series = write_series(tmp_path, 2)
    hot = series[1][1].copy()
    hot[5, 7] = 4096
    tifffile.imwrite(series[1][0], hot)
    cache = LayoutCache()
    load_image(series[0][0], bits=12, layouts=cache)
    with pytest.raises(ConfigError, match="4096 exceeds the 12-bit range"):
        load_image(series[1][0], bits=12, layouts=cache)
    with pytest.raises(ConfigError, match="expected 32x48"):
        load_image(series[1][0], shape=(48, 32), layouts=cache)
    assert decodes == [series[0][0]]


def test_the_cache_gives_up_after_three_misses_in_a_row(tmp_path: Path,
                                                          decodes: list[Path]) -> None:
    paths = []
    for i in range(6):
        path = tmp_path / f"s{i}.tif"
        tifffile.imwrite(path, np.full((8, 8), i, np.uint16), description=f"frame {i}")
        paths.append(path)
    cache = LayoutCache()
    for path in paths:
        load_image(path, layouts=cache)
    assert len(decodes) == 6
    assert cache._layout is None
