"""Chart-changer driver (``serial-chart``): a motorised wheel or slide of test charts.

Speaks the harness's ASCII motion protocol (9600 8N1, LF; see
:mod:`harness.sim.instruments.chart_wheel`): ``LIST?`` names the charts in slot order, ``SEL
<name>`` starts a move, ``SEL?`` answers the chart in place or ``MOVING``. ``select`` waits
(at most ``move_timeout_s``) until the wheel reports the requested chart. Safe state: the
``park`` chart (default ``dark``, the dark cap), when the wheel has it.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import Field

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import SerialSettings
from harness.devices.motion_protocol import MotionDriver
from harness.errors import ConfigError
from harness.registry import DriverContext, register_driver


class SerialChartSettings(SerialSettings):
    park: str | None = Field("dark", description="safe-state chart (null: leave it)")
    move_timeout_s: float = Field(5.0, gt=0.0, le=120.0)
    poll_s: float = Field(0.01, gt=0.0, le=1.0)
    safe_move_s: float = Field(2.0, gt=0.0, le=60.0)


@register_driver("chart", "serial-chart")
class SerialChart(MotionDriver):
    """A chart wheel on the harness motion protocol."""

    Settings = SerialChartSettings
    settings: SerialChartSettings
    link_defaults: ClassVar[dict[str, Any]] = {
        "read_termination": "\n", "write_termination": "\n", "baudrate": 9600}

    def __init__(self, name: str, settings: SerialChartSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self._charts: tuple[str, ...] = ()

    def _identify(self) -> DeviceIdentity:
        return self.idn()

    def _after_open(self) -> None:
        reply = self.command("LIST?")
        charts = tuple(c.strip() for c in reply.split(","))
        if not charts or any(not c or not c.isprintable() or " " in c for c in charts):
            raise self.fail("unreadable chart list", "LIST?", reply)
        self._charts = charts
        park = self.settings.park
        if park is not None and park not in charts:
            raise ConfigError(f"{self.name}: park chart {park!r} is not on the wheel; charts: "
                              f"{', '.join(charts)}", field="park")

    def charts(self) -> tuple[str, ...]:
        return self._charts

    def _where(self, *, safe: bool = False) -> str:
        reply = self.command("SEL?", safe=safe)
        if reply != "MOVING" and reply not in self._charts:
            raise self.fail("unknown chart in reply", "SEL?", reply)
        return reply

    def current(self) -> str:
        where = self._where()
        if where == "MOVING":
            raise self.fail("the wheel is still moving", "SEL?", where)
        return where

    def select(self, chart: str, *, timeout_s: float | None = None, safe: bool = False) -> None:
        if chart not in self._charts:
            raise ConfigError(f"{self.name}: no chart {chart!r}; charts: "
                              f"{', '.join(self._charts)}", field="chart")
        self.act(f"SEL {chart}", safe=safe)
        limit = self.settings.move_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        while True:
            where = self._where(safe=safe)
            if where == chart:
                return
            if where != "MOVING":
                raise self.fail(f"wheel stopped at {where!r}, not {chart!r}", "SEL?", where)
            if time.monotonic() > deadline:
                raise self.fail(f"wheel did not reach {chart!r} within {limit:g} s", "SEL?",
                                where)
            time.sleep(self.settings.poll_s)

    def _safe(self) -> None:
        if self.settings.park is not None:
            self.select(self.settings.park, timeout_s=self.settings.safe_move_s, safe=True)


__all__ = ["SerialChart", "SerialChartSettings"]
