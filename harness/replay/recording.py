"""A recorded run as replay drivers read it: frames in capture order, readings, identities.

One :class:`Recording` per run folder and station, shared by the station's replay drivers
through the driver context's services, so the camera can check frames against the state the
replayed suite gave the other instruments (:class:`ReplayState`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.evidence.journal import read_journal
from harness.inputs.captureset import MANIFEST, CaptureSet, FrameRecord
from harness.registry import DriverContext

JOURNAL = "journal.jsonl"
_NUMBERED = re.compile(r"^(\d+)-")


def _order(path: Path) -> tuple[int, str]:
    """Capture sets of a run sort by their run-wide number (``07-flat_stack`` before
    ``100-edge``), then by name."""
    found = _NUMBERED.match(path.name)
    return (int(found.group(1)) if found else 1 << 30, path.name)


def find_capture_sets(root: Path) -> list[Path]:
    """``root`` itself if it is a capture set, else every capture set below it in capture
    order."""
    if (root / MANIFEST).is_file():
        return [root]
    return sorted((p.parent for p in root.rglob(MANIFEST)), key=_order)


@dataclass
class ReplayState:
    """What the replayed suite commanded the instruments to do, and the last frame served."""

    light_on: bool = False
    level_pct: float = 0.0
    cct_k: float | None = None
    chart: str | None = None
    focus: float | None = None
    output: bool = False
    band_nm: float | None = None
    radiometer_nm: float | None = None
    last: FrameRecord | None = None
    roles: set[str] = field(default_factory=set)
    """The roles replayed on this station (the camera checks only what they command)."""


@dataclass
class Recording:
    """The frames, readings and device identities of one recorded run (or capture folder)."""

    root: Path
    sets: list[CaptureSet]
    queue: list[tuple[CaptureSet, FrameRecord]]
    readings: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: ReplayState = field(default_factory=ReplayState)
    cursor: int = 0

    @classmethod
    def load(cls, root: Path, source: str) -> Recording:
        """Read a run folder (``journal.jsonl`` + ``captures/``), a folder of capture sets
        or one capture set; one-line ConfigError naming ``source`` when there is nothing."""
        if not root.exists():
            raise ConfigError("replay recording not found", source=str(root), field=source)
        captures = root / "captures" if (root / JOURNAL).is_file() else root
        paths = find_capture_sets(captures) if captures.exists() else []
        if not paths:
            raise ConfigError("no capture set (manifest.json) found here", source=str(root),
                              field=source)
        sets = [CaptureSet.open(p) for p in paths]
        recording = cls(root, sets, [(cs, rec) for cs in sets for rec in cs.manifest.frames])
        if (root / JOURNAL).is_file():
            recording._read_journal(root / JOURNAL)
        return recording

    @classmethod
    def shared(cls, context: DriverContext, path: str, source: str) -> Recording:
        """The station's one recording of ``path`` (made by the first replay driver)."""
        root = context.resolve_path(path).resolve()
        cache: dict[Path, Recording] = context.services.setdefault("replay", {})
        if root not in cache:
            cache[root] = cls.load(root, source)
        return cache[root]

    def _read_journal(self, path: Path) -> None:
        readings: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for event in read_journal(path).events:
            if event["type"] == "run_start":
                for device in event.get("devices") or ():
                    if isinstance(device, dict) and device.get("role"):
                        self.devices[str(device["role"])] = dict(device)
            elif event["type"] == "reading":
                readings[f"{event.get('role')}.{event.get('method')}"].append(
                    dict(event.get("value") or {}))
        self.readings = dict(readings)

    @property
    def remaining(self) -> int:
        return len(self.queue) - self.cursor

    def charts(self) -> tuple[str, ...]:
        """Every chart the recording shows a frame of (the wheel's charts, as far as known)."""
        return tuple(sorted({rec.chart for _, rec in self.queue if rec.chart}))

    def upcoming(self) -> FrameRecord | None:
        """The frame the camera serves next (what the station looked like then)."""
        return self.queue[self.cursor][1] if self.cursor < len(self.queue) else None

    def current(self) -> FrameRecord | None:
        """The last frame served, else the next one."""
        return self.state.last or self.upcoming()

    def identity(self, role: str) -> dict[str, Any]:
        return dict(self.devices.get(role, {}))

    def describe(self) -> str:
        return json.dumps({"root": str(self.root), "sets": len(self.sets),
                           "frames": len(self.queue)})


__all__ = ["JOURNAL", "Recording", "ReplayState", "find_capture_sets"]
