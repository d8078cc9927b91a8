"""Shared instruments on a multi-up station (harness.capture.shared): each change of shared
state is made once for all slots, conflicts and faults reach every slot, a stopped slot is
not waited for, Ctrl-C wakes everyone, and the wait is counted apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.capture.shared import (
    Rendezvous,
    SharedDevice,
    SharedStateConflict,
    SharedStateTimeout,
    capturing,
    shared_call,
)
from harness.errors import Aborted, InstrumentError
from harness.run.slots import shared_focus_position


class Light:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self._level = 0.0
        self.fail_on: float | None = None

    def set_level(self, percent: float) -> None:
        if percent == self.fail_on:
            raise InstrumentError("no reply", device="light")
        time.sleep(0.01)
        self.commands.append(f"level {percent:g}")
        self._level = percent

    def level(self) -> float:
        return self._level

    def on(self) -> None:
        self.commands.append("on")


def run_slots(bodies: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each slot's body in its own thread; its return value or exception by slot."""
    out: dict[str, Any] = {}

    def run(name: str, body: Callable[[], Any]) -> None:
        try:
            with capturing():
                out[name] = body()
        except BaseException as exc:
            out[name] = exc

    threads = [threading.Thread(target=run, args=(n, b)) for n, b in bodies.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def views(light: Light, rv: Rendezvous, slots: list[str]) -> dict[str, Any]:
    lock = threading.RLock()
    return {s: SharedDevice(light, "light", s, rv, lock) for s in slots}


def test_four_slots_make_each_change_once_and_read_through() -> None:
    slots = ["A", "B", "C", "D"]
    light, rv = Light(), Rendezvous(slots)
    seen = views(light, rv, slots)

    def body(name: str) -> list[float]:
        levels = []
        for level in (10.0, 50.0, 90.0):
            seen[name].set_level(level)
            time.sleep(0.005 * slots.index(name))  # slots work at different speeds
            levels.append(seen[name].level())   # a read: no meeting
        seen[name].on()
        return levels

    out = run_slots({s: (lambda s=s: body(s)) for s in slots})
    assert all(out[s] == [10.0, 50.0, 90.0] for s in slots), out
    assert light.commands == ["level 10", "level 50", "level 90", "on"]  # as for one slot
    assert rv.changes_made == 4 and rv.log[0] == "light.set_level(10.0)"
    # the fastest slot waited for the slowest at every meeting; the wait is counted apart
    assert rv.waited_s("A") > rv.waited_s("D") >= 0.0


def test_different_requests_conflict_in_every_slot_naming_both() -> None:
    light, rv = Light(), Rendezvous(["A", "B"])
    seen = views(light, rv, ["A", "B"])
    out = run_slots({"A": lambda: seen["A"].set_level(50.0),
                     "B": lambda: seen["B"].set_level(60.0)})
    for name in "AB":
        assert isinstance(out[name], SharedStateConflict)
        assert "A: light.set_level(50.0)" in str(out[name])
        assert "B: light.set_level(60.0)" in str(out[name])
    assert light.commands == []  # nothing guessed


def test_a_fault_of_the_shared_instrument_reaches_every_slot() -> None:
    light, rv = Light(), Rendezvous(["A", "B", "C"])
    light.fail_on = 70.0
    seen = views(light, rv, ["A", "B", "C"])
    out = run_slots({s: (lambda s=s: seen[s].set_level(70.0)) for s in "ABC"})
    assert all(isinstance(out[s], InstrumentError) for s in "ABC")
    assert all("light: no reply" in str(out[s]) for s in "ABC")


def test_a_slot_that_stops_is_not_waited_for() -> None:
    light, rv = Light(), Rendezvous(["A", "B", "C"])
    seen = views(light, rv, ["A", "B", "C"])

    def failing() -> None:
        seen["C"].set_level(10.0)
        rv.leave("C")  # its camera failed after the first step
        raise RuntimeError("camera C lost")

    def good(name: str) -> str:
        seen[name].set_level(10.0)
        seen[name].set_level(20.0)
        return "done"

    out = run_slots({"A": lambda: good("A"), "B": lambda: good("B"), "C": failing})
    assert out["A"] == out["B"] == "done" and isinstance(out["C"], RuntimeError)
    assert light.commands == ["level 10", "level 20"] and rv.live == {"A", "B"}


def test_abort_wakes_every_waiting_slot() -> None:
    light, rv = Light(), Rendezvous(["A", "B"])
    seen = views(light, rv, ["A", "B"])
    timer = threading.Timer(0.2, rv.abort, args=("received SIGTERM",))
    timer.start()
    out = run_slots({"A": lambda: seen["A"].set_level(10.0)})  # B never comes
    assert isinstance(out["A"], Aborted) and "SIGTERM" in str(out["A"])
    with capturing(), pytest.raises(Aborted):
        seen["B"].set_level(10.0)


def test_a_meeting_nobody_else_reaches_times_out_naming_the_absent() -> None:
    light, rv = Light(), Rendezvous(["A", "B"], timeout_s=0.2)
    seen = views(light, rv, ["A", "B"])
    with capturing(), pytest.raises(
            SharedStateTimeout, match=r"waited 0\.2 s at light\.set_level\(5\.0\) for slot\(s\) B"):
        seen["A"].set_level(5.0)


def test_outside_the_capture_threads_a_change_is_made_directly() -> None:
    """A test body runs for one slot at a time: its changes meet nobody."""
    light, rv = Light(), Rendezvous(["A", "B"], timeout_s=0.2)
    seen = views(light, rv, ["A", "B"])
    seen["A"].set_level(5.0)
    assert light.commands == ["level 5"] and rv.changes_made == 0


def test_a_settle_is_made_once_and_its_result_shared() -> None:
    rv = Rendezvous(["A", "B", "C"])
    calls: list[int] = []

    def settle() -> dict[str, float]:
        calls.append(1)
        return {"settle_s": 0.4}

    out = run_slots({s: (lambda s=s: shared_call(rv, s, "settle", settle)) for s in "ABC"})
    assert calls == [1] and all(out[s] == {"settle_s": 0.4} for s in "ABC")


@pytest.mark.parametrize(("args", "word"), [({"slots": []}, "at least one slot"),
                                            ({"slots": ["A"], "timeout_s": 0}, "timeout_s")])
def test_bad_rendezvous(args: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        Rendezvous(**args)
    rv = Rendezvous(["A"])
    with pytest.raises(ValueError, match="not part of this rendezvous"):
        rv.call("Z", ("light", "on", (), ()), lambda: None)


def test_a_group_meets_among_itself_and_the_others_are_not_waited_for() -> None:
    light, rv = Light(), Rendezvous(["A", "B", "C"], timeout_s=0.5)
    seen = views(light, rv, ["A", "B", "C"])
    with rv.among(["A", "C"]):
        out = run_slots({"A": lambda: seen["A"].set_level(30.0),
                         "C": lambda: seen["C"].set_level(30.0)})
        assert out == {"A": None, "C": None}
        with pytest.raises(ValueError, match="not part of this rendezvous"):
            rv.call("B", ("light", "set_level", (1.0,), ()), lambda: None)
    # after the group, every live slot meets again: B alone waits for A and C
    out = run_slots({"B": lambda: seen["B"].set_level(40.0)})
    assert isinstance(out["B"], SharedStateTimeout) and "slot(s) A, C" in str(out["B"])
    assert light.commands == ["level 30"] and rv.changes_made == 1


def test_shared_focus_positions_round_to_the_step() -> None:
    assert shared_focus_position(0.48, 1.0) == 0.0
    assert shared_focus_position(18.08, 1.0) == 18.0
    assert shared_focus_position(-0.6, 1.0) == -1.0
    assert shared_focus_position(3.3, 0.5) == 3.5
    assert abs(shared_focus_position(0.48, 1.0) - 0.48) <= 0.5
    with pytest.raises(ValueError, match="step_um"):
        shared_focus_position(1.0, 0.0)
