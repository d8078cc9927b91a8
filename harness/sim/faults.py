"""Fault injection for the simulated station.

Two halves:

* **Instrument faults** (:class:`InstrumentFault`, :class:`FaultPlan`): the protocol simulators in
  :mod:`harness.sim.instruments` consult a :class:`FaultState` before answering each command.
  A fault is armed after ``after`` commands and fires ``count`` times (``null`` = until cleared).
  They come from the station file (``simulators: {light: {type: scpi-led, faults: [...]}}``) or
  from a test (``hub.apply(FaultPlan(...))`` / ``hub.simulator("light").faults.arm(...)``).
* **Camera faults** (:class:`CameraFaults`): a model the SimCamera consults per frame
  (:meth:`CameraFaults.fate`), so frame drops, fetch timeouts and disconnects are scripted the
  same way.

Each fault maps to one error class on the driver side (the tests check it):

=============  ==============================================  ===========================
kind           what the simulator does                         driver raises
=============  ==============================================  ===========================
delay          answers ``delay_s`` late (busy: drops input)    InstrumentError (timeout)
drop           closes the connection / hangs up the pty        reconnects once, else
                                                               InstrumentError
garbage        answers ``text`` instead of the reply           InstrumentError (parse)
error          reports an error state in its protocol          InstrumentError
drift          light output drifts ``rate_pct_per_s``          StabilityError (wait_stable)
flicker        light output modulated ``amplitude_pct``         StabilityError (wait_stable)
over_range     meter answers its over-range code               InstrumentError
stall          actuator stops part-way and never settles       InstrumentError (settle)
=============  ==============================================  ===========================
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["delay", "drop", "garbage", "error", "drift", "flicker", "over_range",
                    "stall"]
PROTOCOL_FAULTS: frozenset[str] = frozenset({"delay", "drop", "garbage", "error"})
"""Faults every simulator supports (they act on the wire)."""


class InstrumentFault(BaseModel):
    """One scripted instrument fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    after: int = Field(0, ge=0, description="commands answered normally before it arms")
    count: int | None = Field(None, ge=1, description="times it fires; null = until cleared")
    delay_s: float = Field(1.0, gt=0.0, le=60.0, description="delay: how late the reply is")
    text: str = Field("\x15#?!\xff", description="garbage: what is sent instead of the reply")
    code: str = Field("", description="error: the instrument's error code (default per model)")
    rate_pct_per_s: float = Field(1.0, description="drift: output change, % of value per s")
    amplitude_pct: float = Field(5.0, ge=0.0, le=100.0, description="flicker: peak deviation")
    frequency_hz: float = Field(0.7, gt=0.0, le=1000.0, description="flicker: modulation")
    at_fraction: float = Field(0.5, ge=0.0, le=1.0, description="stall: where the move stops")


class CameraFaultSpec(BaseModel):
    """Camera faults as written in a station file or a test (see :class:`CameraFaults`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_every: int | None = Field(None, ge=2, description="every Nth frame is lost")
    timeout_after: int | None = Field(None, ge=0, description="frames delivered, then none")
    disconnect_after: int | None = Field(None, ge=0, description="frames delivered, then gone")
    incomplete_every: int | None = Field(None, ge=2,
                                         description="every Nth buffer arrives incomplete")


class FaultPlan(BaseModel):
    """Faults per simulator name, plus camera faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruments: dict[str, tuple[InstrumentFault, ...]] = Field(default_factory=dict)
    camera: CameraFaultSpec | None = None


@dataclass
class _Armed:
    fault: InstrumentFault
    skip: int
    left: int | None


class FaultState:
    """The live faults of one simulator (thread-safe; the server thread consults it)."""

    def __init__(self, faults: tuple[InstrumentFault, ...] | list[InstrumentFault] = ()) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.fired: list[str] = []
        self._active_seen: set[int] = set()
        for fault in faults:
            self.arm(fault)

    def arm(self, fault: InstrumentFault) -> None:
        with self._lock:
            self._armed.append(_Armed(fault, fault.after, fault.count))

    def clear(self, kind: str | None = None) -> None:
        """Disarm every fault (or every fault of ``kind``): the instrument recovers."""
        with self._lock:
            self._armed = [a for a in self._armed if kind is not None and a.fault.kind != kind]

    def command_seen(self) -> None:
        """Count one command towards every fault's ``after``."""
        with self._lock:
            for armed in self._armed:
                armed.skip = max(0, armed.skip - 1)

    def take(self, *kinds: str) -> InstrumentFault | None:
        """The first armed fault of ``kinds`` due now, consuming one firing; else ``None``."""
        with self._lock:
            for armed in self._armed:
                if armed.fault.kind not in kinds or armed.skip:
                    continue
                if armed.left is not None:
                    armed.left -= 1
                    if armed.left <= 0:
                        self._armed.remove(armed)
                self.fired.append(armed.fault.kind)
                return armed.fault
        return None

    def active(self, kind: str) -> InstrumentFault | None:
        """An armed, due fault of ``kind`` without consuming it (continuous faults: drift...)."""
        with self._lock:
            for armed in self._armed:
                if armed.fault.kind == kind and not armed.skip:
                    if id(armed) not in self._active_seen:  # fired: once per armed fault
                        self._active_seen.add(id(armed))
                        self.fired.append(kind)
                    return armed.fault
        return None


FrameFate = Literal["ok", "drop", "timeout", "disconnect", "incomplete"]


@dataclass(frozen=True)
class CameraFaults:
    """What the SimCamera does with its ``index``-th frame since the camera opened (0-based).

    The SimCamera calls :meth:`fate` for each frame it would deliver:

    * ``"drop"``: the frame is lost (skip it: the frame id jumps, so gaps are detectable);
    * ``"timeout"``: no frame arrives (``grab`` waits its timeout, then raises CameraTimeout);
    * ``"disconnect"``: the camera vanishes (raise CameraDisconnected; further calls too);
    * ``"incomplete"``: the buffer arrives partially (``FrameMeta.incomplete``).
    """

    drop_every: int | None = None
    timeout_after: int | None = None
    disconnect_after: int | None = None
    incomplete_every: int | None = None

    @classmethod
    def from_spec(cls, spec: CameraFaultSpec | dict[str, object] | None) -> CameraFaults:
        if spec is None:
            return cls()
        s = spec if isinstance(spec, CameraFaultSpec) else CameraFaultSpec.model_validate(spec)
        return cls(s.drop_every, s.timeout_after, s.disconnect_after, s.incomplete_every)

    def fate(self, index: int) -> FrameFate:
        if self.disconnect_after is not None and index >= self.disconnect_after:
            return "disconnect"
        if self.timeout_after is not None and index >= self.timeout_after:
            return "timeout"
        if self.drop_every is not None and (index + 1) % self.drop_every == 0:
            return "drop"
        if self.incomplete_every is not None and (index + 1) % self.incomplete_every == 0:
            return "incomplete"
        return "ok"

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.drop_every, self.timeout_after,
                                           self.disconnect_after, self.incomplete_every))


__all__ = ["PROTOCOL_FAULTS", "CameraFaultSpec", "CameraFaults", "FaultKind", "FaultPlan",
           "FaultState", "FrameFate", "InstrumentFault"]
