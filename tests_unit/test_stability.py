"""wait_stable against readings whose settling time is known analytically (simulated clock)."""

from __future__ import annotations

import math

import pytest

from harness.errors import InstrumentError
from harness.station.stability import StabilityError, meter_settle, wait_stable


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_constant_reading_is_stable_after_one_window() -> None:
    ft = FakeTime()
    trace = wait_stable(lambda: 123.0, 0.5, 0.3, 5.0, interval_s=0.05, clock=ft.clock,
                        sleep=ft.sleep)
    assert trace.stable and trace.settled_s == pytest.approx(0.3)
    assert trace.mean == 123.0 and trace.spread_pct == 0.0
    assert len(trace.samples) == 7  # 0, 0.05, ..., 0.30


def test_zero_reading_is_stable() -> None:
    ft = FakeTime()
    assert wait_stable(lambda: 0.0, 0.5, 0.1, 1.0, clock=ft.clock, sleep=ft.sleep).stable


def test_first_order_settling_matches_the_analytic_settle_time() -> None:
    """v(t) = 100 (1 - exp(-t/tau)). Over a window w ending at t the spread is
    100 exp(-t/tau) (exp(w/tau) - 1) and the mean is ~100, so the criterion first holds at
    t* = tau ln((exp(w/tau) - 1) * 100 / tol). Sampling every dt finds it within one dt
    (plus the small error of using 100 for the window mean, well under dt here)."""
    tau, w, tol, dt = 0.5, 0.2, 0.5, 0.01
    ft = FakeTime()
    trace = wait_stable(lambda: 100 * (1 - math.exp(-ft.t / tau)), tol, w, 10.0,
                        interval_s=dt, clock=ft.clock, sleep=ft.sleep)
    t_star = tau * math.log((math.exp(w / tau) - 1) * 100 / tol)
    assert trace.settled_s is not None
    assert t_star - 1e-9 <= trace.settled_s <= t_star + 2 * dt
    assert trace.spread_pct <= tol


def test_drift_times_out_with_the_trace_attached() -> None:
    ft = FakeTime()
    with pytest.raises(StabilityError, match=r"lux not stable within 0\.5 % over 0\.2 s "
                                             r"after 1 s") as info:
        wait_stable(lambda: 100 + 10 * ft.t, 0.5, 0.2, 1.0, interval_s=0.05, clock=ft.clock,
                    sleep=ft.sleep, device="meter", what="lux")
    err = info.value
    assert isinstance(err, InstrumentError) and err.device == "meter"
    assert not err.trace.stable and err.trace.settled_s is None
    assert len(err.trace.samples) == 21  # 0 .. 1.0 s every 0.05 s
    assert err.trace.as_dict()["samples"][-1] == [pytest.approx(1.0), pytest.approx(110.0)]


def test_read_errors_propagate_and_bad_arguments_are_refused() -> None:
    def broken() -> float:
        raise InstrumentError("no reply", device="meter")

    with pytest.raises(InstrumentError, match="no reply"):
        wait_stable(broken, 1, 1, 1)
    with pytest.raises(ValueError, match="must be positive"):
        wait_stable(lambda: 1.0, 0, 1, 1)


def test_meter_settle_hook_returns_the_trace() -> None:
    from harness.devices.protocols import MeterReading

    class Meter:
        name = "meter"

        def read(self) -> MeterReading:
            return MeterReading(250.0, "lx")

    from harness.station.schema import LightSettleSettings

    record = meter_settle(Meter(), LightSettleSettings(window_s=0.02, interval_s=0.005))()
    assert record["stability"]["stable"] is True
    assert record["stability"]["samples"][-1][1] == 250.0
