"""Incomplete buffers reach the frame stack: harvesters discards them inside ``fetch`` and only
emits ``INCOMPLETE_BUFFER`` (harvesters.core.ImageAcquirer._fetch), so the driver marks the frame
delivered by that fetch (``FrameMeta.incomplete_discarded``) and ``FrameStack.incomplete_count``
sees them, as ``last_grab`` does.

The stub acquirer of test_genicam_chunks (a GenApi node map of our own behind harvesters' hooks)
gets the callback registration harvesters has: the fetch that loses buffers re-queues them and
emits the callback once per lost buffer before it returns the next complete one, as ``_fetch``
does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import genicam.gentl as gt
import numpy as np
import pytest

from harness.devices.camera.frames import FrameMeta, FrameStack
from harness.sim.camera import SimCamera
from tests_unit.test_genicam_chunks import ChunkAcquirer, _camera, _Raw
from tests_unit.test_sim_sensor import MODULES


class LossyAcquirer(ChunkAcquirer):
    """Fetch number ``k`` (1-based) loses ``lost[k]`` buffers first; ``timeouts`` fetches end in
    a timeout after losing theirs."""

    def __init__(self, lost: dict[int, int], timeouts: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.lost = lost
        self.timeouts = timeouts
        self.callbacks: dict[int, Any] = {}
        self.fetches = 0

    def add_callback(self, event: int, callback: Any) -> None:
        self.callbacks[event] = callback

    def fetch(self, *, timeout: float, is_raw: bool) -> _Raw:
        self.fetches += 1
        for _ in range(self.lost.get(self.fetches, 0)):
            self.count += 1  # the lost buffer used a frame id
            self.queue_buffer(_Raw(self.count, self))
            self.callbacks[self.Events.INCOMPLETE_BUFFER].emit(context=self)
        if self.fetches in self.timeouts:
            raise gt.TimeoutException("no complete buffer")
        return super().fetch(timeout=timeout, is_raw=is_raw)


def test_a_buffer_discarded_during_one_fetch_marks_that_frame(tmp_path: Path) -> None:
    ia = LossyAcquirer({3: 1})
    cam = _camera(tmp_path, ia, chunks=True)
    stack = cam.grab(4)
    assert [m.incomplete_discarded for m in stack.meta] == [0, 0, 1, 0]
    assert not any(m.incomplete for m in stack.meta)  # the delivered pixels are complete
    assert stack.incomplete_count() == 1
    report = cam.last_grab
    assert report is not None and report.incomplete == stack.incomplete_count() == 1
    assert report.frame_id_gaps == ((42, 44),) == tuple(stack.frame_id_gaps())
    assert not report.clean
    clean = cam.grab(2)  # the next grab starts from zero
    assert clean.incomplete_count() == 0 and cam.last_grab is not None
    assert cam.last_grab.incomplete == 0
    cam.close()


def test_buffers_lost_before_a_timeout_go_to_the_frame_the_retry_delivers(tmp_path: Path
                                                                          ) -> None:
    ia = LossyAcquirer({2: 2, 3: 1}, timeouts=frozenset({2}))
    cam = _camera(tmp_path, ia, chunks=False)
    stack = cam.grab(2, timeout_s=0.01)  # frame 2: fetch 2 loses 2 and times out, fetch 3 loses 1
    assert [m.incomplete_discarded for m in stack.meta] == [0, 3]
    assert stack.incomplete_count() == 3
    assert cam.last_grab is not None and cam.last_grab.incomplete == 3
    assert cam.last_grab.timeouts_retried == 1
    cam.close()


def test_incomplete_count_adds_partial_frames_and_discarded_buffers() -> None:
    meta = [FrameMeta(1, 0.0), FrameMeta(2, 0.1, incomplete=True),
            FrameMeta(3, 0.2, incomplete_discarded=2),
            FrameMeta(4, 0.3, incomplete=True, incomplete_discarded=1)]
    stack = FrameStack(np.zeros((4, 2, 2), np.uint16), tuple(meta))
    assert stack.incomplete_count() == 5
    assert meta[2].as_dict()["incomplete_discarded"] == 2


@pytest.mark.parametrize("every", [2, 3])
def test_sim_camera_partial_frames_count_as_incomplete_buffers(every: int) -> None:
    """The SimCamera's ``incomplete_every`` fault delivers partial frames (``incomplete``),
    never discards: the helper counts each once."""
    cam = SimCamera.standalone(str(MODULES / "small-mono.yaml"), seed=1, sensor_size=(32, 24),
                               faults={"incomplete_every": every})
    try:
        cam.start()
        stack = cam.grab(6)
    finally:
        cam.close()
    assert [m.incomplete for m in stack.meta] == [(i + 1) % every == 0 for i in range(6)]
    assert all(m.incomplete_discarded == 0 for m in stack.meta)
    assert stack.incomplete_count() == 6 // every
