"""Point-to-point motion shared by the focus-stage and chart-wheel simulators.

A move runs at constant ``speed`` from where the axis is to the target and then settles for
``settle_s``; a ``stall`` fault stops it at ``at_fraction`` of the way, still "moving" (the
motor is powered but not turning), which only a new move, STOP or HOME clears.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.sim.instruments.base import Clock


@dataclass
class Axis:
    """One axis: position in its own unit, linear moves, settle time."""

    clock: Clock
    position: float = 0.0
    speed: float = 1000.0
    settle_s: float = 0.02
    _start: float = 0.0
    _target: float = 0.0
    _t0: float = 0.0
    _stall_at: float | None = None

    def __post_init__(self) -> None:
        self._start = self._target = self.position
        self._t0 = self.clock() - 1e6

    def now(self) -> float:
        """Position now (stalls included)."""
        span = self._target - self._start
        if span == 0:
            return self._target
        travelled = min(abs(span), self.speed * max(0.0, self.clock() - self._t0))
        frac = travelled / abs(span)
        if self._stall_at is not None:
            frac = min(frac, self._stall_at)
        return self._start + span * frac

    def move(self, target: float, stall_at: float | None = None) -> None:
        here = self.now()
        self._start, self._target, self._t0 = here, target, self.clock()
        self._stall_at = stall_at

    def stop(self) -> None:
        here = self.now()
        self._start = self._target = here
        self._stall_at = None
        self._t0 = self.clock() - 1e6

    @property
    def target(self) -> float:
        return self._target

    def moving(self) -> bool:
        if self._stall_at is not None:
            return True
        duration = abs(self._target - self._start) / self.speed if self.speed > 0 else 0.0
        return self.clock() - self._t0 < duration + (self.settle_s if duration else 0.0)

    @property
    def stalled(self) -> bool:
        return self._stall_at is not None


__all__ = ["Axis"]
