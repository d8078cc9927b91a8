"""The GenICam driver against a real GenTL producer: viky.cti from the genicam wheel.

viky has 3 devices (serials 0-2), Mono8/RGBa8, 100-800 px, AcquisitionFrameRate up to 200 Hz and
no ExposureTime/Gain/Trigger (docs/standards.md#the-viky-test-producer); those are tested in test_genicam_faults.py on a
GenApi node map of our own. Faults a real producer cannot be made to show (a vanished device,
dropped buffers) are injected by wrapping the acquirer's ``fetch``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import genicam
import genicam.gentl as gt
import numpy as np
import pytest
from pydantic import ValidationError

from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.devices.camera.harvester import get_manager, producers_from_env
from harness.devices.protocols import Camera
from harness.errors import CameraDisconnected, CameraError, CameraTimeout, ConfigError, FeatureError
from harness.registry import DriverContext
from harness.station.station import Station

VIKY = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")
pytestmark = pytest.mark.skipif(not os.path.isfile(VIKY), reason="viky.cti not in this wheel")

Factory = Callable[..., GenICamCamera]


@pytest.fixture()
def make_cam(tmp_path: Path) -> Iterator[Factory]:
    opened: list[GenICamCamera] = []

    def make(name: str = "camera", open_: bool = True, **settings: Any) -> GenICamCamera:
        settings.setdefault("cti", [VIKY])
        if not {"serial", "user_name", "model", "index"} & set(settings):
            settings["serial"] = "1"
        cam = GenICamCamera(name, GenICamSettings(**settings), DriverContext("st", tmp_path))
        opened.append(cam)
        if open_:
            cam.open()
        return cam

    yield make
    for cam in opened:
        cam.close()


def test_settings_need_exactly_one_selector() -> None:
    with pytest.raises(ValidationError, match="exactly one of serial, user_name, model, index"):
        GenICamSettings(cti=[VIKY])
    with pytest.raises(ValidationError, match=r"found serial, model"):
        GenICamSettings(cti=[VIKY], serial="1", model="Viky")
    with pytest.raises(ValidationError):
        GenICamSettings(serial="1", exposure=3)  # type: ignore[call-arg]


def test_station_file_errors_are_one_line(tmp_path: Path) -> None:
    station = tmp_path / "st.yaml"
    station.write_text(f"id: g1\ncamera: {{driver: genicam, cti: ['{VIKY}'], serial: '1', "
                       f"model: Viky}}\n")
    with pytest.raises(ConfigError) as exc:
        Station.load(station)
    assert "exactly one of serial" in str(exc.value) and "\n" not in str(exc.value)
    station.write_text("id: g1\ncamera: {driver: genicam, cti: [missing.cti], serial: '1'}\n")
    with pytest.raises(ConfigError, match=r"camera\.cti: GenTL producer '.*missing.cti' not "
                                          r"found"), Station.load(station):
        pass


def test_no_producer_at_all(make_cam: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    cam = make_cam(open_=False, cti=[])
    with pytest.raises(ConfigError, match=r"no GenTL producer.*GENICAM_GENTL64_PATH"):
        cam.open()


def test_producers_from_environment(tmp_path: Path) -> None:
    assert producers_from_env({"GENICAM_GENTL64_PATH": os.path.dirname(VIKY)}) == [
        os.path.realpath(VIKY)]
    assert producers_from_env({"GENICAM_GENTL64_PATH": str(tmp_path)}) == []


def test_enumerates_three_viky_devices(make_cam: Factory) -> None:
    make_cam(serial="0")
    devices = get_manager().devices()
    viky = [d for d in devices if d.producer == os.path.realpath(VIKY)]
    assert sorted(d.serial for d in viky) == ["0", "1", "2"]
    assert {d.model for d in viky} == {"Viky"} and all(d.vendor for d in viky)


def test_open_by_serial_index_model(make_cam: Factory) -> None:
    cam = make_cam(serial="2")
    ident = cam.identity()
    assert (ident.serial, ident.model, ident.driver) == ("2", "Viky", "genicam")
    assert ident.extra["producer"] == os.path.realpath(VIKY)
    assert isinstance(cam, Camera)
    first = get_manager().devices()[0]
    assert make_cam("idx", index=0).entry == first
    with pytest.raises(ConfigError, match=r"3 devices have model 'Viky'.*select by serial"):
        make_cam("m", model="Viky")
    with pytest.raises(CameraError, match=r"no device with serial '9'; devices: .*s/n 0"):
        make_cam("s9", serial="9")
    with pytest.raises(CameraError, match="no device with user_name 'left'"):
        make_cam("u", user_name="left")


def test_one_harvester_and_one_acquirer_per_device(make_cam: Factory) -> None:
    manager = get_manager()
    a = make_cam("a", serial="0")
    b = make_cam("b", serial="1")
    h = manager.harvester
    assert a.manager is b.manager is manager and manager.harvester is h
    ia = a.acquirer
    count = len(h.image_acquirers)
    a.close()
    a2 = make_cam("a", serial="0")
    assert a2.acquirer is ia and len(h.image_acquirers) == count  # reused, not re-created
    with pytest.raises(CameraError, match=r"already open as 'st:b'"):
        make_cam("c", serial="1")


_ONE_HARVESTER = """
import gc, sys
from pathlib import Path
from harvesters.core import Harvester
from harness.cli.devices import list_devices
from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.registry import DriverContext
ctx = DriverContext("st", Path("."))
cams = [GenICamCamera(f"c{s}", GenICamSettings(cti=[sys.argv[1]], serial=s), ctx) for s in "01"]
for cam in cams:
    cam.open()
