"""Physics of a simulated LED light: response curve, settling, warm-up drift, faults.

The illuminance at the chart plane for a commanded level ``p`` (percent) is::

    E(t) = E_max * s(t) * w(t) * f(t)

* ``s(t)``: the output fraction, following the target ``(p/100)**gamma`` to first order with
  time constant ``tau_s`` after every change (an LED driver's current loop plus thermal droop
  settle roughly exponentially); ``gamma`` models a driver whose output is not linear in the
  commanded percentage, which is why the station calibrates level -> lux.
* ``w(t) = 1 - warmup_pct/100 * exp(-t_on / warmup_tau_s)``: warm-up after switch-on (the
  junction heats and the output creeps by about a percent).
* ``f(t)``: the ``drift`` (linear, ``rate_pct_per_s``) and ``flicker`` (sinusoidal,
  ``amplitude_pct`` at ``frequency_hz``) faults of :mod:`harness.sim.faults`.

The spectrum is a ``<CCT>K`` blackbody (``cct_k``, or the CCT last set) or a named illuminant
(the spec's ``illuminant``, or the bench's adopted at power-up). A light whose spec has a
``narrowband:`` section can switch to a narrow band instead (:meth:`LightOutput.set_wavelength`):
a Gaussian of ``fwhm_nm`` (<= 50 nm, EMVA 1288's limit for the quantum-efficiency measurement;
docs/standards.md#emva-linear-model) centred on the wavelength set, rendered as the
``band:<nm>/<fwhm>`` illuminant, at ``flux_fraction`` of the white channel's photon flux (a
band-pass filtered source passes only part of it); setting a CCT or wavelength 0 returns to white.
The CCT the light reports is that of the white spectrum: the set CCT for a blackbody, else
the CCT of the named spectrum as the bench renders it (:func:`spectrum_cct_k`), e.g. about
6504 K for D65.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock


@lru_cache(maxsize=32)
def spectrum_xy(illuminant: str) -> tuple[float, float]:
    """CIE 1931 2° xy of the spectrum the bench renders for ``illuminant``
    (:func:`harness.sim.colour_response.photon_spectrum` back to power, p / lambda, on its
    5 nm 380-780 nm grid), by colour-science's CIE 15:2018 sum (``sd_to_XYZ``, "Integration")."""
    import colour

    from harness.sim.colour_response import WAVELENGTHS, photon_spectrum

    shape = colour.SpectralShape(float(WAVELENGTHS[0]), float(WAVELENGTHS[-1]), 5.0)
    sd = colour.SpectralDistribution(photon_spectrum(illuminant) / WAVELENGTHS, WAVELENGTHS)
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(shape)
    xyz = colour.sd_to_XYZ(sd, cmfs, colour.sd_ones(shape), method="Integration")
    x, y = colour.XYZ_to_xy(xyz)
    return float(x), float(y)


@lru_cache(maxsize=32)
def spectrum_cct_k(illuminant: str) -> float:
    """CCT of the rendered spectrum (:func:`spectrum_xy`) by McCamy's cubic (McCamy 1992,
    ``colour.xy_to_CCT``; D65 6504 K, A 2857 K); NaN for a monochromatic line, which has none."""
    import colour

    if illuminant.upper().startswith(("MONO:", "BAND:")):
        return math.nan
    return float(colour.xy_to_CCT(spectrum_xy(illuminant), method="McCamy 1992"))


