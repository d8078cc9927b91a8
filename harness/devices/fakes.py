"""Fake drivers, one per device kind (``driver: fake``), for tests of the harness itself.

They record every lifecycle call (``open``, ``safe_state``, ``close``) in :data:`EVENTS` and,
when ``record_to`` is set, append it to a file (so a test can check another process reached
its safe state). ``fail_on`` makes a call raise, to test error paths. They model no physics:
the simulated bench (``harness.sim``) does that.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.devices.protocols import MeterReading, PowerReading
from harness.errors import CameraTimeout, DeviceError, FeatureError
from harness.registry import DriverContext, register_driver

EVENTS: list[str] = []
"""``"<role>:<call>"`` for every lifecycle call of every fake in this process."""

Action = Literal["open", "close", "safe_state", "grab", "identity"]


class FakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str = "FAKE-0001"
    fail_on: list[Action] = Field(default_factory=list)
    record_to: str | None = None
    open_delay_s: float = Field(0.0, ge=0.0, le=60.0)
    password: str = Field("", description="a credential the fake holds and never reports, "
                          "as a networked instrument's login; tests give it ${VAR} secrets "
                          "to check that none reaches the evidence")


class FakeDevice:
    """Shared behaviour of the fakes."""

    kind: ClassVar[str]
    driver_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = FakeSettings

    def __init__(self, name: str, settings: FakeSettings, context: DriverContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.is_open = False
        self.safe = False
        self._record_path = context.resolve_path(settings.record_to) if settings.record_to else None

    def _record(self, action: str) -> None:
        event = f"{self.name}:{action}"
        EVENTS.append(event)
        if self._record_path is not None:
            with open(self._record_path, "a", encoding="utf-8") as fh:
                fh.write(event + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        if action in self.settings.fail_on:
            raise DeviceError(f"injected failure in {action}", device=self.name)

    def open(self) -> None:
        if self.settings.open_delay_s:
            time.sleep(self.settings.open_delay_s)
        self._record("open")
        self.is_open = True

    def close(self) -> None:
        self._record("close")
        self.is_open = False

    def safe_state(self) -> None:
        self.safe = True
        self._record("safe_state")

    def identity(self) -> DeviceIdentity:
        if "identity" in self.settings.fail_on:
            raise DeviceError("injected failure in identity", device=self.name)
        return DeviceIdentity(self.kind, self.driver_name, "Harness", f"Fake{self.kind.title()}",
                              self.settings.serial, "1.0")


class FakeCameraSettings(FakeSettings):
    width: int = Field(64, ge=8, le=8192)
    height: int = Field(48, ge=8, le=8192)
    bits: int = Field(12, ge=8, le=16)
    cfa: Literal["RGGB", "GRBG", "GBRG", "BGGR"] | None = None
    dn_per_us: float = Field(0.5, ge=0.0)
    seed: int = 0


@register_driver("camera", "fake")
class FakeCamera(FakeDevice):
    """A camera whose frames are black level + ``dn_per_us`` x exposure + Gaussian noise."""

    Settings = FakeCameraSettings
    settings: FakeCameraSettings

    def __init__(self, name: str, settings: FakeCameraSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._rng = np.random.default_rng(settings.seed)
        self._frame_id = 0
        self.streaming = False
        self._features: dict[str, FeatureInfo] = {
            "DeviceVendorName": FeatureInfo("DeviceVendorName", "str", "Harness"),
            "DeviceModelName": FeatureInfo("DeviceModelName", "str", "FakeCamera"),
            "DeviceSerialNumber": FeatureInfo("DeviceSerialNumber", "str", settings.serial),
            "DeviceFirmwareVersion": FeatureInfo("DeviceFirmwareVersion", "str", "1.0"),
            "Width": FeatureInfo("Width", "int", settings.width, minimum=settings.width,
                                 maximum=settings.width, increment=1),
            "Height": FeatureInfo("Height", "int", settings.height, minimum=settings.height,
                                  maximum=settings.height, increment=1),
            "ExposureTime": FeatureInfo("ExposureTime", "float", 1000.0, writable=True,
                                        minimum=10.0, maximum=1e6, unit="us"),
            "Gain": FeatureInfo("Gain", "float", 0.0, writable=True, minimum=0.0, maximum=24.0,
                                unit="dB"),
            "BlackLevel": FeatureInfo("BlackLevel", "float", 64.0, writable=True, minimum=0.0,
                                      maximum=512.0, unit="DN"),
            "TriggerMode": FeatureInfo("TriggerMode", "enum", "Off", writable=True,
                                       choices=("Off", "On")),
            "DeviceTemperature": FeatureInfo("DeviceTemperature", "float", 35.0, unit="C"),
        }

    def get(self, feature: str) -> Any:
        return self.feature_info(feature).value

    def feature_info(self, feature: str) -> FeatureInfo:
        try:
            return self._features[feature]
        except KeyError:
            raise FeatureError(f"unknown feature {feature!r}", device=self.name) from None

    def set(self, feature: str, value: Any) -> None:
        info = self.feature_info(feature)
        if not info.writable:
            raise FeatureError(f"{feature} is not writable", device=self.name)
        if info.choices and value not in info.choices:
            raise FeatureError(f"{feature}={value!r} not one of {', '.join(info.choices)}",
                               device=self.name)
        if info.minimum is not None and info.maximum is not None and not (
                info.minimum <= float(value) <= info.maximum):
            raise FeatureError(f"{feature}={value} out of range [{info.minimum}, {info.maximum}]",
                               device=self.name)
        self._features[feature] = FeatureInfo(**{**info.__dict__, "value": value})

    def snapshot(self) -> dict[str, Any]:
        return {name: info.value for name, info in self._features.items() if info.readable}

    def identity(self) -> DeviceIdentity:
        super().identity()
        return DeviceIdentity("camera", "fake", "Harness", "FakeCamera", self.settings.serial,
                              "1.0")

    def start(self) -> None:
        self.streaming = True

    def stop(self) -> None:
        self.streaming = False

    def safe_state(self) -> None:
        self.streaming = False
        super().safe_state()

    def grab(self, n: int = 1, timeout_s: float = 5.0) -> FrameStack:
        if "grab" in self.settings.fail_on:
            raise CameraTimeout(f"no frame within {timeout_s} s (injected)", device=self.name)
        s = self.settings
        exposure = float(self.get("ExposureTime"))
        mean = float(self.get("BlackLevel")) + s.dn_per_us * exposure
        frames = self._rng.normal(mean, 2.0, size=(n, s.height, s.width))
        frames = np.clip(np.rint(frames), 0, 2**s.bits - 1).astype(np.uint16)
        meta = []
        for _ in range(n):
            self._frame_id += 1
            meta.append(FrameMeta(self._frame_id, time.monotonic(), exposure,
                                  float(self.get("Gain")), float(self.get("DeviceTemperature")),
                                  f"Mono{s.bits}"))
        return FrameStack(frames, tuple(meta), s.cfa)


@register_driver("light", "fake")
class FakeLight(FakeDevice):
    def __init__(self, name: str, settings: FakeSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._on = False
        self._level = 0.0

    def on(self) -> None:
        self._on = True

    def off(self) -> None:
        self._on = False

    def set_level(self, percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise DeviceError(f"level {percent} % outside 0..100", device=self.name)
        self._level = percent

    def level(self) -> float:
        return self._level

    def is_on(self) -> bool:
        return self._on

    def safe_state(self) -> None:
        self._on = False
        super().safe_state()


@register_driver("power", "fake")
class FakePower(FakeDevice):
    def __init__(self, name: str, settings: FakeSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._voltage = 0.0
        self._limit = 0.5
        self._enabled = False

    def set_voltage(self, volts: float) -> None:
        self._voltage = volts

    def set_current_limit(self, amps: float) -> None:
        self._limit = amps

    def output(self, enabled: bool) -> None:
        self._enabled = enabled

    def output_enabled(self) -> bool:
        return self._enabled

    def measure(self) -> PowerReading:
        return PowerReading(self._voltage if self._enabled else 0.0,
                            min(0.2, self._limit) if self._enabled else 0.0)

    def safe_state(self) -> None:
        self._enabled = False
        super().safe_state()


@register_driver("meter", "fake")
class FakeMeter(FakeDevice):
    def read(self) -> MeterReading:
        return MeterReading(500.0, "lx")


@register_driver("focus", "fake")
class FakeFocus(FakeDevice):
    def __init__(self, name: str, settings: FakeSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._position = 0.0

    def move_to(self, position: float) -> None:
        self._position = position

    def position(self) -> float:
        return self._position

    def home(self) -> None:
        self._position = 0.0

    def wait_settled(self, timeout_s: float = 5.0) -> None:
        return None

    def safe_state(self) -> None:
        self._position = 0.0
        super().safe_state()


@register_driver("chart", "fake")
class FakeChart(FakeDevice):
    CHARTS: ClassVar[tuple[str, ...]] = ("dark", "flat", "edge", "colour")

    def __init__(self, name: str, settings: FakeSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._current = "dark"

    def select(self, chart: str) -> None:
        if chart not in self.CHARTS:
            raise DeviceError(f"no chart {chart!r}; charts: {', '.join(self.CHARTS)}",
                              device=self.name)
        self._current = chart

    def current(self) -> str:
        return self._current

    def charts(self) -> tuple[str, ...]:
        return self.CHARTS

    def safe_state(self) -> None:
        self._current = "dark"
        super().safe_state()


def read_events(path: str | Path) -> list[str]:
    """Events a fake recorded to ``path`` (another process's, typically)."""
    p = Path(path)
    return p.read_text().splitlines() if p.exists() else []


__all__ = ["EVENTS", "Action", "FakeCamera", "FakeCameraSettings", "FakeChart", "FakeDevice",
           "FakeFocus", "FakeLight", "FakeMeter", "FakePower", "FakeSettings", "read_events"]
