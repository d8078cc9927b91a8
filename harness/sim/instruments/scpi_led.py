"""Simulated SCPI LED light source (LAN socket or USB-TMC/serial), state coupled to the bench.

The command tree follows the SCPI ``OUTPut``/``SOURce`` layout of LED drivers such as the Thorlabs
DC2200 (docs/standards.md#scpi-led-sources), reduced to what a camera station needs; the exact
DC2200 mnemonics are unverified, so this is a generic SCPI LED, not a DC2200 emulation::

    *IDN?                               Harness,LED-SCPI,<serial>,<fw>
    OUTPut<n>[:STATe] ON|OFF|1|0        output on/off; OUTPut<n>[:STATe]? -> 1|0
    SOURce<n>:BRIGhtness[:LEVel] <pct>  0..100 (or MIN/MAX); ...? -> 42.000
    SOURce<n>:CCT <kelvin>              when the model has a CCT range; ...? -> 5000
    SOURce<n>:WAVelength <nm>|0         narrow-band mode (``light: {narrowband: ...}``): the
                                        band's centre, 0 back to white (a CCT too); ...? -> 525.0
                                        (0 while white); SOURce<n>:WAVelength:FWHM? -> 30.0
    SYSTem:ERRor?                       -222,"Data out of range" / 0,"No error"

Faults: delay, drop, garbage (base), ``error`` (the next setting command is refused and
``-310,"System error"`` queued), ``drift``/``flicker`` (the output, see :mod:`.light_model`).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.light_model import LightOutput, LightSpec
from harness.sim.instruments.scpi import ScpiSimulator


class ScpiLedSpec(SimSpec):
    type: str = "scpi-led"
    light: LightSpec = Field(default_factory=LightSpec)
    cct_min_k: float | None = Field(2700.0, description="null: fixed CCT (no SOURce:CCT)")
    cct_max_k: float = 6500.0


class ScpiLedSimulator(ScpiSimulator):
    """One-channel SCPI LED; ``output`` is the physics the bench and the meter see."""

    Spec: ClassVar[type[SimSpec]] = ScpiLedSpec
    idn = ("Harness", "LED-SCPI", "LED-0001", "1.2")

    def __init__(self, name: str, spec: ScpiLedSpec | None = None, *, clock: Clock | None = None,
                 link: BenchLink | None = None) -> None:
        spec = spec or ScpiLedSpec()
        faults = FaultState(spec.faults)
        super().__init__(name, clock=clock, faults=faults)
        self.spec = spec
        self.link = link or BenchLink(None)
        if spec.serial:
            self.serial = spec.serial
        self.output = LightOutput(spec.light, self.clock, faults, self.link.full_scale_lux)
        if (start := self.link.initial()) is not None:
            self.output.power_up(start.light_on, start.level_pct, start.illuminant)
        self.link.light(self.output)
        self.link.on_sync(lambda: self.link.light(self.output))
        self.add("OUTPut#[:STATe]", self._set_output)
        self.add("OUTPut#[:STATe]?", lambda c, _a: "1" if self._ch(c) and self.output.on else "0")
        self.add("SOURce#:BRIGhtness[:LEVel]", self._set_level)
        self.add("SOURce#:BRIGhtness[:LEVel]?", lambda c, _a: f"{self._level(c):.3f}")
        if spec.cct_min_k is not None:
            self.add("SOURce#:CCT", self._set_cct)
            self.add("SOURce#:CCT?", lambda c, _a: f"{self._ch(c) and self.output.cct_k:.0f}")
        if spec.light.narrowband is not None:
            self.add("SOURce#:WAVelength", self._set_wavelength)
            self.add("SOURce#:WAVelength?",
                     lambda c, _a: f"{self._ch(c) and (self.output.wavelength_nm or 0.0):.1f}")
            self.add("SOURce#:WAVelength:FWHM?",
                     lambda c, _a: f"{self._ch(c) and (self.output.fwhm_nm or 0.0):.1f}")

    def _ch(self, suffix: str | None) -> int:
        return self.channel(suffix, 1)

    def _level(self, suffix: str | None) -> float:
        self._ch(suffix)
        return self.output.level

    def _set_output(self, suffix: str | None, args: list[str]) -> None:
        self._ch(suffix)
        self.output.set_on(self.boolean(args))
        self.link.light(self.output)

    def _set_level(self, suffix: str | None, args: list[str]) -> None:
        self._ch(suffix)
        self.output.set_level(self.number(args, 0.0, 100.0))
        self.link.light(self.output)

    def _set_cct(self, suffix: str | None, args: list[str]) -> None:
        self._ch(suffix)
        assert self.spec.cct_min_k is not None
        self.output.set_cct(self.number(args, self.spec.cct_min_k, self.spec.cct_max_k))
        self.link.light(self.output)

    def _set_wavelength(self, suffix: str | None, args: list[str]) -> None:
        self._ch(suffix)
        narrow = self.spec.light.narrowband
        assert narrow is not None
        if len(args) == 1 and args[0].strip() in ("0", "0.0"):
            self.output.set_wavelength(None)
        else:
            self.output.set_wavelength(self.number(args, narrow.min_nm, narrow.max_nm))
        self.link.light(self.output)

    def reset(self) -> None:
        if self.output.wavelength_nm is not None:
            self.output.set_wavelength(None)
        self.output.set_on(False)
        self.output.set_level(0.0)
        self.link.light(self.output)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "on": self.output.on, "level": self.output.level,
                "cct_k": self.output.cct_k, "lux": self.output.illuminance_lux(),
                "wavelength_nm": self.output.wavelength_nm, "illuminant": self.output.illuminant}


__all__ = ["ScpiLedSimulator", "ScpiLedSpec"]
