"""Bad input, fuzzed with hypothesis (issue 10, item 3).

Every parser of outside input gets structurally plausible but broken documents: a valid
document with wrong types, missing keys, extra keys, random unicode, huge numbers or deep
nesting spliced in, then possibly truncated or garbled at random byte offsets; plain random
bytes; TIFFs written by tifffile then truncated or bit-flipped. The property is the same for
all: the parser either loads the input or raises a :class:`~harness.errors.HarnessError`
whose message is ONE line naming the input; never another exception type, never a hang
(hypothesis ``deadline`` per example, pytest-timeout per test). Writers must leave no
half-written file behind. The CLI, fed the same kinds of broken files, exits 2 with a single
``error:`` line and no traceback.
"""

from __future__ import annotations

import copy
import datetime as dt
import errno
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from harness.capture.writer import CaptureSetWriter
from harness.devices.instrument import InstrumentDriver
from harness.devices.transport import LineTransport, LinkSettings, ReadTimeout
from harness.errors import ConfigError, EvidenceError, HarnessError, InstrumentError
from harness.evidence.journal import rebuild
from harness.evidence.records import RecordStore
from harness.inputs import emva_descriptor as ed
from harness.inputs import image_input as ii
from harness.inputs import stack_input as si
from harness.inputs.captureset import CaptureSet
from harness.limits import load_limits
from harness.registry import DriverContext, driver_class, registered_drivers
from harness.sim.module import load_module
from harness.station.schema import load_station_file

# Each example must finish well inside 2 s on the shared 2-core box (they take ~1-30 ms);
# a hang shows up as a DeadlineExceeded, and pytest-timeout stops a runaway test.
FUZZ = settings(max_examples=80, deadline=dt.timedelta(seconds=2), derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FEW = settings(FUZZ, max_examples=40)
pytestmark = pytest.mark.timeout(120)


# ---- the property --------------------------------------------------------------------------

def one_line_naming(exc: BaseException, *names: str | Path) -> None:
    """``exc`` is a harness error whose message is one line naming one of ``names``."""
    assert isinstance(exc, HarnessError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and len(message.splitlines()) == 1, repr(message)
    assert any(str(n) in message for n in names), f"{message!r} names none of {names}"


def loads_or_refuses(load: Callable[[], Any], *names: str | Path) -> Any:
    """Run a loader: its result, or None after checking the error it raised."""
    try:
        return load()
    except HarnessError as exc:
        one_line_naming(exc, *names)
        return None
    except Exception as exc:  # any other type is the bug this file looks for
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


# ---- strategies ----------------------------------------------------------------------------

NASTY_TEXT = ["", " ", "../../etc/x", "/etc/passwd", "a\x00b", "${UNSET_VARIABLE}", "${X:-}",
              "2027-13-45", "0x1F", "1e400", "-0", "NaN", "~", "null", "é" * 300, "\u202e",
              "x" * 5000, "'", '"', "{", "[", "&a", "*a", "!!python/object:os.system"]
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16), st.sampled_from(NASTY_TEXT))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def paths_of(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from paths_of(value, (*prefix, i))


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        obj = obj[part]
    return obj


def mutate_document(data: st.DataObject, base: dict[str, Any]) -> Any:
    """1-3 structural mutations of ``base``: replace, delete, add a key, nest deeply."""
    doc: Any = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(paths_of(doc))
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "extra", "nest"]), label="op")
        if not path:
            if op == "replace":
                doc = data.draw(values, label="whole document")
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = data.draw(values, label="value")
        elif op == "delete":
            del parent[key]
        elif op == "extra" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=12), label="key")] = data.draw(values)
        elif op == "nest":
            depth = data.draw(st.sampled_from([2, 20, 70, 400]), label="depth")
            nested: Any = parent[key]
            for _ in range(depth):
                nested = [nested]
            parent[key] = nested
    return doc