cams[0].reconnect()
cams[1].close()
cams[1].open()
n_devices = len(list_devices([Path(sys.argv[1])])["devices"])
print(n_devices, sum(isinstance(o, Harvester) for o in gc.get_objects()))
"""


def test_a_process_never_gets_a_second_harvester() -> None:
    """A second Harvester on the same producer silently sees 0 devices (docs/standards.md#harvesters-and-genapi-traps, trap 1): in
    a fresh process, opening two cameras, reconnecting, reopening and listing devices must all
    go through one Harvester, and every device stays visible."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _ONE_HARVESTER, VIKY], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "1"]


def test_open_keeps_the_process_sigint_handler(make_cam: Factory) -> None:
    before = signal.getsignal(signal.SIGINT)
    cam = make_cam(serial="0")
    cam.reconnect()  # creates a fresh ImageAcquirer, which installs its own handler
    assert signal.getsignal(signal.SIGINT) is before


def test_typed_features_and_errors(make_cam: Factory) -> None:
    cam = make_cam(features={"PixelFormat": "Mono8", "Width": 200, "Height": 100})
    assert cam.get("Width") == 200 and cam.get("PixelFormat") == "Mono8"
    cam.set("AcquisitionFrameRate", 150.0)
    assert cam.get("AcquisitionFrameRate") == pytest.approx(150.0)
    info = cam.feature_info("Width")
    assert (info.minimum, info.maximum, info.writable) == (100, 800, True)
    with pytest.raises(FeatureError, match=r"\[Viky s/n 1\]: unknown feature 'Heigth'; did you "
                                           r"mean Height"):
        cam.get("Heigth")
    with pytest.raises(FeatureError, match=r"Width=900 is out of range \(min 100, max 800"):
        cam.set("Width", 900)
    with pytest.raises(FeatureError, match=r"PixelFormat='Mono16' is not an allowed entry; "
                                           r"allowed: .*Mono8"):
        cam.set("PixelFormat", "Mono16")
    with pytest.raises(FeatureError, match="AcquisitionMode is not writable now"):
        cam.set("AcquisitionMode", "SingleFrame")


def test_station_features_are_checked(make_cam: Factory) -> None:
    with pytest.raises(ConfigError, match=r"camera\.features\.Widht: unknown feature 'Widht'"):
        make_cam(features={"Widht": 200})
    with pytest.raises(ConfigError, match=r"camera\.transport\.packet_size: .*has no "
                                          r"GevSCPSPacketSize"):
        make_cam(serial="2", transport={"packet_size": 1500})
    assert make_cam("other").entry is not None  # the failed open gave the device back


def test_snapshot_and_diff_catch_a_changed_setting(make_cam: Factory) -> None:
    cam = make_cam(features={"Width": 200})
    before = cam.snapshot()
    assert before["Width"] == 200 and "AcquisitionStart" not in before
    cam.set("Width", 208)
    diff = cam.diff(before)
    assert diff["Width"] == (200, 208) and set(diff) == {"Width", "AspectRatio"}  # derived
    cam.set("Width", 200)
    assert cam.diff(before) == {}


def test_grab_100_frames_mono8_and_rgba8(make_cam: Factory) -> None:
    cam = make_cam(features={"PixelFormat": "Mono8", "Width": 160, "Height": 120,
                             "AcquisitionFrameRate": 200})
    stack = cam.grab(100)
    assert stack.frames.shape == (100, 120, 160) and stack.frames.dtype == np.uint8
    ids = [m.frame_id for m in stack.meta]
    assert stack.frame_id_gaps() == [] and ids == list(range(ids[0], ids[0] + 100))
    assert all(m.pixel_format == "Mono8" for m in stack.meta)
    assert np.all(np.diff([m.timestamp_s for m in stack.meta]) >= 0)
    assert cam.last_grab is not None and cam.last_grab.clean
    assert not np.array_equal(stack.frames[0], stack.frames[-1])  # the ball moves
    assert not cam.is_streaming  # a grab that started acquisition stops it
    cam.set("PixelFormat", "RGBa8")
    rgba = cam.grab(2)
    assert rgba.frames.shape == (2, 120, 160, 4)


def test_frames_are_copies_of_the_gentl_buffers(make_cam: Factory) -> None:
    cam = make_cam(features={"PixelFormat": "Mono8", "Width": 160, "Height": 120,
                             "AcquisitionFrameRate": 200}, num_buffers=2)
    cam.start()
    first = cam.grab(1).frames[0]
    kept = first.copy()
    cam.grab(10)  # the producer re-fills every buffer several times over
    cam.stop()
    assert np.array_equal(first, kept)


def test_stop_and_reopen(make_cam: Factory) -> None:
    cam = make_cam(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200})
    cam.start()
    assert cam.is_streaming
    cam.grab(3)
    cam.stop()
    cam.safe_state()  # idempotent
    cam.close()
    cam.safe_state()  # and harmless once closed
    again = make_cam(features={"Width": 160, "Height": 120})
    assert again.grab(2).frames.shape == (2, 120, 160)


