"""The slots' analysis workers: the same figures as in the run's own process, errors with
their type, every slot's analysis started by the first slot's test (harness.run.analysis_pool,
TestSession.analysed, HilPlugin._slot_prefetch)."""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.capture.writer import CaptureSetWriter
from harness.errors import ConfigError, MeasurementError
from harness.pytestplugin.plugin import HilPlugin
from harness.run.analysis_pool import AnalysisPool, default_workers
from harness.run.capture_analyses import emva1288_views, role_mean, role_stack_stats
from harness.run.qualification import TestSession
from tests_unit.emva_synth import Sensor
from tests_unit.test_stack_input import write_emva_capture_set


def pid_and_sum(root: Path, *, scale: float = 1.0) -> tuple[int, float]:
    """The worker's pid and a figure of the capture set (module level: it pickles)."""
    return os.getpid(), scale * float(role_mean(root, role="flat").sum())


def refuse(root: Path) -> None:
    raise ConfigError("no such window", field="window", source=str(root))


def write_flat(path: Path, value: int) -> Path:
    with CaptureSetWriter(path, sequence="flat_stack") as w:
        for i in range(3):
            w.add(np.full((6, 8), value + i, np.uint16), role="flat", group="spatial",
                  exposure_us=100.0)
    return path


@pytest.fixture(scope="module")
def pool() -> Any:
    p = AnalysisPool(2)
    yield p
    p.close()


def test_worker_figures_equal_the_in_process_ones(tmp_path: Path, pool: AnalysisPool) -> None:
    sweep = write_emva_capture_set(tmp_path / "sweep", Sensor(height=48, width=64, seed=3),
                                   cfa="RGGB", steps=8, spatial_frames=4)
    flat = write_flat(tmp_path / "flat", 100)
    window = {"Gr": None, None: None}
    here = emva1288_views(sweep, cfa="RGGB", window=window)
    there = pool.submit(emva1288_views, sweep, cfa="RGGB", window=window).result()
    for view in ("gr", "mosaic"):
        assert there[view].system_gain_dn_per_e == here[view].system_gain_dn_per_e
        assert there[view].temporal_dark_noise_e == here[view].temporal_dark_noise_e
    assert np.array_equal(pool.submit(role_mean, flat, role="flat").result(),
                          role_mean(flat, role="flat"))
    stats = pool.submit(role_stack_stats, flat, role="flat").result()
    assert stats.frames == 3 and np.array_equal(stats.sum_img,
                                                role_stack_stats(flat, role="flat").sum_img)
    pid, total = pool.submit(pid_and_sum, flat, scale=2.0).result()
    assert pid != os.getpid() and total == 2.0 * 101.0 * 48


def test_a_worker_error_keeps_its_type_and_fields(tmp_path: Path, pool: AnalysisPool) -> None:
    with pytest.raises(ConfigError, match="no such window") as info:
        pool.submit(refuse, tmp_path).result()
    assert info.value.field == "window"
    with pytest.raises(MeasurementError, match="no 'dark' frames"):
        pool.submit(role_mean, write_flat(tmp_path / "f", 1), role="dark").result()


def test_pool_sizes_and_bad_size() -> None:
    assert default_workers(1) == 1
    assert 1 <= default_workers(8) <= (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="at least one worker"):
        AnalysisPool(0)


# -- the plugin's prefetch, on stand-ins for the slots' runs and capture sessions ----------


@dataclass
class FakeCaptureSet:
    root: Path


@dataclass
class FakeSession:
    sets: dict[str, FakeCaptureSet]

    def capture_of(self, name: str) -> FakeCaptureSet | None:
        return self.sets.get(name)


@dataclass
class FakeRun:
    slot: str
    results: dict[str, Any] = field(default_factory=dict)
    prefetch: Any = None
    views: list[str] = field(default_factory=list)

    def view(self, test_id: str) -> Any:
        self.views.append(test_id)
        return TestSession(self, None, test_id)  # type: ignore[arg-type]


@dataclass
class FakeCapture:
    sessions: dict[str, FakeSession]
    errors: dict[str, BaseException] = field(default_factory=dict)

    @property
    def live(self) -> list[str]:
        return [s for s in self.sessions if s not in self.errors]


@dataclass
class FakeSettings:
    analysis_workers: int | None = None


@dataclass
class FakeConfig:
    settings: FakeSettings = field(default_factory=FakeSettings)


def plugin_with_slots(tmp_path: Path, workers: int | None = None) -> Any:
    roots = {s: write_flat(tmp_path / s, 10 * (i + 1)) for i, s in enumerate("ABCD")}
    plugin = object.__new__(HilPlugin)
    plugin.slots = ("A", "B", "C", "D")
    plugin.station_config = FakeConfig(FakeSettings(workers))
    plugin.refused = {"D": ConfigError("label mismatch")}
    plugin.analysis_pool = None
    plugin.runs = {s: FakeRun(s) for s in "ABCD"}
    plugin.slot_capture = FakeCapture({s: FakeSession({"flat_stack": FakeCaptureSet(r)})
                                       for s, r in roots.items()},
                                      errors={"D": ConfigError("label mismatch")})
    plugin.captured = []
    plugin._slot_sequence = lambda slot, name, test_id, override: (  # type: ignore[method-assign]
        plugin.captured.append((slot, name, test_id)) or plugin.slot_capture.sessions[slot]
        .capture_of(name))
    return plugin


