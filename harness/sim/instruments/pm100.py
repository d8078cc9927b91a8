"""Simulated Thorlabs PM100-style optical power meter (SCPI over a loopback socket), its
photodiode head beside the sensor in the sensor plane of the simulated bench.

Commands (docs/standards.md#thorlabs-pm100-optical-power-meters; the subset the driver uses)::

    *IDN?                                  Thorlabs,PM100USB,<serial>,1.6.0
    SENSe:CORRection:WAVelength <nm>       200..1800; ...? -> 525.0
    SENSe:CORRection:BEAMdiameter <mm>     0.01..100; ...? -> 9.500
    CONFigure:POWer | CONFigure:PDENsity   (accepted; MEAS:<quantity>? says what is measured)
    MEASure:POWer?                         W      (e.g. 1.234567E-05)
    MEASure:PDENsity?                      W/cm2  (power / beam area)
    SYSTem:ERRor?                          the SCPI error queue

Placement: the head sits beside the sensor at the same irradiance (a station designed so, or
the sensor-plane irradiance calibrated once with the head in the camera's place): it reads
the bench's sensor-plane irradiance, the flux from a white target at the sensor centre
(:meth:`harness.sim.bench.Bench.irradiance_w_m2`); the cap (``dark`` chart) darkens it too.

Physics: the photodiode's current is sum(E(lambda) R(lambda)) with R a typical silicon
responsivity (:data:`SI_RESPONSIVITY_A_W`, design values of the usual shape, not a particular
head's calibration); the meter divides by R at the wavelength set, so a reading is exact for a
line at that wavelength, within ~0.1 % for a 30 nm band centred on it, and off by
R(lambda_light)/R(lambda_set) when the wavelength set is not the light's (a white light read at
535 nm reads ~6 % high). Noise: ``noise_pct`` (1 sigma, seeded) on every reading.
Faults: delay, drop, garbage (base), ``error`` (the next setting is refused, -310 queued).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, SimSpec
from harness.sim.instruments.coupling import BenchLink
from harness.sim.instruments.scpi import ScpiError, ScpiSimulator

IrradianceProbe = Callable[[], tuple[float, str]]
"""Returns (sensor-plane irradiance in W/m2, the light's spectrum as a bench illuminant name)."""

SI_RESPONSIVITY_A_W: tuple[tuple[float, float], ...] = (
    (350.0, 0.10), (400.0, 0.14), (450.0, 0.20), (500.0, 0.25), (550.0, 0.30), (600.0, 0.34),
    (650.0, 0.38), (700.0, 0.42), (750.0, 0.45), (800.0, 0.48), (850.0, 0.50), (900.0, 0.51),
    (950.0, 0.45), (1000.0, 0.30), (1100.0, 0.05))
"""(nm, A/W) of a typical silicon photodiode head (shape only; interpolated linearly)."""


def responsivity_a_w(nm: np.ndarray | float) -> np.ndarray:
    """R(lambda) of the simulated head, A/W."""
    table = np.asarray(SI_RESPONSIVITY_A_W)
    return np.asarray(np.interp(nm, table[:, 0], table[:, 1]))


@lru_cache(maxsize=64)
def reading_factor(illuminant: str, wavelength_nm: float) -> float:
    """What the meter shows over the true irradiance for light of spectrum ``illuminant`` with
    the correction wavelength ``wavelength_nm``: sum(w R) / R(lambda_set), w the power fraction
    per 5 nm bin of the bench's spectrum (:func:`harness.sim.colour_response.photon_spectrum`
    back to power, p hc / lambda)."""
    from harness.sim.colour_response import WAVELENGTHS, photon_spectrum

    power = photon_spectrum(illuminant) / WAVELENGTHS
    power = power / power.sum()
    return float(np.sum(power * responsivity_a_w(WAVELENGTHS))
                 / float(responsivity_a_w(wavelength_nm)))


class Pm100Spec(SimSpec):
    type: str = "pm100"
    detector_diameter_mm: float = Field(9.5, gt=0.0, le=50.0, description="head aperture")
    noise_pct: float = Field(0.1, ge=0.0, le=10.0, description="1-sigma noise per reading")
    max_power_w: float = Field(0.5, gt=0.0, description="head range (above: reads the maximum)")
    wavelength_nm: float = Field(633.0, ge=200.0, le=1800.0, description="power-on setting")
    seed: int = 0


class Pm100Simulator(ScpiSimulator):
    """A PM100-style meter whose head reads whatever ``probe`` reports (the hub wires it to
    the bench)."""

    Spec: ClassVar[type[SimSpec]] = Pm100Spec
    idn = ("Thorlabs", "PM100USB", "P2000001", "1.6.0")

    def __init__(self, name: str, spec: Pm100Spec | None = None, *, clock: Clock | None = None,
                 link: BenchLink | None = None, probe: IrradianceProbe | None = None) -> None:
        spec = spec or Pm100Spec()
        super().__init__(name, clock=clock, faults=FaultState(spec.faults))
        self.spec = spec
        if spec.serial:
            self.serial = spec.serial
        self.link = link or BenchLink(None)
        self.probe: IrradianceProbe = probe or (lambda: (0.0, "E"))
        self.wavelength_nm = spec.wavelength_nm
        self.beam_mm = spec.detector_diameter_mm
        self.quantity = "POW"
        self.measurements = 0
        self._rng = np.random.default_rng(spec.seed)
        self.add("SENSe:CORRection:WAVelength", self._set_wavelength)
        self.add("SENSe:CORRection:WAVelength?", lambda _c, _a: f"{self.wavelength_nm:.1f}")
        self.add("SENSe:CORRection:BEAMdiameter", self._set_beam)
        self.add("SENSe:CORRection:BEAMdiameter?", lambda _c, _a: f"{self.beam_mm:.3f}")
        self.add("CONFigure:POWer", lambda _c, a: self._configure("POW", a))
        self.add("CONFigure:PDENsity", lambda _c, a: self._configure("PDEN", a))
        self.add("CONFigure?", lambda _c, _a: self.quantity)
        self.add("MEASure:POWer?", lambda _c, _a: f"{self.power_w():.6E}")
        self.add("MEASure:PDENsity?", lambda _c, _a: f"{self.density_w_cm2():.6E}")

    def _set_wavelength(self, _suffix: str | None, args: list[str]) -> None:
        self.wavelength_nm = self.number(args, 200.0, 1800.0)

    def _set_beam(self, _suffix: str | None, args: list[str]) -> None:
        self.beam_mm = self.number(args, 0.01, 100.0)

    def _configure(self, quantity: str, args: list[str]) -> None:
        if args:
            raise ScpiError(-108, '"Parameter not allowed"')
        self.quantity = quantity

    def true_irradiance_w_m2(self) -> float:
        return float(self.probe()[0])

    def power_w(self) -> float:
        """The power the meter shows now: true power on the head x the wavelength-correction
        factor x (1 + noise), clipped at the head's range."""
        self.measurements += 1
        irradiance, illuminant = self.probe()
        area_m2 = np.pi * (self.spec.detector_diameter_mm * 1e-3 / 2.0) ** 2
        shown = irradiance * area_m2 * (reading_factor(illuminant, self.wavelength_nm)
                                        if irradiance > 0.0 else 1.0)
        shown *= 1.0 + self.spec.noise_pct / 100.0 * float(self._rng.standard_normal())
        return float(min(max(shown, 0.0), self.spec.max_power_w))

    def density_w_cm2(self) -> float:
        """Power over the beam area set (W/cm2), as the PM100 computes it."""
        return self.power_w() / (np.pi * (self.beam_mm / 20.0) ** 2)

    def reset(self) -> None:
        self.wavelength_nm = self.spec.wavelength_nm
        self.beam_mm = self.spec.detector_diameter_mm
        self.quantity = "POW"

    def describe(self) -> dict[str, object]:
        irradiance, illuminant = self.probe()
        return {"name": self.name, "wavelength_nm": self.wavelength_nm, "beam_mm": self.beam_mm,
                "irradiance_w_m2": irradiance, "illuminant": illuminant,
                "measurements": self.measurements}


__all__ = ["SI_RESPONSIVITY_A_W", "IrradianceProbe", "Pm100Simulator", "Pm100Spec",
           "reading_factor", "responsivity_a_w"]