def mangle_bytes(data: st.DataObject, raw: bytes) -> bytes:
    """Maybe truncate, garble or splice random bytes into ``raw`` at random offsets."""
    op = data.draw(st.sampled_from(["keep", "keep", "truncate", "flip", "insert"]), label="bytes")
    if op == "truncate" and raw:
        return raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")]
    if op == "flip" and raw:
        out = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(out) - 1), label="offset")
            out[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        return bytes(out)
    if op == "insert":
        i = data.draw(st.integers(0, len(raw)), label="offset")
        return raw[:i] + data.draw(st.binary(min_size=1, max_size=12), label="junk") + raw[i:]
    return raw


def yaml_text(doc: Any) -> bytes:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode("utf-8")
    except RecursionError:  # 400-deep nesting: PyYAML's emitter gives up; write it by hand
        return (json.dumps(doc, allow_nan=True) + "\n").encode("utf-8")


def workdir(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return folder


# ---- YAML inputs: station files, limit specs, module files ---------------------------------

STATION: dict[str, Any] = {
    "id": "fuzz-01", "site": "lab", "description": "fuzzed",
    "power": {"driver": "fake", "serial": "PSU-1"},
    "light": {"driver": "fake", "serial": "LED-1"},
    "camera": {"driver": "fake", "serial": "CAM-1", "width": 64, "height": 48},
    "cameras": None,
    "calibration": {"light": {"certificate": "C-1", "due": "2099-12-31", "lab": "x"}},
    "settings": {"confirm_label": False, "label_timeout_s": 30.0,
                 "signing_key": "${HOME:-/tmp}/station.key"},
    "bench": {"light": {"enabled": False, "level_pct": 0.0}, "chart": "flat"},
    "simulators": {"lamp": {"type": "scpi-led", "light": {"gamma": 1.0}},
                   "meter": {"type": "cs100a", "light": "lamp"},
                   "wheel": {"type": "chart-wheel", "charts": ["dark", "flat"]}},
}
LIMITS: dict[str, Any] = {
    "product": "fuzz", "version": 3, "description": "fuzzed spec",
    "limits": [
        {"id": "EMVA-K", "measurement": "system_gain_dn_per_e", "unit": "DN/e-",
         "min": 0.09, "max": 0.11, "guard": 0.002, "requirement": "REQ-1"},
        {"id": "MTF50", "measurement": "mtf50_cy_per_px", "unit": "cy/px", "min": 0.2,
         "condition": {"zone": "corner"}, "severity": "normal"},
    ],
}
MODULE: dict[str, Any] = {
    "name": "fuzz module", "serial": "FZ-1", "pattern_seed": 3,
    "sensor": {"width": 32, "height": 32, "pixel_pitch_um": 2.0, "adc_bits": 12,
               "cfa": "RGGB", "full_well_e": 10000.0, "system_gain_dn_per_e": 0.4,
               "read_noise_e": 2.0, "dark_current_e_per_s": 5.0,
               "prnu_pct": {"pixel": 0.5}},
    "optics": {"sigma_px": 0.7},
    "defects": {"listed": [{"class": "hot", "row": 3, "col": 4}], "seeded": {"dead": 2}},
}


def test_base_documents_are_valid(tmp_path: Path) -> None:
    """The fuzzers start from documents that load, so a refusal is the mutation's doing."""
    (tmp_path / "s.yaml").write_bytes(yaml_text(STATION))
    (tmp_path / "l.yaml").write_bytes(yaml_text(LIMITS))
    (tmp_path / "m.yaml").write_bytes(yaml_text(MODULE))
    assert load_station_file(tmp_path / "s.yaml", env={}).id == "fuzz-01"
    assert len(load_limits(tmp_path / "l.yaml").limits) == 2
    assert load_module(tmp_path / "m.yaml").sensor.width == 32


@FUZZ
@given(data=st.data())
def test_station_file_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    path = workdir(tmp_path, "station") / "station.yaml"
    path.write_bytes(mangle_bytes(data, yaml_text(mutate_document(data, STATION))))
    loads_or_refuses(lambda: load_station_file(path, env={}), path)


@FUZZ
@given(data=st.data())
def test_limit_spec_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    path = workdir(tmp_path, "limits") / "limits.yaml"
    path.write_bytes(mangle_bytes(data, yaml_text(mutate_document(data, LIMITS))))
    loads_or_refuses(lambda: load_limits(path), path)


@FUZZ
@given(data=st.data())
def test_module_file_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    path = workdir(tmp_path, "module") / "module.yaml"
    path.write_bytes(mangle_bytes(data, yaml_text(mutate_document(data, MODULE))))
    loads_or_refuses(lambda: load_module(path), path)


@FEW
@given(raw=st.binary(max_size=400))
def test_yaml_loaders_on_random_bytes(tmp_path: Path, raw: bytes) -> None:
    path = workdir(tmp_path, "bytes") / "random.yaml"
    path.write_bytes(raw)
    loads_or_refuses(lambda: load_station_file(path, env={}), path)
    loads_or_refuses(lambda: load_limits(path), path)
    loads_or_refuses(lambda: load_module(path), path)


@pytest.mark.parametrize("text, expected", [
    ("id: x\nsettings: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than"),
    ("id: x\nsettings: " + "{a: " * 80 + "1" + "}" * 80 + "\n", "nested deeper than"),
    ("id: x\nsettings: &a [1, *a]\n", "recursive anchor"),
    ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", "aliases are expanded"),
    ("id: x\ncalibration: {light: {certificate: c, due: 2027-13-01}}\n", "month must be"),
    ("id: x\nsite: \x00\n", "special characters"),
], ids=["deep-list", "deep-map", "recursive-anchor", "alias-bomb", "bad-date", "nul"])
def test_yaml_shapes_that_used_to_crash_or_hang(tmp_path: Path, text: str, expected: str) -> None:
    """Found by the fuzzer: before the fix these raised RecursionError / ValueError or took
    exponential time (the alias bomb expands to 9**7 = 4.8 million values)."""
    path = tmp_path / "station.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_station_file(path, env={})
    one_line_naming(info.value, path)
    assert expected in str(info.value)


# ---- TIFF frames ---------------------------------------------------------------------------

def _tiff(array: np.ndarray, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kwargs)
    return buf.getvalue()


_FRAME = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 5) % 4096
TIFFS = {
    "mono16": _tiff(_FRAME, photometric="minisblack"),
    "stack3": _tiff(np.stack([_FRAME, _FRAME + 1, _FRAME + 2]), photometric="minisblack"),
    "zlib": _tiff(_FRAME, compression="zlib"),
    "rgb8": _tiff(np.dstack([_FRAME % 256] * 3).astype(np.uint8), photometric="rgb"),
    "float32": _tiff(_FRAME.astype(np.float32) / 4096.0),
}


def broken_tiff(data: st.DataObject) -> bytes:
    raw = TIFFS[data.draw(st.sampled_from(sorted(TIFFS)), label="tiff")]
    op = data.draw(st.sampled_from(["truncate", "flip", "both"]), label="damage")
    if op in ("truncate", "both"):
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")]
    if op in ("flip", "both") and raw:
        out = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 6), label="flips")):
            i = data.draw(st.integers(0, len(out) - 1), label="offset")
            out[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        raw = bytes(out)
    return raw


def _stack_of(path: Path) -> Any:
    return si.open_stack(path).reduce()


@pytest.mark.parametrize("kind", ["float32 pages", "mixed shapes", "no pages", "no dark pair"])
def test_stack_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    """Found by the fuzzer: errors of the pure analysis layer (accumulators, EmvaReducer) came
    out of open_stack(...).reduce() and reduce_emva(...) without the file's name: "spatial
    stack has no frames", "no dark temporal pairs: every step needs a dark pair"."""
    path = tmp_path / "stack.tif"
    if kind == "mixed shapes":
        with tifffile.TiffWriter(path) as tif:
            tif.write(_FRAME)
            tif.write(_FRAME[:8])
    elif kind == "no pages":
        path.write_bytes(TIFFS["mono16"][:8])  # header only: tifffile finds no pages
    elif kind == "no dark pair":
        lines = _descriptor_folder(tmp_path)
        path = tmp_path / "EMVA1288descriptor.txt"
        path.write_text("\n".join(ln for ln in lines if not ln.startswith("d ")) + "\n")
    else:
        path.write_bytes(TIFFS["float32"])
    with pytest.raises(ConfigError) as info:
        if kind == "no dark pair":
            si.reduce_emva(path)
        else:
            si.open_stack(path).reduce()
    one_line_naming(info.value, path)


def tiff_declaring(rows: int) -> bytes:
    """A 24 x 32 uint16 TIFF whose ImageLength tag claims ``rows`` rows (a flipped bit)."""
    raw = bytearray(TIFFS["mono16"])
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        entry = tif.pages.first.tags[257].offset  # code(2) type(2) count(4) value(4)
    raw[entry + 2:entry + 4] = (4).to_bytes(2, "little")  # LONG
    raw[entry + 8:entry + 12] = rows.to_bytes(4, "little")
    return bytes(raw)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG signature + IHDR (16-bit grey) claiming ``width`` x ``height``, then nothing."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + bytes(4)


@pytest.mark.parametrize("rows", [2**31, 8_388_632], ids=["128 GiB", "512 MiB in 1.6 kB"])
def test_headers_declaring_gigabytes_are_refused_before_decoding(tmp_path: Path,
                                                                 rows: int) -> None:
    """Found by the fuzzer: a flipped bit in ImageLength made the readers allocate (and fill)
    8-32 GiB; a run was OOM-killed at 24 GB. Now refused from the header, in milliseconds."""
    path = tmp_path / "frame.tif"
    path.write_bytes(tiff_declaring(rows))
    png = tmp_path / "chart.png"
    png.write_bytes(png_declaring(40000, 40000))
    root = tmp_path / "set"
    with CaptureSetWriter(root) as writer:
        record = writer.add(_FRAME, role="dark")
    (root / record.file).write_bytes(tiff_declaring(rows))
    cs = CaptureSet.open(root)
    cases: list[tuple[Path, Callable[[], Any]]] = [
        (path, lambda: ed.load_image(path)), (path, lambda: ii.load_image(path)),
        (path, lambda: ii.load_stack(path)), (png, lambda: ii.load_image(png)),
        (png, lambda: ed.load_image(png)),
        (root / record.file, lambda: cs.load(record, verify=False))]
    for name, load in cases:
        with pytest.raises(ConfigError, match="declares") as info:
            load()
        one_line_naming(info.value, name)


def test_stack_tiff_declaring_gigabytes(tmp_path: Path) -> None:
    """Multi-page stacks go through the same header guard as single frames."""
    path = tmp_path / "stack.tif"
    path.write_bytes(tiff_declaring(2**31))
    with pytest.raises(ConfigError) as info:
        si.open_stack(path).reduce()
    assert "declares" in str(info.value)


def tiff_readers(path: Path) -> list[Callable[[], Any]]:
    return [
        lambda: ed.load_image(path, bits=12, shape=(24, 32)),
        lambda: ii.load_image(path),
        lambda: _stack_of(path),
        lambda: ii.load_stack(path),
    ]


@FUZZ
@given(data=st.data())
def test_truncated_or_bitflipped_tiffs(tmp_path: Path, data: st.DataObject) -> None:
    path = workdir(tmp_path, "tiff") / "frame.tif"
    path.write_bytes(broken_tiff(data))
    for read in tiff_readers(path):
        loads_or_refuses(read, path)


def test_a_tiff_whose_ifd_chain_loops_is_refused_at_once(tmp_path: Path) -> None:
    """Found by the fuzz test above: one flipped bit made the first IFD's next-IFD offset point
    back at itself, and every reader walked that chain for ever (tifffile does not notice).
    The header check refuses a chain longer than the file can hold, with one line, at once."""
    import struct
    import time

    path = workdir(tmp_path, "loop") / "frame.tif"
    tifffile.imwrite(path, np.zeros((24, 32), np.uint16), photometric="minisblack")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00"
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * entries, first)  # next IFD: itself
    path.write_bytes(bytes(data))
    for read in tiff_readers(path):
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"chain of image file directories loops") as info:
            read()
        assert time.monotonic() - start < 2.0
        one_line_naming(info.value, path)


