"""Capture-set format: round trip, atomic files, checksum and manifest errors."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from harness.capture.writer import CaptureSetWriter, frame_to_tiff
from harness.errors import ConfigError, EvidenceError
from harness.inputs.captureset import CaptureSet


def make_set(path: Path) -> CaptureSet:
    rng = np.random.default_rng(1)
    with CaptureSetWriter(path, sequence="exposure_sweep", cfa="RGGB", bits=12,
                          dut={"serial": "SN1"}) as w:
        for step in range(2):
            for role in ("bright", "dark"):
                for _ in range(2):
                    w.add(rng.integers(0, 4096, (6, 8), dtype=np.uint16), role=role,
                          group="temporal", step=step, exposure_us=100.0 * (step + 1),
                          photons=50.0 if role == "bright" else None)
    return CaptureSet.open(path)


def test_round_trip(tmp_path: Path) -> None:
    cs = make_set(tmp_path / "cs")
    assert cs.manifest.cfa == "RGGB" and cs.manifest.bits == 12
    assert (cs.manifest.width, cs.manifest.height) == (8, 6)
    bright = cs.records(role="bright")
    assert [(r.step, r.index) for r in bright] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    frame = cs.load(bright[0])
    assert frame.dtype == np.uint16 and frame.shape == (6, 8)
    assert len(list(cs.iter_frames(role="dark", group="temporal"))) == 4
    assert not list((tmp_path / "cs").rglob("*.tmp")), "temporary files left behind"


def test_identical_frames_stored_once(tmp_path: Path) -> None:
    with CaptureSetWriter(tmp_path / "cs") as w:
        a = w.add(np.zeros((4, 4), np.uint16), role="dark")
        b = w.add(np.zeros((4, 4), np.uint16), role="dark")
    assert a.sha256 == b.sha256 and a.index == 0 and b.index == 1
    assert len(list((tmp_path / "cs" / "frames").iterdir())) == 1


def test_corrupt_frame_detected(tmp_path: Path) -> None:
    cs = make_set(tmp_path / "cs")
    rec = cs.records()[0]
    path = cs.path_of(rec)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="checksum mismatch"):
        cs.load(rec)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    make_set(tmp_path / "cs")
    with pytest.raises(ConfigError, match="already exists"):
        CaptureSetWriter(tmp_path / "cs")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m.update(format="other"), "format: not a capture-set manifest"),
        (lambda m: m.update(version=99), "version: unsupported version 99"),
        (lambda m: m["frames"][0].update(sha256="xyz"), "frames.0.sha256"),
        (lambda m: m.update(cfa="RGBG"), "cfa: Input should be"),
        (lambda m: m["frames"][0].pop("role"), "frames.0.role: Field required"),
    ],
)
def test_bad_manifest_one_line(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    make_set(tmp_path / "cs")
    mpath = tmp_path / "cs" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    mutate(manifest)
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as info:
        CaptureSet.open(tmp_path / "cs")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_not_json_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"manifest\.json not found"):
        CaptureSet.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{trunc")
    with pytest.raises(ConfigError, match="not valid JSON"):
        CaptureSet.open(tmp_path)


def test_manifest_rewritten_at_most_once_per_interval_and_at_close(tmp_path: Path) -> None:
    writes: list[int] = []
    writer = CaptureSetWriter(tmp_path / "cs")
    original = writer.flush

    def counting() -> None:
        writes.append(len(writer.manifest.frames))
        original()

    writer.flush = counting  # type: ignore[method-assign]
    writer.FLUSH_INTERVAL_S = 3600.0
    for i in range(5):
        writer.add(np.full((4, 4), i, np.uint16), role="dark")
    assert len(writes) == 1  # at the first frame, then not within the interval
    writer.close()
    assert len(writes) == 2 and writes[-1] == 5
    assert len(CaptureSet.open(tmp_path / "cs").records()) == 5


def test_manifest_lists_only_frames_already_on_disk(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.capture.writer as writer_module

    real = writer_module.atomic_write_bytes
    seen: list[int] = []

    def slow_frames(path: Path, data: object) -> None:
        if path.name == "manifest.json":
            listed = json.loads(bytes(data)).get("frames", [])  # type: ignore[call-overload]
            assert all((tmp_path / "cs" / f["file"]).exists() for f in listed)
            seen.append(len(listed))
        else:
            time.sleep(0.01)
        real(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "atomic_write_bytes", slow_frames)
    writer = CaptureSetWriter(tmp_path / "cs")
    writer.FLUSH_INTERVAL_S = 0.0
    for i in range(8):
        writer.add(np.full((4, 4), i, np.uint16), role="dark")
    writer.close()
    assert seen[-1] == 8 and len(seen) == 9


def test_a_frame_that_cannot_be_written_is_reported(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.capture.writer as writer_module

    real = writer_module.atomic_write_bytes

    def full_disk(path: Path, data: object) -> None:
        if path.name != "manifest.json":
            raise OSError(28, "No space left on device")
        real(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "atomic_write_bytes", full_disk)
    writer = CaptureSetWriter(tmp_path / "cs")
    writer.add(np.zeros((4, 4), np.uint16), role="dark")
    with pytest.raises(EvidenceError, match="cannot write frame: No space left on device"):
        writer.close()
    assert CaptureSet.open(tmp_path / "cs").records() == []
    def broken(path: Path, data: object) -> None:
        if path.name != "manifest.json":
            raise ValueError("encoder bug")
        real(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "atomic_write_bytes", broken)
    third = CaptureSetWriter(tmp_path / "cs3")
    for _ in range(5):  # more than the queue holds: a dead thread would hang here
        with contextlib.suppress(EvidenceError):
            third.add(np.zeros((4, 4), np.uint16), role="dark")
    with pytest.raises(EvidenceError, match="ValueError: encoder bug"):
        third.close()
    monkeypatch.setattr(writer_module, "atomic_write_bytes", full_disk)
    with pytest.raises(RuntimeError, match="camera gone"), \
            CaptureSetWriter(tmp_path / "cs2") as second:  # the first error is the one seen
        second.add(np.zeros((4, 4), np.uint16), role="dark")
        raise RuntimeError("camera gone")


def test_files_written_from_the_reused_header_equal_tifffiles_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 65536, (31, 47), dtype=np.uint16) for _ in range(3)]
    frames.append(rng.integers(0, 256, (31, 47), dtype=np.uint8))
    frames.append(np.asfortranarray(rng.integers(0, 4096, (31, 47), dtype=np.uint16)))
    with CaptureSetWriter(tmp_path / "cs") as writer:
        records = [writer.add(f, role="flat", step=i) for i, f in enumerate(frames)]
    for record, frame in zip(records, frames, strict=True):
        assert (tmp_path / "cs" / record.file).read_bytes() == frame_to_tiff(frame)


def test_frames_of_one_layout_are_parsed_once_and_others_in_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.inputs.captureset as captureset

    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 4096, (30, 40), dtype=np.uint16) for _ in range(5)]
    frames.append(rng.integers(0, 256, (30, 40), dtype=np.uint8))  # another layout
    with CaptureSetWriter(tmp_path / "cs", sequence="s") as w:
        for i, frame in enumerate(frames):
            w.add(frame, role="flat", step=i)
    parsed: list[int] = []
    real = captureset.tifffile.imread

    def counting(*args: object, **kwargs: object) -> object:
        parsed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(captureset.tifffile, "imread", counting)
    cs = CaptureSet.open(tmp_path / "cs")
    for rec, frame in zip(cs.records(), frames, strict=True):
        loaded = cs.load(rec)
        assert loaded.dtype == frame.dtype
        np.testing.assert_array_equal(loaded, frame)
    assert len(parsed) == 2
