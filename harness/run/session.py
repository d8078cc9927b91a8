"""The capture session: the one way a run (or ``harness capture --sequence``) takes frames.

A :class:`CaptureSession` prepares the camera once (highest-bit raw pixel format, 0 dB gain
read back, acquisition running, a probe frame for the CFA), builds every
:class:`~harness.capture.sequences.CaptureContext` of the run (the only place one is built
from a station), and runs each capture sequence at most once per run with the conditions of
the limit spec. Rules it keeps for every caller:

* before any other sequence on a station with a light, the ``saturation_level`` step runs
  once: it measures the black level from dark frames and the saturation level, which every
  closed loop uses (there is no second rule elsewhere);
* capture sets are numbered run-wide in the order they were captured, and every grab of the
  run (the probe included) lands in a capture set;
* every event a sequence emits (set captured, sequence start and end, a settle skipped) and
  every fact that qualifies the figures (a camera without a Gain feature) reaches the
  ``events`` hook, which a qualification run writes to its journal;
* on a station with a radiometer (an optical power meter in the sensor plane), photons per
  pixel come from its irradiance (:class:`~harness.capture.sequences.MeterPhotons`, with the
  pixel pitch and narrow-band wavelength of the spec's ``conditions.emva1288``), and the EMVA
  sweep runs in the light's narrow band;
* a sequence parameter the sequence does not take is dropped from the spec's conditions (they
  also carry the tests' own settings), but a parameter it needs and nobody gave is a
  :class:`~harness.errors.ConfigError` naming the spec's section.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.capture.sequences import (
    SEQUENCES,
    CaptureContext,
    MeterPhotons,
    Progress,
    chart_capture,
    grab_set,
    run_sequence,
)
from harness.devices.camera.frames import FrameStack
from harness.devices.camera.pixelformats import BY_NAME
from harness.errors import CameraError, ConfigError, FeatureError
from harness.inputs.captureset import CaptureSet

#: Raw pixel formats in order of preference (most bits, Bayer before mono).
RAW_FORMATS = ("BayerRG16", "BayerGR16", "BayerGB16", "BayerBG16", "BayerRG12", "BayerGR12",
               "BayerGB12", "BayerBG12", "Mono16", "Mono12", "BayerRG10", "BayerGR10",
               "BayerGB10", "BayerBG10", "Mono10", "BayerRG8", "BayerGR8", "BayerGB8",
               "BayerBG8", "Mono8")
PRE_STEP = "saturation_level"
GAIN_TOLERANCE_DB = 0.05


class EventSink(Protocol):
    """Where a session's events go: ``(test_id, event, payload)``; ``event`` is ``capture``,
    ``note``, or a sequence event (``sequence_start``, ``sequence_end``, ...)."""

    def __call__(self, test_id: str, event: str, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class CameraSetup:
    """How the session left the camera: raw format, bits, CFA and gain read back."""

    pixel_format: str | None
    bits: int
    cfa: str | None
    gain_db: float | None


def sequence_parameters(name: str) -> tuple[set[str], set[str]]:
    """(every keyword parameter, the required ones) of sequence ``name``."""
    if name not in SEQUENCES:
        raise ConfigError(f"unknown sequence {name!r}; available: {', '.join(SEQUENCES)}",
                          field="sequence")
    func = SEQUENCES[name]
    charts = ("edge", "colour", "dotgrid")
    target = chart_capture if name in charts else getattr(func, "__wrapped__", func)
    params = {p.name: p for p in inspect.signature(target).parameters.values()
              if p.name not in ("ctx", "chart")}
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
    return set(params), required


def _bits_of(pixel_format: str | None, fallback: int) -> int:
    spec = BY_NAME.get(pixel_format or "")
    return spec.bits if spec is not None else fallback


@dataclass
class CaptureSession:
    """The captures of one run on one station (see the module docstring)."""

    station: Any
    out_dir: Path
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    events: EventSink | None = None
    progress: Progress | None = None
    settle_factory: Callable[[Any], Callable[[], dict[str, Any] | None]] | None = None
    setup: CameraSetup | None = None
    saturation_dn: float | None = None
    black_dn: float | None = None
    captures: dict[str, CaptureSet] = field(default_factory=dict)
    settled_light: dict[str, Any] = field(default_factory=dict)
    _photons: MeterPhotons | None = None
    _counter: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def camera(self) -> Any:
        return self.station.camera()

    def condition(self, sequence: str) -> dict[str, Any]:
        """The spec's test conditions for ``sequence`` (or a test's own section)."""
        return dict(self.conditions.get(sequence, {}))

    def _emit(self, test_id: str, event: str, payload: dict[str, Any]) -> None:
        if self.events is not None:
            self.events(test_id, event, payload)

    # -- the camera -----------------------------------------------------------------------

    def prepare(self, test_id: str = "") -> CameraSetup:
        """Raw format, 0 dB (read back), acquisition running, one probe frame (kept in a
        capture set) for the CFA; once per session."""
        if self.setup is not None:
            return self.setup
        camera = self.camera
        camera.stop()
        pixel_format = self._raw_format(camera)
        gain = self._zero_gain(camera, test_id)
        camera.start()
        ctx = self._context(test_id, bits=_bits_of(pixel_format, 16), cfa=None)
        _, stack = grab_set(ctx, "camera_probe", 1, role="probe")
        bits = _bits_of(pixel_format, 8 if stack.frames.dtype.itemsize == 1 else 16)
        self.setup = CameraSetup(pixel_format, bits, stack.cfa, gain)
        return self.setup

    @staticmethod
    def _raw_format(camera: Any) -> str | None:
        try:
            info = camera.feature_info("PixelFormat")
        except FeatureError:
            return None  # a camera with one fixed format
        for name in RAW_FORMATS:
            if name in info.choices:
                camera.set("PixelFormat", name)
                return name
        return str(info.value)

    def _zero_gain(self, camera: Any, test_id: str) -> float | None:
        """Gain 0 dB, read back: the figures of the spec are "at 0 dB". A camera without a
        Gain feature is recorded as a fact; a set that fails or does not hold is an ERROR."""
        try:
            camera.feature_info("Gain")
        except FeatureError:
            self._emit(test_id, "note", {
                "message": "the camera has no Gain feature: every figure is at its fixed gain",
                "facts": {"gain_db": None}})
            return None
        camera.set("Gain", 0.0)
        back = float(camera.get("Gain"))
        if abs(back) > GAIN_TOLERANCE_DB:
            raise CameraError(f"Gain set to 0 dB reads back {back:g} dB",
                              device=getattr(camera, "name", None))
        return back

    # -- contexts and sequences -----------------------------------------------------------

    def _context(self, test_id: str, *, bits: int, cfa: str | None) -> CaptureContext:
        station = self.station

        def device(role: str) -> Any:
            return station.device(role) if station.has(role) else None

        def journal(event: str, payload: dict[str, Any]) -> None:
            self._emit(test_id, event, payload)

        settle = None
        if station.has("meter"):
            if self.settle_factory is not None:
                settle = self.settle_factory(station.device("meter"))
            else:
                from harness.station.stability import station_meter_settle

                settle = station_meter_settle(station.device("meter"),
                                              getattr(station, "config", None))
        header = {"station": {"id": station.id, "site": getattr(station.config, "site", "")},
                  "bits": bits, "cfa": cfa,
                  "instruments": {r: d.identity().as_dict() for r, d in station.devices.items()
                                  if not r.startswith("camera")}}
        ctx = CaptureContext(camera=self.camera, out_dir=self.out_dir, light=device("light"),
                             chart=device("chart"), focus=device("focus"),
                             meter=device("meter"), header=header, journal=journal,
                             progress=self.progress, settle=settle,
                             settled_light=self.settled_light, counter=self._counter)
        ctx.light_level_pct = float(self.condition("light").get("level_pct", 50.0))
        if station.has("radiometer"):
            ctx.photons_per_pixel = self._meter_photons(station.device("radiometer"))
        ctx.saturation_dn = self.saturation_dn
        ctx.black_dn = self.black_dn
        return ctx

    def _meter_photons(self, meter: Any) -> MeterPhotons:
        """The session's one :class:`MeterPhotons` (the meter's wavelength is set once); a
        missing ``pixel_pitch_um`` or ``wavelength_nm`` is an error of the EMVA sweep only."""
        if self._photons is None or self._photons.meter is not meter:
            cond = self.condition("emva1288")

            def number(name: str) -> float | None:
                value = cond.get(name)
                if value is None:
                    return None
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not value > 0:
                    raise ConfigError(f"conditions.emva1288.{name} must be a positive number, "
                                      f"got {value!r}", field=f"conditions.emva1288.{name}")
                return float(value)

            self._photons = MeterPhotons(meter, number("pixel_pitch_um"),
                                         number("wavelength_nm"))
        return self._photons

    def context(self, test_id: str) -> CaptureContext:
        """A capture context for ``test_id`` with the session's camera setup and levels."""
        setup = self.prepare(test_id)
        return self._context(test_id, bits=setup.bits, cfa=setup.cfa)

    def parameters(self, name: str, override: Mapping[str, Any]) -> dict[str, Any]:
        """The spec's conditions for sequence ``name`` overridden by ``override``, keeping
        what the sequence takes; a required parameter nobody gave is a ConfigError."""
        accepted, required = sequence_parameters(name)
        unknown = sorted(set(override) - accepted)
        if unknown:
            raise ConfigError(f"{name} takes no parameter {unknown[0]!r}; it takes: "
                              f"{', '.join(sorted(accepted))}", field="sequence")
        params = {k: v for k, v in {**self.condition(name), **override}.items()
                  if k in accepted}
        missing = sorted(required - set(params))
        if missing:
            raise ConfigError(f"sequence {name} needs {', '.join(missing)}: give "
                              f"{'it' if len(missing) == 1 else 'them'} in the limit spec's "
                              f"conditions.{name}", field=f"conditions.{name}")
        return params

    def ensure_levels(self, test_id: str) -> None:
        """Run the saturation pre-step once (black level and saturation level) on a station
        with a light."""
        if self.saturation_dn is None and self.station.has("light"):
            self._run(PRE_STEP, test_id, {})

    @staticmethod
    def _key(name: str, override: Mapping[str, Any]) -> str:
        return name if not override else f"{name}:{sorted(override.items())}"

    def capture_of(self, name: str, override: Mapping[str, Any] | None = None
                   ) -> CaptureSet | None:
        """The capture set sequence ``name`` (with ``override``) made in this session, if it
        ran (nothing journaled: a look, not a use)."""
        return self.captures.get(self._key(name, override or {}))

    def captured(self, name: str, override: Mapping[str, Any]) -> bool:
        """True when sequence ``name`` with ``override`` already ran in this session."""
        return self._key(name, override) in self.captures

    def _run(self, name: str, test_id: str, override: Mapping[str, Any]) -> CaptureSet:
        key = self._key(name, override)
        if key in self.captures:
            cs = self.captures[key]
            self._emit(test_id, "capture", {"frames_sha256": [r.sha256 for r in cs.records()],
                                            "path": str(cs.root), "sequence": name,
                                            "reused": True})
            return cs
        params = self.parameters(name, override)
        cs = run_sequence(name, self.context(test_id), **params)
        self.captures[key] = cs
        if name == PRE_STEP:
            self.saturation_dn = float(cs.manifest.extra["saturation_dn"])
            self.black_dn = float(cs.manifest.extra["black_dn"])
        return cs

    def sequence(self, name: str, test_id: str = "", **override: Any) -> CaptureSet:
        """Run sequence ``name`` (once per session for the same overrides) and return its
        capture set; the saturation pre-step runs first where the station has a light."""
        self.ensure_levels(test_id)
        return self._run(name, test_id, override)

    def grab(self, name: str, n: int, test_id: str = "", *, role: str = "grab",
             strict: bool = True) -> tuple[CaptureSet, FrameStack]:
        """``n`` frames as they come (no scene or light change) into a capture set of their
        own, so that every grab of a run is on record; returns the set and the stack
        (``strict=False``: dropped or incomplete frames are kept for a test to judge)."""
        return grab_set(self.context(test_id), name, n, role=role, strict=strict)

    def stop(self) -> None:
        """Stop acquisition (the station's safe state does the rest)."""
        if self.setup is not None:
            self.camera.stop()


__all__ = ["PRE_STEP", "RAW_FORMATS", "CameraSetup", "CaptureSession", "EventSink",
           "sequence_parameters"]
