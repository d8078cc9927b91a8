"""Read and write the EMVA 1288 descriptor file used by the reference implementation.

The format (docs/standards.md#emva-descriptor-file; ``emva1288.process.ParseEmvaDescriptorFile``) is
plain text, one record per line, whitespace-separated, ``#`` comments and blank lines ignored::

    v 4.0                      optional data version
    n <bits> <width> <height>  exactly once
    b <exposure_ns> <photons>  bright point, followed by >= 2 ``i`` lines
    d <exposure_ns>            dark point (photons = 0), followed by >= 2 ``i`` lines
    i <relative path>          one image of the preceding point (``\\`` accepted as separator)

A point with exactly 2 images is *temporal* (a pair), one with more is *spatial* (a stack).
Decimal commas are accepted. Reading it lets data sets made by other tools load here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from harness.errors import ConfigError
from harness.inputs.image_guard import guard_image_size
from harness.inputs.tiff_layout import LayoutCache
from harness.paths import safe_relative

_IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass(frozen=True)
class DescriptorPoint:
    """One measurement point: its images in file order.

    ``photons`` is the mean photon count per pixel; ``None`` for a dark point.
    """

    exposure_ns: float
    photons: float | None
    images: tuple[Path, ...]
    line: int

    @property
    def dark(self) -> bool:
        return self.photons is None

    @property
    def kind(self) -> str:
        """``"temporal"`` for a pair, ``"spatial"`` for a stack of more than two images."""
        return "temporal" if len(self.images) == 2 else "spatial"


@dataclass(frozen=True)
class EmvaDescriptor:
    """A parsed descriptor: format line, version and points in file order."""

    path: Path
    bits: int
    width: int
    height: int
    version: str | None
    points: tuple[DescriptorPoint, ...]


def _number(token: str, path: Path, line: int, field: str) -> float:
    try:
        value = float(token.replace(",", "."))
    except ValueError:
        raise ConfigError(f"{token!r} is not a number", source=str(path), line=line,
                          field=field) from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{token!r} must be a finite number >= 0", source=str(path), line=line,
                          field=field)
    return value


def _integer(token: str, path: Path, line: int, field: str, low: int, high: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ConfigError(f"{token!r} is not an integer", source=str(path), line=line,
                          field=field) from None
    if not low <= value <= high:
        raise ConfigError(f"{value} is outside {low}..{high}", source=str(path), line=line,
                          field=field)
    return value


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _image_path(token: str, folder: Path) -> Path:
    """``token`` (checked by safe_relative: relative, no ``..``) under ``folder``; a
    backslash is a separator, as in descriptors written on Windows."""
    return folder / token.replace("\\", "/")


def read_descriptor(path: str | Path, *, check_files: bool = True) -> EmvaDescriptor:
    """Parse a descriptor file; image paths are resolved against its folder.

    Raises ConfigError (one line: file, line number, field, what is allowed) on any syntax
    error, a missing ``n`` line, a point with fewer than 2 images, a duplicate point, or (with
    ``check_files``) an image file that does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("descriptor file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read descriptor: {exc}", source=str(path)) from None
    folder = path.parent
    bits = width = height = None
    version: str | None = None
    points: list[DescriptorPoint] = []
    current: tuple[float, float | None, int] | None = None
    images: list[Path] = []
    seen: set[tuple[str, float, float | None]] = set()

    def close_point() -> None:
        nonlocal current, images
        if current is None:
            return
        exposure, photons, at = current
        if len(images) < 2:
            raise ConfigError(f"point has {len(images)} image line(s); at least 2 'i' lines "
                              "must follow each 'b'/'d' line", source=str(path), line=at)
        kind = "temporal" if len(images) == 2 else "spatial"
        key = (kind, exposure, photons)
        if key in seen:
            raise ConfigError(f"duplicate {kind} point (exposure {exposure} ns, photons "
                              f"{photons})", source=str(path), line=at)
        seen.add(key)
        points.append(DescriptorPoint(exposure, photons, tuple(images), at))
        current, images = None, []

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        tag = fields[0]
        if tag == "i":
            if current is None:
                raise ConfigError("'i' line before any 'b' or 'd' line", source=str(path),
                                  line=number)
            if len(fields) != 2:
                raise ConfigError("expected 'i <relative path>' (no spaces in the path)",
                                  source=str(path), line=number)
            try:  # relative to the descriptor's folder, and inside it
                safe_relative(fields[1], "image path")
            except ConfigError as exc:
                raise ConfigError(exc.detail, source=str(path), line=number,
                                  field="i") from None
            image = _image_path(fields[1], folder)
            if check_files and not _is_file(image):
                raise ConfigError(f"image file not found: {image}", source=str(path),
                                  line=number)
            images.append(image)
            continue
        close_point()
        if tag == "v":
            if len(fields) != 2:
                raise ConfigError("expected 'v <version>'", source=str(path), line=number)
            version = fields[1]
        elif tag == "n":
            if bits is not None:
                raise ConfigError("only one 'n bits width height' line is allowed",
                                  source=str(path), line=number)
            if len(fields) != 4:
                raise ConfigError("expected 'n <bits> <width> <height>'", source=str(path),
                                  line=number)
            bits = _integer(fields[1], path, number, "bits", 1, 16)
            width = _integer(fields[2], path, number, "width", 1, 1 << 20)
            height = _integer(fields[3], path, number, "height", 1, 1 << 20)
        elif tag == "b":
            if len(fields) != 3:
                raise ConfigError("expected 'b <exposure_ns> <photons>'", source=str(path),
                                  line=number)
            current = (_number(fields[1], path, number, "exposure_ns"),
                       _number(fields[2], path, number, "photons"), number)
        elif tag == "d":
            if len(fields) != 2:
                raise ConfigError("expected 'd <exposure_ns>'", source=str(path), line=number)
            current = (_number(fields[1], path, number, "exposure_ns"), None, number)
        else:
            raise ConfigError(f"unknown record {tag!r}; allowed: v, n, b, d, i",
                              source=str(path), line=number)
    close_point()
    if bits is None or width is None or height is None:
        raise ConfigError("missing 'n <bits> <width> <height>' line", source=str(path))
    if not points:
        raise ConfigError("no 'b' or 'd' points", source=str(path))
    return EmvaDescriptor(path, bits, width, height, version, tuple(points))


