"""SimCamera: a real GenApi node map over a Python port, frames, timing, power, station."""

from __future__ import annotations

from pathlib import Path

import genicam.genapi as ga
import numpy as np
import pytest

from harness.devices.protocols import Camera
from harness.errors import CameraDisconnected, CameraError, CameraTimeout, FeatureError
from harness.sim import port as P
from harness.sim.bench import Bench
from harness.sim.camera import SimCamera
from harness.sim.module import load_module
from harness.sim.sensor import SensorModel
from harness.station.station import Station
from tests_unit.test_sim_sensor import MODULES

ROOT = Path(__file__).resolve().parents[1]
SFNC = ("DeviceVendorName", "DeviceModelName", "DeviceSerialNumber", "DeviceFirmwareVersion",
        "SensorWidth", "SensorHeight", "Width", "Height", "OffsetX", "OffsetY", "PixelFormat",
        "PayloadSize", "ExposureTime", "Gain", "BlackLevel", "TriggerMode", "AcquisitionMode",
        "AcquisitionFrameRate", "DeviceTemperature", "TLParamsLocked")


@pytest.fixture
def cam() -> SimCamera:
    return SimCamera.standalone(str(MODULES / "sim-reference-small.yaml"), seed=2)


@pytest.fixture
def mono() -> SimCamera:
    return SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"), seed=2)


def test_is_a_camera_with_sfnc_features(cam: SimCamera) -> None:
    assert isinstance(cam, Camera)
    snap = cam.snapshot()
    for name in SFNC:
        assert name in snap
    assert snap["SensorWidth"] == 640 and snap["PixelFormat"] == "BayerRG12"
    assert snap["PayloadSize"] == 640 * 480 * 2
    ident = cam.identity()
    assert (ident.vendor, ident.model, ident.serial) == ("Harness Sim", "SIM-VGA-C",
                                                         "SIMVGA-R0001")
    for name in ("AcquisitionStart", "AcquisitionStop", "TriggerSoftware"):
        assert cam.feature_info(name).type == "command"


def test_genapi_checks_ranges_increments_and_dependent_maxima(cam: SimCamera) -> None:
    cam.set("Width", 320)
    assert cam.feature_info("OffsetX").maximum == 320
    cam.set("OffsetX", 320)
    assert cam.feature_info("Width").maximum == 320
    with pytest.raises(FeatureError, match=r"Width=321 .*increment 8"):
        cam.set("Width", 321)
    with pytest.raises(FeatureError, match=r"out of range .*max 320"):
        cam.set("Width", 400)
    with pytest.raises(FeatureError, match="not writable"):
        cam.set("SensorWidth", 100)
    with pytest.raises(FeatureError, match="unknown feature 'Wdth'; did you mean Width"):
        cam.get("Wdth")
    with pytest.raises(FeatureError, match="allowed: BayerRG8, BayerRG12"):
        cam.set("PixelFormat", "Mono8")  # a colour sensor offers only its Bayer formats
    cam.set("Gain", 12.3)
    assert cam.get("Gain") == pytest.approx(12.3)
    assert cam._port is not None and cam._port.get_u32(P.GAIN_RAW) == 123
    with pytest.raises(FeatureError, match="Gain=30 is out of range"):
        cam.set("Gain", 30)


def test_parameters_are_locked_while_streaming(cam: SimCamera) -> None:
    cam.start()
    for feature, value in (("Width", 320), ("PixelFormat", "BayerRG8"), ("OffsetY", 2)):
        with pytest.raises(FeatureError, match="not writable now"):
            cam.set(feature, value)
    cam.set("ExposureTime", 2000.0)  # exposure may change while streaming
    cam.stop()
    cam.set("Width", 320)


def test_frames_ids_timestamps_and_period(mono: SimCamera) -> None:
    mono.set("ExposureTime", 100_000.0)  # longer than 1/30 s and the readout
    mono.start()
    stack = mono.grab(3)
    assert stack.frames.shape == (3, 480, 640) and stack.frames.dtype == np.uint16
    assert stack.frame_id_gaps() == []
    stamps = [m.timestamp_s for m in stack.meta]
    assert np.allclose(np.diff(stamps), 0.1)
    assert stack.meta[0].exposure_us == 100_000.0 and stack.meta[0].pixel_format == "Mono12"
    assert mono.get("ResultingFrameRate") == pytest.approx(10.0)
    assert stack.cfa is None


