"""Optical power meter driver: Thorlabs PM100-style SCPI over VISA (``optical-power-meter``).

The meter's detector (a silicon photodiode) sits in the sensor plane and gives the irradiance
EMVA 1288 counts photons from (docs/standards.md#emva-linear-model: mu_p = E A t_exp lambda /
(h c)). Commands (the PM100 family's SCPI subset;
docs/standards.md#thorlabs-pm100-optical-power-meters)::

    *IDN?                      Thorlabs,PM100USB,<serial>,<firmware>
    SENSe:CORRection:WAVelength <nm>   the wavelength the photodiode's responsivity is corrected
                                       for; ...? reads it back
    SENSe:CORRection:BEAMdiameter <mm> the beam diameter power density is computed with
    CONFigure:POWer / CONFigure:PDENsity
    MEASure:POWer?             power in W
    MEASure:PDENsity?          power density in W/cm2
    SYSTem:ERRor?              after every setting

A photodiode's responsivity depends on the wavelength: a reading is only right for light of the
wavelength set, which is why :meth:`OpticalPowerMeter.set_wavelength` is read back and the
narrow-band light's wavelength is set before any reading is used. Irradiance is read as power
density (``MEAS:PDEN?``, W/cm2, x 1e4 to W/m2); the beam diameter is the detector's aperture
(the sensor-plane field overfills it), ``beam_diameter_mm``. A reading that is not a number, is
negative beyond the noise floor or exceeds ``max_power_w`` raises
:class:`~harness.errors.InstrumentError`. A meter is passive: the safe state does nothing.
"""

from __future__ import annotations

import math

from pydantic import Field

from harness.devices.base import DeviceIdentity
from harness.devices.instrument import InstrumentDriver, ScpiErrorQueue, VisaSettings
from harness.errors import ConfigError
from harness.registry import DriverContext, register_driver

WAVELENGTH_RANGE_NM = (200.0, 1800.0)
"""Wavelengths a PM100 with a silicon or germanium head accepts."""
NOISE_FLOOR_W = 1e-9
"""A dark reading may be this far below zero (offset drift) before it is refused."""


class OpticalPowerMeterSettings(VisaSettings):
    wavelength_nm: float | None = Field(None, ge=WAVELENGTH_RANGE_NM[0],
                                        le=WAVELENGTH_RANGE_NM[1],
                                        description="correction wavelength applied at open")
    beam_diameter_mm: float = Field(9.5, gt=0.0, le=100.0,
                                    description="beam diameter for the power density (the "
                                                "detector aperture when the field overfills it)")
    max_power_w: float = Field(0.5, gt=0.0, le=100.0,
                               description="refuse readings above this (the head's range)")


@register_driver("radiometer", "optical-power-meter")
class OpticalPowerMeter(ScpiErrorQueue, InstrumentDriver):
    """A PM100-style optical power meter with a photodiode head in the sensor plane."""

    Settings = OpticalPowerMeterSettings
    settings: OpticalPowerMeterSettings

    def __init__(self, name: str, settings: OpticalPowerMeterSettings,
                 context: DriverContext) -> None:
        super().__init__(name, settings, context)

    def _identify(self) -> DeviceIdentity:
        return self.idn()

    def _after_open(self) -> None:
        self.clear_status()
        self.set_beam_diameter(self.settings.beam_diameter_mm)
        if self.settings.wavelength_nm is not None:
            self.set_wavelength(self.settings.wavelength_nm)
        self.send_checked("CONF:PDEN")

    def _read_back(self, command: str, query: str, value: float, tolerance: float) -> None:
        back: list[float] = []

        def check() -> bool:
            back.append(self.number(self.query(query), query, lo=0.0))
            return abs(back[-1] - value) <= tolerance

        if not self.confirmed(lambda: self.send_checked(command), check):
            raise self.fail(f"reads back {back[-1]:g}, not {value:g}", query, f"{back[-1]}")

    def set_wavelength(self, nm: float) -> None:
        """The wavelength the responsivity is corrected for (read back within 0.05 nm)."""
        lo, hi = WAVELENGTH_RANGE_NM
        if not (math.isfinite(nm) and lo <= nm <= hi):
            raise ConfigError(f"{self.name}: wavelength {nm} nm outside {lo:g}..{hi:g} nm",
                              field="wavelength_nm")
        self._read_back(f"SENS:CORR:WAV {nm:.1f}", "SENS:CORR:WAV?", float(nm), 0.05)

    def wavelength(self) -> float:
        cmd = "SENS:CORR:WAV?"
        return self.number(self.query(cmd), cmd, lo=WAVELENGTH_RANGE_NM[0],
                           hi=WAVELENGTH_RANGE_NM[1])

    def set_beam_diameter(self, mm: float) -> None:
        if not (math.isfinite(mm) and 0.0 < mm <= 100.0):
            raise ConfigError(f"{self.name}: beam diameter {mm} mm outside (0, 100] mm",
                              field="beam_diameter_mm")
        self._read_back(f"SENS:CORR:BEAM {mm:.3f}", "SENS:CORR:BEAM?", float(mm), 5e-4)

    def power_w(self) -> float:
        """Optical power on the detector in W (``MEAS:POW?``)."""
        cmd = "MEAS:POW?"
        return max(0.0, self.number(self.query(cmd), cmd, lo=-NOISE_FLOOR_W,
                                    hi=self.settings.max_power_w))

    def irradiance_w_m2(self) -> float:
        """Irradiance on the detector in W/m2 (``MEAS:PDEN?`` in W/cm2, x 1e4)."""
        cmd = "MEAS:PDEN?"
        area_cm2 = math.pi * (self.settings.beam_diameter_mm / 20.0) ** 2
        density = self.number(self.query(cmd), cmd, lo=-NOISE_FLOOR_W / area_cm2,
                              hi=self.settings.max_power_w / area_cm2)
        return max(0.0, density) * 1e4

    def _safe(self) -> None:
        """A meter is passive: nothing to switch off."""


__all__ = ["NOISE_FLOOR_W", "WAVELENGTH_RANGE_NM", "OpticalPowerMeter",
           "OpticalPowerMeterSettings"]