def load_image(path: Path, *, bits: int | None = None, shape: tuple[int, int] | None = None,
               layouts: LayoutCache | None = None) -> np.ndarray:
    """Load one TIFF or PNG image as a 2-D unsigned integer array, checking shape and range.

    ``layouts`` (one per data set) reads a TIFF laid out like the previous one without
    parsing it again (:mod:`harness.inputs.tiff_layout`)."""
    suffix = path.suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise ConfigError(f"unsupported image type {suffix!r}; allowed: .tif, .tiff, .png",
                          source=str(path))
    fast = layouts.read(path) if layouts is not None and suffix != ".png" else None
    image = fast if fast is not None else _decode(path, suffix)
    if layouts is not None and fast is None and suffix != ".png":
        layouts.learn(path)
    return _checked(image, path, bits, shape)


def _decode(path: Path, suffix: str) -> np.ndarray:
    if not _is_file(path):
        raise ConfigError("image file not found", source=str(path))
    guard_image_size(path)
    try:
        # cv2 reads a plain 16-bit TIFF ~3x faster than tifffile; anything it cannot read
        # (or reads as colour) goes to tifffile, which also names the problem.
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None and suffix == ".png":
            raise OSError("not a readable PNG")
        if suffix != ".png" and (image is None or image.ndim != 2):
            image = tifffile.imread(path)
    except FileNotFoundError:
        raise ConfigError("image file not found", source=str(path)) from None
    except Exception as exc:  # tifffile/cv2 raise many kinds on corrupt files
        raise ConfigError(f"cannot read image: {exc}", source=str(path)) from None
    return np.asarray(image)


def _checked(image: np.ndarray, path: Path, bits: int | None,
             shape: tuple[int, int] | None) -> np.ndarray:
    if image.ndim != 2:
        raise ConfigError(f"expected a single-channel 2-D image, got shape {image.shape}",
                          source=str(path))
    if image.size == 0:
        raise ConfigError(f"the image has no pixels (shape {image.shape}): a truncated file?",
                          source=str(path))
    if image.dtype not in (np.uint8, np.uint16):
        # other tools write wider integers, e.g. the emva1288 package's PIL mode-I (int32)
        # TIFFs: accepted when every value fits 0..65535, then stored as uint16
        if image.dtype.kind not in "iu":
            raise ConfigError(f"pixel type {image.dtype} not supported; allowed: integer "
                              "images with values 0..65535", source=str(path))
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 65535:
            raise ConfigError(f"{image.dtype} values {low}..{high} do not fit 0..65535",
                              source=str(path))
        image = image.astype(np.uint16)
    if shape is not None and image.shape != shape:
        raise ConfigError(f"image is {image.shape[1]}x{image.shape[0]}, expected "
                          f"{shape[1]}x{shape[0]} (descriptor / first frame)", source=str(path))
    if bits is not None and image.dtype == np.uint16 and bits < 16:
        peak = int(cv2.minMaxLoc(image)[1]) if image.size else 0
        if peak >= 1 << bits:
            raise ConfigError(f"pixel value {peak} exceeds the {bits}-bit range "
                              f"0..{(1 << bits) - 1}", source=str(path))
    return image


def write_descriptor(path: str | Path, *, bits: int, width: int, height: int,
                     points: Sequence[tuple[float, float | None, Sequence[str]]],
                     version: str = "4.0") -> Path:
    """Write a descriptor: ``points`` are (exposure_ns, photons or None for dark, image paths
    relative to the descriptor's folder). Written as the reference generator does
    (``b %.1f %.3f``, ``d %.1f``), so the reference package reads it too."""
    path = Path(path)
    lines = [f"v {version}", f"n {bits} {width} {height}"]
    for exposure_ns, photons, images in points:
        if len(images) < 2:
            raise ConfigError("each point needs at least 2 images", source=str(path))
        lines.append(f"d {exposure_ns:.1f}" if photons is None
                     else f"b {exposure_ns:.1f} {photons:.3f}")
        lines.extend(f"i {image}" for image in images)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


__all__ = ["DescriptorPoint", "EmvaDescriptor", "load_image", "read_descriptor", "write_descriptor"]
