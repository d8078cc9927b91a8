"""Simulated Gardasoft-style machine-vision LED controller on a serial line (pty).

Modelled on the Gardasoft RC1xx / RT-20 RS-232 command set
(docs/standards.md#gardasoft-led-controllers): 115200 8N1, a command ends with CR, several may be
chained with ``;``, every reply ends with the prompt ``>``.
Supported (channel ``c``, brightness ``s`` in percent)::

    VR              -> "RT220-20 Ver 3.21 SN <serial>"   (version; the format is this model's)
    RSc,s           continuous mode at s % (0 = dark)
    STc             -> "Ch<c> RS <s>%"                   (status; the format is this model's)
    CL              clear error events
    GT              -> "Evt<c>,<code>" per pending error event, or "None"

A malformed command or an out-of-range value answers ``Err <n>`` (1 = unknown command,
2 = bad parameter); the ``error`` fault answers ``Err 5`` (an overcurrent trip) until cleared and
switches the output off, as a tripped controller does.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, LineSimulator, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.light_model import LightOutput, LightSpec


class GardasoftSpec(SimSpec):
    type: str = "gardasoft"
    channels: int = Field(2, ge=1, le=8)
    light: LightSpec = Field(default_factory=LightSpec)
    model: str = "RT220-20"
    firmware: str = "3.21"


class GardasoftSimulator(LineSimulator):
    """Channel 1 drives the bench light; other channels keep their state only."""

    Spec: ClassVar[type[SimSpec]] = GardasoftSpec
    read_termination = b"\r"
    write_termination = b"\r\n"
    prompt = b">"
    transport = "pty"

    def __init__(self, name: str, spec: GardasoftSpec | None = None, *,
                 clock: Clock | None = None, link: BenchLink | None = None) -> None:
        spec = spec or GardasoftSpec()
        faults = FaultState(spec.faults)
        super().__init__(name, clock=clock, faults=faults)
        self.spec = spec
        self.serial = spec.serial or "GS000123"
        self.link = link or BenchLink(None)
        self.output = LightOutput(spec.light, self.clock, faults, self.link.full_scale_lux)
        if (start := self.link.initial()) is not None:
            self.output.power_up(start.light_on, start.level_pct, start.illuminant)
        self.link.light(self.output)
        self.link.on_sync(lambda: self.link.light(self.output))
        self.levels = [0.0] * spec.channels
        if self.output.on:
            self.levels[0] = round(self.output.level, 1)
        self.events: list[tuple[int, int]] = []

    def handle(self, line: str) -> str | None:
        replies = [r for r in (self._one(c.strip()) for c in line.split(";") if c.strip())
                   if r is not None]
        return "\r\n".join(replies) if replies else None

    def _one(self, cmd: str) -> str | None:
        if self.error_fault() is not None:
            self.events.append((1, 5))
            self._set(1, 0.0)
            return "Err 5"
        if cmd.upper() == "VR":
            return f"{self.spec.model} Ver {self.spec.firmware} SN {self.serial}"
        if cmd.upper() == "CL":
            self.events.clear()
            return None
        if cmd.upper() == "GT":
            return " ".join(f"Evt{c},{e}" for c, e in self.events) or "None"
        m = re.fullmatch(r"RS(\d),(\d+(?:\.\d+)?)", cmd, re.IGNORECASE)
        if m:
            ch, level = int(m.group(1)), float(m.group(2))
            if not 1 <= ch <= self.spec.channels or not 0.0 <= level <= 100.0:
                return "Err 2"
            self._set(ch, level)
            return None
        m = re.fullmatch(r"ST(\d)", cmd, re.IGNORECASE)
        if m:
            ch = int(m.group(1))
            if not 1 <= ch <= self.spec.channels:
                return "Err 2"
            return f"Ch{ch} RS {self.levels[ch - 1]:.1f}%"
        return "Err 1"

    def _set(self, ch: int, level: float) -> None:
        self.levels[ch - 1] = level
        if ch == 1:
            self.output.set_level(level)
            self.output.set_on(level > 0.0)
            self.link.light(self.output)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "levels": list(self.levels), "on": self.output.on,
                "lux": self.output.illuminance_lux()}


__all__ = ["GardasoftSimulator", "GardasoftSpec"]
