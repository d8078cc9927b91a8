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
    the host's monotonic clock.

    Incomplete buffers, two ways, because transports differ in what they hand over:

    * ``incomplete``: this frame's own buffer arrived partially and is delivered as it is (the
      simulated camera's fault, a driver that passes partial buffers on);
    * ``incomplete_discarded``: how many incomplete buffers the transport threw away while this
      frame was being fetched (GenTL through harvesters discards them inside ``fetch`` and only
      signals them, so their pixels never reach us). The frame itself is complete and is not
      marked ``incomplete``: its data are good, but the stream lost buffers just before it.

    A frame with ``incomplete`` or ``incomplete_discarded > 0`` counts as an incomplete frame;
    :meth:`FrameStack.incomplete_count` counts the incomplete buffers of a whole stack.

    ``replay_of`` is set by the replay camera only: (capture set sequence, role, group, step) of
    the recorded frame it serves, so the capture layer can check the replayed suite stores it
    as what it was.
    """

    frame_id: int
    timestamp_s: float
    exposure_us: float | None = None
    gain_db: float | None = None
    temperature_c: float | None = None
    pixel_format: str = ""
    incomplete: bool = False
    incomplete_discarded: int = 0
    replay_of: tuple[str, str, str, int] | None = None

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

    def incomplete_count(self) -> int:
        """Incomplete buffers behind this stack: partial frames delivered (``incomplete``) plus
        those the transport discarded while fetching its frames (``incomplete_discarded``)."""
        return sum(int(m.incomplete) + m.incomplete_discarded for m in self.meta)

    @classmethod
    def from_frames(cls, frames: Sequence[np.ndarray], meta: Sequence[FrameMeta],
                    cfa: str | None = None) -> FrameStack:
        return cls(np.stack(frames), tuple(meta), cfa)


__all__ = ["FrameMeta", "FrameStack"]
