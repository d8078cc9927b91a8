"""Simulator: per-channel colour shading (chief-ray angle / IR cut) and the module link's FIFO.

Ground truth is the module file: a flat field's red/green ratio at the corner, relative to the
centre, must be the module's ``colour_shading_corner.R`` (the profile 1 + (c - 1) r^2 reaches c
at r = 1, the corner), and a burst longer than the FIFO loses exactly every (F + 1)-th frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.sim.bench import Bench
from harness.sim.camera import SimCamera
from harness.sim.module import Module, load_module
from tests_unit.test_sim_sensor import MODULES


def module_with(**changes: dict) -> Module:  # type: ignore[type-arg]
    base = load_module(MODULES / "sim-reference-small.yaml")
    data = base.model_dump(by_alias=True)
    for section, values in changes.items():
        data[section] = {**data[section], **values}
    return Module.model_validate({**data, "source": base.source})


def flat_planes(module: Module) -> dict[str, np.ndarray]:
    bench = Bench()
    bench.set_light(True, 60.0)
    bench.set_chart("flat")
    cam = SimCamera.standalone(module, seed=4, bench=bench)
    cam.set("ExposureTime", 8000.0)
    cam.start()
    frames = cam.grab(8).frames.astype(np.float64).mean(axis=0) - 64.0
    cam.close()
    return {"R": frames[0::2, 0::2], "G": frames[0::2, 1::2], "B": frames[1::2, 1::2]}


def ratio_at(planes: dict[str, np.ndarray], channel: str, where: str) -> float:
    plane, green = planes[channel], planes["G"]
    h, w = plane.shape
    box = (slice(h // 2 - 6, h // 2 + 6), slice(w // 2 - 6, w // 2 + 6)) if where == "centre" \
        else (slice(0, 6), slice(0, 6))
    return float(plane[box].mean() / green[box].mean())


def test_colour_shading_reaches_the_module_ratio_at_the_corner() -> None:
    shaded = flat_planes(module_with(optics={"colour_shading_corner": {"R": 0.8, "B": 0.9}}))
    for channel, corner in (("R", 0.8), ("B", 0.9)):
        relative = ratio_at(shaded, channel, "corner") / ratio_at(shaded, channel, "centre")
        # the 6x6 corner box sits at r ~ 0.98 (c(0.98) within 0.5 % of c(1)); the ratio of
        # two 36-pixel means over 8 frames carries ~0.5 % of shot noise and PRNU
        assert relative == pytest.approx(corner, abs=0.015), channel


def test_no_colour_shading_by_default() -> None:
    plain = flat_planes(module_with())
    for channel in ("R", "B"):
        relative = ratio_at(plain, channel, "corner") / ratio_at(plain, channel, "centre")
        assert relative == pytest.approx(1.0, abs=0.015)


@pytest.mark.parametrize("overrun", ["drop", "incomplete"])
def test_a_burst_longer_than_the_fifo_overruns_it(overrun: str) -> None:
    module = module_with(timing={"link": {"fifo_frames": 10, "overrun": overrun}})
    cam = SimCamera.standalone(module, seed=1)
    cam.start()
    short = cam.grab(10)  # fits the FIFO
    assert not short.frame_id_gaps() and short.incomplete_count() == 0
    long = cam.grab(25)  # frames 11 and 22 of the burst overrun it
    if overrun == "drop":
        assert len(long.frame_id_gaps()) == 2 and long.incomplete_count() == 0
    else:
        assert not long.frame_id_gaps()
        assert [i for i, m in enumerate(long.meta) if m.incomplete] == [10, 21]
    cam.close()
