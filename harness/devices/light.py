"""Light-source drivers: a SCPI LED over VISA and a Gardasoft-style serial LED controller.

``driver: scpi-led`` (:class:`ScpiLed`): SCPI over PyVISA (``TCPIP0::host::port::SOCKET``,
USB-TMC ``USB0::...::INSTR``, ``ASRL/dev/ttyUSB0::INSTR``), newline-terminated; the command tree
of :mod:`harness.sim.instruments.scpi_led` (``OUTPut<n>[:STATe]``, ``SOURce<n>:BRIGhtness``,
``SOURce<n>:CCT``, ``SOURce<n>:WAVelength``, ``SYSTem:ERRor?``). Every setting is followed by
``SYST:ERR?`` and a read-back. ``narrowband: true`` sources have a narrow-band mode
(``SOURce<n>:WAVelength <nm>``, 0 back to white; ``SOURce<n>:WAVelength:FWHM?``) for the EMVA
1288 quantum efficiency (a known wavelength, FWHM <= 50 nm; docs/standards.md#emva-linear-model).

``driver: gardasoft`` (:class:`Gardasoft`): the RS-232 command set of Gardasoft RC1xx/RT-20
controllers (115200 8N1, CR-terminated, replies end with the ``>`` prompt; ``VR``, ``RSc,s``,
``STc``); ``Err n`` replies raise. The controller has no separate on/off: off is ``RSc,0`` and
the driver remembers the level to restore on ``on()``.

Both: safe state = light off, confirmed by read-back, with the short ``safe_timeout_s``.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pydantic import Field

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import (
    InstrumentDriver,
    ScpiErrorQueue,
    SerialSettings,
    VisaSettings,
)
from harness.errors import ConfigError
from harness.registry import DriverContext, register_driver

LEVEL_TOLERANCE = 0.01
"""Read-back tolerance of a level in percent (the SCPI reply has 3 decimals, Gardasoft 1)."""


NOMINAL_CCT_K = {"D65": 6504.0, "D50": 5003.0, "A": 2856.0, "F11": 4000.0, "TL84": 4000.0}


def check_level(device: str, percent: float) -> float:
    if not 0.0 <= percent <= 100.0:
        raise ConfigError(f"{device}: light level {percent} % outside 0..100", field="level")
    return float(percent)


class ScpiLedSettings(VisaSettings):
    channel: int = Field(1, ge=1, le=16)
    cct: bool = Field(False, description="the source has a settable CCT (SOURce:CCT)")
    narrowband: bool = Field(False, description="the source has a narrow-band mode "
                                                "(SOURce:WAVelength)")


@register_driver("light", "scpi-led")
class ScpiLed(ScpiErrorQueue, InstrumentDriver):
    """A SCPI LED light source over VISA."""

    Settings = ScpiLedSettings
    settings: ScpiLedSettings

    def __init__(self, name: str, settings: ScpiLedSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self.ch = settings.channel

    def _identify(self) -> DeviceIdentity:
        return self.idn()

    def _after_open(self) -> None:
        self.clear_status()

    def _set(self, command: str) -> None:
        self.send_checked(command)

    def _bool(self, command: str, *, safe: bool = False) -> bool:
        reply = self.query(command, safe=safe)
        if reply not in ("0", "1"):
            raise self.fail("expected 0 or 1", command, reply)
        return reply == "1"

    def on(self) -> None:
        if not self.confirmed(lambda: self._set(f"OUTP{self.ch}:STAT ON"), self.is_on):
            raise self.fail("output did not switch on", f"OUTP{self.ch}:STAT?")

    def off(self) -> None:
        if not self.confirmed(lambda: self._set(f"OUTP{self.ch}:STAT OFF"),
                              lambda: not self.is_on()):
            raise self.fail("output did not switch off", f"OUTP{self.ch}:STAT?")

    def is_on(self) -> bool:
        return self._bool(f"OUTP{self.ch}:STAT?")

    def set_level(self, percent: float) -> None:
        level = check_level(self.name, percent)
        back: list[float] = []

        def check() -> bool:
            back.append(self.level())
            return abs(back[-1] - level) <= LEVEL_TOLERANCE

        if not self.confirmed(lambda: self._set(f"SOUR{self.ch}:BRIG {level:.3f}"), check):
            raise self.fail(f"level reads back {back[-1]:g} %, not {level:g} %",
                            f"SOUR{self.ch}:BRIG?")

    def level(self) -> float:
        cmd = f"SOUR{self.ch}:BRIG?"
        return self.number(self.query(cmd), cmd, lo=0.0, hi=100.0)

    def set_cct(self, kelvin: float) -> None:
        """Set the colour temperature (``cct: true`` sources only)."""
        self._need_cct()
        back: list[float] = []

        def check() -> bool:
            back.append(self.cct())
            return abs(back[-1] - kelvin) <= 1.0

        if not self.confirmed(lambda: self._set(f"SOUR{self.ch}:CCT {kelvin:.0f}"), check):
            raise self.fail(f"CCT reads back {back[-1]:g} K, not {kelvin:g} K",
                            f"SOUR{self.ch}:CCT?")

    def set_illuminant(self, name: str) -> None:
        """Approximate an illuminant by its CCT (``<CCT>K``, or D65, D50, A, F11/TL84 by their
        nominal CCTs, CIE 15:2004 Table T.1): a tunable-white LED matches the colour
        temperature, not the spectrum."""
        key = name.strip().upper()
        if key.endswith("K") and key[:-1].replace(".", "", 1).isdigit():
            kelvin = float(key[:-1])
        elif key in NOMINAL_CCT_K:
            kelvin = NOMINAL_CCT_K[key]
        else:
            raise ConfigError(f"{self.name}: illuminant {name!r} unknown; allowed: <CCT>K, "
                              f"{', '.join(NOMINAL_CCT_K)}", field="illuminant")
        self.set_cct(kelvin)

    def cct(self) -> float:
        self._need_cct()
        cmd = f"SOUR{self.ch}:CCT?"
        return self.number(self.query(cmd), cmd, lo=1000.0, hi=25000.0)

    def set_wavelength(self, nm: float | None) -> None:
        """Switch to the narrow band centred on ``nm`` (``None``: back to white), read back
        within 0.05 nm (``narrowband: true`` sources only)."""
        self._need_narrowband()
        if nm is not None and not (math.isfinite(nm) and nm > 0.0):
            raise ConfigError(f"{self.name}: wavelength {nm} nm is not a positive number",
                              field="wavelength_nm")
        want = 0.0 if nm is None else float(nm)
        back: list[float] = []

        def check() -> bool:
            back.append(self.wavelength() or 0.0)
            return abs(back[-1] - want) <= 0.05

        if not self.confirmed(lambda: self._set(f"SOUR{self.ch}:WAV {want:.1f}"), check):
            raise self.fail(f"wavelength reads back {back[-1]:g} nm, not {want:g} nm",
                            f"SOUR{self.ch}:WAV?")

    def wavelength(self) -> float | None:
        """The narrow band's centre in nm, ``None`` while the source is white."""
        self._need_narrowband()
        cmd = f"SOUR{self.ch}:WAV?"
        value = self.number(self.query(cmd), cmd, lo=0.0, hi=2000.0)
        return None if value == 0.0 else value

    def bandwidth_nm(self) -> float | None:
        """The narrow band's FWHM in nm, ``None`` while the source is white."""
        self._need_narrowband()
        cmd = f"SOUR{self.ch}:WAV:FWHM?"
        value = self.number(self.query(cmd), cmd, lo=0.0, hi=2000.0)
        return None if value == 0.0 else value

    def _need_narrowband(self) -> None:
        if not self.settings.narrowband:
            raise ConfigError(f"{self.name}: this light has no narrow-band mode (set "
                              f"'narrowband: true' in the station file if it has)",
                              field="narrowband")

    def _need_cct(self) -> None:
        if not self.settings.cct:
            raise ConfigError(f"{self.name}: this light has no settable CCT (set 'cct: true' "
                              f"in the station file if it has)", field="cct")

    def _safe(self) -> None:
        cmd = f"OUTP{self.ch}:STAT OFF"
        if not self.confirmed(lambda: self.write(cmd),
                              lambda: not self._bool(f"OUTP{self.ch}:STAT?", safe=True)):
            raise self.fail("light still on after the safe-state command", cmd)


