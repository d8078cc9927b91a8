"""The genicam driver's ExposureTime/Gain/trigger paths against the simulated camera.

viky has no ExposureTime, Gain or TriggerMode (docs/standards.md#the-viky-test-producer). The simulated camera
(``harness.sim.camera``) has them on a real GenApi node map (simcam.xml on a Python register
port), with SFNC semantics: TriggerSoftware is available only with TriggerMode On, Width is
locked while TLParamsLocked, a triggered stream delivers one frame per trigger. Here it stands
behind a stub of the harvesters ImageAcquirer (``fetch(timeout=, is_raw=True)`` returning GenTL-
like buffers packed with :func:`pixelformats.pack`), injected through the driver's ``manager``
argument, so the driver's own code runs unchanged against that node map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import genicam.gentl as gt
import numpy as np
import pytest

from harness.devices.camera.genicam import GenICamCamera, GenICamSettings
from harness.devices.camera.harvester import DeviceEntry
from harness.devices.camera.nodemap import NodeMapFeatures
from harness.devices.camera.pixelformats import BY_NAME, pack
from harness.errors import CameraTimeout, FeatureError
from harness.registry import DriverContext
from harness.sim.camera import SimCamera

MODULE = Path(__file__).resolve().parents[1] / "fixtures" / "modules" / "small-mono.yaml"


class _Queue:
    def __init__(self) -> None:
        self.queued = 0

    def queue_buffer(self, raw: Any) -> None:
        self.queued += 1


class _Raw:
    """What ``fetch(is_raw=True)`` returns: a GenTL buffer's info and memory."""

    def __init__(self, frame: np.ndarray, pixel_format: str, frame_id: int, parent: _Queue
                 ) -> None:
        self.pixel_format = BY_NAME[pixel_format].code
        self.height, self.width = frame.shape
        self.raw_buffer = b"\xee" * 16 + pack(frame, pixel_format)  # a 16-byte header
        self.image_offset = 16
        self.padding_x = 0
        self.frame_id = frame_id
        self.parent = parent

    @property
    def timestamp_ns(self) -> int:
        raise gt.NotAvailableException("timestamps not supported")


class SimAcquirer:
    """The harvesters ImageAcquirer surface the driver uses, in front of a SimCamera."""

    class Events:
        INCOMPLETE_BUFFER = 4

    def __init__(self, sim: SimCamera) -> None:
        self.sim = sim
        assert sim._features is not None
        self.remote_device = type("RD", (), {"node_map": sim._features.node_map})()
        self.device = type("D", (), {"module": type("M", (), {"access_status": 5})()})()
        self.min_num_buffers = 1
        self.num_buffers = 3
        self.queue = _Queue()
        self.fetch_timeouts: list[float] = []

    def is_valid(self) -> bool:
        return True

    def is_acquiring(self) -> bool:
        return self.sim.streaming

    def add_callback(self, event: int, callback: Any) -> None:
        self.callback = callback

    def start(self) -> None:
        self.sim.start()

    def stop(self) -> None:
        self.sim.stop()

    def fetch(self, *, timeout: float, is_raw: bool) -> _Raw:
        assert is_raw and timeout > 0
        self.fetch_timeouts.append(timeout)
        try:
            stack = self.sim.grab(1, timeout_s=timeout)
        except CameraTimeout:
            raise gt.TimeoutException() from None
        return _Raw(stack.frames[0], stack.meta[0].pixel_format, stack.meta[0].frame_id,
                    self.queue)


class OneDeviceManager:
    """A HarvesterManager stand-in that lists one device and hands out the SimAcquirer."""

    generation = 1

    def __init__(self, ia: SimAcquirer) -> None:
        self.ia = ia
        self.entry = DeviceEntry(0, "SIM_DEV", "Harness Sim", "SIM-VGA-M", "SIMVGA-M0001", "",
                                 "1.0", "Custom", "available", "sim.cti")

    def add_producers(self, paths: list[str]) -> bool:
        return False

    def update(self) -> None:
        pass

    def devices(self) -> list[DeviceEntry]:
        return [self.entry]

    def acquire(self, entry: DeviceEntry, owner: str) -> SimAcquirer:
        return self.ia

    def release(self, entry: DeviceEntry, owner: str) -> None:
        pass


