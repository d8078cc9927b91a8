"""Wait until a reading (meter, light read-back) is stable, keeping the trace for the record.

Criterion: over the most recent ``window_s`` seconds (the samples must cover the whole window)
the peak-to-peak spread of the readings is within ``tolerance_pct`` percent of their mean:
``max - min <= tolerance_pct / 100 * |mean|`` (a spread of exactly 0 is stable even at a mean of
0, e.g. a light that is off). This is the usual settle test for light sources before a
photon-transfer measurement (EMVA 1288 assumes a constant irradiance during each
measurement); a timeout raises :class:`StabilityError`, an
:class:`~harness.errors.InstrumentError`, so the test ends in ERROR, not FAIL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError, InstrumentError
from harness.station.schema import LightSettleSettings


@dataclass(frozen=True)
class StabilityTrace:
    """Every sample taken while waiting: ``(seconds since start, value)``."""

    samples: tuple[tuple[float, float], ...]
    tolerance_pct: float
    window_s: float
    stable: bool
    settled_s: float | None
    """Time at which the stability criterion was first met (``None``: never)."""

    @property
    def last(self) -> float:
        return self.samples[-1][1]

    def window(self) -> tuple[float, ...]:
        """Values in the final window (the ones that were judged)."""
        end = self.samples[-1][0]
        return tuple(v for t, v in self.samples if t >= end - self.window_s - 1e-12)

    @property
    def mean(self) -> float:
        values = self.window()
        return sum(values) / len(values)

    @property
    def spread_pct(self) -> float:
        values = self.window()
        spread = max(values) - min(values)
        mean = abs(sum(values) / len(values))
        return 0.0 if spread == 0 else (float("inf") if mean == 0 else 100 * spread / mean)

    def as_dict(self) -> dict[str, Any]:
        return {"tolerance_pct": self.tolerance_pct, "window_s": self.window_s,
                "stable": self.stable, "settled_s": self.settled_s, "mean": self.mean,
                "samples": [list(s) for s in self.samples]}


class StabilityError(InstrumentError):
    """The reading did not settle within the timeout; :attr:`trace` holds what was seen."""

    def __init__(self, message: str, trace: StabilityTrace, *, device: str | None = None) -> None:
        super().__init__(message, device=device)
        self.trace = trace


def _judge(samples: list[tuple[float, float]], now: float, window_s: float,
           tolerance_pct: float) -> bool:
    if not samples or now - samples[0][0] < window_s:
        return False
    values = [v for t, v in samples if t >= now - window_s]
    spread = max(values) - min(values)
    if spread == 0:
        return True
    mean = abs(sum(values) / len(values))
    return spread <= tolerance_pct / 100.0 * mean


def wait_stable(read: Callable[[], float], tolerance_pct: float, window_s: float,
                timeout_s: float, *, interval_s: float = 0.05,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep, device: str | None = None,
                what: str = "reading") -> StabilityTrace:
    """Sample ``read()`` every ``interval_s`` until stable (see module docstring).

    Raises :class:`StabilityError` (with the trace) after ``timeout_s``; errors of ``read``
    propagate unchanged (they are instrument faults already).
    """
    if tolerance_pct <= 0 or window_s <= 0 or timeout_s <= 0 or interval_s <= 0:
        raise ValueError("tolerance_pct, window_s, timeout_s and interval_s must be positive")
    t0 = clock()
    samples: list[tuple[float, float]] = []
    while True:
        now = clock() - t0
        samples.append((now, float(read())))
        if _judge(samples, now, window_s, tolerance_pct):
            return StabilityTrace(tuple(samples), tolerance_pct, window_s, True, now)
        if now >= timeout_s:
            trace = StabilityTrace(tuple(samples), tolerance_pct, window_s, False, None)
            raise StabilityError(
                f"{what} not stable within {tolerance_pct:g} % over {window_s:g} s after "
                f"{timeout_s:g} s (last window spread {trace.spread_pct:.3g} %, "
                f"{len(samples)} samples)", trace, device=device)
        sleep(interval_s)


def meter_settle(meter: Any, criterion: LightSettleSettings | None = None
                 ) -> Callable[[], dict[str, Any]]:
    """A ``settle`` hook for capture sequences: wait until ``meter`` is stable by ``criterion``
    (a station file's ``settings.light_settle``; its defaults when None), return the trace (for
    the record); raises :class:`StabilityError` when it is not."""
    c = criterion if criterion is not None else LightSettleSettings()

    def settle() -> dict[str, Any]:
        trace = wait_stable(lambda: float(meter.read().value), c.tolerance_pct, c.window_s,
                            c.timeout_s, interval_s=c.interval_s,
                            device=getattr(meter, "name", None), what="meter reading")
        return {"stability": trace.as_dict()}

    return settle


def settle_criterion(base: LightSettleSettings, **overrides: float | None
                     ) -> LightSettleSettings:
    """``base`` (a station's ``settings.light_settle``) with the ``overrides`` that are not
    None, checked like the station file's section; a bad value is a
    :class:`~harness.errors.ConfigError` naming the option (``window_s`` -> ``--window-s``)."""
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return LightSettleSettings.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else next(iter(given), "window_s")
        raise ConfigError(f"{err['msg'].removeprefix('Value error, ')}",
                          field="--" + name.replace("_", "-")) from None


def station_meter_settle(meter: Any, config: Any) -> Callable[[], dict[str, Any]]:
    """:func:`meter_settle` with the criterion of the station file's ``settings.light_settle``
    (``config``: the station's loaded file; the defaults when it has none)."""
    return meter_settle(meter, getattr(getattr(config, "settings", None), "light_settle", None))


__all__ = ["StabilityError", "StabilityTrace", "meter_settle", "settle_criterion",
           "station_meter_settle", "wait_stable"]