def test_one_thread_grabs_while_another_reads_features(make_cam: Factory) -> None:
    cam = make_cam(features={"PixelFormat": "Mono8", "Width": 160, "Height": 120,
                             "AcquisitionFrameRate": 200})
    done = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                assert cam.get("Width") == 160
                cam.snapshot()
                reads += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        stack = cam.grab(60)
    finally:
        done.set()
        t.join(timeout=10)
    assert not t.is_alive() and errors == []
    assert len(stack) == 60 and reads > 0


def test_safe_state_from_another_thread_ends_a_long_grab(make_cam: Factory) -> None:
    cam = make_cam(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200})
    errors: list[BaseException] = []

    def long_grab() -> None:
        try:
            cam.grab(2000)  # 10 s at 200 Hz
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=long_grab, daemon=True)
    t.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    cam.safe_state()  # what the station's watchdog does
    t.join(timeout=5)
    assert time.perf_counter() - t0 < 2 and not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CameraError)
    assert "the station went to its safe state" in str(errors[0])
    assert not cam.is_streaming and not cam.acquirer.is_acquiring()
    assert cam.grab(1).frames.shape[:3] == (1, 120, 160)  # usable again


def _wrap_fetch(cam: GenICamCamera, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
                ) -> None:
    ia = cam.acquirer
    ia.fetch = wrapper(type(ia).fetch.__get__(ia))


def test_every_fetch_has_a_timeout(make_cam: Factory) -> None:
    cam = make_cam(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200})
    timeouts: list[float] = []

    def wrapper(fetch: Callable[..., Any]) -> Callable[..., Any]:
        def spy(**kwargs: Any) -> Any:
            timeouts.append(kwargs.get("timeout", 0))
            return fetch(**kwargs)
        return spy

    _wrap_fetch(cam, wrapper)
    cam.grab(3, timeout_s=2.5)
    cam.grab(2)
    assert timeouts == [2.5] * 3 + [cam.settings.timeout_s] * 2