@FEW
@given(raw=st.binary(max_size=300))
def test_tiff_readers_on_random_bytes(tmp_path: Path, raw: bytes) -> None:
    path = workdir(tmp_path, "tiffbytes") / "frame.tiff"
    path.write_bytes(raw)
    for read in tiff_readers(path):
        loads_or_refuses(read, path)


# ---- capture sets --------------------------------------------------------------------------

def _capture_set(root: Path) -> dict[str, Any]:
    with CaptureSetWriter(root, sequence="fuzz", cfa="RGGB", bits=12,
                          station={"id": "fuzz-01"}) as writer:
        for i in range(3):
            writer.add(_FRAME + i, role="dark", group="spatial", exposure_us=100.0 + i)
        writer.add(_FRAME * 2 % 4096, role="flat", exposure_us=50.0)
    manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text())
    return manifest


@FUZZ
@given(data=st.data())
def test_capture_manifest_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    root = tmp_path / "set"
    if not (root / "manifest.json").exists():
        _capture_set(root)
        (tmp_path / "good.json").write_text((root / "manifest.json").read_text())
    base = json.loads((tmp_path / "good.json").read_text())
    raw = json.dumps(mutate_document(data, base), allow_nan=True).encode("utf-8")
    (root / "manifest.json").write_bytes(mangle_bytes(data, raw))

    def load_all() -> int:
        cs = CaptureSet.open(root)
        for record in cs.records():
            cs.load(record)
        return len(cs.records())

    loads_or_refuses(load_all, root)
    loads_or_refuses(lambda: si.open_stack(root, roles=("dark",)).reduce(), root)


