"""The suites' analyses of one capture set, named by its folder: what a test hands to
:meth:`~harness.run.qualification.TestSession.analysed`, so that on a multi-up station they
run in the analysis workers (:mod:`harness.run.analysis_pool`).

Each function is module-level and takes the capture set's folder and plain parameters (they
pickle); it reads and checks the frames itself, in the process that analyses them, and
returns figures or reduced arrays, never the frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harness.analysis import emva1288
from harness.analysis.accumulators import StackAccumulator, StackStats
from harness.analysis.focus import FocusResult, measure_focus_sweep
from harness.errors import MeasurementError
from harness.inputs.captureset import CaptureSet
from harness.inputs.image_input import gray_image, prepare
from harness.inputs.stack_input import reduce_capture_set_planes


def role_mean(root: Path, *, role: str) -> np.ndarray:
    """The mean (float64) of the frames of ``role`` in the capture set at ``root``."""
    cs = CaptureSet.open(root)
    records = cs.records(role=role)
    if not records:
        raise MeasurementError(f"capture set {root} has no {role!r} frames")
    acc = np.zeros(cs.load(records[0]).shape, np.float64)
    for rec in records:
        acc += cs.load(rec)
    return acc / len(records)


def role_stack_stats(root: Path, *, role: str, group: str = "spatial") -> StackStats:
    """The exact per-pixel sums of the ``role`` frames of stack ``group`` (EMVA 1288 R4.0
    §8 spatial non-uniformity data)."""
    cs = CaptureSet.open(root)
    acc = StackAccumulator()
    for rec in cs.records(role=role, group=group):
        acc.add(cs.load(rec))
    return acc.stats()


def emva1288_views(root: Path, *, cfa: str | None,
                   window: Mapping[str | None, float | None]
                   ) -> dict[str, emva1288.Emva1288Result]:
    """The EMVA 1288 analysis of an exposure sweep in its two views, from one pass over its
    frames: ``"gr"`` the photon transfer (on the Gr plane of a colour sensor, whose channels
    saturate at different exposures; the whole frame of a mono one) and ``"mosaic"`` the
    whole frame with its CFA (DSNU/PRNU per Bayer plane). ``window``: the centred window
    (fraction of the frame) each plane is reduced on (None: all of it)."""
    planes: tuple[str | None, ...] = ("Gr", None) if cfa else (None,)
    reduced = reduce_capture_set_planes(root, planes, window=dict(window))
    out = {}
    for name, plane in (("gr", "Gr" if cfa else None), ("mosaic", None)):
        data, plane_cfa = reduced[plane]
        out[name] = emva1288.measure_emva1288(data, cfa=plane_cfa)
    return out


def focus_sweep_of(root: Path, *, cfa: str | None, bits: int) -> FocusResult:
    """Best focus from a focus sweep's frames (each as its luminance image) and the actuator
    positions they record (:func:`~harness.analysis.focus.measure_focus_sweep`)."""
    cs = CaptureSet.open(root)
    records = cs.records(role="focus")
    if any(r.focus_position is None for r in records):
        raise MeasurementError(f"capture set {root}: a focus frame records no focus position",
                               figure="best_focus_um")
    frames = [gray_image(prepare(cs.load(r), "focus frame", bayer=cfa, bits=bits))
              for r in records]
    return measure_focus_sweep(frames, [float(r.focus_position)  # type: ignore[arg-type]
                                        for r in records])


__all__ = ["emva1288_views", "focus_sweep_of", "role_mean", "role_stack_stats"]