def test_the_first_slot_starts_every_live_slots_analysis_in_the_workers(tmp_path: Path) -> None:
    plugin = plugin_with_slots(tmp_path)
    try:
        plugin._slot_prefetch("B", "sum", "flat_stack", pid_and_sum,
                              lambda s: {"scale": {"A": 1.0, "B": 2.0, "C": 3.0}[s.run.slot]},
                              "tests_hil/test_x.py::test_y[B]")
        assert plugin.captured == [("B", "flat_stack", "tests_hil/test_x.py::test_y[B]")]
        runs = plugin.runs
        assert all(isinstance(runs[s].results["sum"], Future) for s in "ABC")
        assert "sum" not in runs["D"].results  # refused: its own test raises its error
        # each slot's parameters from its own session, under its own test id
        assert runs["A"].views == ["tests_hil/test_x.py::test_y[A]"]
        for i, (slot, scale) in enumerate((("A", 1.0), ("B", 2.0), ("C", 3.0))):
            session = TestSession(runs[slot], None, f"t[{slot}]")  # type: ignore[arg-type]
            pid, total = session.analysed("sum", "flat_stack", pid_and_sum)
            assert pid != os.getpid() and total == scale * (10 * (i + 1) + 1) * 48
            assert runs[slot].results["sum"] == (pid, total)  # the future replaced by its value
        # a second ask starts nothing new
        plugin._slot_prefetch("A", "sum", "flat_stack", pid_and_sum, None, "t[A]")
        assert plugin.analysis_pool.submitted == 3
    finally:
        plugin.analysis_pool.close()


def test_analysis_workers_zero_analyses_in_the_run_s_own_process(tmp_path: Path) -> None:
    plugin = plugin_with_slots(tmp_path, workers=0)
    plugin._slot_prefetch("A", "sum", "flat_stack", pid_and_sum, None, "t[A]")
    assert plugin.analysis_pool is None
    assert plugin.runs["A"].results["sum"] == (os.getpid(), 11.0 * 48)
    assert "sum" not in plugin.runs["B"].results


def test_a_slot_whose_parameters_fail_is_left_to_its_own_test(tmp_path: Path) -> None:
    plugin = plugin_with_slots(tmp_path)

    def params(session: TestSession) -> dict[str, float]:
        if session.run.slot == "C":
            raise ConfigError("no CFA", field="cfa")
        return {}

    try:
        plugin._slot_prefetch("A", "sum", "flat_stack", pid_and_sum, params, "t[A]")
        assert "sum" in plugin.runs["B"].results and "sum" not in plugin.runs["C"].results
        with pytest.raises(ConfigError, match="no CFA"):
            plugin._slot_prefetch("C", "sum", "flat_stack", pid_and_sum, params, "t[C]")
    finally:
        plugin.analysis_pool.close()


def test_without_slots_analysed_runs_here_once(tmp_path: Path) -> None:
    flat = write_flat(tmp_path / "flat", 5)
    calls: list[str] = []

    @dataclass
    class OneRun:
        results: dict[str, Any] = field(default_factory=dict)
        prefetch: Any = None
        sequencer: Any = None

    class OneSession:
        def sequence(self, name: str, test_id: str = "", **override: Any) -> Any:
            calls.append(name)
            return FakeCaptureSet(flat)

    session = TestSession(OneRun(), OneSession(), "t")  # type: ignore[arg-type]
    for _ in range(2):
        pid, total = session.analysed("sum", "flat_stack", pid_and_sum, lambda s: {"scale": 1.0})
        assert pid == os.getpid() and total == 6.0 * 48
    assert calls == ["flat_stack"]


@pytest.mark.parametrize(("setting", "value"), [
    ("analysis_workers", "-1"), ("analysis_workers", "two"), ("analysis_workers", "1.5"),
    ("shared_focus_step_um", "0"), ("shared_focus_step_um", "-1"),
    ("shared_focus_step_um", ".nan"),
])
def test_a_bad_analysis_or_focus_setting_is_a_one_line_load_error(tmp_path: Path, setting: str,
                                                                  value: str) -> None:
    from harness.station.schema import load_station_file

    path = tmp_path / "st.yaml"
    path.write_text(f"id: st-1\nlock_dir: {tmp_path}\nsettings: {{{setting}: {value}}}\n")
    with pytest.raises(ConfigError) as err:
        load_station_file(path)
    assert f"settings.{setting}" in str(err.value) and "\n" not in str(err.value)
    assert str(path) in str(err.value)
