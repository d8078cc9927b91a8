"""Replay camera: serves the frames of recorded capture sets to the same suites.

``camera: {driver: replay, captures: DIR}`` on a station makes a run re-judge recorded data
(new limits, a new algorithm) without hardware. ``DIR`` is a capture set or a folder of them
(a run's ``captures/`` folder); frames are served in the order they were recorded, across
sets in name order. Because the sequences keep even their closed-loop probe frames, a replay
of the same suite asks for frames in the same order; with ``strict: true`` (the default) each
grab checks that the exposure the suite commanded matches the recording, and stops with a
clear error when the two drift apart rather than judging the wrong frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.capture.captureset import MANIFEST, CaptureSet, FrameRecord
from harness.devices.base import DeviceIdentity, FeatureInfo
from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.errors import CameraError, CameraTimeout, ConfigError, FeatureError
from harness.station.registry import DriverContext, register_driver


class ReplaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    captures: str
    strict: bool = True
    exposure_tolerance_pct: float = Field(0.5, ge=0.0, le=100.0)
    serial: str | None = None


def find_capture_sets(root: Path) -> list[Path]:
    """``root`` itself if it is a capture set, else every capture set below it, by name."""
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(MANIFEST))


@register_driver("camera", "replay")
class ReplayCamera:
    """A :class:`~harness.devices.protocols.Camera` whose frames come from capture sets."""

    Settings: ClassVar[type[BaseModel]] = ReplaySettings
    kind: ClassVar[str]
    driver_name: ClassVar[str]

    def __init__(self, name: str, settings: ReplaySettings, context: DriverContext) -> None:
        self.name = name
        self.settings = settings
        self.root = context.resolve_path(settings.captures)
        self.sets: list[CaptureSet] = []
        self._queue: list[tuple[CaptureSet, FrameRecord]] = []
        self._cursor = 0
        self._features: dict[str, Any] = {}
        self.streaming = False

    def open(self) -> None:
        if not self.root.exists():
            raise ConfigError("replay captures not found", source=str(self.root),
                              field=f"{self.name}.captures")
        paths = find_capture_sets(self.root)
        if not paths:
            raise ConfigError("no capture set (manifest.json) found here",
                              source=str(self.root), field=f"{self.name}.captures")
        self.sets = [CaptureSet.open(p) for p in paths]
        self._queue = [(cs, rec) for cs in self.sets for rec in cs.manifest.frames]
        first = self.sets[0].manifest
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
        cam = self.sets[0].manifest.camera if self.sets else {}
        return DeviceIdentity("camera", "replay", str(cam.get("vendor", "replay")),
                              str(cam.get("model", "replay")),
                              self.settings.serial or str(cam.get("serial", "REPLAY")),
                              str(cam.get("firmware", "")), {"captures": str(self.root)})

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
        return len(self._queue) - self._cursor

    def grab(self, n: int = 1, timeout_s: float = 5.0) -> FrameStack:
        if self.remaining < n:
            raise CameraTimeout(f"replay exhausted: {n} frame(s) asked, {self.remaining} left "
                                f"in {self.root}", device=self.name)
        batch = self._queue[self._cursor:self._cursor + n]
        if self.settings.strict:
            self._check_sync(batch[0][1])
        self._cursor += n
        frames = [cs.load(rec) for cs, rec in batch]
        meta = tuple(FrameMeta(rec.frame_id if rec.frame_id is not None else i,
                               rec.timestamp_s or 0.0, rec.exposure_us, rec.gain_db,
                               rec.temperature_c) for i, (_, rec) in enumerate(batch))
        return FrameStack.from_frames(frames, meta, batch[0][0].manifest.cfa)

    def _check_sync(self, record: FrameRecord) -> None:
        wanted = self._features.get("ExposureTime")
        recorded = record.exposure_us_set
        if wanted is None or recorded is None:
            return
        tol = self.settings.exposure_tolerance_pct / 100.0 * max(abs(recorded), 1e-9)
        if abs(float(wanted) - recorded) > tol:
            raise CameraError(
                f"replay out of sync at frame {self._cursor} ({record.role} step {record.step} "
                f"of {record.file}): the suite asked for ExposureTime {float(wanted):g} us, the "
                f"recording has {recorded:g} us", device=self.name)
