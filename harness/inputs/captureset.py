"""The capture-set format and its reader: 16-bit TIFF frames stored by content hash plus a
JSON manifest.

Layout of a capture set directory::

    manifest.json            format, version, station, DUT, camera snapshot, instruments, frames
    frames/<sha256>.tiff     one frame each (uint16, or uint8 for 8-bit data), content-addressed

:class:`CaptureSet` opens a set for reading and checks every frame against its sha256 before
handing it out. Capture sets are written by :class:`harness.capture.writer.CaptureSetWriter`
(frames before the manifest mentions them, every file atomically), so a crash never leaves a
half-written frame or manifest, and a killed capture still leaves a readable set.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import ConfigError
from harness.inputs.image_guard import guard_image_size
from harness.inputs.tiff_layout import LayoutCache, read_into_array
from harness.paths import safe_relative

FORMAT_NAME = "harness-capture-set"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

CFA = Literal["RGGB", "GRBG", "GBRG", "BGGR"]


class FrameRecord(BaseModel):
    """One frame of a capture set: file, checksum and what the station did for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: str = Field(min_length=1)
    group: str = ""
    step: int = Field(0, ge=0)
    index: int = Field(0, ge=0)
    exposure_us_set: float | None = None
    exposure_us: float | None = None
    gain_db_set: float | None = None
    gain_db: float | None = None
    photons: float | None = Field(None, ge=0.0)
    light_level_pct: float | None = None
    light_cct_k: float | None = None
    illuminant: str | None = None
    meter_lux: float | None = None
    meter_x: float | None = None
    meter_y: float | None = None
    focus_position: float | None = None
    chart: str | None = None
    temperature_c: float | None = None
    frame_id: int | None = None
    timestamp_s: float | None = None
    incomplete: bool = False
    incomplete_discarded: int = Field(0, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _inside_the_set(cls, value: str) -> str:
        """A frame file is relative to the set's folder and stays inside it (no traversal)."""
        try:
            return safe_relative(value, "file")
        except ConfigError as exc:
            raise ValueError(exc.detail) from None


class Manifest(BaseModel):
    """The manifest of a capture set."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["harness-capture-set"] = "harness-capture-set"
    version: int = FORMAT_VERSION
    created: str = ""
    sequence: str = ""
    station: dict[str, Any] = Field(default_factory=dict)
    dut: dict[str, Any] = Field(default_factory=dict)
    camera: dict[str, Any] = Field(default_factory=dict)
    node_map: dict[str, Any] = Field(default_factory=dict)
    instruments: dict[str, Any] = Field(default_factory=dict)
    cfa: CFA | None = None
    bits: int = Field(12, ge=1, le=16)
    width: int | None = None
    height: int | None = None
    pixel_area_um2: float | None = None
    frames: list[FrameRecord] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class CaptureSet:
    """A capture set opened for reading."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self._layouts = LayoutCache()

    @classmethod
    def open(cls, path: str | Path) -> CaptureSet:
        root = Path(path)
        mpath = root / MANIFEST if root.is_dir() else root
        if root.is_dir() is False and root.name == MANIFEST:
            root = root.parent
        if not mpath.exists():
            raise ConfigError(f"not a capture set: {MANIFEST} not found", source=str(path))
        try:
            raw = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"manifest is not valid JSON: {exc}".splitlines()[0],
                              source=str(mpath)) from None
        except RecursionError:
            raise ConfigError("manifest is not valid JSON: nested too deeply",
                              source=str(mpath)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read manifest: {exc.strerror}", source=str(mpath)) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise ConfigError(f"not a capture-set manifest (format must be {FORMAT_NAME!r})",
                              source=str(mpath), field="format")
        if raw.get("version") != FORMAT_VERSION:
            raise ConfigError(f"unsupported version {raw.get('version')!r}; this harness reads "
                              f"version {FORMAT_VERSION}", source=str(mpath), field="version")
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            msg = (str(err["msg"]).removeprefix("Value error, ") if err["type"] == "value_error"
                   else f"{err['msg']}, found {err.get('input')!r}")
            raise ConfigError(msg[:300], source=str(mpath), field=loc) from None
        return cls(root, manifest)

    def records(self, role: str | None = None, group: str | None = None) -> list[FrameRecord]:
        """Frame records in capture order, filtered by role and/or group."""
        return [r for r in self.manifest.frames
                if (role is None or r.role == role) and (group is None or r.group == group)]

    def path_of(self, record: FrameRecord) -> Path:
        return self.root / record.file

    def load(self, record: FrameRecord, *, verify: bool = True) -> np.ndarray:
        """The frame's pixels; checks the sha256 so a corrupt file is never analysed."""
        path = self.path_of(record)
        try:
            with open(path, "rb", buffering=0) as fh:
                buffer = read_into_array(fh, os.fstat(fh.fileno()).st_size)
        except FileNotFoundError:
            raise ConfigError("frame file missing", source=str(path)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read frame file: {exc.strerror}", source=str(path)) from None
        if buffer is None:
            raise ConfigError("frame file shrank while being read", source=str(path))
        if verify and hashlib.sha256(buffer.data).hexdigest() != record.sha256:
            raise ConfigError(f"checksum mismatch (manifest says {record.sha256[:12]}…)",
                              source=str(path))
        # frames of one set share a layout: decoded from the bytes just hashed, parsed once
        image = self._layouts.match(buffer)
        if image is None:
            guard_image_size(path)
            data = buffer.tobytes()
            try:
                image = np.asarray(tifffile.imread(io.BytesIO(data)))
            except Exception as exc:
                raise ConfigError(f"unreadable TIFF: {exc}".splitlines()[0],
                                  source=str(path)) from None
            self._layouts.learn_bytes(data)
        if image.ndim not in (2, 3) or image.size == 0:
            raise ConfigError(f"no image in the TIFF (shape {image.shape})", source=str(path))
        return image

    def iter_frames(self, role: str | None = None,
                    group: str | None = None) -> Iterator[tuple[FrameRecord, np.ndarray]]:
        for rec in self.records(role, group):
            yield rec, self.load(rec)


__all__ = ["CFA", "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST", "CaptureSet", "FrameRecord",
           "Manifest"]
