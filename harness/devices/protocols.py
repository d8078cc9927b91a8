"""One ``typing.Protocol`` per kind of device (labgrid's protocol layer).

Every driver, real or simulated, provides ``open``, ``close``, ``identity()`` and
``safe_state()``; ``safe_state`` must be idempotent and cheap, because it runs on every exit
path (normal end, failure, exception, signal) and again from the watchdog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameStack


@runtime_checkable
class Device(Protocol):
    """What the station needs from every driver."""

    kind: ClassVar[str]
    name: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def identity(self) -> DeviceIdentity: ...

    def safe_state(self) -> None: ...


@runtime_checkable
class Camera(Device, Protocol):
    """A camera module addressed by SFNC feature names (GenICam SFNC 2.x)."""

    def get(self, feature: str) -> Any: ...

    def set(self, feature: str, value: Any) -> None: ...

    def feature_info(self, feature: str) -> FeatureInfo: ...

    def snapshot(self) -> dict[str, Any]:
        """Every readable feature's value, for the record and for leak checks."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def grab(self, n: int = 1, timeout_s: float = 5.0) -> FrameStack: ...


@runtime_checkable
class LightSource(Device, Protocol):
    """A light source: on/off, level in percent of full output, optional CCT."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def set_level(self, percent: float) -> None: ...

    def level(self) -> float: ...

    def is_on(self) -> bool: ...


@dataclass(frozen=True)
class PowerReading:
    """Measured output of a power-supply channel."""

    voltage_v: float
    current_a: float


@runtime_checkable
class PowerSupply(Device, Protocol):
    """A DC supply powering the module under test."""

    def set_voltage(self, volts: float) -> None: ...

    def set_current_limit(self, amps: float) -> None: ...

    def output(self, enabled: bool) -> None: ...

    def output_enabled(self) -> bool: ...

    def measure(self) -> PowerReading: ...


@dataclass(frozen=True)
class MeterReading:
    """A luminance/illuminance reading with chromaticity where the meter gives it."""

    value: float
    unit: str
    x: float | None = None
    y: float | None = None


@runtime_checkable
class LuxMeter(Device, Protocol):
    """A lux or luminance meter."""

    def read(self) -> MeterReading: ...


@runtime_checkable
class Radiometer(Device, Protocol):
    """An optical power meter with its detector in the sensor plane (EMVA 1288's irradiance)."""

    def set_wavelength(self, nm: float) -> None: ...

    def wavelength(self) -> float: ...

    def irradiance_w_m2(self) -> float: ...

    def power_w(self) -> float: ...


@runtime_checkable
class FocusActuator(Device, Protocol):
    """A focus actuator (stage in micrometres or VCM code)."""

    def move_to(self, position: float) -> None: ...

    def position(self) -> float: ...

    def home(self) -> None: ...

    def wait_settled(self, timeout_s: float = 5.0) -> None: ...


@runtime_checkable
class ChartChanger(Device, Protocol):
    """A motorised chart wheel or slide: dark cap, flat, slanted edge, colour chart."""

    def select(self, chart: str) -> None: ...

    def current(self) -> str: ...

    def charts(self) -> tuple[str, ...]: ...


__all__ = ["Camera", "ChartChanger", "Device", "FocusActuator", "LightSource", "LuxMeter",
           "MeterReading", "PowerReading", "PowerSupply", "Radiometer"]
