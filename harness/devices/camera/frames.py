"""Frame stacks: pixel data plus per-frame metadata read back from the camera."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameMeta:
    """What the sensor actually did for one frame (read back, not what was asked).

    ``exposure_us`` and ``gain_db`` come from chunk data or a node-map read-back taken with the
    frame; ``timestamp_s`` is the device timestamp in seconds when the camera offers one, else
    the host's monotonic clock; ``incomplete`` marks a buffer the transport delivered partially.
    """

    frame_id: int
    timestamp_s: float
    exposure_us: float | None = None
    gain_db: float | None = None
    temperature_c: float | None = None
    pixel_format: str = ""
    incomplete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameStack:
    """``n`` frames as one array (n x H x W, or n x H x W x C) with their metadata.

    The pixel array is always a copy owned by the stack, never a view into a driver buffer.
    """

    frames: np.ndarray
    meta: tuple[FrameMeta, ...]
    cfa: str | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim not in (3, 4):
            raise ValueError(f"frames must be n x H x W[x C], got shape {self.frames.shape}")
        if len(self.meta) != self.frames.shape[0]:
            raise ValueError(f"{self.frames.shape[0]} frames but {len(self.meta)} metadata entries")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __iter__(self) -> Iterator[tuple[np.ndarray, FrameMeta]]:
        return iter(zip(self.frames, self.meta, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.frames.shape[1:])

    def frame_id_gaps(self) -> list[tuple[int, int]]:
        """Pairs (previous id, next id) wherever consecutive frame ids are not contiguous."""
        ids = [m.frame_id for m in self.meta]
        return [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]

    @classmethod
    def from_frames(cls, frames: Sequence[np.ndarray], meta: Sequence[FrameMeta],
                    cfa: str | None = None) -> FrameStack:
        return cls(np.stack(frames), tuple(meta), cfa)
