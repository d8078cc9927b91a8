"""Simulated Konica Minolta CS-100A-style luminance and chromaticity meter on a serial line.

Framing as the CS-100A (docs/standards.md#konica-minolta-cs-100a): 4800 baud, 7 data bits,
even parity, 2 stop bits (ignored on a pty), commands and replies end with CR LF, every reply
starts with a check code::

    MES         -> "OK00,<Lv>,<x>,<y>"  Lv in cd/m2 (9 chars, 3 decimals), x, y to 4 decimals
    MDS,<nn>    -> "OK00"  measuring mode: 00 preset, 04 absolute, 05 difference, 06 fast, 07 slow
    CLE         -> "OK00"
    other       -> "ER00"  (command error)

Range codes ``OK11``..``OK13`` replace ``OK00`` when the luminance is outside the measuring
range (here: above ``max_cd_m2``; the ``over_range`` fault forces ``OK11``); the ``error`` fault
answers ``ER30`` (the low-battery error) or the fault's ``code``.

The meter looks at a Lambertian reflectance standard of reflectance ``reflectance`` in the chart
plane, so the luminance it reads from the light's illuminance E is ``L = reflectance * E / pi``
(cd/m2, Lambert's law), plus a small seeded noise; the chromaticity is the light's illuminant's
(:func:`chromaticity`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.sim.faults import FaultState
from harness.sim.instruments.base import Clock, LineSimulator, SimSpec
from harness.sim.instruments.coupling import BenchLink

LightProbe = Callable[[], tuple[float, str]]
"""Returns (illuminance in lx, illuminant: a CIE name such as ``D65`` or ``<CCT>K``) now."""


class Cs100aSpec(SimSpec):
    type: str = "cs100a"
    light: str | None = Field(None, description="simulator whose light it reads (default: the "
                                                "station's first light simulator)")
    reflectance: float = Field(1.0, gt=0.0, le=1.0)
    noise_pct: float = Field(0.1, ge=0.0, le=10.0, description="1-sigma noise on Lv")
    max_cd_m2: float = Field(299_000.0, gt=0.0)
    seed: int = 0


def chromaticity(illuminant: str) -> tuple[float, float]:
    """CIE 1931 xy of the spectrum the bench renders for ``illuminant`` (a CIE illuminant,
    ``<CCT>K`` or ``mono:<nm>``): what a colorimeter in front of that light reads
    (:func:`harness.sim.instruments.light_model.spectrum_xy`)."""
    from harness.sim.instruments.light_model import spectrum_xy

    return spectrum_xy(illuminant)


class Cs100aSimulator(LineSimulator):
    """Reads whatever light ``probe`` reports (the hub wires it to a light simulator)."""

    Spec: ClassVar[type[SimSpec]] = Cs100aSpec
    read_termination = b"\r\n"
    write_termination = b"\r\n"
    transport = "pty"

    def __init__(self, name: str, spec: Cs100aSpec | None = None, *, clock: Clock | None = None,
                 link: BenchLink | None = None, probe: LightProbe | None = None) -> None:
        spec = spec or Cs100aSpec()
        super().__init__(name, clock=clock, faults=FaultState(spec.faults))
        self.spec = spec
        self.serial = spec.serial or "CS100A-2291"
        self.link = link or BenchLink(None)
        self.probe: LightProbe = probe or (lambda: (0.0, "5000K"))
        self.mode = "04"
        self.measurements = 0
        self._rng = np.random.default_rng(spec.seed)
        self._xy_cache: tuple[str, tuple[float, float]] | None = None
        self._xy("5000K")  # import colour-science now, not in the first MES (about 1 s)

    def _xy(self, illuminant: str) -> tuple[float, float]:
        if self._xy_cache is None or self._xy_cache[0] != illuminant:
            self._xy_cache = (illuminant, chromaticity(illuminant))
        return self._xy_cache[1]

    def luminance(self) -> tuple[float, str]:
        """(true Lv in cd/m2, illuminant) now."""
        lux, illuminant = self.probe()
        return self.spec.reflectance * lux / math.pi, illuminant

    def handle(self, line: str) -> str | None:
        fault = self.error_fault()
        if fault is not None:
            return fault.code or "ER30"
        cmd = line.upper()
        if cmd == "MES":
            return self._measure()
        if re.fullmatch(r"MDS,(00|04|05|06|07)", cmd):
            self.mode = cmd[4:]
            return "OK00"
        if cmd == "CLE":
            return "OK00"
        return "ER00"

    def _measure(self) -> str:
        self.measurements += 1
        lv, illuminant = self.luminance()
        x, y = self._xy(illuminant)
        if self.faults.take("over_range") is not None or lv > self.spec.max_cd_m2:
            return f"OK11,{99999.999:9.3f},{x:.4f},{y:.4f}"
        lv *= 1.0 + self.spec.noise_pct / 100.0 * float(self._rng.standard_normal())
        return f"OK00,{max(lv, 0.0):9.3f},{x:.4f},{y:.4f}"

    def describe(self) -> dict[str, object]:
        lv, illuminant = self.luminance()
        return {"name": self.name, "mode": self.mode, "lv": lv, "illuminant": illuminant,
                "measurements": self.measurements}


__all__ = ["Cs100aSimulator", "Cs100aSpec", "chromaticity"]