@pytest.fixture()
def rig(tmp_path: Path) -> Any:
    sim = SimCamera.standalone(str(MODULE), sensor_size=(64, 48))
    ia = SimAcquirer(sim)
    cti = tmp_path / "sim.cti"
    cti.write_bytes(b"")
    settings = GenICamSettings(cti=[str(cti)], serial="SIMVGA-M0001", timeout_s=0.5,
                               features={"PixelFormat": "Mono12", "ExposureTime": 2500.0,
                                         "Gain": 6.0})
    cam = GenICamCamera("camera", settings, DriverContext("st", tmp_path),
                        manager=OneDeviceManager(ia))  # type: ignore[arg-type]
    cam.open()
    yield cam, ia, sim
    cam.close()


def test_exposure_and_gain_through_the_driver(rig: Any) -> None:
    cam, ia, sim = rig
    info = cam.feature_info("ExposureTime")
    assert (info.unit, info.minimum, info.maximum) == ("us", 10.0, 2e6)
    with pytest.raises(FeatureError, match=r"ExposureTime=5 is out of range \(min 10"):
        cam.set("ExposureTime", 5)
    with pytest.raises(FeatureError, match=r"Gain=30 is out of range \(min 0, max 24"):
        cam.set("Gain", 30)
    stack = cam.grab(3)
    assert stack.frames.shape == (3, 48, 64) and stack.frames.dtype == np.uint16
    assert [m.exposure_us for m in stack.meta] == [2500.0] * 3  # read back with the grab
    assert [m.gain_db for m in stack.meta] == [6.0] * 3
    assert all(m.temperature_c is not None for m in stack.meta)
    assert stack.frames.max() < 4096 and stack.frames.mean() > 0  # Mono12 unpacked
    assert ia.queue.queued == 3 and not sim.streaming  # every buffer re-queued; stopped


def test_software_trigger_one_frame_per_trigger(rig: Any) -> None:
    cam, _, sim = rig
    with pytest.raises(FeatureError, match="TriggerSoftware cannot be executed now"):
        cam.trigger()  # not available while TriggerMode is Off
    cam.set("TriggerMode", "On")
    stack = cam.grab(4)  # the driver fires TriggerSoftware before every fetch
    assert len(stack) == 4 and stack.frame_id_gaps() == []
    assert sim._triggers == 0


def test_triggered_without_trigger_times_out_with_retry(rig: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cam, ia, sim = rig
    cam.set("TriggerMode", "On")
    monkeypatch.setattr(cam, "trigger", lambda: None)  # a trigger line that never fires
    with pytest.raises(CameraTimeout) as exc:
        cam.grab(2, timeout_s=0.2)
    assert str(exc.value) == ("camera [SIM-VGA-M s/n SIMVGA-M0001]: no frame within 0.2 s after "
                              "2 attempts (frame 1 of 2, software trigger)")
    assert ia.fetch_timeouts == [0.2, 0.2]
    assert not sim.streaming


def test_streaming_locks_width_and_snapshot_diff(rig: Any) -> None:
    cam = rig[0]
    before = cam.snapshot()
    assert before["ExposureTime"] == 2500.0 and before["TriggerMode"] == "Off"
    cam.start()
    with pytest.raises(FeatureError, match="Width is not writable now"):
        cam.set("Width", 32)
    cam.stop()
    cam.set("TriggerMode", "On")  # a test that forgets to switch it back...
    assert cam.diff(before) == {"TriggerMode": ("Off", "On")}  # ...is caught


def test_sim_node_map_through_nodemapfeatures() -> None:
    """The SimCamera's node map straight through NodeMapFeatures (the shared access layer)."""
    sim = SimCamera.standalone(str(MODULE), sensor_size=(64, 48))
    assert sim._features is not None
    f = NodeMapFeatures(sim._features.node_map, "simcam")
    assert {"ExposureTime", "Gain", "BlackLevel", "TriggerMode", "TriggerSoftware",
            "DeviceTemperature", "PixelFormat"} <= set(f.names())
    f.set("Gain", 12.3)
    assert f.get("Gain") == pytest.approx(12.3)
    f.set("BlackLevel", f.info("BlackLevel").minimum or 0)
    with pytest.raises(FeatureError, match=r"PixelFormat='RGB8' is not an allowed entry"):
        f.set("PixelFormat", "RGB8")
    assert f.info("DeviceTemperature").writable is False