@FEW
@given(data=st.data())
def test_capture_set_with_damaged_frames(tmp_path: Path, data: st.DataObject) -> None:
    """A damaged frame file is refused by its checksum, and without the checksum by the
    TIFF reader: either way one line naming the frame file."""
    root = tmp_path / "set"
    if not (root / "manifest.json").exists():
        _capture_set(root)
    cs = CaptureSet.open(root)
    record = data.draw(st.sampled_from(cs.records()), label="frame")
    path = cs.path_of(record)
    good = path.read_bytes()
    try:
        path.write_bytes(broken_tiff(data) if data.draw(st.booleans()) else
                         mangle_bytes(data, good))
        loads_or_refuses(lambda: cs.load(record, verify=True), path)
        loads_or_refuses(lambda: cs.load(record, verify=False), path)
    finally:
        path.write_bytes(good)


@pytest.mark.parametrize("file", ["../outside.tiff", "/etc/hostname", "frames/../../x.tiff",
                                  "a\x00b", "", "C:\\windows\\x.tiff", "x" * 5000])
def test_manifest_frame_paths_stay_inside_the_set(tmp_path: Path, file: str) -> None:
    """Found by the fuzzer: ``file`` was joined to the set's folder unchecked, so a manifest
    could read any file on the machine (and NUL/long names escaped as ValueError/OSError)."""
    root = tmp_path / "set"
    manifest = _capture_set(root)
    (tmp_path / "outside.tiff").write_bytes((root / manifest["frames"][0]["file"]).read_bytes())
    manifest["frames"][0]["file"] = file
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as info:
        CaptureSet.open(root)
    one_line_naming(info.value, root / "manifest.json")
    assert "frames.0.file" in str(info.value)