class GardasoftSettings(SerialSettings):
    channel: int = Field(1, ge=1, le=8)


@register_driver("light", "gardasoft")
class Gardasoft(InstrumentDriver):
    """A Gardasoft-style LED controller on RS-232 (continuous mode, one channel)."""

    Settings = GardasoftSettings
    settings: GardasoftSettings
    backend = "serial"
    link_defaults: ClassVar[dict[str, Any]] = {
        "read_termination": ">", "write_termination": "\r", "baudrate": 115200,
        "bytesize": 8, "parity": "N", "stopbits": 1}

    _VR = re.compile(r"^(?P<model>\S+) Ver (?P<fw>\S+) SN (?P<serial>\S+)$")
    _ST = re.compile(r"^Ch(?P<ch>\d) RS (?P<level>\d+(?:\.\d+)?)%$")

    def __init__(self, name: str, settings: GardasoftSettings, context: DriverContext) -> None:
        super().__init__(name, settings, context)
        self.ch = settings.channel
        self._level = 0.0

    def command(self, cmd: str, *, safe: bool = False) -> str:
        """Send ``cmd``; the reply before the prompt (``""`` for settings); ``Err n`` raises."""
        reply = self.query(cmd, safe=safe)
        if reply.startswith("Err"):
            raise self.fail(f"controller error {reply!r}", cmd, reply)
        return reply

    def _identify(self) -> DeviceIdentity:
        reply = self.command("VR")
        m = self._VR.match(reply)
        if m is None:
            raise self.fail("unexpected version reply", "VR", reply)
        return DeviceIdentity(self.kind, self.driver_name, "Gardasoft", m["model"], m["serial"],
                              m["fw"], {"address": self.link_.address})

    def _set(self, level: float, *, safe: bool = False) -> None:
        cmd = f"RS{self.ch},{level:.1f}"
        reply = self.command(cmd, safe=safe)
        if reply:
            raise self.fail("unexpected reply to a setting", cmd, reply)

    def _status(self, *, safe: bool = False) -> float:
        cmd = f"ST{self.ch}"
        reply = self.command(cmd, safe=safe)
        m = self._ST.match(reply)
        if m is None or int(m["ch"]) != self.ch:
            raise self.fail("unexpected status reply", cmd, reply)
        return self.number(m["level"], cmd, lo=0.0, hi=100.0)

    def on(self) -> None:
        self._set(self._level)
        if abs(self._status() - self._level) > 0.05:
            raise self.fail("brightness did not take", f"ST{self.ch}")

    def off(self) -> None:
        self._set(0.0)
        if self._status() != 0.0:
            raise self.fail("light did not switch off", f"ST{self.ch}")

    def is_on(self) -> bool:
        return self._status() > 0.0

    def set_level(self, percent: float) -> None:
        level = check_level(self.name, round(percent, 1))
        on = self.is_on()
        self._level = level
        if on:
            self._set(level)
            if abs(self._status() - level) > 0.05:
                raise self.fail("brightness did not take", f"ST{self.ch}")

    def level(self) -> float:
        """The commanded level (read back while on; the remembered one while off)."""
        status = self._status()
        return status if status > 0.0 else self._level

    def _safe(self) -> None:
        self._set(0.0, safe=True)
        if self._status(safe=True) != 0.0:
            raise self.fail("light still on after the safe-state command", f"RS{self.ch},0")


__all__ = ["NOMINAL_CCT_K", "Gardasoft", "GardasoftSettings", "ScpiLed", "ScpiLedSettings",
           "check_level"]
