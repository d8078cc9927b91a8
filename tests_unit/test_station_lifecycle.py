"""Station lifecycle: open order, safe state in reverse on every exit path, the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.devices import fakes
from harness.errors import Aborted, DeviceError, StationLocked
from harness.station.lock import StationLock
from harness.station.station import Station, sigterm_aborts

ORDER = ["power", "light", "meter", "focus", "chart", "camera"]


def station_file(tmp_path: Path, *, fail: dict[str, str] | None = None,
                 record: Path | None = None, station_id: str = "life") -> Path:
    fail = fail or {}
    lines = [f"id: {station_id}", f"lock_dir: {tmp_path / 'locks'}"]
    for role in ORDER:
        extra = f", fail_on: [{fail[role]}]" if role in fail else ""
        rec = f", record_to: {record}" if record else ""
        lines.append(f"{role}: {{driver: fake, serial: {role.upper()}-1{extra}{rec}}}")
    path = tmp_path / f"{station_id}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    fakes.EVENTS.clear()


def safe_states() -> list[str]:
    return [e.split(":")[0] for e in fakes.EVENTS if e.endswith(":safe_state")]


def test_opens_in_dependency_order_and_safes_in_reverse(tmp_path: Path) -> None:
    with Station.load(station_file(tmp_path)) as station:
        assert list(station.devices) == ORDER
    opens = [e.split(":")[0] for e in fakes.EVENTS if e.endswith(":open")]
    assert opens == ORDER
    assert safe_states() == ORDER[::-1]
    closes = [e.split(":")[0] for e in fakes.EVENTS if e.endswith(":close")]
    assert closes == ORDER[::-1]
    # safe state comes before close for every device
    assert fakes.EVENTS.index("power:safe_state") < fakes.EVENTS.index("camera:close")


def test_a_section_owner_registers_the_service_the_station_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower floor's section brings a service (as ``bench:`` and ``simulators:`` do): the
    station starts it before the devices, hands it to them, makes it safe after them and stops
    it last; a builder that returns None starts nothing."""
    from harness import registry

    class Rig:
        def __init__(self, arm: str, services: dict[str, object]) -> None:
            self.arm, self.seen = arm, dict(services)

        def safe_state(self) -> None:
            fakes.EVENTS.append("rig:safe_state")

        def close(self) -> None:
            fakes.EVENTS.append("rig:close")

    def start_rig(section: dict[str, str], services: dict[str, object], config: object) -> Rig:
        fakes.EVENTS.append("rig:start")
        return Rig(section["arm"], services)

    monkeypatch.setitem(registry._sections, "rig", lambda doc, raw: raw)
    monkeypatch.setitem(registry._sections, "idle", lambda doc, raw: raw)
    monkeypatch.setitem(registry._services, "rig", start_rig)
    monkeypatch.setitem(registry._services, "idle", lambda section, services, config: None)
    path = station_file(tmp_path)
    path.write_text(path.read_text() + "rig: {arm: left}\nidle: {}\n")
    with Station.load(path) as station:
        assert list(station.services) == ["rig"] and station.services["rig"].arm == "left"
        assert station.bench is None and station.simulators is None
    assert fakes.EVENTS[0] == "rig:start" and fakes.EVENTS[-1] == "rig:close"
    assert fakes.EVENTS.index("power:safe_state") < fakes.EVENTS.index("rig:safe_state")
    assert fakes.EVENTS.index("power:close") < fakes.EVENTS.index("rig:close")
    assert station.services == {}


@pytest.mark.parametrize(
    "exc",
    [AssertionError("DUT out of spec"), RuntimeError("boom"), KeyboardInterrupt(), Aborted("x")],
    ids=["assertion", "exception", "keyboardinterrupt", "aborted"],
)
def test_safe_state_on_every_exit_path(tmp_path: Path, exc: BaseException) -> None:
    station = Station.load(station_file(tmp_path))
    with pytest.raises(type(exc)), station:
        raise exc
    assert safe_states() == ORDER[::-1]
    assert not station.lock.held


def test_sigterm_becomes_aborted_and_reaches_safe_state(tmp_path: Path) -> None:
    with pytest.raises(Aborted, match="SIGTERM"), sigterm_aborts(), Station.load(station_file(tmp_path)):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler raises before this ends
    assert safe_states() == ORDER[::-1]


def test_failing_safe_state_does_not_stop_the_others(tmp_path: Path) -> None:
    station = Station.load(station_file(tmp_path, fail={"light": "safe_state"}))
    with pytest.raises(DeviceError, match="safe state not reached for light"), station:
        pass
    assert safe_states() == ORDER[::-1]  # light was tried too, and power after it
    assert station.last_safe_state is not None
    assert [r for r, _ in station.last_safe_state.failed] == ["light"]


def test_failing_open_undoes_what_was_opened(tmp_path: Path) -> None:
    station = Station.load(station_file(tmp_path, fail={"focus": "open"}))
    with pytest.raises(DeviceError, match="focus: injected failure in open"):
        station.open()
    # focus was constructed and its open raised: power, light, meter, focus are made safe
    assert safe_states() == ["focus", "meter", "light", "power"]
    assert not station.lock.held
    assert not station.is_open


def test_second_run_on_same_station_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = station_file(tmp_path)
    with Station.load(path):
        with pytest.raises(StationLocked) as info:
            Station.load(path).open()
        assert f"pid {os.getpid()}" in str(info.value)
        assert "life" in str(info.value)
    # released afterwards
    with Station.load(path):
        pass


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from harness.station.lock import StationLock
        lock = StationLock("other", Path({str(lock_dir)!r}))
        lock.acquire()
        print("held", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(StationLocked, match=f"pid {proc.pid} on host"):
            StationLock("other", lock_dir).acquire()
    finally:
        proc.kill()
        proc.wait()
    # the holder died: its lock is taken over
    lock = StationLock("other", lock_dir)
    lock.acquire()
    assert lock.previous_holder is not None and lock.previous_holder["pid"] == proc.pid
    lock.release()


def test_stale_lock_file_of_dead_process_is_taken_over(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    (lock_dir / "stale.lock").write_text('{"pid": 999999, "host": "gone", "since": "x"}')
    lock = StationLock("stale", lock_dir)
    lock.acquire()
    assert lock.previous_holder == {"pid": 999999, "host": "gone", "since": "x"}
    lock.release()


def test_sigterm_to_a_process_reaches_safe_state(tmp_path: Path) -> None:
    record = tmp_path / "events.txt"
    path = station_file(tmp_path, record=record, station_id="sig")
    script = textwrap.dedent(f"""
        import time
        from harness.station.station import Station, sigterm_aborts
        with sigterm_aborts(), Station.load({str(path)!r}):
            print("open", flush=True)
            time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    events = fakes.read_events(record)
    assert [e.split(":")[0] for e in events if e.endswith(":safe_state")] == ORDER[::-1]
    assert proc.returncode != 0