def test_capture_writer_leaves_no_half_written_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (disk full at fsync) leaves the previous manifest intact and no
    temporary or partial frame file: the set stays readable with the frames it had. A frame
    is written in the background, so its failure is raised by the next add or by wait/close;
    a writer that lost a frame takes no more."""
    import harness.paths as paths_module  # atomic_write_bytes fsyncs there

    real_fsync = os.fsync
    for fail_at in (1, 2):  # 1: the frame's fsync fails, 2: the manifest's fsync fails
        frame_writer = fail_at == 1  # frames are written by the writer thread, manifests not
        root = tmp_path / f"set{fail_at}"
        writer = CaptureSetWriter(root, sequence="s", bits=12)
        writer.FLUSH_INTERVAL_S = 0.0  # rewrite the manifest after every frame
        writer.add(_FRAME, role="dark")
        writer.wait()
        writer.flush()
        before = {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        def full_disk(fd: int, in_writer: bool = frame_writer) -> None:
            if threading.current_thread().name.startswith("capture-set-writer") == in_writer:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        monkeypatch.setattr(paths_module.os, "fsync", full_disk)
        with pytest.raises(EvidenceError, match="No space left"):
            writer.add(_FRAME + 7 + fail_at, role="dark")
            writer.wait()
        monkeypatch.setattr(paths_module.os, "fsync", real_fsync)
        if fail_at == 1:
            with pytest.raises(EvidenceError, match="cannot write frame"):
                writer.add(_FRAME + 20, role="dark")  # nothing more after a lost frame
        else:
            writer.wait()  # the frame queued before the manifest failed is still written
        leftovers = [p.name for p in root.rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == []
        manifest = json.loads((root / "manifest.json").read_text())
        if fail_at == 1:  # nothing of the failed frame exists; the manifest is untouched
            assert {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
        listed = {f["file"] for f in manifest["frames"]}
        assert all((root / f).is_file() for f in listed)
        assert len(CaptureSet.open(root).records()) == 1


# ---- EMVA descriptor files -----------------------------------------------------------------

def _descriptor_folder(folder: Path) -> list[str]:
    """A small valid sweep: 3 bright + 3 dark temporal points and a spatial pair, 24 x 32."""
    rng = np.random.default_rng(7)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = ["v 4.0", "n 12 32 24"]
    for k, photons in enumerate((0.0, 400.0, 800.0, 1600.0)):
        for dark in (False, True):
            level = 64 + (0 if dark else photons * 0.5 * 0.4)
            names = []
            for j in range(2 if k else 3):
                frame = rng.poisson(level, size=(24, 32)).clip(0, 4095).astype(np.uint16)
                name = f"images/p{k}{'d' if dark else 'b'}{j}.tif"
                tifffile.imwrite(folder / name, frame)
                names.append(name)
            exposure = 1000.0 * (k + 1)
            lines.append(f"d {exposure:.1f}" if dark else f"b {exposure:.1f} {photons:.3f}")
            lines += [f"i {n}" for n in names]
    return lines


def mutate_lines(data: st.DataObject, lines: list[str]) -> list[str]:
    out = list(lines)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(st.sampled_from(["shuffle", "delete", "duplicate", "garble", "insert",
                                        "swap-tag"]), label="op")
        i = data.draw(st.integers(0, max(len(out) - 1, 0)), label="line")
        if op == "shuffle":
            out = data.draw(st.permutations(out), label="order")
        elif op == "delete" and out:
            del out[i]
        elif op == "duplicate" and out:
            out.insert(i, out[i])
        elif op == "garble" and out and out[i].split():
            tokens = out[i].split()
            j = data.draw(st.integers(0, len(tokens) - 1), label="token")
            tokens[j] = data.draw(st.one_of(st.text(max_size=10), st.sampled_from(
                ["-1", "1e999", "nan", "0", "99999999999999999999", "1,5", "../../etc/passwd",
                 "/etc/hostname", "x" * 400, "x" * 5000, "images\\p1b0.tif"])),
                label="token text")
            out[i] = " ".join(tokens)
        elif op == "insert":
            out.insert(i, data.draw(st.text(max_size=30), label="new line"))
        elif op == "swap-tag" and out:
            out[i] = data.draw(st.sampled_from("vnbdi#xI"), label="tag") + out[i][1:]
    return out


@FUZZ
@given(data=st.data())
def test_emva_descriptor_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    folder = tmp_path / "emva"
    good = folder / "good.txt"
    if not good.exists():
        good.write_text("\n".join(_descriptor_folder(folder)) + "\n")
    lines = good.read_text().splitlines()
    path = folder / "EMVA1288descriptor.txt"
    text = ("\n".join(mutate_lines(data, lines)) + "\n").encode("utf-8")
    path.write_bytes(mangle_bytes(data, text))
    loads_or_refuses(lambda: ed.read_descriptor(path), path, folder)
    loads_or_refuses(lambda: si.reduce_emva(path), path, folder)


@FEW
@given(raw=st.binary(max_size=300))
def test_emva_descriptor_random_bytes(tmp_path: Path, raw: bytes) -> None:
    path = workdir(tmp_path, "desc") / "EMVA1288descriptor.txt"
    path.write_bytes(raw)
    loads_or_refuses(lambda: ed.read_descriptor(path), path)


# ---- run journals and the records database -------------------------------------------------

JOURNAL = [
    {"seq": 1, "time": "2026-11-25T20:00:00Z", "type": "run_start", "run_id": "R-1",
     "station": "st", "dut": {"serial": "SN-1", "product": "p"}, "operator": "o",
     "software": {"python": "3.11"}, "limits_file": "l.yaml", "limits_hash": "0" * 64,
     "devices": [{"role": "camera", "serial": "SN-1"}], "calibrations": []},
    {"seq": 2, "time": "2026-11-25T20:00:01Z", "type": "test_start", "run_id": "R-1",
     "test_id": "t::a", "title": "a", "family": "emva"},
    {"seq": 3, "time": "2026-11-25T20:00:02Z", "type": "measurement", "run_id": "R-1",
     "test_id": "t::a", "measurement": {"name": "k", "value": 0.1, "unit": "DN/e-",
                                        "outcome": "PASS", "test_id": "t::a", "low": 0.09}},
    {"seq": 4, "time": "2026-11-25T20:00:03Z", "type": "test_end", "run_id": "R-1",
     "test_id": "t::a", "outcome": "PASS"},
    {"seq": 5, "time": "2026-11-25T20:00:04Z", "type": "run_end", "run_id": "R-1",
     "outcome": "PASS", "reason": ""},
]


@FUZZ
@given(data=st.data())
def test_journal_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    """``harness report --from-journal`` reads a journal someone else's process wrote."""
    doc = mutate_document(data, {"events": JOURNAL})
    events = doc.get("events") if isinstance(doc, dict) else doc
    lines = [json.dumps(e, allow_nan=True) for e in events] if isinstance(events, list) else \
        [json.dumps(events, allow_nan=True)]
    path = workdir(tmp_path, "journal") / "run.jsonl"
    path.write_bytes(mangle_bytes(data, ("\n".join(lines) + "\n").encode("utf-8")))
    loads_or_refuses(lambda: rebuild(path), path)


