"""Scripted capture sequences: exposure sweep, dark and flat stacks, focus sweep, charts.

Each sequence drives devices only through their protocols (so it runs unchanged on a real
or a simulated station), waits for the light to settle after every change, records what the
station did for every frame (commanded and read-back exposure and gain, light level, meter
reading, chart, focus position, temperature) and writes the frames into a capture set before
anything analyses them. Every step is journaled through :attr:`CaptureContext.journal`.

The exposure sweep follows the EMVA 1288 Release 4.0 procedure as the reference implementation runs
it (docs/standards.md#emva-measurement-conditions): exposure-time variation with, at every step, one
bright and one dark temporal pair; bright and dark spatial stacks of L frames at the step nearest
50 % of the saturation signal (measured, not assumed, so a full well below the ADC range does not
put the spatial point on the plateau).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from harness.capture.writer import CaptureSetWriter
from harness.devices.camera.frames import FrameStack
from harness.errors import CameraError, ConfigError, FeatureError, HarnessError, MeasurementError
from harness.inputs.captureset import CFA, CaptureSet
from harness.paths import safe_component


@dataclass
class MeterPhotons:
    """Photons per pixel from a radiometer (optical power meter) in the sensor plane: the
    ``photons_per_pixel`` hook of a station that has one.

    mu_p = E A t_exp lambda / (h c) (docs/standards.md#emva-linear-model) with E the irradiance
    the meter reads at the moment of the frames, A the pixel area (``pixel_pitch_um``, from the
    spec's ``conditions.emva1288``) and lambda the narrow-band light's centre
    (``wavelength_nm``), which the meter's wavelength correction is set to. The EMVA sweep
    switches the light to that narrow band while it runs (:func:`exposure_sweep`).
    """

    meter: Any
    pixel_pitch_um: float | None
    wavelength_nm: float | None
    prepared: bool = False
    in_band: bool = False
    """Set by :func:`narrowband` while the light is in the band: outside it (white light) a
    photon count at the band's wavelength would be wrong, so :meth:`__call__` gives None."""

    def prepare(self) -> None:
        """Check the conditions and set the meter's correction wavelength (once)."""
        for name in ("pixel_pitch_um", "wavelength_nm"):
            if getattr(self, name) is None:
                raise ConfigError(f"conditions.emva1288.{name} is missing: the station has a "
                                  f"radiometer, and photons per pixel need the pixel pitch and "
                                  f"the narrow-band wavelength", field=f"conditions.emva1288."
                                                                      f"{name}")
        if not self.prepared:
            assert self.wavelength_nm is not None
            self.meter.set_wavelength(float(self.wavelength_nm))
            self.prepared = True

    def reading(self, exposure_us: float) -> tuple[float, float]:
        """(photons per pixel at ``exposure_us``, the irradiance in W/m2 read now)."""
        from harness.analysis.emva1288 import photons_per_pixel

        self.prepare()
        assert self.pixel_pitch_um is not None and self.wavelength_nm is not None
        irradiance = float(self.meter.irradiance_w_m2())
        return (photons_per_pixel(irradiance, float(self.pixel_pitch_um), exposure_us,
                                  float(self.wavelength_nm)), irradiance)

    def __call__(self, exposure_us: float) -> float | None:
        return self.reading(exposure_us)[0] if self.in_band else None


class Progress(Protocol):
    def __call__(self, done: int, total: int, what: str) -> None: ...


@dataclass
class CaptureContext:
    """The devices a sequence drives and where its evidence goes.

    ``photons_per_pixel`` maps an exposure (µs) to the mean photon count per pixel at the
    current light setting, when the station knows its irradiance (a radiometric calibration,
    or a :class:`MeterPhotons` reading a radiometer in the sensor plane); EMVA responsivity and
    QE need it, everything else does not.

    ``black_dn`` is the black level measured from dark frames by :func:`saturation_level`
    (never assumed from a register); ``counter`` numbers capture sets: contexts of one run
    share it, so sets are numbered run-wide in the order they were captured.
    """

    camera: Any
    out_dir: Path
    light: Any = None
    chart: Any = None
    focus: Any = None
    meter: Any = None
    header: dict[str, Any] = field(default_factory=dict)
    journal: Callable[[str, dict[str, Any]], None] | None = None
    progress: Progress | None = None
    settle: Callable[[], dict[str, Any] | None] | None = None
    photons_per_pixel: Callable[[float], float | None] | None = None
    grab_timeout_s: float = 10.0
    light_level_pct: float = 50.0
    saturation_dn: float | None = None
    black_dn: float | None = None
    settled_light: dict[str, Any] = field(default_factory=dict)
    """The light's state (on, level, CCT) and meter mean at the last completed settle; shared
    by the contexts of one session so an unchanged light is not waited for again."""
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_set(self, sequence: str) -> CaptureSetWriter:
        safe_component(sequence, "sequence")  # the name becomes a folder under out_dir
        number = next(self.counter)
        path = self.out_dir / f"{number:02d}-{sequence}"
        n = 1
        while path.exists():
            n += 1
            path = self.out_dir / f"{number:02d}-{sequence}-{n}"
        stack_cfa = self.header.get("cfa")
        bits = int(self.header.get("bits", 12))
        header = {k: v for k, v in self.header.items() if k not in ("cfa", "bits")}
        header.setdefault("node_map", _jsonable(self.camera.snapshot()))
        if "camera" not in header:
            header["camera"] = self.camera.identity().as_dict()
        ranges = {}
        for name in RANGED_FEATURES:
            try:
                ranges[name] = self.camera.feature_info(name).as_dict()
            except FeatureError:  # a camera without the feature: nothing to record
                continue
        header.setdefault("extra", {})["feature_info"] = _jsonable_nested(ranges)
        return CaptureSetWriter(path, sequence=sequence, cfa=stack_cfa, bits=bits, **header)

    def log(self, event: str, **payload: Any) -> None:
        if self.journal is not None:
            self.journal(event, payload)

    def tick(self, done: int, total: int, what: str) -> None:
        if self.progress is not None:
            self.progress(done, total, what)

    # --- device helpers -------------------------------------------------------------
    def wait_settled(self) -> dict[str, Any] | None:
        return self.settle() if self.settle is not None else None

    def scene(self, name: str) -> None:
        """Select a chart (``dark``, ``flat``, ``edge``, ``colour``, ``focus``, ``dotgrid``)."""
        if self.chart is not None:
            self.chart.select(name)
        elif name != "dark" and name != "flat":
            raise ConfigError(f"sequence needs a '{name}' chart but the station has no chart "
                              f"changer", field="chart")

    def light_on(self, level_pct: float | None = None) -> None:
        if self.light is None:
            return
        self.light.set_level(self.light_level_pct if level_pct is None else level_pct)
        self.light.on()
        self._settle_light()

    def dark(self) -> None:
        """Dark frames: the cap (dark chart) where there is one, else the light off."""
        if self.chart is not None and "dark" in self.chart.charts():
            self.chart.select("dark")
        if self.light is not None:
            self.light.off()
        self._settle_light()

    def _light_state(self) -> tuple[Any, ...] | None:
        if self.light is None:
            return None
        cct = None
        if callable(getattr(self.light, "cct", None)):
            with contextlib.suppress(HarnessError):
                cct = float(self.light.cct())
        return (bool(self.light.is_on()), float(self.light.level()), cct)

    def _settle_light(self) -> None:
        """Wait for the light to settle, unless nothing changed since the last settle: same
        on/off state, level and CCT, and one meter reading now within the settle tolerance of
        the mean that was judged stable then (a light switched off and on again behind the
        sequence's back fails the reading or the state and is waited for). A settle is logged
        (``light_settled``: the light's state and the trace, every reading with its time), a
        skip too (``settle_skipped``: the state, the reading and the mean it agreed with)."""
        if self.settle is None:
            return
        state = self._light_state()
        last = self.settled_light
        if state is not None and last.get("state") == state and self.meter is not None:
            reading = float(self.meter.read().value)
            mean, tolerance = float(last["mean"]), float(last["tolerance_pct"])
            if abs(reading - mean) <= tolerance / 100.0 * abs(mean):
                self.log("settle_skipped", light=list(state), meter=reading, settled_mean=mean)
                return
        result = self.wait_settled() or {}
        trace = result.get("stability") or {}
        if trace:  # the evidence that the light was steady before these frames
            self.log("light_settled", light=None if state is None else list(state), **trace)
        last.clear()
        if state is not None and "mean" in trace:
            last.update(state=state, mean=trace["mean"], tolerance_pct=trace["tolerance_pct"])

    def set_exposure(self, exposure_us: float) -> float:
        info = self.camera.feature_info("ExposureTime")
        lo = info.minimum if info.minimum is not None else exposure_us
        hi = info.maximum if info.maximum is not None else exposure_us
        value = float(min(max(exposure_us, lo), hi))
        self.camera.set("ExposureTime", value)
        return value

    def grab(self, n: int) -> FrameStack:
        return self.camera.grab(n, timeout_s=self.grab_timeout_s)

    def conditions(self) -> dict[str, Any]:
        """What the station is doing now, for the frame records."""
        out: dict[str, Any] = {}
        if self.light is not None:
            out["light_level_pct"] = float(self.light.level()) if self.light.is_on() else 0.0
            if callable(getattr(self.light, "cct", None)):
                with contextlib.suppress(HarnessError):  # a light without a settable CCT
                    out["light_cct_k"] = float(self.light.cct())
        if self.chart is not None:
            out["chart"] = self.chart.current()
        if self.focus is not None:
            out["focus_position"] = float(self.focus.position())
        if self.meter is not None:  # a failed reading stops the step (an ERROR), never None
            reading = self.meter.read()
            out["meter_lux"] = float(reading.value)
            if reading.x is not None and reading.y is not None:
                out["meter_x"], out["meter_y"] = float(reading.x), float(reading.y)
        return out


RANGED_FEATURES = ("ExposureTime", "Gain", "BlackLevel", "Width", "Height")


def _jsonable_nested(values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: _jsonable(v) if isinstance(v, dict) else v for k, v in values.items()}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """A node-map snapshot with only JSON-safe values (others as their string form)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return out


def _store(ctx: CaptureContext, writer: CaptureSetWriter, stack: FrameStack, *, role: str,
           group: str = "", step: int = 0, exposure_set: float | None = None,
           photons: float | None = None, strict: bool = True, **extra: Any) -> None:
    """Write a grabbed stack into the set with what the station did for it, and journal it.

    ``strict`` (every measurement stack): a dropped or incomplete frame is a
    :class:`CameraError` of the step; an interface burst that judges drops records them."""
    device = getattr(ctx.camera, "name", None)
    gaps = stack.frame_id_gaps()
    if gaps and strict:
        raise CameraError(f"dropped frames: frame ids jump {gaps}", device=device)
    incomplete = [m.frame_id for m in stack.meta if m.incomplete or m.incomplete_discarded]
    if incomplete and strict:
        raise CameraError(f"incomplete buffers at frame ids {incomplete} "
                          f"({stack.incomplete_count()} buffers)", device=device)
    _check_replay(writer.manifest.sequence, stack, role, group, step, device)
    cond = {**ctx.conditions(), **extra}
    stored = [writer.add(frame, role=role, group=group, step=step, exposure_us_set=exposure_set,
                         exposure_us=meta.exposure_us, gain_db=meta.gain_db, photons=photons,
                         temperature_c=meta.temperature_c, frame_id=meta.frame_id,
                         timestamp_s=meta.timestamp_s, incomplete=meta.incomplete,
                         incomplete_discarded=meta.incomplete_discarded, **cond)
              for frame, meta in stack]
    ctx.log("capture", sequence=writer.manifest.sequence, role=role, group=group, step=step,
            frames=len(stack), exposure_us=exposure_set, path=str(writer.root),
            frames_sha256=[r.sha256 for r in stored])


def _check_replay(sequence: str, stack: FrameStack, role: str, group: str, step: int,
                  device: str | None) -> None:
    """A replayed frame (``FrameMeta.replay_of``) must be stored as what it was recorded as:
    the same sequence, role, group and step, else the replay is out of sync (an ERROR naming
    the frame and the field), never a judgement of the wrong frames."""
    wanted = (sequence, role, group, step)
    for meta in stack.meta:
        if meta.replay_of is None or tuple(meta.replay_of) == wanted:
            continue
        names = ("sequence", "role", "group", "step")
        field, asked, had = next((n, a, r) for n, a, r in zip(names, wanted, meta.replay_of,
                                                             strict=True) if a != r)
        raise CameraError(f"replay out of sync at frame id {meta.frame_id}: {field}: the suite "
                          f"stores it as {asked!r}, the recording has {had!r}", device=device)


def grab_set(ctx: CaptureContext, name: str, n: int, *, role: str, group: str = "",
             strict: bool = True) -> tuple[CaptureSet, FrameStack]:
    """Grab ``n`` frames as they come into a new capture set ``name`` (a probe, an interface
    burst): every grab of a run is on record, in capture order. ``strict`` as for a
    measurement stack (a dropped or incomplete frame is an error)."""
    with ctx.new_set(name) as writer:
        stack = ctx.grab(n)
        if writer.manifest.cfa is None and stack.cfa is not None:
            # the probe: the camera tells the CFA with the frame
            writer.manifest.cfa = cast(CFA, stack.cfa)
        _store(ctx, writer, stack, role=role, group=group, strict=strict)
    return CaptureSet.open(writer.root), stack


def _level(stack: FrameStack, statistic: str = "mean") -> float:
    """Signal level of a stack's first frame: its mean (``statistic="mean"``, for flat fields)
    or its 99.5th percentile (``"high"``, for charts: the brightest patch, not the mean of a
    mostly dark frame, must stay below saturation); on a colour sensor that of its brightest
    Bayer plane (the channel that saturates first)."""
    frame = stack.frames[0]
    if stack.cfa is None or frame.ndim != 2:
        planes = [frame]
    else:
        planes = [frame[r::2, c::2] for r in (0, 1) for c in (0, 1)]
    if statistic == "high":
        return max(float(np.percentile(p[::2, ::2], 99.5)) for p in planes)
    return max(float(np.mean(p, dtype=np.float64)) for p in planes)


def _mean_fraction(stack: FrameStack, bits: int) -> float:
    return _level(stack) / float(2**bits - 1)


def _probe(ctx: CaptureContext, writer: CaptureSetWriter | None, exposure: float) -> FrameStack:
    """One frame for a closed loop; kept in the capture set (role ``probe``) as evidence and
    so that a replay of the set serves frames in exactly the order they were taken."""
    actual = ctx.set_exposure(exposure)
    stack = ctx.grab(1)
    if writer is not None:
        _store(ctx, writer, stack, role="probe", exposure_set=actual)
    return stack


def _black_level(ctx: CaptureContext) -> float:
    """The black level measured from dark frames (:func:`measure_black_level`)."""
    if ctx.black_dn is None:
        raise MeasurementError("no measured black level: the saturation_level step, which "
                               "measures it from dark frames, has not run", figure="black_dn")
    return ctx.black_dn


def black_level_register(camera: Any) -> float | None:
    """The camera's ``BlackLevel`` register, for the record beside the measured black level
    (None on a camera without the feature)."""
    try:
        return float(camera.get("BlackLevel"))
    except FeatureError:
        return None


def measure_black_level(ctx: CaptureContext, writer: CaptureSetWriter, *, exposure_us: float,
                        frames: int = 4) -> float:
    """The black level in DN: the mean of ``frames`` dark frames at ``exposure_us`` (the cap
    where the chart changer has one, else the light off), kept in the capture set (role
    ``dark``, group ``black``). Closed loops and the colour analysis subtract this measured
    offset, not a register whose units and bit depth vary between cameras."""
    if ctx.light is None and (ctx.chart is None or "dark" not in ctx.chart.charts()):
        raise MeasurementError("cannot measure the black level: the station has neither a "
                               "light to switch off nor a dark chart", figure="black_dn")
    ctx.dark()
    actual = ctx.set_exposure(exposure_us)
    stack = ctx.grab(frames)
    _store(ctx, writer, stack, role="dark", group="black", exposure_set=actual)
    return float(stack.frames.mean(dtype=np.float64))


def find_saturation_exposure(ctx: CaptureContext, *, bits: int, start_us: float,
                             max_us: float, clip_fraction: float = 0.9,
                             writer: CaptureSetWriter | None = None) -> float:
    """Exposure at which the response saturates (the knee), from doubling probes.

    Probes double the exposure from ``start_us`` until the mean reaches ``clip_fraction`` of
    full scale or stops rising (a full well below the ADC range). The knee is then estimated
    by extrapolating the linear part (the last probe still below half of the final level) to
    the final level, so the sweep ends just past saturation instead of up to two doublings
    beyond it.
    """
    black = _black_level(ctx)
    full = float(2**bits - 1)
    probes: list[tuple[float, float]] = []
    exposure = start_us
    while exposure < max_us:
        mean = _mean_fraction(_probe(ctx, writer, exposure), bits) * full
        probes.append((exposure, mean))
        if mean >= clip_fraction * full:
            break
        if len(probes) > 1 and mean < probes[-2][1] * 1.05:
            break
        exposure *= 2
    else:
        return max_us
    top = probes[-1][1] - black
    linear = [(e, m - black) for e, m in probes if 0.02 * full < m - black < 0.5 * top]
    if not linear:
        return probes[-1][0]
    e_lin, s_lin = linear[-1]
    return float(min(max_us, e_lin * top / s_lin))


def saturation_level(ctx: CaptureContext, *, start_us: float = 1000.0,
                     beyond: float = 2.0) -> CaptureSet:
    """The black level and the signal level at which the sensor saturates (ADC clip or full
    well), on a flat field: the run's first step, which every later closed loop relies on.

    First the black level from dark frames at the shortest exposure
    (:func:`measure_black_level`; the ``BlackLevel`` register is recorded beside it). Then the
    knee with doubling probes, and a frame ``beyond`` times past it; its level (brightest
    Bayer plane) is the saturation level every later closed loop targets a fraction of (kept
    in ``ctx.saturation_dn`` and in the manifest, with ``black_dn``).
    """
    bits = int(ctx.header.get("bits", 12))
    info = ctx.camera.feature_info("ExposureTime")
    with ctx.new_set("saturation_level") as writer:
        # at the shortest exposure: the offset, without dark current
        ctx.black_dn = measure_black_level(ctx, writer,
                                           exposure_us=float(info.minimum or start_us))
        writer.manifest.extra["black_dn"] = ctx.black_dn
        writer.manifest.extra["black_level_register"] = black_level_register(ctx.camera)
        ctx.scene("flat")
        ctx.light_on()
        knee = find_saturation_exposure(ctx, bits=bits, start_us=start_us,
                                        max_us=float(info.maximum or 1e6), writer=writer)
        stack = _probe(ctx, writer, min(knee * beyond, float(info.maximum or 1e6)))
        ctx.saturation_dn = _level(stack)
        writer.manifest.extra["saturation_dn"] = ctx.saturation_dn
        writer.manifest.extra["knee_exposure_us"] = knee
    return CaptureSet.open(writer.root)


def _radiometry(ctx: CaptureContext, exposure_us: float, *, dark: bool = False
                ) -> tuple[float | None, dict[str, Any]]:
    """(photons per pixel, frame extras) for a stack at ``exposure_us``: with a radiometer
    (:class:`MeterPhotons`) every stack, dark ones too, records the irradiance read now and the
    photons it means; another hook gives photons for bright stacks only."""
    hook = ctx.photons_per_pixel
    if isinstance(hook, MeterPhotons):
        photons, irradiance = hook.reading(exposure_us)
        return photons, {"irradiance_w_m2": irradiance}
    if hook is None or dark:
        return None, {}
    return hook(exposure_us), {}


@contextlib.contextmanager
def narrowband(ctx: CaptureContext, writer: CaptureSetWriter | None = None) -> Iterator[None]:
    """With a radiometer (:class:`MeterPhotons`), switch the light to the narrow band at the
    condition's wavelength for the block and back to white after it (EMVA 1288: photon counts
    need a known wavelength, FWHM <= 50 nm; docs/standards.md#emva-measurement-conditions).
    Without one, nothing changes. A light without a narrow-band mode, or a band wider than
    50 nm, is a ConfigError."""
    hook = ctx.photons_per_pixel
    if not isinstance(hook, MeterPhotons):
        yield
        return
    hook.prepare()
    light = ctx.light
    if light is None or not callable(getattr(light, "set_wavelength", None)) or \
            not getattr(getattr(light, "settings", None), "narrowband", True):
        raise ConfigError("the station has a radiometer but its light has no narrow-band mode "
                          "(set 'narrowband: true' on a light that has SOURce:WAVelength)",
                          field="light.narrowband")
    assert hook.wavelength_nm is not None
    light.set_wavelength(float(hook.wavelength_nm))
    try:
        fwhm = light.bandwidth_nm() if callable(getattr(light, "bandwidth_nm", None)) else None
        if fwhm is not None and fwhm > MAX_FWHM_NM:
            raise ConfigError(f"the light's narrow band is {fwhm:g} nm wide (FWHM); EMVA 1288 "
                              f"allows at most {MAX_FWHM_NM:g} nm", field="light.narrowband")
        radiometry = {"wavelength_nm": hook.wavelength_nm, "fwhm_nm": fwhm,
                      "pixel_pitch_um": hook.pixel_pitch_um,
                      "meter_wavelength_nm": float(hook.meter.wavelength())}
        ctx.log("narrowband", **radiometry)
        if writer is not None:
            writer.manifest.extra["radiometry"] = radiometry
        hook.in_band = True
        yield
    finally:
        hook.in_band = False
        light.set_wavelength(None)


MAX_FWHM_NM = 50.0
"""The widest narrow band EMVA 1288 accepts for photon counts (FWHM)."""


def exposure_sweep(ctx: CaptureContext, *, steps: int = 16, spatial_frames: int = 16,
                   exposure_min_us: float | None = None, exposure_max_us: float | None = None,
                   overshoot: float = 1.15) -> CaptureSet:
    """EMVA 1288 exposure-time sweep: bright and dark pairs per step, spatial stacks at ~50 %.

    Without ``exposure_max_us`` the saturation exposure is found first and the sweep runs to
    ``overshoot`` times it, so the saturation point (maximum temporal variance) lies inside.
    With a radiometer (``ctx.photons_per_pixel`` a :class:`MeterPhotons`) the sweep runs in
    the light's narrow band (:func:`narrowband`) and every stack records the irradiance read
    (``extra.irradiance_w_m2``) and the photons per pixel it means.
    """
    if steps < 4:
        raise ConfigError(f"exposure sweep needs at least 4 steps, got {steps}", field="steps")
    if spatial_frames < 2:
        raise ConfigError("spatial stacks need at least 2 frames", field="spatial_frames")
    bits = int(ctx.header.get("bits", 12))
    info = ctx.camera.feature_info("ExposureTime")
    lo = exposure_min_us or max(float(info.minimum or 10.0), 10.0)
    ctx.scene("flat")
    with ctx.new_set("exposure_sweep") as writer, narrowband(ctx, writer):
        ctx.light_on()
        if exposure_max_us is None:
            exposure_max_us = overshoot * find_saturation_exposure(
                ctx, bits=bits, start_us=max(lo, 100.0), max_us=float(info.maximum or 1e6),
                writer=writer)
        exposures = np.linspace(lo, exposure_max_us, steps)
        total = 4 * steps + 2 * spatial_frames
        done = 0
        means: list[float] = []
        for step, exposure in enumerate(exposures):
            actual = ctx.set_exposure(float(exposure))
            stack = ctx.grab(2)
            photons, extra = _radiometry(ctx, actual)
            _store(ctx, writer, stack, role="bright", group="temporal", step=step,
                   exposure_set=actual, photons=photons, extra=extra)
            means.append(float(stack.frames.mean(dtype=np.float64)))
            done += 2
            ctx.tick(done, total, f"bright step {step + 1}/{steps}")
        ctx.dark()
        for step, exposure in enumerate(exposures):
            actual = ctx.set_exposure(float(exposure))
            stack = ctx.grab(2)
            photons, extra = _radiometry(ctx, actual, dark=True)
            _store(ctx, writer, stack, role="dark", group="temporal", step=step,
                   exposure_set=actual, photons=photons, extra=extra)
            done += 2
            ctx.tick(done, total, f"dark step {step + 1}/{steps}")
        spatial_step = _half_saturation_step(means)
        exposure = ctx.set_exposure(float(exposures[spatial_step]))
        stack = ctx.grab(spatial_frames)
        photons, extra = _radiometry(ctx, exposure, dark=True)
        _store(ctx, writer, stack, role="dark", group="spatial", step=spatial_step,
               exposure_set=exposure, photons=photons, extra=extra)
        done += spatial_frames
        ctx.tick(done, total, "dark spatial stack")
        ctx.scene("flat")
        ctx.light_on()
        stack = ctx.grab(spatial_frames)
        photons, extra = _radiometry(ctx, exposure)
        _store(ctx, writer, stack, role="bright", group="spatial", step=spatial_step,
               exposure_set=exposure, photons=photons, extra=extra)
        done += spatial_frames
        ctx.tick(done, total, "bright spatial stack")
    return CaptureSet.open(writer.root)


def _half_saturation_step(means: Sequence[float]) -> int:
    """Index of the step whose signal is closest to half the maximum mean (the plateau)."""
    arr = np.asarray(means)
    base = arr[0]
    top = arr.max()
    target = base + 0.5 * (top - base)
    return int(np.argmin(np.abs(arr - target)))


def dark_stack(ctx: CaptureContext, *, frames: int = 8, exposure_us: float = 10000.0
               ) -> CaptureSet:
    """``frames`` dark frames at one exposure (hot pixels, DSNU)."""
    with ctx.new_set("dark_stack") as writer:
        ctx.dark()
        actual = ctx.set_exposure(exposure_us)
        _store(ctx, writer, ctx.grab(frames), role="dark", group="spatial", exposure_set=actual)
        ctx.tick(frames, frames, "dark stack")
    return CaptureSet.open(writer.root)


def exposure_for_level(ctx: CaptureContext, *, target_fraction: float, bits: int,
                       start_us: float, tolerance: float = 0.03, max_iter: int = 10,
                       writer: CaptureSetWriter | None = None, statistic: str = "mean"
                       ) -> float:
    """Closed loop on the mean DN: the exposure whose signal is ``target_fraction`` of the
    range from the black level to saturation.

    Saturation is full scale, or the plateau where a longer exposure stops raising the mean
    (a full well below the ADC range): the target is then taken relative to the plateau, so
    a "50 %" flat field is 50 % of what the pixel can hold, not an unreachable ADC level.
    Converges in 2-4 frames on a linear sensor.
    """
    full = float(2**bits - 1)
    black = _black_level(ctx)
    ceiling = ctx.saturation_dn or full
    exposure = start_us
    previous: tuple[float, float] | None = None
    mean = 0.0
    for _ in range(max_iter):
        stack = _probe(ctx, writer, exposure)
        actual = float(stack.meta[0].exposure_us or exposure)
        mean = _level(stack, statistic)
        if previous is not None and actual > previous[0] * 1.2 and mean < previous[1] * 1.02:
            ceiling = min(ceiling, max(mean, previous[1]))  # stopped rising: the plateau
        wanted = black + target_fraction * (ceiling - black)
        if abs(mean - wanted) <= tolerance * (wanted - black):
            return actual
        signal = max(mean - black, 1.0)
        ratio = (wanted - black) / signal
        if mean >= 0.98 * ceiling:
            ratio = min(ratio, 0.5)  # clipped: the signal says nothing, halve
        previous = (actual, mean)
        exposure = actual * float(np.clip(ratio, 0.25, 4.0))
        if math.isclose(exposure, actual, rel_tol=1e-6):
            return actual
    raise CameraError(f"flat level did not converge to {100 * target_fraction:.0f} % of the "
                      f"saturation level within {max_iter} exposures (last mean {mean:.1f} DN)")


def flat_stack(ctx: CaptureContext, *, frames: int = 8, target_fraction: float = 0.5,
               start_us: float = 1000.0) -> CaptureSet:
    """``frames`` flat-field frames at ``target_fraction`` of full scale (closed loop)."""
    bits = int(ctx.header.get("bits", 12))
    ctx.scene("flat")
    ctx.light_on()
    with ctx.new_set("flat_stack") as writer:
        exposure = exposure_for_level(ctx, target_fraction=target_fraction, bits=bits,
                                      start_us=start_us, writer=writer)
        photons = ctx.photons_per_pixel(exposure) if ctx.photons_per_pixel else None
        _store(ctx, writer, ctx.grab(frames), role="flat", group="spatial",
               exposure_set=exposure, photons=photons, extra={"target_fraction": target_fraction})
        ctx.tick(frames, frames, "flat stack")
    return CaptureSet.open(writer.root)


def focus_sweep(ctx: CaptureContext, *, positions: Sequence[float], chart: str = "edge",
                frames_per_step: int = 1, target_fraction: float = 0.7,
                start_us: float = 1000.0) -> CaptureSet:
    """One or more frames of ``chart`` at each focus position (through the actuator)."""
    if ctx.focus is None:
        raise ConfigError("focus sweep needs a focus actuator", field="focus")
    if len(positions) < 3:
        raise ConfigError("focus sweep needs at least 3 positions", field="positions")
    bits = int(ctx.header.get("bits", 12))
    ctx.scene(chart)
    ctx.light_on()
    ctx.focus.move_to(float(positions[len(positions) // 2]))
    ctx.focus.wait_settled()
    with ctx.new_set("focus_sweep") as writer:
        exposure = exposure_for_level(ctx, target_fraction=target_fraction, bits=bits,
                                      start_us=start_us, writer=writer, statistic="high")
        for step, position in enumerate(positions):
            ctx.focus.move_to(float(position))
            ctx.focus.wait_settled()
            _store(ctx, writer, ctx.grab(frames_per_step), role="focus", step=step,
                   exposure_set=exposure)
            ctx.tick(step + 1, len(positions), f"focus {position:g}")
    return CaptureSet.open(writer.root)


def chart_capture(ctx: CaptureContext, *, chart: str, frames: int = 4,
                  target_fraction: float = 0.7, illuminants: Sequence[str] = (),
                  start_us: float = 1000.0, focus_um: float | None = None) -> CaptureSet:
    """``frames`` of ``chart`` (averaged later), under each illuminant the light offers; the
    exposure puts the chart's brightest parts at ``target_fraction`` of saturation.
    ``focus_um``: move the focus actuator there first (the module's best focus); every
    frame records the position it was taken at."""
    bits = int(ctx.header.get("bits", 12))
    if focus_um is not None:
        if ctx.focus is None:
            raise ConfigError("a chart capture at a focus position needs a focus actuator",
                              field="focus")
        ctx.focus.move_to(float(focus_um))
        ctx.focus.wait_settled()
    ctx.scene(chart)
    names: list[str | None] = list(illuminants) or [None]
    with ctx.new_set(f"chart_{chart}") as writer:
        for step, illuminant in enumerate(names):
            if illuminant is not None:
                ctx.light.set_illuminant(illuminant)
            ctx.light_on()
            exposure = exposure_for_level(ctx, target_fraction=target_fraction, bits=bits,
                                          start_us=start_us, writer=writer, statistic="high")
            _store(ctx, writer, ctx.grab(frames), role=chart, step=step, exposure_set=exposure,
                   illuminant=illuminant)
            ctx.tick(step + 1, len(names), f"{chart} {illuminant or ''}".strip())
    return CaptureSet.open(writer.root)


SEQUENCES: dict[str, Callable[..., CaptureSet]] = {
    "saturation_level": saturation_level,
    "exposure_sweep": exposure_sweep,
    "dark_stack": dark_stack,
    "flat_stack": flat_stack,
    "focus_sweep": focus_sweep,
    "edge": lambda ctx, **kw: chart_capture(ctx, chart="edge", **kw),
    "colour": lambda ctx, **kw: chart_capture(ctx, chart="colour", **kw),
    "dotgrid": lambda ctx, **kw: chart_capture(ctx, chart="dotgrid", **kw),
}


def run_sequence(name: str, ctx: CaptureContext, **params: Any) -> CaptureSet:
    """Run a sequence by name (``harness capture --sequence NAME``)."""
    try:
        func = SEQUENCES[name]
    except KeyError:
        raise ConfigError(f"unknown sequence {name!r}; available: {', '.join(SEQUENCES)}",
                          field="--sequence") from None
    start = time.perf_counter()
    ctx.log("sequence_start", sequence=name, params=params)
    result = func(ctx, **params)
    ctx.log("sequence_end", sequence=name, seconds=round(time.perf_counter() - start, 3),
            frames=len(result.manifest.frames), path=str(result.root),
            frames_sha256=[r.sha256 for r in result.records()])
    return result


__all__ = ["MAX_FWHM_NM", "RANGED_FEATURES", "SEQUENCES", "CaptureContext", "MeterPhotons",
           "Progress", "black_level_register",
           "chart_capture", "dark_stack", "exposure_for_level", "exposure_sweep",
           "find_saturation_exposure", "flat_stack", "focus_sweep", "grab_set",
           "measure_black_level", "narrowband", "run_sequence", "saturation_level"]
