"""Simulated motorised chart wheel / slide on a serial line.

No public protocol exists for chart changers, so the harness defines this documented ASCII
protocol (9600 8N1, LF-terminated commands and replies)::

    *IDN?        -> Harness,CHART-WHEEL,<serial>,<fw>
    LIST?        -> dark,flat,edge,colour          the charts, in slot order
    SEL <name>   -> OK                              start moving to that chart (ERR 2 unknown)
    SEL?         -> <name> | MOVING
    HOME         -> OK                              move to slot 0
    errors       -> ERR <n> <text>                  1 unknown command, 2 unknown chart,
                                                    3 motor fault

Moving between adjacent slots takes ``slot_s``. The bench's scene follows the selected chart;
``scenes`` can put another scene in a slot (``{edge: edge-without-top-left}``: a damaged edge
chart, a station fault the harness must report as an ERROR, not as the DUT's failure).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from harness.errors import ConfigError
from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, LineSimulator, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.motion import Axis
from harness.sim.scene import check_scene


class ChartWheelSpec(SimSpec):
    type: str = "chart-wheel"
    charts: tuple[str, ...] = ("dark", "flat", "edge", "colour")
    slot_s: float = Field(0.02, ge=0.0, le=10.0, description="time per slot of travel")
    start: str | None = Field(None, description="default: the bench's chart, else slot 0")
    scenes: dict[str, str] = Field(default_factory=dict,
                                   description="slot name -> the scene it really shows")

    @field_validator("scenes")
    @classmethod
    def _scenes(cls, value: dict[str, str]) -> dict[str, str]:
        for scene in value.values():
            try:
                check_scene(scene)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value


class ChartWheelSimulator(LineSimulator):
    Spec: ClassVar[type[SimSpec]] = ChartWheelSpec
    transport = "pty"

    def __init__(self, name: str, spec: ChartWheelSpec | None = None, *,
                 clock: Clock | None = None, link: BenchLink | None = None) -> None:
        spec = spec or ChartWheelSpec()
        super().__init__(name, clock=clock, faults=FaultState(spec.faults))
        self.spec = spec
        self.serial = spec.serial or "CW-0007"
        self.link = link or BenchLink(None)
        bench = self.link.initial()
        first = spec.start or (bench.chart if bench is not None else None)
        start = spec.charts.index(first) if first in spec.charts else 0
        speed = 1.0 / spec.slot_s if spec.slot_s > 0 else 1e9
        self.axis = Axis(self.clock, float(start), speed, 0.0)
        self.link.chart(self._scene(spec.charts[start]))

    def _scene(self, chart: str) -> str:
        return self.spec.scenes.get(chart, chart)

    @property
    def current(self) -> str | None:
        """The chart in place, or ``None`` while moving."""
        if self.axis.moving():
            return None
        return self.spec.charts[round(self.axis.now())]

    def handle(self, line: str) -> str | None:
        if self.error_fault() is not None:
            return "ERR 3 motor fault"
        cmd, _, arg = line.partition(" ")
        cmd = cmd.upper()
        if cmd == "*IDN?":
            return f"Harness,CHART-WHEEL,{self.serial},1.0"
        if cmd == "LIST?":
            return ",".join(self.spec.charts)
        if cmd == "SEL?":
            return self.current or "MOVING"
        if cmd == "SEL":
            name = arg.strip()
            if name not in self.spec.charts:
                return "ERR 2 unknown chart"
            return self._go(self.spec.charts.index(name))
        if cmd == "HOME":
            return self._go(0)
        return "ERR 1 unknown command"

    def _go(self, slot: int) -> str:
        stall = self.faults.take("stall")
        self.axis.move(float(slot), stall.at_fraction if stall is not None else None)
        if stall is None:
            self.link.chart(self._scene(self.spec.charts[slot]))
        return "OK"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "current": self.current, "moving": self.axis.moving()}


__all__ = ["ChartWheelSimulator", "ChartWheelSpec"]