def test_pixel_formats_rescale_the_adc_value(mono: SimCamera) -> None:
    frames = {}
    for fmt in ("Mono8", "Mono12", "Mono16"):
        mono.set("PixelFormat", fmt)
        cam = mono
        cam.start()
        # same seed and state for each format: restart the noise stream
        cam._rng = np.random.default_rng(9)
        frames[fmt] = cam.grab(1).frames[0]
        cam.stop()
    assert frames["Mono8"].dtype == np.uint8
    # blinking pixels keep their telegraph state between grabs: all others must coincide
    assert np.mean(frames["Mono16"] == frames["Mono12"] << 4) > 0.9999
    assert np.mean(frames["Mono8"] == (frames["Mono12"] >> 4).astype(np.uint8)) > 0.9999


def test_bayer_stack_carries_its_cfa(cam: SimCamera) -> None:
    cam.start()
    assert cam.grab(1).cfa == "RGGB"


def test_software_trigger_and_acquisition_modes(cam: SimCamera) -> None:
    with pytest.raises(FeatureError, match="TriggerSoftware cannot be executed now"):
        cam.execute("TriggerSoftware")
    cam.set("TriggerMode", "On")
    cam.start()
    with pytest.raises(CameraTimeout, match="TriggerSoftware"):
        cam.grab(1, timeout_s=0.5)
    cam.execute("TriggerSoftware")
    cam.execute("TriggerSoftware")
    assert len(cam.grab(2)) == 2
    cam.stop()
    cam.set("TriggerMode", "Off")
    cam.set("AcquisitionMode", "SingleFrame")
    cam.start()
    cam.grab(1)
    with pytest.raises(CameraTimeout, match="SingleFrame"):
        cam.grab(1)
    cam.stop()


def test_grab_before_start_is_a_clear_error(cam: SimCamera) -> None:
    with pytest.raises(CameraError, match="call start"):
        cam.grab(1)


def test_power_off_makes_the_camera_vanish_and_power_on_reboots_it(cam: SimCamera) -> None:
    cam.set("Width", 320)
    cam.start()
    cam.bench.set_powered(False)
    with pytest.raises(CameraDisconnected):
        cam.grab(1)
    with pytest.raises(CameraDisconnected):
        cam.get("Width")
    cam.safe_state()  # must not raise without power
    cam.bench.set_powered(True)
    assert cam.get("Width") == 640 and not cam.streaming


def test_temperature_rises_while_streaming_and_dark_current_follows() -> None:
    bench = Bench()
    bench.set_chart("dark")
    cam = SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"), bench=bench)
    cam.set("ExposureTime", 1_000_000.0)
    cold_t = cam.get("DeviceTemperature")
    assert cold_t == pytest.approx(25.0 + 3.0)
    cam.start()
    cold = cam.grab(1).frames[0].astype(float).mean()
    bench.clock.advance(1200.0)  # 10 time constants of streaming
    hot_t = cam.get("DeviceTemperature")
    hot_stack = cam.grab(1)
    hot = hot_stack.frames[0].astype(float).mean()
    assert hot_t == pytest.approx(25.0 + 3.0 + 6.0, abs=0.05)
    assert hot_stack.meta[0].temperature_c == pytest.approx(hot_t, abs=0.05)
    model = SensorModel(load_module(MODULES / "sim-reference-small-mono.yaml"))
    expected = (model.dark_current(hot_t) - model.dark_current(cold_t)) * 1.0 * 0.42
    # 307k pixels: the mean difference has an SE of ~0.003 DN; hot pixels add a fixed term
    assert hot - cold == pytest.approx(expected, abs=0.02)


def test_frames_follow_the_bench_light() -> None:
    bench = Bench()
    cam = SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"), bench=bench)
    cam.start()
    half = cam.grab(1).frames.mean()
    bench.set_light(level_pct=25.0)
    quarter = cam.grab(1).frames.mean()
    bench.set_light(on=False)
    dark = cam.grab(1).frames.mean()
    assert (quarter - dark) / (half - dark) == pytest.approx(0.5, rel=0.002)


