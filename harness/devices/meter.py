"""Luminance / illuminance meter driver: Konica Minolta CS-100A style on RS-232 (``cs100a``).

Framing (docs/standards.md#konica-minolta-cs-100a): 4800 baud, 7 data bits, even parity, 2 stop
bits, CR LF; ``MES`` answers ``<check code>,<Lv>,<x>,<y>``. Check code ``OK00`` is a good reading;
``OK11``..``OK13`` (out of measuring range) and ``ERnn`` (``ER00`` command error, ``ER30`` low
battery) raise :class:`~harness.errors.InstrumentError`: a reading out of range is not a number to
use.

The meter measures luminance ``Lv`` (cd/m2). With ``quantity: illuminance`` it looks at a
Lambertian reflectance standard of reflectance ``reflectance`` in the chart plane and reports
illuminance ``E = pi * Lv / reflectance`` (lx; Lambert's law), which is what the light
calibration uses. The CS-100A has no identity query: identity comes from the station file
(``serial``, ``model``) and ``MDS,04`` (absolute measuring mode, the one this driver uses)
proves the meter answers.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import InstrumentDriver, SerialSettings
from harness.devices.protocols import MeterReading
from harness.registry import DriverContext, register_driver

RANGE_CODES = {"OK11": "over range", "OK12": "out of range (12)", "OK13": "out of range (13)"}


class Cs100aSettings(SerialSettings):
    quantity: Literal["illuminance", "luminance"] = "illuminance"
    reflectance: float = Field(1.0, gt=0.0, le=1.0, description="of the target the meter sees")
    model: str = "CS-100A"


@register_driver("meter", "cs100a")
class Cs100a(InstrumentDriver):
    """A CS-100A-style luminance and chromaticity meter."""

    Settings = Cs100aSettings
    settings: Cs100aSettings
    backend = "serial"
    link_defaults: ClassVar[dict[str, Any]] = {
        "read_termination": "\r\n", "write_termination": "\r\n", "baudrate": 4800,
        "bytesize": 7, "parity": "E", "stopbits": 2}

    def __init__(self, name: str, settings: Cs100aSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)

    def command(self, cmd: str, *, safe: bool = False) -> list[str]:
        """Send ``cmd``; the reply's fields after an ``OK00`` check code."""
        reply = self.query(cmd, safe=safe)
        code = reply.split(",", 1)[0].strip()
        if code in RANGE_CODES:
            raise self.fail(f"meter {RANGE_CODES[code]} ({code})", cmd, reply)
        if code.startswith("ER") and code[2:].isdigit():
            raise self.fail(f"meter error {code}", cmd, reply)
        if code != "OK00":
            raise self.fail("reply has no check code", cmd, reply)
        return [f.strip() for f in reply.split(",")[1:]]

    def _identify(self) -> DeviceIdentity:
        fields = self.command("MDS,04")
        if fields:
            raise self.fail("unexpected reply to MDS,04", "MDS,04", ",".join(fields))
        return DeviceIdentity(self.kind, self.driver_name, "Konica Minolta", self.settings.model,
                              self.settings.serial or "unknown", "",
                              {"address": self.link_.address, "mode": "absolute"})

    def read(self) -> MeterReading:
        fields = self.command("MES")
        if len(fields) != 3:
            raise self.fail("expected Lv,x,y", "MES", ",".join(fields))
        lv = self.number(fields[0], "MES", lo=0.0)
        x = self.number(fields[1], "MES", lo=0.0, hi=1.0)
        y = self.number(fields[2], "MES", lo=0.0, hi=1.0)
        if self.settings.quantity == "luminance":
            return MeterReading(lv, "cd/m2", x, y)
        return MeterReading(math.pi * lv / self.settings.reflectance, "lx", x, y)

    def _safe(self) -> None:
        """A meter is passive: nothing to switch off."""


__all__ = ["Cs100a", "Cs100aSettings"]
