"""Simulated focus actuator (motorised stage in um, or VCM driver in DAC codes) on a serial line.

No public wire protocol was found for focus stages (docs/standards.md#harness-motion-protocol),
so the harness defines this documented ASCII protocol (57600 8N1, LF-terminated commands and
replies)::

    *IDN?        -> Harness,FOCUS-STAGE,<serial>,<fw>
    UNIT?        -> UM | CODE                  the axis unit (stage um or VCM DAC code)
    RANGE?       -> <min>,<max>
    MOV <p>      -> OK                         start a move (ERR 2 when outside the range)
    POS?         -> <p>                        position now, 3 decimals
    STAT?        -> IDLE | MOVING
    HOME         -> OK                         move to the home (park) position
    STOP         -> OK
    errors       -> ERR <n> <text>             1 unknown command, 2 out of range, 3 motor fault

The ``error`` fault answers ``ERR 3 motor fault``; ``stall`` makes the next move stop part-way
while STAT? keeps answering MOVING. The lens focus on the bench follows the axis
(``bench_offset_um + position * um_per_unit``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, LineSimulator, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.motion import Axis


class FocusStageSpec(SimSpec):
    type: str = "focus-stage"
    unit: Literal["um", "code"] = "um"
    minimum: float = 0.0
    maximum: float = 5000.0
    home: float = 0.0
    start: float = 0.0
    speed_per_s: float = Field(20000.0, gt=0.0, description="unit per second")
    settle_s: float = Field(0.02, ge=0.0)
    um_per_unit: float = Field(1.0, gt=0.0, description="lens focus shift per unit (VCM code)")
    bench_offset_um: float = Field(0.0, description="bench focus_um at position 0")


class FocusStageSimulator(LineSimulator):
    Spec: ClassVar[type[SimSpec]] = FocusStageSpec
    transport = "pty"

    def __init__(self, name: str, spec: FocusStageSpec | None = None, *,
                 clock: Clock | None = None, link: BenchLink | None = None) -> None:
        spec = spec or FocusStageSpec()
        super().__init__(name, clock=clock, faults=FaultState(spec.faults))
        self.spec = spec
        self.serial = spec.serial or "FS-0042"
        self.link = link or BenchLink(None)
        start_pos = spec.start
        bench = self.link.initial()
        if bench is not None:  # adopt the bench's focus when the stage can be there
            pos = (bench.focus_um - spec.bench_offset_um) / spec.um_per_unit
            if spec.minimum <= pos <= spec.maximum:
                start_pos = pos
        self.axis = Axis(self.clock, start_pos, spec.speed_per_s, spec.settle_s)
        self.link.focus(self.focus_um())
        self.link.on_sync(lambda: self.link.focus(self.focus_um()))

    def focus_um(self) -> float:
        """The lens focus (bench ``focus_um``) the axis position gives now."""
        return self.spec.bench_offset_um + self.axis.now() * self.spec.um_per_unit

    def handle(self, line: str) -> str | None:
        if self.error_fault() is not None:
            return "ERR 3 motor fault"
        cmd, _, arg = line.partition(" ")
        cmd = cmd.upper()
        if cmd == "*IDN?":
            return f"Harness,FOCUS-STAGE,{self.serial},1.0"
        if cmd == "UNIT?":
            return self.spec.unit.upper()
        if cmd == "RANGE?":
            return f"{self.spec.minimum:g},{self.spec.maximum:g}"
        if cmd == "POS?":
            return f"{self.axis.now():.3f}"
        if cmd == "STAT?":
            return "MOVING" if self.axis.moving() else "IDLE"
        if cmd == "STOP":
            self.axis.stop()
            self.link.focus(self.focus_um())
            return "OK"
        if cmd == "HOME":
            return self._move(self.spec.home)
        if cmd == "MOV":
            try:
                target = float(arg)
            except ValueError:
                return "ERR 2 bad position"
            return self._move(target)
        return "ERR 1 unknown command"

    def _move(self, target: float) -> str:
        if not self.spec.minimum <= target <= self.spec.maximum:
            return "ERR 2 out of range"
        stall = self.faults.take("stall")
        self.axis.move(target, stall.at_fraction if stall is not None else None)
        self.link.focus(self.focus_um())
        return "OK"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "position": self.axis.now(), "target": self.axis.target,
                "moving": self.axis.moving(), "stalled": self.axis.stalled}


__all__ = ["FocusStageSimulator", "FocusStageSpec"]
