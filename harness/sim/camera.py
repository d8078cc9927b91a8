"""SimCamera: a simulated camera module behind a real GenApi node map (``driver: sim``).

Features are SFNC nodes of ``harness/sim/simcam.xml`` loaded into ``genicam.genapi.NodeMap``
and connected to a Python register port (:mod:`harness.sim.port`), so range, increment, enum,
access-mode and lock checks are GenApi's own, exactly as on a real camera, and every access goes
through :class:`harness.devices.camera.nodemap.NodeMapFeatures` (one process-wide GenApi lock,
one-line :class:`~harness.errors.FeatureError` messages). Frames come from the physical model
(:mod:`harness.sim.sensor`, :mod:`harness.sim.optics`, :mod:`harness.sim.scene`) looking at the
bench (:mod:`harness.sim.bench`).

Time is simulated: each frame advances the bench clock by the frame period
max(1/AcquisitionFrameRate, ExposureTime, readout), timestamps are that clock, and nothing
sleeps unless ``time_scale`` asks for pacing. The die temperature rises while streaming
(first-order, ``thermal`` in the module file) and is reported in 0.1 degree steps; the dark
current follows the reported value. With the bench's ``powered`` False the camera is gone:
every call raises :class:`~harness.errors.CameraDisconnected`; when power returns, the device
has rebooted (registers back to defaults, acquisition stopped).
"""

from __future__ import annotations

import math
import struct
import threading
import time
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.devices.camera.nodemap import GENAPI_LOCK, NodeMapFeatures
from harness.errors import CameraDisconnected, CameraError, CameraTimeout
from harness.registry import DriverContext, register_driver
from harness.sim import port as P
from harness.sim.bench import Bench
from harness.sim.faults import CameraFaults, CameraFaultSpec
from harness.sim.module import Module, load_module
from harness.sim.scene import layout
from harness.sim.sensor import Operating, Roi, SensorModel

CFA_CODES = {None: 0, "RGGB": 1, "GRBG": 2, "GBRG": 3, "BGGR": 4}
BAYER_PREFIX = {"RGGB": "BayerRG", "GRBG": "BayerGR", "GBRG": "BayerGB", "BGGR": "BayerBG"}


class SimCameraSettings(BaseModel):
    """``camera: {driver: sim, ...}`` in a station file."""

    model_config = ConfigDict(extra="forbid")

    module: str = Field(description="module YAML, relative to the station file")
    seed: int = Field(0, ge=0, description="temporal-noise seed: same seed, same frames")
    serial: str | None = Field(None, description="override the module's serial number")
    time_scale: float | None = Field(None, gt=0.0, le=1000.0,
                                     description="simulated s per wall s; None: never sleep")
    sensor_size: tuple[int, int] | None = Field(None, description="[width, height] override")
    exact_normal: bool = False
    exposure_us: float = Field(10_000.0, gt=0.0)
    gain_db: float = Field(0.0, ge=0.0)
    faults: CameraFaultSpec | None = Field(None, description="scripted frame faults "
                                           "(harness.sim.faults.CameraFaults)")


def format_bits(pixel_format: str) -> int:
    return int(pixel_format.removeprefix("Mono").removeprefix("BayerRG").removeprefix(
        "BayerGR").removeprefix("BayerGB").removeprefix("BayerBG"))


