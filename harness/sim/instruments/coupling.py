"""The one place where instrument simulators touch the simulated bench.

Simulators call a :class:`BenchLink`; with no bench (``bench=None``, unit tests) every call is a
no-op and the simulators keep their own state, so they stay testable on their own. With a
:class:`harness.sim.bench.Bench`:

* light: the bench's ``level_pct`` is the light's *physical* output (settling, warm-up, drift and
  flicker included) in percent of full output, its ``illuminant`` the light's (``<CCT>K`` or the
  spec's ``illuminant``); a daemon thread re-sends it every ``SYNC_S`` while it changes;
* the meter reads the bench's illuminance for that output (what a meter at the sensor plane
  reads), so camera and meter agree;
* focus: ``focus_um`` follows the actuator; chart: ``chart`` follows the wheel;
* power: ``powered`` follows the PSU output; the PSU's load current reads
  ``bench.camera_streaming`` (a bool the SimCamera may set) and ``bench.module_power`` (the
  module file's supply currents) when present.

Time: the bench's :class:`SimClock` only advances with frames, but instruments live in wall time
(a stage moves while nobody grabs), so the simulators' clock is wall time since start plus the
simulated time the camera has consumed: monotonic, and ahead of the wall when exposures are long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from harness.sim.instruments.base import Clock

log = logging.getLogger(__name__)

SYNC_S = 0.01


@lru_cache(maxsize=64)
def _lux_per_unit_flux(illuminant: str) -> float:
    from harness.sim.colour_response import illuminance_lux

    return illuminance_lux(1.0, illuminant)


class BenchLink:
    """Adapter from simulator events to the bench's state (``harness.sim.bench.Bench``)."""

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self._t0 = time.monotonic()
        self._sync: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, tuple[Any, ...]] = {}
        self._last_lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        sim_clock = getattr(self.bench, "clock", None)
        now = getattr(sim_clock, "now", None)
        if not callable(now):
            return time.monotonic
        t0 = self._t0
        return lambda: time.monotonic() - t0 + float(now())

    def _call(self, what: str, fn: Callable[[], None]) -> None:
        if self.bench is None:
            return
        try:
            fn()
        except Exception as exc:  # the bench refusing a value must not kill a server thread
            log.warning("bench refused %s: %s", what, exc)

    def initial(self) -> Any | None:
        """The bench's state at start (``BenchState``), which simulators adopt as their power-up
        state so a station's ``bench:`` section still sets the scene; ``None`` without bench."""
        return self.bench.state() if self.bench is not None else None

    # -- events ---------------------------------------------------------------------------
    def _changed(self, key: str, value: tuple[Any, ...]) -> bool:
        """Only real changes reach the bench (each set bumps its version, which the camera
        uses to cache what it derived)."""
        with self._last_lock:
            if self._last.get(key) == value:
                return False
            self._last[key] = value
            return True

    def light(self, output: Any) -> None:
        """The light's state now (``output`` is a :class:`LightOutput`)."""
        level = round(min(100.0, 100.0 * output.relative_output()), 6)
        state = (output.on, level, output.illuminant)
        if self.bench is not None and self._changed("light", state):
            self._call("light", lambda: self.bench.set_light(
                on=state[0], level_pct=state[1], illuminant=state[2]))

    def full_scale_lux(self, illuminant: str) -> float | None:
        """The bench's illuminance at full output with this spectrum (None: no bench)."""
        if self.bench is None:
            return None
        flux = float(self.bench.full_scale_photons_per_um2_s)
        return flux * _lux_per_unit_flux(illuminant)

    def chart(self, name: str) -> None:
        if self.bench is not None and self._changed("chart", (name,)):
            self._call("chart", lambda: self.bench.set_chart(name))

    def focus(self, position_um: float) -> None:
        value = round(position_um, 6)
        if self.bench is not None and self._changed("focus", (value,)):
            self._call("focus", lambda: self.bench.set_focus(value))

    def power(self, powered: bool) -> None:
        if self.bench is not None and self._changed("power", (powered,)):
            self._call("power", lambda: self.bench.set_powered(powered))

    def slot_power(self, slot: str, powered: bool) -> None:
        """The supply of one slot's module (a PSU channel feeding that slot)."""
        if self.bench is not None and self._changed(f"power:{slot}", (powered,)):
            self._call("power", lambda: self.bench.set_slot_powered(slot, powered))

    def camera_streaming(self, slot: str | None = None) -> bool:
        if slot is not None:
            return bool(getattr(self.bench, "slot_streaming", {}).get(slot, False))
        return bool(getattr(self.bench, "camera_streaming", False))

    def module_power(self, slot: str | None = None) -> Any | None:
        """The bench module's supply currents (:class:`harness.sim.module.Power`), if known;
        with ``slot``, that slot's module's."""
        if slot is not None:
            return getattr(self.bench, "slot_power", {}).get(slot)
        return getattr(self.bench, "module_power", None)

    # -- continuous state (settling, drift, motion) -----------------------------------------
    def on_sync(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` every ``SYNC_S`` while a bench is attached (started by :meth:`start`)."""
        self._sync.append(fn)

    def start(self) -> None:
        if self.bench is None or not self._sync or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sim-bench-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SYNC_S):
            for fn in self._sync:
                self._call("sync", fn)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None


__all__ = ["SYNC_S", "BenchLink"]
