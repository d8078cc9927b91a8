"""Stacks and EMVA sweeps from capture sets, multi-page TIFFs and folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from harness.analysis.emva1288 import measure_emva1288
from harness.capture.writer import CaptureSetWriter
from harness.errors import ConfigError
from harness.inputs.stack_input import (
    open_stack,
    reduce_capture_set,
    reduce_capture_set_planes,
    reduce_emva,
)
from tests_unit.emva_synth import Sensor, exposure_sweep


def write_emva_capture_set(path: Path, sensor: Sensor, cfa: str | None = None,
                           **sweep: object) -> Path:
    rng = np.random.default_rng(0)
    with CaptureSetWriter(path, sequence="exposure_sweep", cfa=cfa, bits=sensor.bits) as w:
        for role, group, step, ns, photons, frame in exposure_sweep(sensor, **sweep):  # type: ignore[arg-type]
            # read-back exposure jitters a little between frames of a step: the step pairs them
            jitter = 1 + 1e-6 * rng.standard_normal()
            w.add(frame, role=role, group=group, step=step,
                  exposure_us=ns / 1000.0 * jitter,
                  photons=None if photons is None else photons * jitter,
                  gain_db=0.0, temperature_c=30.0)
    return path


def test_emva_capture_set_reduces_and_pairs_by_step(tmp_path: Path) -> None:
    sensor = Sensor(height=48, width=64, seed=81)
    path = write_emva_capture_set(tmp_path / "cs", sensor, cfa=None, steps=14, spatial_frames=4)
    data, cfa = reduce_capture_set(path)
    assert cfa is None and len(data.points) == 14
    res = measure_emva1288(data)
    # 48x64 pixels, 14 steps: K's statistical error is ~1 %, hence 3 %.
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.03)
    assert res.nonuniformity is not None
    assert reduce_emva(path / "manifest.json")[0].points == data.points


def test_one_pass_over_planes_equals_separate_passes(tmp_path: Path) -> None:
    sensor = Sensor(height=48, width=64, seed=82)
    path = write_emva_capture_set(tmp_path / "cs", sensor, cfa="RGGB", steps=8,
                                  spatial_frames=3)
    both = reduce_capture_set_planes(path, ("Gr", None))
    for (data, cfa), (alone, alone_cfa) in ((both["Gr"], reduce_capture_set(path, plane="Gr")),
                                            (both[None], reduce_capture_set(path))):
        assert cfa == alone_cfa and data.points == alone.points
        assert data.spatial_bright is not None and alone.spatial_bright is not None
        assert np.array_equal(data.spatial_bright.sum_img, alone.spatial_bright.sum_img)
    assert both[None][1] == "RGGB" and both["Gr"][1] is None
    with pytest.raises(ConfigError, match=r"plane 'G' not in .* allowed: R, Gr, Gb, B"):
        reduce_capture_set_planes(path, (None, "G"))


def test_a_damaged_frame_stops_the_reduction_and_names_the_file(tmp_path: Path) -> None:
    # frames load on a thread ahead of the reduction: its error must still surface, in order
    sensor = Sensor(height=600, width=900, seed=83)  # > 1 MB per frame: the threaded path
    path = write_emva_capture_set(tmp_path / "cs", sensor, cfa=None, steps=4, spatial_frames=2)
    cs_frames = sorted((path / "frames").iterdir())
    damaged = cs_frames[len(cs_frames) // 2]
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=f"{damaged.name}.*checksum mismatch"):
        reduce_capture_set(path)


def test_capture_set_without_emva_frames_is_rejected(tmp_path: Path) -> None:
    with CaptureSetWriter(tmp_path / "cs", sequence="focus") as w:
        w.add(np.zeros((8, 8), np.uint16), role="focus", exposure_us=10.0)
    with pytest.raises(ConfigError, match="EMVA 1288 sweep"):
        reduce_capture_set(tmp_path / "cs")
    with CaptureSetWriter(tmp_path / "cs2", sequence="x") as w:
        w.add(np.zeros((8, 8), np.uint16), role="dark", group="temporal")
    with pytest.raises(ConfigError, match="exposure_us"):
        reduce_capture_set(tmp_path / "cs2")


def test_capture_set_stack_by_role_with_manifest_cfa(tmp_path: Path) -> None:
    with CaptureSetWriter(tmp_path / "cs", sequence="defects", cfa="GRBG") as w:
        for i in range(3):
            w.add(np.full((8, 8), 10 + i, np.uint16), role="dark", group="spatial",
                  exposure_us=100.0, gain_db=6.0, temperature_c=40.0)
            w.add(np.full((8, 8), 1000 + i, np.uint16), role="bright", group="spatial",
                  exposure_us=100.0)
    dark = open_stack(tmp_path / "cs", roles=("dark",))
    assert (dark.count, dark.cfa, dark.bits) == (3, "GRBG", 12)
    assert dark.conditions == {"exposure_us": 100.0, "gain_db": 6.0, "temperature_c": 40.0}
    assert dark.reduce().mean_img.mean() == pytest.approx(11.0)
    flat = open_stack(tmp_path / "cs", roles=("flat", "bright"))  # falls back to bright
    assert flat.reduce().mean_img.mean() == pytest.approx(1001.0)
    with pytest.raises(ConfigError, match="contradicts"):
        open_stack(tmp_path / "cs", cfa="RGGB")
    with pytest.raises(ConfigError, match="no frames with role"):
        open_stack(tmp_path / "cs", roles=("colour",))


def test_multipage_tiff_and_folders(tmp_path: Path) -> None:
    frames = np.stack([np.full((6, 8), v, np.uint16) for v in (1, 2, 3, 4)])
    tifffile.imwrite(tmp_path / "stack.tif", frames, photometric="minisblack")
    src = open_stack(tmp_path / "stack.tif", cfa="rggb")
    assert (src.count, src.cfa) == (4, "RGGB")
    assert src.reduce().mean_img.mean() == pytest.approx(2.5)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:02d}.png"), f)
    assert open_stack(folder).reduce().frames == 4
    tifs = tmp_path / "tifs"
    tifs.mkdir()
    tifffile.imwrite(tifs / "a.tif", frames[0])
    tifffile.imwrite(tifs / "b.tif", np.zeros((7, 8), np.uint16))
    with pytest.raises(ConfigError, match="expected 8x6"):
        open_stack(tifs).reduce()
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((6, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ConfigError, match="single-channel"):
        open_stack(tmp_path / "rgb.tif").reduce()


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no capture set manifest"),
    (lambda p: (p / "x.txt").write_text("x") and p / "x.txt", "multi-page TIFF"),
    (lambda p: (p / "bad.tif").write_bytes(b"not a tiff") and p / "bad.tif", "cannot read"),
])
def test_bad_stack_paths(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        open_stack(path).reduce()


def test_bad_bayer_name(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((2, 4, 4), np.uint16), photometric="minisblack")
    with pytest.raises(ConfigError, match="allowed: RGGB, GRBG, GBRG, BGGR"):
        open_stack(tmp_path / "s.tif", cfa="RGB")


def test_reduce_emva_rejects_unknown_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        reduce_emva(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="neither a capture set"):
        reduce_emva(tmp_path)


def test_centre_window_keeps_the_bayer_phase_and_refuses_bad_fractions() -> None:
    from harness.inputs.stack_input import centre_window

    rows, cols = centre_window(480, 640, 0.125)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (210, 270, 280, 360)
    for part in (rows.start, rows.stop, cols.start, cols.stop):
        assert part % 2 == 0  # an RGGB window stays RGGB
    assert centre_window(480, 640, 1.0) == (slice(0, 480), slice(0, 640))
    with pytest.raises(ConfigError, match="window fraction 0 outside"):
        centre_window(480, 640, 0)


def test_parallel_prefetch_keeps_order_raises_in_order_and_stops_early() -> None:
    """PNG frames decode on several threads (prefetch_parallel): frames come in the loaders'
    order whatever finishes first, a loader's error surfaces at its place, and a consumer
    that stops early leaves no loader running beyond the window."""
    import threading
    import time

    from harness.inputs.stack_input import prefetch_parallel

    def loader(i: int) -> np.ndarray:
        time.sleep(0.002 * (5 - i % 5))  # later frames often finish first
        return np.full((2, 2), i)

    frames = prefetch_parallel([lambda i=i: loader(i) for i in range(20)], workers=3)
    assert [int(f[0, 0]) for f in frames] == list(range(20))

    def broken() -> np.ndarray:
        raise ConfigError("frame 3 is damaged")

    loaders = [lambda i=i: loader(i) for i in range(3)] + [broken, lambda: loader(4)]
    got: list[int] = []
    with pytest.raises(ConfigError, match="frame 3 is damaged"):
        for f in prefetch_parallel(loaders, workers=2):
            got.append(int(f[0, 0]))
    assert got == [0, 1, 2]

    started: list[int] = []
    lock = threading.Lock()

    def counted(i: int) -> np.ndarray:
        with lock:
            started.append(i)
        return np.full((2, 2), i)

    stream = prefetch_parallel([lambda i=i: counted(i) for i in range(100)], workers=2, ahead=4)
    assert int(next(stream)[0, 0]) == 0
    stream.close()
    assert len(started) <= 5
