"""Helpers for the instrument tests: a hub of simulators, drivers bound to it, leak checks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import DeviceError
from harness.registry import DriverContext, driver_class
from harness.sim.instruments.hub import SimulatorHub, start_simulators

FAST = {"timeout_s": 0.2, "retries": 1, "safe_timeout_s": 0.2}
"""Short timeouts so fault tests stay fast."""

NO_WARMUP = {"warmup_pct": 0.0, "tau_s": 0.0}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sim-")]


@contextmanager
def no_leaks() -> Iterator[None]:
    """Assert that the block leaves no simulator threads and no extra file descriptors."""
    before, threads = open_fds(), set(sim_threads())

    def new_threads() -> set[threading.Thread]:
        return set(sim_threads()) - threads

    yield
    deadline = time.monotonic() + 2.0
    while (new_threads() or open_fds() > before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not new_threads(), f"simulator threads left running: {new_threads()}"
    assert open_fds() <= before, f"file descriptors leaked: {open_fds()} > {before}"


@contextmanager
def hub_of(specs: dict[str, dict[str, Any]], bench: Any = None) -> Iterator[SimulatorHub]:
    hub = start_simulators(specs, bench)
    try:
        yield hub
    finally:
        hub.close()


def driver(kind: str, name: str, hub: SimulatorHub, role: str | None = None,
           tmp: Path | None = None, bench: Any = None, **settings: Any) -> Any:
    """An (unopened) production driver ``name`` for ``kind`` whose address may be ``sim:x``."""
    cls = driver_class(kind, name)
    context = DriverContext("test", tmp or Path("."), bench, {"simulators": hub})
    return cls(role or kind, cls.Settings.model_validate(settings), context)


def is_error_outcome(exc: BaseException) -> bool:
    """The outcome the harness's pytest plugin gives a test that raised ``exc`` is ERROR (a
    station fault), not FAIL (a DUT out of spec), and the error is a DeviceError."""
    from harness.measurement import Outcome
    from harness.run.outcome import classify

    return isinstance(exc, DeviceError) and classify(exc).outcome is Outcome.ERROR
