"""Shared machinery of the qualification suites.

Run with the harness plugin::

    pytest tests_hil --station stations/sim.yaml --limits tests_hil/limits/cm12.yaml

:class:`Suite` prepares the camera once per session (highest-bit raw pixel format, 0 dB,
acquisition running), runs each capture sequence at most once per session (the flat stack
serves both the defect and the uniformity tests) with the conditions the limit spec gives,
and keeps plots as evidence.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from harness.capture.captureset import CaptureSet
from harness.capture.sequences import SEQUENCES, CaptureContext, chart_capture, run_sequence
from harness.limits import LimitSpec
from harness.pytest_plugin import hil_session_state
from harness.run_context import QualificationRun
from harness.station.station import Station

RAW_FORMATS = ("BayerRG12", "BayerGR12", "BayerGB12", "BayerBG12", "Mono12", "Mono16",
               "Mono10", "BayerRG8", "Mono8")


@dataclass
class Suite:
    """The camera, its raw format, the session's capture sets and the run's evidence."""

    station: Station
    run: QualificationRun | None
    limits: LimitSpec | None
    bits: int = 12
    cfa: str | None = None
    saturation_dn: float | None = None
    captures: dict[str, CaptureSet] = field(default_factory=dict)
    settled_light: dict[str, Any] = field(default_factory=dict)

    @property
    def camera(self) -> Any:
        return self.station.camera()

    def condition(self, sequence: str) -> dict[str, Any]:
        return self.limits.condition(sequence) if self.limits else {}

    def context(self, test_id: str) -> CaptureContext:
        settle = None
        if self.station.has("meter"):
            from harness.station.stability import meter_settle

            settle = meter_settle(self.station.device("meter"))
        level = float(self.condition("light").get("level_pct", 50.0))
        if self.run is not None:
            ctx = self.run.capture_context(test_id, self.station, bits=self.bits, cfa=self.cfa,
                                           settle=settle)
        else:  # pragma: no cover - the plugin always makes a run with --station
            raise RuntimeError("no run")
        ctx.light_level_pct = level
        ctx.saturation_dn = self.saturation_dn
        ctx.settled_light = self.settled_light
        return ctx

    def sequence(self, name: str, test_id: str, **override: Any) -> CaptureSet:
        """Run sequence ``name`` once per session with the spec's conditions."""
        key = name if not override else f"{name}:{sorted(override.items())}"
        if self.saturation_dn is None and name != "saturation_level" and self.station.has("light"):
            cs = self.sequence("saturation_level", test_id)
            self.saturation_dn = float(cs.manifest.extra["saturation_dn"])
        if key not in self.captures:
            params = {**self.condition(name), **override}
            accepted = sequence_parameters(name)
            params = {k: v for k, v in params.items() if k in accepted}
            self.captures[key] = run_sequence(name, self.context(test_id), **params)
        elif self.run is not None and self.run.evidence is not None:
            cs = self.captures[key]
            self.run.evidence.capture(test_id, [r.sha256 for r in cs.records()],
                                      capture_set=str(cs.root), sequence=name)
        return self.captures[key]

    def attach_png(self, test_id: str, png: bytes, name: str) -> None:
        if self.run is not None:
            self.run.attach(test_id, png, name)

    def attach_thumbnail(self, frame: np.ndarray, name: str) -> None:
        """A downscaled 8-bit preview in the report (the raw frame stays in its capture set)."""
        from harness.evidence.allure import attach_thumbnail

        attach_thumbnail(frame, name)

    def attach_json(self, test_id: str, data: bytes, name: str) -> None:
        if self.run is not None:
            self.run.attach(test_id, data, name, kind="data", ext="json")


def sequence_parameters(name: str) -> set[str]:
    """Keyword parameters sequence ``name`` takes (other condition keys are for the tests)."""
    func = SEQUENCES[name]
    target = getattr(func, "__wrapped__", func)
    if name in ("edge", "colour"):
        target = chart_capture
    return {p for p in inspect.signature(target).parameters if p not in ("ctx", "chart")}


def _pixel_format(camera: Any) -> str | None:
    try:
        info = camera.feature_info("PixelFormat")
    except Exception:
        return None
    for name in RAW_FORMATS:
        if name in info.choices:
            return name
    return str(info.value)


def _bits(pixel_format: str | None, default: int = 12) -> int:
    if pixel_format is None:
        return default
    digits = "".join(ch for ch in pixel_format if ch.isdigit())
    return int(digits) if digits else default


@pytest.fixture(scope="session")
def hil_suite(request: pytest.FixtureRequest, hil_station: Station) -> Iterator[Suite]:
    state = hil_session_state(request.config)
    assert state is not None
    camera = hil_station.camera()
    camera.stop()
    pixel_format = _pixel_format(camera)
    if pixel_format is not None:
        camera.set("PixelFormat", pixel_format)
    with contextlib.suppress(Exception):  # a camera without analog gain
        camera.set("Gain", 0.0)
    camera.start()
    probe = camera.grab(1, timeout_s=10.0)
    suite = Suite(hil_station, state.run, state.limit_spec, bits=_bits(pixel_format),
                  cfa=probe.cfa)
    yield suite
    camera.stop()


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> str:
    return str(request.node.nodeid)


def mean_frame(cs: CaptureSet, role: str) -> np.ndarray:
    """Mean of the frames of ``role`` in a capture set (float64)."""
    records = cs.records(role=role)
    if not records:
        raise AssertionError(f"capture set {cs.root} has no {role!r} frames")
    acc = np.zeros(cs.load(records[0]).shape, np.float64)
    for rec in records:
        acc += cs.load(rec)
    return acc / len(records)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--selftest-record", action="store_true", default=False,
                     help="store this run's self-test figures as the station's reference")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The station self-test runs only when asked for (``-m selftest``)."""
    if "selftest" in (config.getoption("markexpr") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("selftest") is None]
    dropped = [i for i in items if i.get_closest_marker("selftest") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
