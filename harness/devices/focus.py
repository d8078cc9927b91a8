"""Focus-actuator driver (``serial-focus``): a motorised stage in um or a VCM driver in codes.

Speaks the harness's ASCII motion protocol (57600 8N1, LF; see
:mod:`harness.sim.instruments.focus_stage`): ``UNIT?``, ``RANGE?``, ``MOV <p>``, ``POS?``,
``STAT?``, ``HOME``, ``STOP``. At open it checks that the device's unit is the station file's
``unit`` and reads the travel range; ``move_to`` refuses a target outside it with a one-line
:class:`~harness.errors.ConfigError`.

``wait_settled`` polls ``STAT?`` until ``IDLE`` and then checks the position is the target
(within ``tolerance``); a move that never settles (a stall) sends ``STOP`` and raises
:class:`~harness.errors.InstrumentError` saying where the axis stuck. Safe state: park (``HOME``
or ``park``), waiting at most ``safe_settle_s``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import SerialSettings
from harness.devices.motion_protocol import MotionDriver
from harness.errors import ConfigError, InstrumentError
from harness.registry import DriverContext, register_driver


class SerialFocusSettings(SerialSettings):
    unit: Literal["um", "code"] = "um"
    park: float | None = Field(None, description="safe-state position (default: HOME)")
    tolerance: float = Field(0.5, gt=0.0, description="settled means within this of the target")
    poll_s: float = Field(0.01, gt=0.0, le=1.0)
    safe_settle_s: float = Field(2.0, gt=0.0, le=60.0)


@register_driver("focus", "serial-focus")
class SerialFocus(MotionDriver):
    """A focus actuator on the harness motion protocol."""

    Settings = SerialFocusSettings
    settings: SerialFocusSettings
    link_defaults: ClassVar[dict[str, Any]] = {
        "read_termination": "\n", "write_termination": "\n", "baudrate": 57600}

    def __init__(self, name: str, settings: SerialFocusSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self.minimum = 0.0
        self.maximum = 0.0
        self.target: float | None = None

    def _identify(self) -> DeviceIdentity:
        return self.idn()

    def _after_open(self) -> None:
        unit = self.command("UNIT?")
        if unit.lower() != self.settings.unit:
            raise self.fail(f"device works in {unit!r}, the station file says "
                            f"{self.settings.unit!r}", "UNIT?", unit)
        lo, hi = self.fields(self.command("RANGE?"), "RANGE?", 2)
        self.minimum = self.number(lo, "RANGE?")
        self.maximum = self.number(hi, "RANGE?")
        if self.maximum <= self.minimum:
            raise self.fail("empty travel range", "RANGE?", f"{lo},{hi}")

    def move_to(self, position: float) -> None:
        if not self.minimum <= position <= self.maximum:
            raise ConfigError(f"{self.name}: focus position {position} {self.settings.unit} "
                              f"outside {self.minimum:g}..{self.maximum:g}", field="position")
        self.act(f"MOV {position:.3f}")
        self.target = position

    def position(self, *, safe: bool = False) -> float:
        span = self.maximum - self.minimum
        return self.number(self.command("POS?", safe=safe), "POS?",
                           lo=self.minimum - 0.01 * span, hi=self.maximum + 0.01 * span)

    def home(self) -> None:
        self.act("HOME")
        self.target = None

    def moving(self, *, safe: bool = False) -> bool:
        reply = self.command("STAT?", safe=safe)
        if reply not in ("IDLE", "MOVING"):
            raise self.fail("expected IDLE or MOVING", "STAT?", reply)
        return reply == "MOVING"

    def wait_settled(self, timeout_s: float = 5.0, *, safe: bool = False) -> None:
        deadline = time.monotonic() + timeout_s
        while self.moving(safe=safe):
            if time.monotonic() > deadline:
                where = self.position(safe=True)
                with contextlib.suppress(InstrumentError):
                    self.act("STOP", safe=True)
                goal = "" if self.target is None else f" at {self.target:g} {self.settings.unit}"
                raise self.fail(f"did not settle{goal} within {timeout_s:g} s (stalled at "
                                f"{where:g} {self.settings.unit})", "STAT?", "MOVING")
            time.sleep(self.settings.poll_s)
        if self.target is not None:
            where = self.position(safe=safe)
            if abs(where - self.target) > self.settings.tolerance:
                raise self.fail(f"stopped at {where:g}, not at the target {self.target:g} "
                                f"{self.settings.unit}", "POS?", f"{where}")

    def _safe(self) -> None:
        park = self.settings.park
        if park is None:
            self.act("HOME", safe=True)
            self.target = None
        else:
            self.act(f"MOV {park:.3f}", safe=True)
            self.target = park
        self.wait_settled(self.settings.safe_settle_s, safe=True)


__all__ = ["SerialFocus", "SerialFocusSettings"]
