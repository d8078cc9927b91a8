"""Value types shared by every device kind."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FeatureType = Literal["int", "float", "enum", "bool", "str", "command"]


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device is, for the run record (``*IDN?`` or GenICam Device* features)."""

    kind: str
    driver: str
    vendor: str
    model: str
    serial: str
    firmware: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        fw = f" fw {self.firmware}" if self.firmware else ""
        return f"{self.vendor} {self.model} s/n {self.serial}{fw}"


@dataclass(frozen=True)
class FeatureInfo:
    """A camera feature as the node map describes it (SFNC name, type, range, access)."""

    name: str
    type: FeatureType
    value: Any
    readable: bool = True
    writable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    increment: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data


__all__ = ["DeviceIdentity", "FeatureInfo", "FeatureType"]