@register_driver("camera", "sim")
class SimCamera:
    """The simulated camera (Camera protocol)."""

    kind: ClassVar[str]
    driver_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = SimCameraSettings

    def __init__(self, name: str, settings: SimCameraSettings, context: DriverContext, *,
                 module: Module | None = None) -> None:
        self.name = name
        self.settings = settings
        if module is None:
            module = load_module(context.resolve_path(settings.module))
        self.bench: Bench = context.bench if isinstance(context.bench, Bench) else Bench()
        self._slot = name.split(".", 1)[1] if "." in name else None
        """The slot of a multi-up bench (``camera.A``: A), whose own supply it follows."""
        self._use_module(module)
        self._rng = np.random.default_rng(settings.seed)
        self._lock = threading.RLock()
        self._port: P.RegisterPort | None = None
        self._features: NodeMapFeatures | None = None
        self._frame_id = 0
        self._streaming = False
        self._frames_left: int | None = None
        self._triggers = 0
        self._heat = 0.0
        self._heat_time = self.bench.clock.now()
        self._was_powered = self.bench.is_powered(self._slot)
        self._faults = CameraFaults.from_spec(settings.faults)
        self._fault_index = 0
        self._disconnected = False

    def _use_module(self, module: Module) -> None:
        if self.settings.sensor_size is not None:
            module = module.with_sensor_size(*self.settings.sensor_size)
        self.module: Module = module
        self.sensor = SensorModel(module, exact_normal=self.settings.exact_normal)

    @classmethod
    def standalone(cls, module: str | Module, *, seed: int = 0, bench: Bench | None = None,
                   **settings: Any) -> SimCamera:
        """A SimCamera outside any station (tests, sequences, the CLI), already open.

        ``module`` is a module file or an already loaded (possibly modified) :class:`Module`.
        """
        from pathlib import Path

        context = DriverContext("sim-standalone", Path.cwd(), bench or Bench())
        path = module if isinstance(module, str) else module.source or "<in memory>"
        loaded = module if isinstance(module, Module) else None
        cam = cls("camera", SimCameraSettings(module=path, seed=seed, **settings), context,
                  module=loaded)
        cam.open()
        return cam

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        with GENAPI_LOCK, self._lock:
            self._port = P.RegisterPort()
            self._reset_registers()
            self._features = NodeMapFeatures(P.node_map_for(self._port), self.name)
            self._was_powered = self.bench.is_powered(self._slot)

    def close(self) -> None:
        with self._lock:
            self._streaming = False
            self._features = None
            self._port = None

    def safe_state(self) -> None:
        """Acquisition stopped, parameters unlocked (idempotent; works without power).

        Callable from another thread (the station's watchdog): a grab in progress ends
        between frames with a CameraError instead of holding the safe state back.
        """
        self._streaming = False  # seen by a running grab before its next frame
        with self._lock:
            self._streaming = False
            self._triggers = 0
            if self._port is not None:
                self._port.put_u32(P.TL_LOCKED, 0)

    def _reset_registers(self) -> None:
        port = self._port
        assert port is not None
        m, s = self.module, self.module.sensor
        port.memory[:] = bytes(len(port.memory))
        port.put_str(P.VENDOR, m.vendor)
        port.put_str(P.MODEL, m.model)
        port.put_str(P.SERIAL, self.settings.serial or m.serial)
        port.put_str(P.FIRMWARE, m.firmware)
        for addr, value in ((P.SENSOR_WIDTH, s.width), (P.SENSOR_HEIGHT, s.height),
                            (P.WIDTH, s.width), (P.HEIGHT, s.height),
                            (P.SENSOR_CFA, CFA_CODES[s.cfa]), (P.FRAME_COUNT, 1),
                            (P.GAIN_RAW_MAX, round(s.gain_max_db * 10)),
                            (P.GAIN_RAW, round(min(self.settings.gain_db,
                                                       s.gain_max_db) * 10))):
            port.put_u32(addr, value)
        default_format = (f"{BAYER_PREFIX[s.cfa]}{12 if s.adc_bits > 8 else 8}" if s.cfa
                          else f"Mono{12 if s.adc_bits > 8 else 8}")
        port.put_u32(P.PIXEL_FORMAT, P.PFNC[default_format])
        t = m.timing
        port.put_f64(P.EXPOSURE, min(max(self.settings.exposure_us, t.min_exposure_us),
                                     t.max_exposure_us))
        port.put_f64(P.EXPOSURE_MIN, t.min_exposure_us)
        port.put_f64(P.EXPOSURE_MAX, t.max_exposure_us)
        port.put_f64(P.FRAME_RATE, t.max_frame_rate_hz)
        port.put_f64(P.FRAME_RATE_MAX, t.max_frame_rate_hz)
        port.put_f64(P.BLACK_LEVEL, s.black_level_dn)
        port.read_hooks[P.TEMPERATURE] = lambda: struct.pack("<f", self.temperature_c())
        port.read_hooks[P.RESULTING_RATE] = lambda: struct.pack("<d", 1.0 / self.frame_period_s())
        port.write_hooks[P.ACQ_START] = lambda _: self._on_start()
        port.write_hooks[P.ACQ_STOP] = lambda _: self._on_stop()
        port.write_hooks[P.TRIGGER_SOFTWARE] = lambda _: self._on_trigger()
        for addr in (P.ACQ_START, P.ACQ_STOP, P.TRIGGER_SOFTWARE):
            port.put_u32(addr, 0)
        self._streaming = False
        self._triggers = 0

    def _check_power(self) -> P.RegisterPort:
        """The port, or CameraDisconnected when the module has no power (reboot on return)."""
        powered = self.bench.is_powered(self._slot)
        if self._port is None or self._features is None:
            raise CameraError("camera is not open", device=self.name)
        if self._disconnected:
            raise CameraDisconnected("camera vanished from its transport (injected fault)",
                                     device=self.name)
        if not powered:
            self._was_powered = False
            self._streaming = False
            raise CameraDisconnected("camera vanished (module power is off)", device=self.name)
        if not self._was_powered:
            self._was_powered = True
            with GENAPI_LOCK:
                self._reset_registers()
                self._features.invalidate()
        return self._port

    # -- register hooks (called by GenApi under GENAPI_LOCK) -----------------------------------

    def _on_start(self) -> None:
        self._update_heat()
        assert self._port is not None
        self._streaming = True
        self._triggers = 0
        mode = self._port.get_u32(P.ACQ_MODE)
        self._frames_left = None if mode == 0 else 1 if mode == 1 else self._port.get_u32(
            P.FRAME_COUNT)
        self._port.put_u32(P.ACQ_START, 0)

    def _on_stop(self) -> None:
        self._update_heat()
        self._streaming = False
        assert self._port is not None
        self._port.put_u32(P.ACQ_STOP, 0)

    def _on_trigger(self) -> None:
        self._triggers += 1
        assert self._port is not None
        self._port.put_u32(P.TRIGGER_SOFTWARE, 0)

    # -- physics of the device ------------------------------------------------------------------

    def _update_heat(self) -> None:
        now = self.bench.clock.now()
        th = self.module.thermal
        target = 1.0 if self._streaming else 0.0
        self._heat = target + (self._heat - target) * math.exp(-(now - self._heat_time)
                                                               / th.time_constant_s)
        self._heat_time = now

    def temperature_c(self) -> float:
        """Die temperature now, in the 0.1 degree steps the device reports."""
        self._update_heat()
        th = self.module.thermal
        value = self.bench.ambient_c + th.offset_c + th.self_heating_c * self._heat
        return round(value, 1)

    def frame_period_s(self) -> float:
        port = self._port
        assert port is not None
        rate = port.get_f64(P.FRAME_RATE)
        return max(1.0 / rate, port.get_f64(P.EXPOSURE) * 1e-6,
                   self.module.timing.readout_ms * 1e-3)

    # -- Camera protocol: features ----------------------------------------------------------------

    def _feat(self) -> NodeMapFeatures:
        self._check_power()
        assert self._features is not None
        return self._features

    def get(self, feature: str) -> Any:
        with self._lock:
            return self._feat().get(feature)

    def set(self, feature: str, value: Any) -> None:
        with self._lock:
            self._feat().set(feature, value)

    def execute(self, feature: str) -> None:
        with self._lock:
            self._feat().execute(feature)

    def feature_info(self, feature: str) -> FeatureInfo:
        with self._lock:
            return self._feat().info(feature)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._feat().snapshot()

    def identity(self) -> DeviceIdentity:
        with self._lock:
            f = self._feat()
            return DeviceIdentity("camera", "sim", f.get("DeviceVendorName"),
                                  f.get("DeviceModelName"), f.get("DeviceSerialNumber"),
                                  f.get("DeviceFirmwareVersion"),
                                  {"module": self.module.name, "source": self.module.source})

    def truth(self) -> dict[str, Any]:
        """Ground truth at the camera's current operating point (gain, black level, die
        temperature) and the bench's focus and illuminant (:func:`~harness.sim.truth.module_truth`).
        """
        from harness.sim.truth import module_truth

        with self._lock:
            port = self._check_power()
            state = self.bench.state()
            return module_truth(self.module, gain_db=port.get_u32(P.GAIN_RAW) / 10.0,
                                temperature_c=self.temperature_c(), focus_um=state.focus_um,
                                illuminant=state.illuminant,
                                black_level_dn=port.get_f64(P.BLACK_LEVEL))

    # -- Camera protocol: acquisition -------------------------------------------------------------

    def start(self) -> None:
        """Lock the transport parameters and start acquisition (SFNC order)."""
        with self._lock:
            f = self._feat()
            f.set("TLParamsLocked", 1)
            f.execute("AcquisitionStart")

    def stop(self) -> None:
        with self._lock:
            f = self._feat()
            f.execute("AcquisitionStop")
            f.set("TLParamsLocked", 0)

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def _streaming(self) -> bool:
        return self.__streaming

    @_streaming.setter
    def _streaming(self, value: bool) -> None:
        """Acquisition state, mirrored to ``bench.camera_streaming`` (the PSU load)."""
        self.__streaming = value
        self.bench.camera_streaming = value
        if self._slot is not None:
            self.bench.slot_streaming[self._slot] = value

    def grab(self, n: int = 1, timeout_s: float = 5.0) -> FrameStack:
        """``n`` frames in the current pixel format (a copy owned by the stack)."""
        if n < 1:
            raise CameraError(f"grab needs n >= 1, got {n}", device=self.name)
        with self._lock:
            port = self._check_power()
            if not self._streaming:
                raise CameraError("acquisition is not running: call start() first",
                                  device=self.name)
            pixel_format = P.PFNC_NAMES[port.get_u32(P.PIXEL_FORMAT)]
            roi = Roi(port.get_u32(P.OFFSET_X), port.get_u32(P.OFFSET_Y),
                      port.get_u32(P.WIDTH), port.get_u32(P.HEIGHT))
            raw = np.empty((n, roi.height, roi.width), np.uint16)
            meta = [self._one_frame(port, roi, raw[i], pixel_format, timeout_s, i)
                    for i in range(n)]
            frames = self._convert(raw, pixel_format)
            cfa = self.module.sensor.cfa if pixel_format.startswith("Bayer") else None
            return FrameStack(frames, tuple(meta), cfa)

    def _one_frame(self, port: P.RegisterPort, roi: Roi, out: np.ndarray, pixel_format: str,
                   timeout_s: float, burst_index: int = 0) -> FrameMeta:
        clock = self.bench.clock
        if not self._streaming:
            raise CameraError("acquisition stopped during the grab (safe state)",
                              device=self.name)
        if self._frames_left is not None and self._frames_left <= 0:
            clock.advance(timeout_s)
            mode = "SingleFrame" if port.get_u32(P.ACQ_MODE) == 1 else "MultiFrame"
            raise CameraTimeout(f"no frame within {timeout_s} s: the {mode} acquisition has "
                                f"ended", device=self.name)
        if port.get_u32(P.TRIGGER_MODE) == 1:
            if self._triggers <= 0:
                clock.advance(timeout_s)
                raise CameraTimeout(f"no frame within {timeout_s} s: TriggerMode is On and no "
                                    f"TriggerSoftware was executed", device=self.name)
            self._triggers -= 1
        fate = self._faults.fate(self._fault_index)
        self._fault_index += 1
        link = self.module.timing.link
        if fate == "ok" and link.fifo_frames is not None \
                and (burst_index + 1) % (link.fifo_frames + 1) == 0:
            fate = link.overrun  # the module's FIFO overran in a long burst
        if fate == "disconnect":
            self._disconnected = True
            self._streaming = False
            raise CameraDisconnected(f"camera vanished from its transport after "
                                     f"{self._fault_index - 1} frames (injected fault)",
                                     device=self.name)
        if fate == "timeout":
            clock.advance(timeout_s)
            raise CameraTimeout(f"no frame within {timeout_s} s (injected fault)",
                                device=self.name)
        if fate == "drop":
            self._frame_id += 1  # the lost frame's id: the stack shows a gap
        exposure = port.get_f64(P.EXPOSURE)
        gain_db = port.get_u32(P.GAIN_RAW) / 10.0
        black = port.get_f64(P.BLACK_LEVEL)
        period = self.frame_period_s()
        temperature = self.temperature_c()
        state = self.bench.state()
        scene = layout(state.chart, self.module.sensor.width, self.module.sensor.height)
        op = Operating(exposure, gain_db, black, temperature)
        self.sensor.frame(scene, state.illuminant, state.focus_um, state.photons_per_um2_s, op,
                          roi, self._rng, out)
        if self.settings.time_scale is not None:
            time.sleep(period / self.settings.time_scale)
        stamp = clock.advance(period)
        self._frame_id += 1
        if self._frames_left is not None:
            self._frames_left -= 1  # at 0 the Single/MultiFrame acquisition has ended
        return FrameMeta(self._frame_id, stamp, exposure, gain_db, temperature, pixel_format,
                         incomplete=fate == "incomplete")

    def _convert(self, raw: np.ndarray, pixel_format: str) -> np.ndarray:
        bits = format_bits(pixel_format)
        adc = self.module.sensor.adc_bits
        if bits > adc:
            raw <<= bits - adc
        elif bits < adc:
            raw >>= adc - bits
        return raw.astype(np.uint8) if bits == 8 else raw


__all__ = ["BAYER_PREFIX", "CFA_CODES", "SimCamera", "SimCameraSettings", "format_bits"]