@FEW
@given(raw=st.binary(min_size=1, max_size=600))
def test_records_database_that_is_not_one(tmp_path: Path, raw: bytes) -> None:
    path = workdir(tmp_path, "db") / "records.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + raw if raw[0] % 2 else raw)
    for name in ("records.sqlite-wal", "records.sqlite-shm"):
        (path.parent / name).unlink(missing_ok=True)

    def query() -> Any:
        with RecordStore(path) as store:
            return store.runs()

    loads_or_refuses(query, path)


# ---- the CLI -------------------------------------------------------------------------------

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    from harness.cli import app

    result = runner.invoke(app, list(args), catch_exceptions=True)
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__} escaped the CLI: "
                             f"{result.exception}\n{out}")
    return result.exit_code, out


def assert_bad_input(code: int, output: str, name: str | Path) -> None:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2, output
    assert len(errors) == 1, output
    assert str(name) in errors[0], output


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One broken file of every kind the CLI reads."""
    d = tmp_path_factory.mktemp("broken")
    files = {
        "station": ("station.yaml", b"id: st\ncamera: {driver: fake, width: [1, 2}\n"),
        "module": ("module.yaml", b"name: m\nsensor: &s [*s]\n"),
        "descriptor": ("EMVA1288descriptor.txt", b"n 12 4 4\nb 1000 nan\ni a.tif\ni b.tif\n"),
        "tiff": ("frame.tif", TIFFS["mono16"][:200]),
        "png": ("chart.png", b"\x89PNG\r\n\x1a\n" + bytes(range(64))),
        "journal": ("run.jsonl", b'{"seq": 1, "type": "run_st'),
        "db": ("records.sqlite", b"this is not a database" * 40),
    }
    out = {}
    for key, (name, raw) in files.items():
        (d / name).write_bytes(raw)
        out[key] = d / name
    manifest_dir = d / "captureset"
    _capture_set(manifest_dir)
    manifest = json.loads((manifest_dir / "manifest.json").read_text())
    manifest["frames"][1]["file"] = "../../../../etc/hostname"
    (manifest_dir / "manifest.json").write_text(json.dumps(manifest))
    out["captureset"] = manifest_dir
    stack = d / "stack"
    stack.mkdir()
    for i in range(3):
        (stack / f"f{i:02d}.tif").write_bytes(TIFFS["mono16"] if i != 1 else b"II*\x00garbage")
    out["stack"] = stack
    return out


CLI_CASES = [
    ("station check", ["station", "check", "{station}"], "station"),
    ("sim truth", ["sim", "truth", "{module}"], "module"),
    ("emva1288 descriptor", ["analyze", "emva1288", "{descriptor}"], "descriptor"),
    ("emva1288 capture set", ["analyze", "emva1288", "{captureset}"], "captureset"),
    ("defects", ["analyze", "defects", "{tiff}", "{tiff}"], "tiff"),
    ("defects capture set", ["analyze", "defects", "{captureset}", "{captureset}"],
     "captureset"),
    ("uniformity", ["analyze", "uniformity", "{stack}"], "stack"),
    ("sfr", ["analyze", "sfr", "{tiff}"], "tiff"),
    ("colour", ["analyze", "colour", "{png}"], "png"),
    ("focus", ["analyze", "focus", "{stack}"], "stack"),
    ("report from journal", ["report", "--from-journal", "{journal}", "--no-records",
                             "--no-html"], "journal"),
    ("records runs", ["records", "runs", "--records", "{db}"], "db"),
    ("signoff", ["signoff", "R-1", "--records", "{db}"], "db"),
]


@pytest.mark.parametrize("args, key", [(c[1], c[2]) for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2(broken_files: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          key: str) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [a.format(**{k: str(v) for k, v in broken_files.items()}) for a in args]
    code, output = run_cli(*argv)
    assert_bad_input(code, output, broken_files[key])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.html"))


def test_cli_json_output_is_not_written_for_bad_input(broken_files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """Nothing written half: a refused input leaves no JSON result file behind."""
    target = tmp_path / "result.json"
    for argv in (["analyze", "emva1288", str(broken_files["descriptor"]), "--json", str(target)],
                 ["analyze", "sfr", str(broken_files["tiff"]), "--json", str(target)],
                 ["analyze", "uniformity", str(broken_files["stack"]), "--json", str(target)]):
        code, output = run_cli(*argv)
        assert code == 2, output
        assert not target.exists(), argv


@FEW
@given(data=st.data())
def test_cli_station_check_fuzz(tmp_path: Path, data: st.DataObject) -> None:
    """The station command on fuzzed station files: exit 2 + one error line, or it ran."""
    path = workdir(tmp_path, "clistation") / "station.yaml"
    doc = mutate_document(data, {**STATION, "lock_dir": str(tmp_path / "locks")})
    path.write_bytes(mangle_bytes(data, yaml_text(doc)))
    code, output = run_cli("station", "check", str(path))
    assert "Traceback" not in output, output
    if code == 2:
        assert_bad_input(code, output, path)
    else:
        assert code in (0, 1), output


def test_one_line_naming_rejects_what_it_should() -> None:
    """The property itself can fail: other types, multi-line messages, unnamed inputs."""
    with pytest.raises(AssertionError):
        one_line_naming(ValueError("x"), "f")
    with pytest.raises(AssertionError):
        one_line_naming(HarnessError("f: a\nb"), "f")
    with pytest.raises(AssertionError):
        one_line_naming(ConfigError("bad", source="other.yaml"), "f.yaml")
    one_line_naming(ConfigError("bad", source="f.yaml", line=3), "f.yaml")
    assert re.fullmatch(r"f\.yaml:3: bad", str(ConfigError("bad", source="f.yaml", line=3)))


# ---- instrument replies --------------------------------------------------------------------

class ScriptedLink(LineTransport):
    """A line transport whose far end answers with a fuzzed script (then times out)."""

    def __init__(self, device: str, replies: list[str | bytes]) -> None:
        super().__init__(device, "fuzz://bench", LinkSettings(timeout_s=0.01, retries=1))
        self.replies = replies

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _write(self, data: str) -> None:
        pass

    def _drain(self, quiet_s: float) -> None:
        pass

    def _read_line(self, timeout_s: float) -> str:
        if not self.replies:
            raise ReadTimeout()
        reply = self.replies.pop(0)
        if isinstance(reply, bytes):
            raise UnicodeDecodeError("ascii", reply, 0, 1, "ordinal not in range(128)")
        return reply


REPLY_TEXT = ["", "0", "1", "-1", "50.0", "1e999", "nan", "inf", "-0", "1,2", "1,2,3,4",
              "ACME,LED-9,SN-1,1.0", "ON", "OFF", "IDLE", "MOVING", "OK", "ERR", "E01",
              '0,"No error"', '-222,"Data out of range"', "dark,flat,edge", "um", "mm",
              "0,100", "100,0", "1.5 V", "999999999999999999999999", "\x00\x01", "é", "\x1e",
              ",,,", "x" * 300]
replies = st.lists(st.one_of(st.sampled_from(REPLY_TEXT), st.text(max_size=20),
                             st.binary(min_size=1, max_size=4).map(lambda b: b"\xff" + b)),
                   max_size=6)


def _call(method: str, *args: Any) -> Callable[[Any], Any]:
    def call(driver: Any) -> Any:
        return getattr(driver, method)(*args)

    call.__name__ = method
    return call


def _instrument_calls() -> list[tuple[str, str, Callable[[Any], Any]]]:
    calls: list[tuple[str, str, Callable[[Any], Any]]] = []
    for kind in ("light", "power", "meter", "focus", "chart"):
        for name in registered_drivers(kind):
            cls = driver_class(kind, name)
            if not issubclass(cls, InstrumentDriver):
                continue
            for method in ("identity", "_after_open", "is_on", "level", "cct", "output_enabled",
                           "measure", "read", "position", "moving", "current"):
                if callable(getattr(cls, method, None)):
                    calls.append((kind, name, _call(method)))
            for method, arg in (("set_level", 40.0), ("set_voltage", 1.0), ("check_errors", "x"),
                                ("select", "flat"), ("move_to", 10.0)):
                if callable(getattr(cls, method, None)):
                    calls.append((kind, name, _call(method, arg)))
    return calls


INSTRUMENT_CALLS = _instrument_calls()


def _driver(kind: str, name: str, link: ScriptedLink) -> Any:
    cls = driver_class(kind, name)
    address = {"resource": "fuzz"} if cls.backend == "visa" else {"port": "fuzz"}
    extra = {"max_voltage_v": 5.0, "max_current_a": 1.0} if kind == "power" else {}
    settings = cls.Settings.model_validate({**address, **extra, "timeout_s": 0.01,
                                            "retries": 0})
    driver = cls(link.device, settings, DriverContext("fuzz", Path(".")))
    driver.transport = link
    if hasattr(driver, "maximum"):  # a focus stage as _after_open would have left it
        driver.minimum, driver.maximum = 0.0, 100.0
    if hasattr(driver, "_charts"):
        driver._charts = ("dark", "flat", "edge")
    return driver


def test_every_instrument_driver_is_fuzzed() -> None:
    kinds = {kind for kind, _, _ in INSTRUMENT_CALLS}
    assert kinds == {"light", "power", "meter", "focus", "chart"}, kinds
    assert len(INSTRUMENT_CALLS) >= 20


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_instrument_replies_fuzz(data: st.DataObject) -> None:
    """Whatever an instrument answers: a value, or an InstrumentError (a station fault, never
    a DUT FAIL) in one line naming the device and the command; never a hang."""
    kind, name, call = data.draw(st.sampled_from(INSTRUMENT_CALLS), label="call")
    device = f"{kind}-under-fuzz"
    link = ScriptedLink(device, data.draw(replies, label="replies"))
    driver = _driver(kind, name, link)
    try:
        call(driver)
    except ConfigError as exc:  # a setting outside what the (fuzzed) instrument reported
        one_line_naming(exc, device)
    except InstrumentError as exc:
        one_line_naming(exc, device)
    except Exception as exc:
        raise AssertionError(f"{name}: {type(exc).__name__} escaped: {exc}") from exc


LONG = "x" * 5000 + ".tif"
LONG_ARG_CASES = [["station", "check", LONG], ["sim", "truth", LONG],
                  ["analyze", "emva1288", LONG], ["analyze", "defects", LONG, LONG],
                  ["analyze", "uniformity", LONG], ["analyze", "sfr", LONG],
                  ["analyze", "colour", LONG], ["analyze", "focus", LONG],
                  ["report", "--from-journal", LONG, "--no-records"], ["report", LONG],
                  ["records", "runs", "--records", LONG], ["signoff", "R-1", "--records", LONG]]


@pytest.mark.parametrize("argv", LONG_ARG_CASES, ids=[" ".join(a[:2]) for a in LONG_ARG_CASES])
def test_cli_path_the_os_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 argv: list[str]) -> None:
    """Found by the fuzzer: a 5000-character path made Path.exists() raise OSError
    (ENAMETOOLONG) and most commands printed a traceback."""
    monkeypatch.chdir(tmp_path)
    code, output = run_cli(*argv)
    assert_bad_input(code, output, "x" * 50 + ".tif")
