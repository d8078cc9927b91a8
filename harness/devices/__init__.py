"""Device protocols (what tests use) and drivers (how a device is talked to).

Tests and sequences hold a protocol type and never know which backend is behind it.
"""

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.devices.protocols import (
    Camera,
    ChartChanger,
    Device,
    FocusActuator,
    LightSource,
    LuxMeter,
    MeterReading,
    PowerReading,
    PowerSupply,
)

__all__ = [
    "Camera",
    "ChartChanger",
    "Device",
    "DeviceIdentity",
    "FeatureInfo",
    "FocusActuator",
    "FrameMeta",
    "FrameStack",
    "LightSource",
    "LuxMeter",
    "MeterReading",
    "PowerReading",
    "PowerSupply",
]