class NarrowbandSpec(BaseModel):
    """The narrow-band mode of a simulated light (EMVA 1288 R4.0: a known wavelength, FWHM
    <= 50 nm)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fwhm_nm: float = Field(30.0, ge=5.0, le=50.0, description="bandwidth (FWHM)")
    min_nm: float = Field(400.0, ge=400.0, le=740.0, description="lowest settable centre")
    max_nm: float = Field(700.0, ge=400.0, le=740.0, description="highest settable centre")
    flux_fraction: float = Field(1.0, gt=0.0, le=1.0, description="photon flux relative to the "
                                                                  "white channel's")

    @model_validator(mode="after")
    def _range(self) -> NarrowbandSpec:
        if self.min_nm > self.max_nm:
            raise ValueError(f"min_nm {self.min_nm} above max_nm {self.max_nm}")
        return self


class LightSpec(BaseModel):
    """Physical parameters of a simulated light (the ``light:`` part of a simulator spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_lux: float = Field(2000.0, gt=0.0, description="illuminance at 100 % (no bench; with "
                                                        "a bench its full-scale flux decides)")
    gamma: float = Field(1.0, gt=0.2, le=5.0, description="output = (level/100)**gamma")
    tau_s: float = Field(0.05, ge=0.0, le=60.0, description="settling time constant")
    warmup_pct: float = Field(1.0, ge=0.0, le=20.0, description="output deficit at switch-on")
    warmup_tau_s: float = Field(20.0, gt=0.0, description="warm-up time constant")
    cct_k: float = Field(5000.0, ge=1000.0, le=25000.0, description="colour temperature")
    illuminant: str | None = Field(None, description="spectrum for the bench (e.g. D65); "
                                                     "default: a <cct_k>K blackbody")
    narrowband: NarrowbandSpec | None = Field(None, description="a narrow-band mode "
                                                                "(SOURce:WAVelength)")

    @field_validator("illuminant")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            from harness.sim.instruments.cs100a import chromaticity

            try:
                chromaticity(value)
            except (KeyError, ValueError):
                raise ValueError(f"unknown illuminant {value!r}; allowed: D65, D50, A, E, F11, "
                                 f"TL84 or <CCT>K") from None
        return value


class LightOutput:
    """The time-dependent output of one LED channel (thread-safe)."""

    def __init__(self, spec: LightSpec, clock: Clock, faults: FaultState | None = None,
                 full_scale_lux: Callable[[str], float | None] | None = None) -> None:
        self.spec = spec
        self._full_scale_lux = full_scale_lux
        self.clock = clock
        self.faults = faults or FaultState()
        self._lock = threading.Lock()
        self.on = False
        self.level = 0.0
        self._cct_k = spec.cct_k
        self._cct_set = False
        self._adopted: str | None = None
        self.wavelength_nm: float | None = None
        now = clock()
        self._t0 = now
        self._start = 0.0
        self._t_on = now
        self._fault_t0: dict[int, float] = {}

    def _target(self) -> float:
        if not self.on:
            return 0.0
        narrow = self.spec.narrowband
        scale = narrow.flux_fraction if narrow is not None and self.wavelength_nm is not None \
            else 1.0
        return scale * (self.level / 100.0) ** self.spec.gamma

    def _fraction_at(self, t: float) -> float:
        tau = self.spec.tau_s
        target = self._target()
        if tau <= 0:
            return target
        return target + (self._start - target) * math.exp(-max(0.0, t - self._t0) / tau)

    def _restart(self) -> None:
        """Record the output now, apply a change, restart settling from there."""
        now = self.clock()
        self._start = self._fraction_at(now)
        self._t0 = now

    def set_level(self, percent: float) -> None:
        with self._lock:
            self._restart()
            self.level = percent

    def set_on(self, on: bool) -> None:
        with self._lock:
            if on and not self.on:
                self._restart()
                self._t_on = self.clock()
            elif not on and self.on:
                self._restart()
            self.on = on

    def set_cct(self, kelvin: float) -> None:
        with self._lock:
            self._cct_k = kelvin
            self._cct_set = True
            if self.wavelength_nm is not None:
                self._restart()
                self.wavelength_nm = None

    def set_wavelength(self, nm: float | None) -> None:
        """Switch to the narrow band centred on ``nm`` (``None``: back to white); the output
        settles to the new flux as after a level change."""
        narrow = self.spec.narrowband
        if nm is not None:
            if narrow is None:
                raise ValueError("this light has no narrow-band mode")
            if not narrow.min_nm <= nm <= narrow.max_nm:
                raise ValueError(f"wavelength {nm:g} nm outside {narrow.min_nm:g}.."
                                 f"{narrow.max_nm:g} nm")
        with self._lock:
            self._restart()
            self.wavelength_nm = None if nm is None else float(nm)

    @property
    def fwhm_nm(self) -> float | None:
        """The bandwidth of the narrow band now (``None``: white)."""
        narrow = self.spec.narrowband
        return None if narrow is None or self.wavelength_nm is None else narrow.fwhm_nm

    def power_up(self, on: bool, output_pct: float, illuminant: str | None) -> None:
        """Start settled at a physical output of ``output_pct`` % (the bench's initial light)."""
        with self._lock:
            self.on = on
            self.level = 100.0 * (max(0.0, min(output_pct, 100.0)) / 100.0) ** (1 / self.spec.gamma)
            self._start = self._target()
            self._t0 = self._t_on = self.clock() - 1e6  # settled and warm
            if illuminant is not None and self.spec.illuminant is None:
                self._adopted = illuminant

    def _blackbody(self) -> bool:
        return self._cct_set or (self.spec.illuminant is None and self._adopted is None)

    @property
    def illuminant(self) -> str:
        """The spectrum the bench renders: the narrow band when one is set, ``<CCT>K`` once a
        CCT was set, else the spec's."""
        narrow = self.spec.narrowband
        if narrow is not None and self.wavelength_nm is not None:
            return f"band:{self.wavelength_nm:g}/{narrow.fwhm_nm:g}"
        return self._white()

    def _white(self) -> str:
        if self._blackbody():
            return f"{self._cct_k:.0f}K"
        return self.spec.illuminant or str(self._adopted)

    @property
    def cct_k(self) -> float:
        """CCT of the white spectrum: the set (or spec) CCT of a blackbody, else the named
        spectrum's (:func:`spectrum_cct_k`); the white channel's while a narrow band is on (a
        band has no CCT)."""
        if self._blackbody():
            return self._cct_k
        return spectrum_cct_k(self._white())

    def relative_output(self, t: float | None = None) -> float:
        """Output as a fraction of full output (0 when off), faults included."""
        with self._lock:
            now = self.clock() if t is None else t
            frac = self._fraction_at(now)
            if self.on:
                frac *= 1.0 - self.spec.warmup_pct / 100.0 * math.exp(
                    -max(0.0, now - self._t_on) / self.spec.warmup_tau_s)
            drift = self.faults.active("drift")
            if drift is not None:
                t0 = self._fault_t0.setdefault(id(drift), now)
                frac *= max(0.0, 1.0 + drift.rate_pct_per_s / 100.0 * (now - t0))
            flicker = self.faults.active("flicker")
            if flicker is not None:
                frac *= 1.0 + flicker.amplitude_pct / 100.0 * math.sin(
                    2 * math.pi * flicker.frequency_hz * now)
            return max(0.0, frac)

    def illuminance_lux(self, t: float | None = None) -> float:
        """Illuminance now: ``max_lux``, or the bench's full-scale lux at this CCT, times output."""
        full = self._full_scale_lux(self.illuminant) if self._full_scale_lux else None
        return (self.spec.max_lux if full is None else full) * self.relative_output(t)


__all__ = ["LightOutput", "LightSpec", "NarrowbandSpec", "spectrum_cct_k", "spectrum_xy"]