def test_wrong_port_name_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    node_map = ga.NodeMap()
    node_map.load_xml_from_string(P.XML_PATH.read_text())
    assert node_map.connect(P.RegisterPort(), "NotDevice") is False
    monkeypatch.setattr(P, "PORT_NAME", "NotDevice")
    with pytest.raises(CameraError, match="did not connect"):
        P.node_map_for(P.RegisterPort())


def test_simulated_station_opens_and_reaches_safe_state(tmp_path: Path) -> None:
    station = Station.load(ROOT / "stations" / "sim-small.yaml", lock_dir=tmp_path)
    station.open()
    try:
        camera = station.devices["camera"]
        assert isinstance(camera, SimCamera) and camera.bench is station.bench
        camera.start()
        assert station.bench.camera_streaming  # the PSU simulator's load current reads it
        assert camera.grab(1).frames.shape == (1, 480, 640)
        bench = station.bench
    finally:
        station.close()
    assert not camera.streaming and bench.light_on is False and not bench.camera_streaming


def test_black_level_sets_the_offset() -> None:
    bench = Bench()
    bench.set_chart("dark")
    cam = SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"), bench=bench)
    cam.set("ExposureTime", 100.0)
    cam.start()
    base = cam.grab(2).frames.astype(float).mean()
    cam.set("BlackLevel", 100.0)
    raised = cam.grab(2).frames.astype(float).mean()
    assert raised - base == pytest.approx(36.0, abs=0.02)


def test_sensor_size_override_keeps_listed_defects_inside() -> None:
    cam = SimCamera.standalone(str(MODULES / "hot-cluster.yaml"), sensor_size=(640, 480))
    assert cam.get("SensorWidth") == 640
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="outside the 64x48 sensor"):
        SimCamera.standalone(str(MODULES / "hot-cluster.yaml"), sensor_size=(64, 48))


def test_safe_state_from_another_thread_ends_a_running_grab(mono: SimCamera) -> None:
    import threading

    mono.start()
    started = threading.Event()
    original = mono.sensor.frame

    def slow_frame(*args: object, **kwargs: object) -> None:
        started.set()
        original(*args, **kwargs)  # type: ignore[arg-type]

    mono.sensor.frame = slow_frame  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def grab() -> None:
        try:
            mono.grab(200)
        except CameraError as exc:
            errors.append(exc)

    worker = threading.Thread(target=grab)
    worker.start()
    assert started.wait(5.0)
    mono.safe_state()
    worker.join(10.0)
    assert not worker.is_alive()
    assert errors and "safe state" in str(errors[0])
    assert not mono.streaming


def test_time_scale_paces_frames_in_wall_time() -> None:
    import time

    cam = SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"), time_scale=10.0)
    cam.set("ExposureTime", 100_000.0)  # period 0.1 s simulated -> 10 ms wall
    cam.start()
    start = time.perf_counter()
    cam.grab(3)
    assert time.perf_counter() - start >= 0.03
    free = SimCamera.standalone(str(MODULES / "sim-reference-small-mono.yaml"))
    free.set("ExposureTime", 1_000_000.0)
    free.start()
    start = time.perf_counter()
    stack = free.grab(3)
    assert time.perf_counter() - start < 2.0  # 3 s of simulated time, no sleeping
    assert stack.meta[-1].timestamp_s - stack.meta[0].timestamp_s == pytest.approx(2.0)


def test_truth_at_the_current_operating_point(cam: SimCamera) -> None:
    cam.set("Gain", 6.0)
    cam.bench.set_focus(10.0)
    truth = cam.truth()
    assert truth["system_gain_dn_per_e"] == pytest.approx(0.42 * 10 ** (6 / 20), rel=1e-5)
    assert truth["operating_point"]["temperature_c"] == cam.get("DeviceTemperature")
    assert truth["lens"][0]["defocus_radius_px"] == pytest.approx(10 / (2 * 2.0 * 1.4),
                                                                  rel=1e-5)
