"""Shadows of particles (blemishes) on the cover glass / IR filter in front of the sensor.

A particle of diameter a at distance d in front of the pixels sits in the converging cone of
light that reaches each pixel from the exit pupil; at the particle's plane that cone is a disc of
diameter D = d / N (N the f-number; geometric optics, a cone of half-angle atan(1/2N) with the
chief ray taken normal to the sensor). A pixel at distance s from the point below the particle
loses the fraction of its cone the particle covers:

    depth(s) = A(s; a/2, D/2) / (pi D^2 / 4),

A(s; r1, r2) the overlap area of two discs of radii r1, r2 whose centres are s apart: the
shadow is the particle's shape convolved with the pupil's disc, of depth (a/D)^2 in its centre
(particle area / shadow area; 1, opaque, when a >= D) and of diameter about D + a. Diffraction
is ignored (a dust shadow's Fresnel number a^2 / (lambda d) is ~1-5: its edges are a little
softer in reality). The shadow multiplies the irradiance of every image, the flat field included
(:meth:`harness.sim.sensor.SensorModel`); the scene's distortion does not move it (it is made
behind the lens). The truth (:func:`particle_shadows`) is this profile: the centre contrast
100 depth(0) % and the diameter at half that contrast (FWHM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq

from harness.sim.module import Module, Particle


def overlap_area(s: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Area common to two discs of radii r1, r2 with centres ``s`` apart (elementwise)."""
    s = np.asarray(s, dtype=np.float64)
    small, big = min(r1, r2), max(r1, r2)
    out = np.zeros_like(s)
    inside = s <= big - small
    out[inside] = math.pi * small**2
    part = (s > big - small) & (s < big + small)
    d = s[part]
    c1 = np.clip((d**2 + r1**2 - r2**2) / (2.0 * d * r1), -1.0, 1.0)
    c2 = np.clip((d**2 + r2**2 - r1**2) / (2.0 * d * r2), -1.0, 1.0)
    kite = np.sqrt(np.clip((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2),
                           0.0, None))
    out[part] = r1**2 * np.arccos(c1) + r2**2 * np.arccos(c2) - 0.5 * kite
    return out


@dataclass(frozen=True)
class ParticleShadow:
    """One particle's shadow on the sensor (pixels; centre in pixel indices: pixel centres at
    integer coordinates, as the analyses report)."""

    x_px: float
    y_px: float
    particle_px: float
    """the particle's own diameter a / pitch"""
    pupil_px: float
    """the pupil disc's diameter at the particle, D = d / N, over the pitch"""
    fwhm_px: float
    contrast: float
    """depth at the centre, 0..1 (1 - transmission)"""

    def depth(self, s_px: np.ndarray) -> np.ndarray:
        """Fraction of the light lost at distance ``s_px`` pixels from the centre."""
        area = math.pi * self.pupil_px**2 / 4.0
        return overlap_area(np.asarray(s_px), self.particle_px / 2.0, self.pupil_px / 2.0) / area

    @property
    def reach_px(self) -> float:
        """Radius beyond which the shadow is zero."""
        return (self.particle_px + self.pupil_px) / 2.0


def shadow_of(particle: Particle, f_number: float, pitch_um: float) -> ParticleShadow:
    """The shadow a particle casts (see the module docstring)."""
    a = particle.diameter_um / pitch_um
    d = particle.distance_um / f_number / pitch_um
    probe = ParticleShadow(particle.x_px, particle.y_px, a, d, 0.0, 0.0)
    contrast = float(probe.depth(np.array([0.0]))[0])
    half = brentq(lambda s: float(probe.depth(np.array([s]))[0]) - contrast / 2.0,
                  0.0, probe.reach_px)
    return ParticleShadow(particle.x_px, particle.y_px, a, d, 2.0 * half, contrast)


def particle_shadows(module: Module) -> tuple[ParticleShadow, ...]:
    """The shadows of the module's particles, in the order of the module file."""
    o = module.optics
    return tuple(shadow_of(p, o.f_number, module.sensor.pixel_pitch_um) for p in o.particles)


@lru_cache(maxsize=8)
def _patches(particles: tuple[Particle, ...], f_number: float, pitch_um: float
             ) -> tuple[tuple[int, int, np.ndarray], ...]:
    """(row0, col0, transmission) of each shadow's bounding window, float32 (made once)."""
    out = []
    for p in particles:
        sh = shadow_of(p, f_number, pitch_um)
        reach = sh.reach_px + 1.0
        r0, c0 = math.floor(sh.y_px - reach), math.floor(sh.x_px - reach)
        r1, c1 = math.ceil(sh.y_px + reach) + 1, math.ceil(sh.x_px + reach) + 1
        y = np.arange(r0, r1, dtype=np.float64)[:, None] - sh.y_px
        x = np.arange(c0, c1, dtype=np.float64)[None, :] - sh.x_px
        out.append((r0, c0, (1.0 - sh.depth(np.hypot(x, y))).astype(np.float32)))
    return tuple(out)


def apply_shadows(module: Module, out: np.ndarray, rows: slice, cols: slice) -> None:
    """Multiply ``out`` (the window ``rows`` x ``cols`` of the sensor) by the particles'
    shadow transmission, in place."""
    o = module.optics
    for r0, c0, patch in _patches(o.particles, o.f_number, module.sensor.pixel_pitch_um):
        a0, a1 = max(rows.start, r0), min(rows.stop, r0 + patch.shape[0])
        b0, b1 = max(cols.start, c0), min(cols.stop, c0 + patch.shape[1])
        if a0 < a1 and b0 < b1:
            out[a0 - rows.start:a1 - rows.start, b0 - cols.start:b1 - cols.start] *= \
                patch[a0 - r0:a1 - r0, b0 - c0:b1 - c0]


__all__ = ["ParticleShadow", "apply_shadows", "overlap_area", "particle_shadows", "shadow_of"]
