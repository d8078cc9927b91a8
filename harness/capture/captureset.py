"""The capture-set format: 16-bit TIFF frames stored by content hash plus a JSON manifest.

Layout of a capture set directory::

    manifest.json            format, version, station, DUT, camera snapshot, instruments, frames
    frames/<sha256>.tiff     one frame each (uint16, or uint8 for 8-bit data), content-addressed

Frames are written before the manifest mentions them; every file is written to a temporary
name and renamed into place, so a crash never leaves a half-written frame or manifest. Frames
go to disk from a writer thread while the next ones are grabbed; the manifest is rewritten
when a frame is added a second or more after the last rewrite (and at close) and lists only
frames already on disk, so a killed capture still leaves a readable set of the frames taken up
to about a second before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from queue import Queue
from types import TracebackType
from typing import Any, Literal

import numpy as np
import tifffile
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.capture.tiff_layout import LayoutCache, TiffLayout, read_into_array
from harness.errors import ConfigError, EvidenceError
from harness.paths import atomic_write_bytes, safe_relative

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


def guard_image_size(path: Path) -> None:
    """Refuse a TIFF whose pages, or a PNG whose header, declare more than MAX_FRAME_BYTES.

    Reads headers only (TIFF IFDs via tifffile, the PNG IHDR chunk, PNG spec 11.2.2). Files
    that are not readable TIFF/PNG pass: the decoder then reports what is wrong with them.
    """
    declared: list[tuple[tuple[int, ...], int]] = []
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
            with tifffile.TiffFile(path) as tif:
                for page in tif.pages:
                    dtype = getattr(page, "dtype", None)
                    shape = tuple(int(n) for n in getattr(page, "shape", ()))
                    declared.append((shape, dtype.itemsize if dtype is not None else 1))
    except Exception:  # not a TIFF/PNG header we can read: leave it to the decoder
        return
    for shape, itemsize in declared:
        nbytes = itemsize
        for n in shape:
            nbytes *= n
        if nbytes > MAX_FRAME_BYTES or (nbytes > MAX_RATIO_ABOVE and nbytes > MAX_RATIO * size):
            raise ConfigError(f"image declares {'x'.join(map(str, shape))} pixels of {itemsize} "
                              f"byte(s) = {nbytes / 2**20:.4g} MiB in a {size}-byte file; at "
                              f"most {MAX_FRAME_BYTES >> 30} GiB per frame and {MAX_RATIO}:1 "
                              "compression are accepted (corrupt header?)", source=str(path))


def frame_to_tiff(frame: np.ndarray) -> bytes:
    """Encode one frame as an uncompressed TIFF (16-bit unless the data are 8-bit)."""
    if frame.dtype not in (np.uint8, np.uint16):
        if frame.size and (frame.min() < 0 or frame.max() > 65535):
            raise ValueError("frame values outside 0..65535 cannot be stored as 16-bit TIFF")
        frame = frame.astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(frame), photometric="minisblack"
                     if frame.ndim == 2 else "rgb")
    return buf.getvalue()


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


class CaptureSetWriter:
    """Write a capture set frame by frame (atomic files, manifest refreshed as frames come).

    :meth:`add` hashes the frame and returns its record at once; a background thread writes
    the file (temp file, fsync, rename), so the next frame is grabbed while this one goes to
    disk (a 12 MP frame took 110 ms to encode, hash and write, a third of the time of a
    qualification run). The manifest only ever lists frames already on disk; :meth:`close`
    (or leaving the ``with`` block) waits for every file. A frame must not be modified after
    it is added: the file is written from the same memory, and a frame changed in between
    would fail its checksum when loaded.
    """

    FLUSH_INTERVAL_S = 1.0
    """The manifest is rewritten at most this often while frames stream in (and always at
    close): rewriting it after every 12 MP frame cost a third of the write time."""
    QUEUE_FRAMES = 3
    """Frames waiting for the disk at most; :meth:`add` blocks beyond (memory stays bounded)."""

    def __init__(self, path: str | Path, *, sequence: str = "", cfa: str | None = None,
                 bits: int = 12, **header: Any) -> None:
        self.root = Path(path)
        try:
            (self.root / "frames").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvidenceError(f"{self.root}: cannot create capture set: {exc.strerror}") from None
        if (self.root / MANIFEST).exists():
            raise ConfigError("a capture set already exists here; choose a new --out",
                              source=str(self.root))
        self.manifest = Manifest(sequence=sequence, cfa=cfa, bits=bits,
                                 created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                 **header)
        self._index: dict[tuple[str, str, int], int] = {}
        self._flushed_at = -math.inf
        self._templates: dict[tuple[tuple[int, ...], str], tuple[bytes, bytes] | None] = {}
        self._lock = threading.Lock()
        self._jobs: Queue[tuple[FrameRecord, Sequence[bytes | memoryview]] | None] = Queue(
            maxsize=self.QUEUE_FRAMES)
        self._thread: threading.Thread | None = None
        self._error: EvidenceError | None = None

    def add(self, frame: np.ndarray, *, role: str, group: str = "", step: int = 0,
            **fields: Any) -> FrameRecord:
        """Hash ``frame``, queue it for writing and append its record; returns the record."""
        self._raise_failure()
        parts = self._encode(frame)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        rel = f"frames/{digest.hexdigest()}.tiff"
        key = (role, group, step)
        index = self._index.get(key, 0)
        self._index[key] = index + 1
        record = FrameRecord(file=rel, sha256=digest.hexdigest(), role=role, group=group,
                             step=step, index=index, **fields)
        if self.manifest.width is None:
            self.manifest.height, self.manifest.width = int(frame.shape[0]), int(frame.shape[1])
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_frames, daemon=True,
                                            name=f"capture-set-writer {self.root.name}")
            self._thread.start()
        self._jobs.put((record, parts))
        if time.monotonic() - self._flushed_at >= self.FLUSH_INTERVAL_S:
            self.flush()
        return record

    def _encode(self, frame: np.ndarray) -> Sequence[bytes | memoryview]:
        """The TIFF file as buffers. tifffile encodes the first frame of each shape and type;
        the header and trailer it wrote are reused around the pixels of the next ones (their
        bytes differ only in the pixel data), which saves a 24 MB copy per 12 MP frame."""
        if frame.ndim != 2 or frame.dtype not in (np.uint8, np.uint16):
            return (frame_to_tiff(frame),)
        frame = np.ascontiguousarray(frame)
        key = (frame.shape, frame.dtype.str)
        if key in self._templates:
            template = self._templates[key]
            if template is not None:
                return (template[0], frame.data.cast("B"), template[1])
            return (frame_to_tiff(frame),)
        data = frame_to_tiff(frame)
        layout = TiffLayout.of_bytes(data)
        usable = (layout is not None and layout.shape == frame.shape
                  and layout.dtype == frame.dtype)
        self._templates[key] = (layout.head, layout.tail) if layout and usable else None
        return (data,)

    def _write_frames(self) -> None:
        while (job := self._jobs.get()) is not None:
            record, parts = job
            try:
                if self._error is None:
                    target = self.root / record.file
                    if not target.exists():
                        atomic_write_bytes(target, parts)
                    with self._lock:
                        self.manifest.frames.append(record)
            except OSError as exc:
                self._error = EvidenceError(f"{self.root}: cannot write frame: {exc.strerror}")
            except Exception as exc:  # never let the thread die with frames still queued
                self._error = EvidenceError(f"{self.root}: cannot write frame: "
                                            f"{type(exc).__name__}: {exc}")
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def wait(self) -> None:
        """Block until every frame added so far is on disk; raise if one could not be written."""
        if self._thread is not None:
            self._jobs.join()
        self._raise_failure()

    def flush(self) -> None:
        """Rewrite the manifest (with the frames on disk so far)."""
        with self._lock:
            data = self.manifest.model_dump_json(indent=1).encode("utf-8")
        try:
            atomic_write_bytes(self.root / MANIFEST, data)
        except OSError as exc:
            raise EvidenceError(f"{self.root}: cannot write manifest: {exc.strerror}") from None
        self._flushed_at = time.monotonic()

    def close(self) -> CaptureSet:
        """Wait for the frames, stop the writer thread, write the final manifest."""
        try:
            self.wait()
        finally:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread.join()
                self._thread = None
            self.flush()
        return CaptureSet(self.root, self.manifest)

    def __enter__(self) -> CaptureSetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(EvidenceError):  # keep what was captured; the first error wins
            self.close()
