"""Replay camera: serves the frames of a recorded run, checking each against the suite.

Station file: ``camera: {driver: replay, run: DIR}`` (a run's evidence folder: its journal and
``captures/``), or ``captures: DIR`` (a capture set, or a folder of them). Frames are served in
capture order (capture sets are numbered run-wide). Features come from the recorded node map
and feature ranges; what the suite sets is kept. With ``strict`` every served frame must match
what the suite commanded, field by field (see :meth:`ReplayCamera._check`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.devices.camera.pixelformats import BY_NAME
from harness.errors import CameraError, CameraTimeout, FeatureError
from harness.inputs.captureset import CaptureSet, FrameRecord
from harness.registry import DriverContext, register_driver
from harness.replay.recording import Recording

GAIN_TOLERANCE_DB = 0.05
LEVEL_TOLERANCE_PCT = 0.01
CCT_TOLERANCE = 0.01
FOCUS_TOLERANCE = 0.5


class ReplaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str | None = Field(None, description="a run's evidence folder (journal + captures)")
    captures: str | None = Field(None, description="a capture set or a folder of them")
    strict: bool = True
    exposure_tolerance_pct: float = Field(0.5, ge=0.0, le=100.0)
    serial: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ReplaySettings:
        if (self.run is None) == (self.captures is None):
            raise ValueError("give exactly one of run, captures")
        return self


@register_driver("camera", "replay")
class ReplayCamera:
    """A :class:`~harness.devices.protocols.Camera` whose frames come from a recording."""

    Settings: ClassVar[type[BaseModel]] = ReplaySettings
    kind: ClassVar[str]
    driver_name: ClassVar[str]

    def __init__(self, name: str, settings: ReplaySettings, context: DriverContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.source = settings.run if settings.run is not None else settings.captures
        self.recording: Recording | None = None
        self._features: dict[str, Any] = {}
        self.streaming = False

    @property
    def rec(self) -> Recording:
        if self.recording is None:
            raise CameraError("the replay camera is not open", device=self.name)
        return self.recording

    @property
    def sets(self) -> list[CaptureSet]:
        return self.rec.sets

    @property
    def root(self) -> Any:
        return self.rec.root

    def open(self) -> None:
        assert self.source is not None
        self.recording = Recording.shared(self.context, self.source, f"{self.name}.run")
        first = self.recording.sets[0].manifest
        self._features = dict(first.node_map)
        self._features.setdefault("ExposureTime", first.frames[0].exposure_us_set
                                  if first.frames else 1000.0)
        self._features.setdefault("Gain", 0.0)
        self._features.setdefault("Width", first.width)
        self._features.setdefault("Height", first.height)

    def close(self) -> None:
        self.streaming = False

    def safe_state(self) -> None:
        self.streaming = False

    def identity(self) -> DeviceIdentity:
        cam = self.sets[0].manifest.camera if self.recording else {}
        return DeviceIdentity("camera", "replay", str(cam.get("vendor", "replay")),
                              str(cam.get("model", "replay")),
                              self.settings.serial or str(cam.get("serial", "REPLAY")),
                              str(cam.get("firmware", "")), {"replay": str(self.source)})

    # --- features -----------------------------------------------------------------
    def get(self, feature: str) -> Any:
        if feature not in self._features:
            raise FeatureError(f"feature {feature!r} is not in the recording", device=self.name)
        return self._features[feature]

    def set(self, feature: str, value: Any) -> None:
        self._features[feature] = value

    def feature_info(self, feature: str) -> FeatureInfo:
        value = self.get(feature)
        recorded = self.sets[0].manifest.extra.get("feature_info", {}).get(feature)
        if isinstance(recorded, dict):
            known = {k: recorded[k] for k in ("type", "readable", "writable", "minimum",
                                               "maximum", "increment", "unit") if k in recorded}
            return FeatureInfo(feature, value=value, choices=tuple(recorded.get("choices") or ()),
                               **known)
        kind = "float" if isinstance(value, float) else "int" if isinstance(value, int) else "str"
        return FeatureInfo(feature, kind, value, writable=True)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, Any]:
        return dict(self._features)

    def start(self) -> None:
        self.streaming = True

    def stop(self) -> None:
        self.streaming = False

    @property
    def remaining(self) -> int:
        return self.rec.remaining

    def grab(self, n: int = 1, timeout_s: float = 5.0) -> FrameStack:
        rec = self.rec
        if rec.remaining < n:
            raise CameraTimeout(f"replay exhausted: {n} frame(s) asked, {rec.remaining} left "
                                f"in {rec.root}", device=self.name)
        batch = rec.queue[rec.cursor:rec.cursor + n]
        if self.settings.strict:
            for i, (cs, record) in enumerate(batch):
                self._check(rec.cursor + i, cs, record)
        rec.cursor += n
        rec.state.last = batch[-1][1]
        frames = [cs.load(record) for cs, record in batch]
        meta = tuple(FrameMeta(
            record.frame_id if record.frame_id is not None else i, record.timestamp_s or 0.0,
            record.exposure_us, record.gain_db, record.temperature_c,
            incomplete=record.incomplete, incomplete_discarded=record.incomplete_discarded,
            replay_of=(cs.manifest.sequence, record.role, record.group, record.step)
            if self.settings.strict else None)
            for i, (cs, record) in enumerate(batch))
        return FrameStack.from_frames(frames, meta, self._cfa(batch[0][0]))

    def _cfa(self, cs: CaptureSet) -> str | None:
        """The set's CFA, else the one of the recorded pixel format."""
        if cs.manifest.cfa is not None:
            return cs.manifest.cfa
        spec = BY_NAME.get(str(self._features.get("PixelFormat", "")))
        return spec.cfa if spec is not None else None

    def _check(self, index: int, cs: CaptureSet, record: FrameRecord) -> None:
        """What the suite commanded against what the recording shows for frame ``index``."""
        state = self.rec.state
        asked_exposure = self._features.get("ExposureTime")
        checks: list[tuple[str, Any, Any, float]] = []
        if asked_exposure is not None and record.exposure_us_set is not None:
            tol = self.settings.exposure_tolerance_pct / 100.0 * max(abs(record.exposure_us_set),
                                                                     1e-9)
            checks.append(("ExposureTime", float(asked_exposure), record.exposure_us_set, tol))
        if self._features.get("Gain") is not None and record.gain_db is not None:
            checks.append(("Gain", float(self._features["Gain"]), record.gain_db,
                           GAIN_TOLERANCE_DB))
        if state.chart is not None and record.chart is not None and state.chart != record.chart:
            self._fail(index, cs, record, "chart", state.chart, record.chart)
        if record.light_level_pct is not None and "light" in state.roles:
            level = state.level_pct if state.light_on else 0.0
            checks.append(("light level", level, record.light_level_pct, LEVEL_TOLERANCE_PCT))
        if state.cct_k is not None and record.light_cct_k is not None:
            checks.append(("light CCT", state.cct_k, record.light_cct_k,
                           CCT_TOLERANCE * record.light_cct_k))
        if state.focus is not None and record.focus_position is not None:
            checks.append(("focus position", state.focus, record.focus_position,
                           FOCUS_TOLERANCE))
        for what, asked, had, tol in checks:
            if abs(float(asked) - float(had)) > tol:
                self._fail(index, cs, record, what, asked, had)

    def _fail(self, index: int, cs: CaptureSet, record: FrameRecord, what: str, asked: Any,
              had: Any) -> None:
        shown = (lambda v: f"{v:g}") if isinstance(asked, float) else repr
        raise CameraError(
            f"replay out of sync at frame {index} ({cs.root.name}: {record.role} step "
            f"{record.step}, {record.file}): {what}: the suite asked for {shown(asked)}, the "
            f"recording has {shown(had)}", device=self.name)


__all__ = ["ReplayCamera", "ReplaySettings"]
