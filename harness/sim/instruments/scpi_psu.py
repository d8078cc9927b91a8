"""Simulated bench DC supply (SCPI, Keysight E36xx / Rigol DP800 style) powering the camera.

Commands (SCPI-1999 tree as on the Keysight E3631A/E3648A, docs/standards.md#scpi-power-supplies;
the output switch acts on the selected channel, as DP800 ``:OUTP CHn,ON`` does)::

    *IDN?                                   Harness,PSU-SCPI,<serial>,<fw>
    INSTrument:NSELect <n> / ?              select channel n
    VOLTage[:LEVel][:IMMediate] <V> / ?     set point (0..max_v; MIN/MAX)
    CURRent[:LEVel][:IMMediate] <A> / ?     current limit (0..max_a)
    OUTPut[:STATe] ON|OFF / ?               output of the selected channel
    MEASure:VOLTage[:DC]? / MEASure:CURRent[:DC]?
    SYSTem:ERRor?

The load on channel 1 is the camera module: it is powered while the output voltage lies in
``[module_min_v, module_max_v]`` and then draws its idle current (its streaming current while
the SimCamera acquires, ``bench.camera_streaming``). The currents are the module's: the
``power`` section of its module file (:class:`harness.sim.module.Power`), which the bench holds
for the station's simulated camera. ``idle_a``/``streaming_a`` given in the simulator's spec
override the module's; without a bench or a known module the spec's values (their defaults are
that schema's) are the load. A current reading adds the module's ``noise_a`` (seeded by
``seed``). If the load exceeds the current limit the supply goes constant-current: the output
sags to ``limit * V / I_load`` (the module seen as a resistor), the reading is the limit, and
the module browns out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.scpi import ScpiError, ScpiSimulator
from harness.sim.module import Power


class ScpiPsuSpec(SimSpec):
    type: str = "scpi-psu"
    channels: int = Field(3, ge=1, le=4)
    max_v: float = Field(6.0, gt=0.0)
    max_a: float = Field(5.0, gt=0.0)
    module_min_v: float = Field(3.0, ge=0.0, description="camera powered from this voltage")
    module_max_v: float = Field(5.5, gt=0.0, description="... up to this voltage")
    idle_a: float = Field(Power().idle_a, ge=0.0, description="camera current when idle; "
                          "given, it overrides the module file's power.idle_a")
    streaming_a: float = Field(Power().streaming_a, ge=0.0, description="camera current while "
                               "acquiring; given, it overrides the module file's "
                               "power.streaming_a")
    seed: int = 0
    power_up_v: float = Field(3.3, ge=0.0, description="channel 1 set point when the bench "
                                                      "starts powered")
    power_up_limit_a: float = Field(0.5, ge=0.0)
    slots: dict[int, str] = Field(default_factory=dict, description="on a multi-up bench: "
                                  "which slot's module each channel feeds ({1: A, 2: B}); "
                                  "empty: channel 1 feeds the one module")


@dataclass
class Channel:
    volts: float = 0.0
    limit_a: float = 0.1
    on: bool = False


class ScpiPsuSimulator(ScpiSimulator):
    """A multi-channel supply; channel 1 feeds the camera module."""

    Spec: ClassVar[type[SimSpec]] = ScpiPsuSpec
    idn = ("Harness", "PSU-SCPI", "PSU-0001", "2.0")

    def __init__(self, name: str, spec: ScpiPsuSpec | None = None, *, clock: Clock | None = None,
                 link: BenchLink | None = None) -> None:
        spec = spec or ScpiPsuSpec()
        super().__init__(name, clock=clock, faults=FaultState(spec.faults))
        self.spec = spec
        self.link = link or BenchLink(None)
        if spec.serial:
            self.serial = spec.serial
        self.channels = [Channel() for _ in range(spec.channels)]
        self.selected = 1
        self._rng = np.random.default_rng(spec.seed)
        bad = [c for c in spec.slots if not 1 <= c <= spec.channels]
        if bad:
            raise ValueError(f"slots names channel {bad[0]}; the supply has channels "
                             f"1..{spec.channels}")
        start = self.link.initial()
        if start is not None and start.powered:  # the bench starts powered: modules' channels on
            for n in self._module_channels():
                self.channels[n - 1] = Channel(spec.power_up_v, spec.power_up_limit_a, True)
        self.add("INSTrument:NSELect", self._select)
        self.add("INSTrument:NSELect?", lambda _c, _a: str(self.selected))
        self.add("VOLTage[:LEVel][:IMMediate]", self._set_volts)
        self.add("VOLTage[:LEVel][:IMMediate]?", lambda _c, _a: f"{self._chan().volts:.4f}")
        self.add("CURRent[:LEVel][:IMMediate]", self._set_limit)
        self.add("CURRent[:LEVel][:IMMediate]?", lambda _c, _a: f"{self._chan().limit_a:.4f}")
        self.add("OUTPut[:STATe]", self._set_output)
        self.add("OUTPut[:STATe]?", lambda _c, _a: "1" if self._chan().on else "0")
        self.add("MEASure:VOLTage[:DC]?", lambda _c, _a: f"{self.measure(self.selected)[0]:.4f}")
        self.add("MEASure:CURRent[:DC]?", lambda _c, _a: f"{self.read_current(self.selected):.4f}")
        self._update()

    def _chan(self) -> Channel:
        return self.channels[self.selected - 1]

    def _select(self, _suffix: str | None, args: list[str]) -> None:
        n = self.number(args, 1, len(self.channels))
        if n != int(n):
            raise ScpiError(-224, '"Illegal parameter value"')
        self.selected = int(n)

    def _set_volts(self, _suffix: str | None, args: list[str]) -> None:
        self._chan().volts = self.number(args, 0.0, self.spec.max_v)
        self._update()

    def _set_limit(self, _suffix: str | None, args: list[str]) -> None:
        self._chan().limit_a = self.number(args, 0.0, self.spec.max_a)
        self._update()

    def _set_output(self, _suffix: str | None, args: list[str]) -> None:
        self._chan().on = self.boolean(args)
        self._update()

    def reset(self) -> None:
        self.channels = [Channel() for _ in self.channels]
        self.selected = 1
        self._update()

    def _module_channels(self) -> list[int]:
        """The channels that feed a module: the slots' channels, else channel 1."""
        return sorted(self.spec.slots) or [1]

    def _slot(self, channel: int) -> str | None:
        return self.spec.slots.get(channel)

    def module_power(self, channel: int = 1) -> Power:
        """The module's supply currents now: the bench's module (the channel's slot's on a
        multi-up bench) with the currents the spec gives explicitly on top; with no module
        known, the spec's (defaults: :class:`Power`'s)."""
        s = self.spec
        power = self.link.module_power(self._slot(channel))
        if isinstance(power, Power):
            given = s.model_fields_set & {"idle_a", "streaming_a"}
        else:
            power, given = Power(), {"idle_a", "streaming_a"}
        return power.model_copy(update={k: getattr(s, k) for k in given})

    def _load_a(self, volts: float, channel: int = 1) -> float:
        s = self.spec
        if not s.module_min_v <= volts <= s.module_max_v:
            return 0.0
        power = self.module_power(channel)
        streaming = self.link.camera_streaming(self._slot(channel))
        return power.streaming_a if streaming else power.idle_a

    def measure(self, channel: int) -> tuple[float, float]:
        """(output volts, output amps) of ``channel`` now."""
        ch = self.channels[channel - 1]
        if not ch.on:
            return 0.0, 0.0
        if channel not in self._module_channels():
            return ch.volts, 0.0
        load = self._load_a(ch.volts, channel)
        if load <= ch.limit_a:
            return ch.volts, load
        return ch.limit_a * ch.volts / load, ch.limit_a  # constant current: the output sags

    def read_current(self, channel: int) -> float:
        """What ``MEAS:CURR?`` reads: :meth:`measure`'s amps plus the module's current noise
        (none in constant-current mode, where the supply holds the limit)."""
        _, amps = self.measure(channel)
        ch = self.channels[channel - 1]
        noise = self.module_power(channel).noise_a
        if channel not in self._module_channels() or amps <= 0.0 or amps >= ch.limit_a \
                or noise <= 0.0:
            return amps
        return max(0.0, amps + noise * float(self._rng.standard_normal()))

    def camera_powered(self, channel: int = 1) -> bool:
        volts, _ = self.measure(channel)
        return self.channels[channel - 1].on and \
            self.spec.module_min_v <= volts <= self.spec.module_max_v

    def _update(self) -> None:
        if not self.spec.slots:
            self.link.power(self.camera_powered())
            return
        for channel, slot in self.spec.slots.items():
            self.link.slot_power(slot, self.camera_powered(channel))

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "selected": self.selected,
                "channels": [vars(c).copy() for c in self.channels],
                "camera_powered": self.camera_powered()}


__all__ = ["Channel", "ScpiPsuSimulator", "ScpiPsuSpec"]
