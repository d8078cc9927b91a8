"""A small, seeded EMVA 1288 sensor model for tests with known truth.

Per pixel and frame: photo-electrons Poisson(eta * mu_p * prnu_gain + dark_current * t), clipped
at the full well; DSNU (a fixed map, e-) and Gaussian read noise (e-) added after the well; an
optional quadratic nonlinearity; DN = K * signal + offset, quantised ONCE with ``rint`` (the
reference simulator also adds uniform dither, doubling the quantisation noise,
docs/standards.md#emva-reference-implementation),
clipped to 0 .. 2**bits - 1. Defects are injected at known coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from scipy.stats import norm

from harness.inputs.emva_descriptor import write_descriptor


@dataclass
class Sensor:
    height: int = 96
    width: int = 128
    bits: int = 12
    k_dn_per_e: float = 0.25
    qe: float = 0.5
    read_noise_e: float = 4.0
    dark_current_e_per_s: float = 0.0
    full_well_e: float = 12000.0
    offset_dn: float = 40.0
    dsnu_e: float = 2.0
    prnu: float = 0.01
    nonlinearity: float = 0.0  # relative gain change at full well: s * (1 + a * s / full_well)
    seed: int = 1
    hot: dict[tuple[int, int], float] = field(default_factory=dict)   # (r, c) -> extra dark e-/frame
    gain: dict[tuple[int, int], float] = field(default_factory=dict)  # (r, c) -> response factor
    stuck: dict[tuple[int, int], int] = field(default_factory=dict)   # (r, c) -> DN
    blink: dict[tuple[int, int], float] = field(default_factory=dict)  # (r, c) -> RTS step, e-
    column_offset_dn: dict[int, float] = field(default_factory=dict)  # col -> DN offset
    #: response of the 2x2 CFA sites (top-left, top-right, bottom-left, bottom-right)
    plane_gain: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        shape = (self.height, self.width)
        self.prnu_map = 1.0 + self.prnu * rng.standard_normal(shape)
        self.dsnu_map = self.dsnu_e * rng.standard_normal(shape)
        self.site_gain = np.ones(shape)
        if self.plane_gain is not None:
            for i, g in enumerate(self.plane_gain):
                self.site_gain[i // 2::2, i % 2::2] = g
        self.offset_map = np.full(shape, self.offset_dn)
        for col, off in self.column_offset_dn.items():
            self.offset_map[:, col] += off
        for (r, c), factor in self.gain.items():
            self.prnu_map[r, c] *= factor
        self.hot_map = np.zeros(shape)
        for (r, c), extra in self.hot.items():
            self.hot_map[r, c] = extra
        self.rng = np.random.default_rng(self.seed + 1000)

    @property
    def max_dn(self) -> int:
        return (1 << self.bits) - 1

    def frame(self, photons: float, exposure_s: float = 0.01, *,
              illumination: float = 1.0) -> np.ndarray:
        """One frame at mean photons/pixel ``photons`` (0 = dark)."""
        rng = self.rng
        lam = (self.qe * photons * illumination * self.prnu_map * self.site_gain
               + self.dark_current_e_per_s * exposure_s + self.hot_map)
        electrons = np.minimum(rng.poisson(lam).astype(np.float64), self.full_well_e)
        if self.nonlinearity:
            electrons = electrons * (1.0 + self.nonlinearity * electrons / self.full_well_e)
        signal = electrons + self.dsnu_map + self.read_noise_e * rng.standard_normal(lam.shape)
        for (r, c), step in self.blink.items():
            signal[r, c] += step * (rng.integers(0, 2) - 0.5)  # two levels, mean unchanged
        dn = np.clip(np.rint(self.k_dn_per_e * signal + self.offset_map), 0, self.max_dn)
        out = dn.astype(np.uint16)
        for (r, c), value in self.stuck.items():
            out[r, c] = value
        return out

    # ---- analytic truths -------------------------------------------------------------
    def stack(self, frames: int, photons: float = 0.0,
              exposure_s: float = 0.01) -> list[np.ndarray]:
        return [self.frame(photons, exposure_s) for _ in range(frames)]

    def defect_mask(self) -> np.ndarray:
        mask = np.zeros((self.height, self.width), bool)
        for coords in (self.hot, self.gain, self.stuck, self.blink):
            for r, c in coords:
                mask[r, c] = True
        return mask

    def true_dsnu_e(self) -> float:
        """Std of the DSNU map over the pixels without injected defects."""
        return float(np.std(self.dsnu_map[~self.defect_mask()], ddof=1))

    def true_prnu_pct(self) -> float:
        """Std / mean of the response map over the pixels without injected defects."""
        good = self.prnu_map[~self.defect_mask()]
        return float(100.0 * np.std(good, ddof=1) / np.mean(good))

    def true_saturation_e(self) -> float:
        """EMVA saturation point (maximum of the expected temporal variance) in mean e-,
        from the model with a normal approximation of the clipped Poisson signal, and the
        ADC clip expressed in electrons (read noise is added after the well, a constant). Continuous argmax, so independent of the steps."""
        gains = self.prnu_map.ravel()
        clip_e = (self.max_dn + 0.5 - self.offset_dn - self.k_dn_per_e * self.dsnu_map.ravel())
        clip_e = np.minimum(clip_e / self.k_dn_per_e, self.full_well_e)
        top = float(np.max(clip_e)) * 1.02

        def expected_var(mean_e: np.ndarray) -> np.ndarray:
            mu = mean_e[:, None] * gains[None, :]
            s = np.sqrt(mu)
            a = (clip_e - mu) / s
            phi, big_phi = norm.pdf(a), norm.cdf(a)
            m1 = mu * big_phi - s * phi + clip_e * (1 - big_phi)
            m2 = (mu**2 + s**2) * big_phi - s * (mu + clip_e) * phi + clip_e**2 * (1 - big_phi)
            return np.mean(m2 - m1**2, axis=1)

        lo, hi = 0.5 * top, top
        best = lo
        for _ in range(3):  # grid, then two finer grids around the best point
            grid = np.linspace(lo, hi, 40)
            best = float(grid[int(np.argmax(expected_var(grid)))])
            step = grid[1] - grid[0]
            lo, hi = best - step, best + step
        return best

    def photons_for_electrons(self, electrons: float) -> float:
        return electrons / self.qe


def exposure_sweep(sensor: Sensor, *, steps: int = 60, max_electrons: float | None = None,
                   exposure_s: tuple[float, float] = (0.001, 0.05), spatial_frames: int = 16,
                   spatial_step: int | None = None, flicker: float = 0.0,
                   ) -> Iterator[tuple[str, str, int, float, float | None, np.ndarray]]:
    """Yield (role, group, step, exposure_ns, photons, frame) like a capture sequence:
    per step a bright pair and a dark pair, then bright and dark spatial stacks at
    ``spatial_step`` (default: the step nearest 50 % of ``max_electrons``). The irradiance is
    constant; photons scale with exposure. ``flicker`` makes the second frame of each bright
    pair brighter by that fraction (tests the Release-4 mean-difference correction)."""
    top = max_electrons if max_electrons is not None else 1.3 * sensor.full_well_e
    t = np.linspace(exposure_s[0], exposure_s[1], steps)
    photons = sensor.photons_for_electrons(top) * t / t[-1]
    for k in range(steps):
        ns = float(t[k] * 1e9)
        yield "bright", "temporal", k, ns, float(photons[k]), sensor.frame(photons[k], t[k])
        yield ("bright", "temporal", k, ns, float(photons[k]),
               sensor.frame(photons[k], t[k], illumination=1.0 + flicker))
        yield "dark", "temporal", k, ns, None, sensor.frame(0.0, t[k])
        yield "dark", "temporal", k, ns, None, sensor.frame(0.0, t[k])
    adc_e = (sensor.max_dn - sensor.offset_dn) / sensor.k_dn_per_e
    half = 0.5 * min(top, sensor.full_well_e, adc_e)
    k = (spatial_step if spatial_step is not None
         else int(np.argmin(np.abs(photons * sensor.qe - half))))
    ns = float(t[k] * 1e9)
    for _ in range(spatial_frames):
        yield "bright", "spatial", k, ns, float(photons[k]), sensor.frame(photons[k], t[k])
    for _ in range(spatial_frames):
        yield "dark", "spatial", k, ns, None, sensor.frame(0.0, t[k])


def write_descriptor_set(folder: Path, sensor: Sensor, *, suffix: str = ".tif",
                         **sweep: object) -> Path:
    """Write a sweep as image files plus ``EMVA1288descriptor.txt`` (reference layout):
    TIFF, or 16-bit PNG with ``suffix=".png"`` (both readers read either)."""
    import cv2

    if suffix not in (".tif", ".png"):
        raise ValueError(f"suffix {suffix!r}: .tif or .png")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str, int], tuple[float, float | None, list[str]]] = {}
    for n, (role, group, step, ns, photons, frame) in enumerate(
            exposure_sweep(sensor, **sweep)):  # type: ignore[arg-type]
        name = f"{role}_{group}_{step:03d}_{n:05d}{suffix}"
        if suffix == ".png":
            cv2.imwrite(str(images / name), frame)
        else:
            tifffile.imwrite(images / name, frame)
        entry = groups.setdefault((role, group, step), (ns, photons, []))
        entry[2].append(f"images\\{name}")
    points = [(ns, photons, files) for (ns, photons, files) in groups.values()]
    return write_descriptor(folder / "EMVA1288descriptor.txt", bits=sensor.bits,
                            width=sensor.width, height=sensor.height, points=points)
