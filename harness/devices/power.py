"""DC power-supply driver: SCPI over VISA, Keysight E36xx / Rigol DP800 style (``scpi-psu``).

Commands (SCPI-1999; docs/standards.md#scpi-power-supplies): ``INST:NSEL <n>`` selects the channel
and is sent in front of every channel command (``INST:NSEL 1;:VOLT 3.300``) so nothing else can have
moved the selection; ``VOLT``/``CURR`` set point and current limit, each read back; ``OUTP ON|OFF``;
``MEAS:VOLT?``/``MEAS:CURR?``; ``SYST:ERR?`` after every setting.

The station file bounds what a sequence may ask for (``max_voltage_v``, ``max_current_a``):
a module rated 3.3 V must never see 12 V because of a typo, so a value beyond them is refused
with a one-line :class:`~harness.errors.ConfigError` before anything is sent.
Safe state: output off, confirmed by read-back.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import InstrumentDriver, ScpiErrorQueue, VisaSettings
from harness.devices.protocols import PowerReading
from harness.errors import ConfigError
from harness.registry import DriverContext, register_driver


class ScpiPsuSettings(VisaSettings):
    channel: int = Field(1, ge=1, le=8)
    max_voltage_v: float = Field(gt=0.0, le=100.0, description="refuse set points above this")
    max_current_a: float = Field(gt=0.0, le=20.0, description="refuse limits above this")
    voltage_v: float | None = Field(None, ge=0.0, description="set point applied at open")
    current_limit_a: float | None = Field(None, ge=0.0, description="limit applied at open")
    output_at_open: bool = Field(False, description="switch the output on at open (after the "
                                                    "limit and set point): the module needs "
                                                    "power before the camera is opened")

    @model_validator(mode="after")
    def _within_limits(self) -> ScpiPsuSettings:
        if self.voltage_v is not None and self.voltage_v > self.max_voltage_v:
            raise ValueError(f"voltage_v {self.voltage_v} exceeds max_voltage_v "
                             f"{self.max_voltage_v}")
        if self.current_limit_a is not None and self.current_limit_a > self.max_current_a:
            raise ValueError(f"current_limit_a {self.current_limit_a} exceeds max_current_a "
                             f"{self.max_current_a}")
        return self


@register_driver("power", "scpi-psu")
class ScpiPsu(ScpiErrorQueue, InstrumentDriver):
    """One channel of a SCPI bench supply."""

    Settings = ScpiPsuSettings
    settings: ScpiPsuSettings

    def __init__(self, name: str, settings: ScpiPsuSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self.sel = f"INST:NSEL {settings.channel};:"

    def _identify(self) -> DeviceIdentity:
        ident = self.idn()
        return DeviceIdentity(ident.kind, ident.driver, ident.vendor, ident.model, ident.serial,
                              ident.firmware, {**ident.extra,
                                               "channel": str(self.settings.channel)})

    def _after_open(self) -> None:
        self.clear_status()
        if self.settings.current_limit_a is not None:
            self.set_current_limit(self.settings.current_limit_a)
        if self.settings.voltage_v is not None:
            self.set_voltage(self.settings.voltage_v)
        if self.settings.output_at_open:
            if self.settings.voltage_v is None or self.settings.current_limit_a is None:
                raise ConfigError(f"{self.name}: output_at_open needs voltage_v and "
                                  f"current_limit_a", field="output_at_open")
            self.output(True)

    def _send(self, command: str) -> None:
        self.send_checked(command)

    def _set(self, command: str, query: str, value: float, tolerance: float) -> None:
        back: list[float] = []

        def check() -> bool:
            back.append(self.number(self.query(self.sel + query), query, lo=0.0))
            return abs(back[-1] - value) <= tolerance

        if not self.confirmed(lambda: self._send(self.sel + command), check):
            raise self.fail(f"reads back {back[-1]:g}, not {value:g}", query, f"{back[-1]}")

    def set_voltage(self, volts: float) -> None:
        if not 0.0 <= volts <= self.settings.max_voltage_v:
            raise ConfigError(f"{self.name}: {volts} V outside 0..{self.settings.max_voltage_v} "
                              f"V (max_voltage_v of the station file)", field="voltage")
        self._set(f"VOLT {volts:.4f}", "VOLT?", volts, 5e-4)

    def set_current_limit(self, amps: float) -> None:
        if not 0.0 <= amps <= self.settings.max_current_a:
            raise ConfigError(f"{self.name}: {amps} A outside 0..{self.settings.max_current_a} "
                              f"A (max_current_a of the station file)", field="current")
        self._set(f"CURR {amps:.4f}", "CURR?", amps, 5e-4)

    def output(self, enabled: bool) -> None:
        cmd = self.sel + f"OUTP {'ON' if enabled else 'OFF'}"
        if not self.confirmed(lambda: self._send(cmd),
                              lambda: self.output_enabled() == enabled):
            raise self.fail(f"output did not switch {'on' if enabled else 'off'}", cmd)

    def output_enabled(self, *, safe: bool = False) -> bool:
        cmd = self.sel + "OUTP?"
        reply = self.query(cmd, safe=safe)
        if reply not in ("0", "1"):
            raise self.fail("expected 0 or 1", cmd, reply)
        return reply == "1"

    def measure(self) -> PowerReading:
        volts = self.number(self.query(self.sel + "MEAS:VOLT?"), "MEAS:VOLT?", lo=-1.0,
                            hi=self.settings.max_voltage_v * 1.5 + 1.0)
        amps = self.number(self.query(self.sel + "MEAS:CURR?"), "MEAS:CURR?", lo=-1.0,
                           hi=self.settings.max_current_a * 1.5 + 1.0)
        return PowerReading(volts, amps)

    def _safe(self) -> None:
        cmd = self.sel + "OUTP OFF"
        if not self.confirmed(lambda: self.write(cmd),
                              lambda: not self.output_enabled(safe=True)):
            raise self.fail("output still on after the safe-state command", cmd)


__all__ = ["ScpiPsu", "ScpiPsuSettings"]