def test_timeout_retries_once_then_raises_camera_timeout(make_cam: Factory) -> None:
    cam = make_cam(timeout_s=0.05, retries=1, features={"Width": 160, "Height": 120,
                                                        "AcquisitionFrameRate": 1})
    cam.start()
    cam.grab(1, timeout_s=3)  # the first frame; the next is 1 s away
    calls = 0

    def wrapper(fetch: Callable[..., Any]) -> Callable[..., Any]:
        def counting(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return fetch(**kwargs)
        return counting

    _wrap_fetch(cam, wrapper)
    with pytest.raises(CameraTimeout) as exc:
        cam.grab(1)
    assert calls == 2
    assert str(exc.value) == ("camera [Viky s/n 1]: no frame within 0.05 s after 2 attempts "
                              "(frame 1 of 1, free run)")
    assert exc.value.device == "camera [Viky s/n 1]"
    assert isinstance(exc.value, CameraError)  # an ERROR outcome, never an AssertionError
    cam.set("AcquisitionFrameRate", 200)  # so that stopping does not wait a 1 s frame period


def test_frame_id_gaps_and_incomplete_buffers_are_reported(make_cam: Factory,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    cam = make_cam(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200})
    ia = cam.acquirer
    calls = 0

    def wrapper(fetch: Callable[..., Any]) -> Callable[..., Any]:
        def lossy(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 3:  # lose one buffer, as a transport would, and flag it incomplete
                raw = fetch(**kwargs)
                raw.parent.queue_buffer(raw)
                ia._emit_callbacks(ia.Events.INCOMPLETE_BUFFER)
            return fetch(**kwargs)
        return lossy

    _wrap_fetch(cam, wrapper)
    stack = cam.grab(5)
    report = cam.last_grab
    assert report is not None and not report.clean
    ids = [m.frame_id for m in stack.meta]
    assert report.frame_id_gaps == ((ids[1], ids[2]),) and ids[2] - ids[1] >= 2
    assert report.incomplete == 1 == stack.incomplete_count()
    assert [m.incomplete_discarded for m in stack.meta] == [0, 0, 1, 0, 0]
    assert "frame-id gaps" in caplog.text and "1 incomplete" in caplog.text


def test_vanished_device_is_reported_and_reconnect_reopens_it(make_cam: Factory,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    cam = make_cam(features={"Width": 176, "Height": 120, "AcquisitionFrameRate": 200})
    cam.grab(2)

    def wrapper(fetch: Callable[..., Any]) -> Callable[..., Any]:
        def gone(**kwargs: Any) -> Any:
            raise gt.IoException("GenTL exception: IO error (-1010)")
        return gone

    _wrap_fetch(cam, wrapper)
    monkeypatch.setattr(cam, "_device_alive", lambda: False)  # what an unplugged device shows
    with pytest.raises(CameraDisconnected) as exc:
        cam.grab(3)
    msg = str(exc.value)
    assert msg.startswith("camera [Viky s/n 1]: device disappeared (VikyTL_DEV_green via ")
    assert "fetching frame 1 of 3" in msg and "IoException" in msg and "reconnect()" in msg
    assert "\n" not in msg
    monkeypatch.undo()
    old = cam.acquirer
    cam.set("Width", 200)
    cam.reconnect()
    assert cam.acquirer is not old
    assert cam.get("Width") == 176  # the station's features applied again
    assert cam.grab(2).frames.shape[:3] == (2, 120, 176)
    assert cam.identity().serial == "1"


def test_other_cameras_survive_a_reconnect(make_cam: Factory) -> None:
    """``Harvester.update`` destroys every acquirer; the other open cameras re-open lazily."""
    a = make_cam("a", serial="0", features={"Width": 160, "Height": 120})
    b = make_cam("b", serial="2")
    old = a.acquirer
    b.reconnect()
    assert not old.is_valid()
    assert a.get("Width") == 160  # re-attached and the station's features applied again
    assert a.acquirer is not old and a.grab(1).frames.shape[:3] == (1, 120, 160)


def test_chunk_mode_on_a_camera_without_exposure_chunks(make_cam: Factory) -> None:
    cam = make_cam(chunks=True, features={"Width": 160, "Height": 120,
                                          "AcquisitionFrameRate": 200})
    assert cam.get("ChunkModeActive") is True
    stack = cam.grab(5)
    assert all(m.exposure_us is None and m.gain_db is None for m in stack.meta)
    assert stack.frame_id_gaps() == []


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_50_open_close_cycles_do_not_grow_memory_or_handles(make_cam: Factory) -> None:
    """50 x (open, grab 1, close), about 5 s (marked slow). A leaked acquirer per cycle costs
    ~0.37 MiB (docs/standards.md#harvesters-and-genapi-traps, trap 7: 40 cycles, +14.8 MiB), so 4 MiB over 50 cycles catches it."""
    settings = {"serial": "0", "features": {"Width": 160, "Height": 120,
                                            "AcquisitionFrameRate": 200}}

    def cycle() -> None:
        cam = make_cam("cycle", **settings)
        cam.grab(1)
        cam.close()

    for _ in range(5):
        cycle()
    h = get_manager().harvester
    fds, threads, acquirers = len(os.listdir("/proc/self/fd")), threading.active_count(), \
        len(h.image_acquirers)
    rss = _rss_kib()
    t0 = time.perf_counter()
    for _ in range(50):
        cycle()
    assert time.perf_counter() - t0 < 30
    assert len(h.image_acquirers) == acquirers
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert threading.active_count() <= threads
    assert _rss_kib() - rss < 4 * 1024
