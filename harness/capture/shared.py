"""Shared instruments seen by several slots at once: each change of shared state is made once.

A multi-up station captures several modules (slots) under one light, one chart and one meter.
Each slot's capture sequence runs in its own thread on its own camera; the shared instruments
are handed to it as :class:`SharedDevice` views. A call that changes shared state (a light
level, a chart, a focus position; see :data:`STATE_CHANGES`) is a *meeting*
(:class:`Rendezvous`): it waits until every slot still capturing has asked for its next
change, checks that they all asked for the same one, makes it once and hands every slot the
same result. So a four-slot run makes as many light changes and settles as a one-slot run, and
no slot captures while another has moved the light.

Rules:

* slots that ask for different changes at the same meeting get :class:`SharedStateConflict`,
  naming each slot's request: the shared instrument cannot serve both, and guessing one would
  change a figure silently;
* a slot that stops (its camera failed) :meth:`leaves <Rendezvous.leave>`: the others no
  longer wait for it;
* an error of the change itself (the light's fault) reaches every slot that waited for it:
  each slot that needed the instrument ends ERROR;
* :meth:`Rendezvous.abort` (Ctrl-C, SIGTERM) wakes every waiting slot with
  :class:`~harness.errors.Aborted`;
* a meeting that not every slot reaches within ``timeout_s`` raises :class:`SharedStateTimeout`
  naming the slots that never came;
* the time each slot spent waiting for the others is counted apart from its working time
  (:meth:`Rendezvous.waited_s`).

Reads (a meter reading, the light's level) pass through one at a time, under the device's
lock: drivers are not written for concurrent use. So do changes made outside the slots'
capture threads (:func:`capturing`): a test body runs for one slot at a time, with nobody to
meet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.errors import Aborted, DeviceError

T = TypeVar("T")

#: Methods that change the state every slot sees, by station role.
STATE_CHANGES: Mapping[str, frozenset[str]] = {
    "light": frozenset({"on", "off", "set_level", "set_cct", "set_illuminant",
                        "set_wavelength"}),
    "chart": frozenset({"select", "home"}),
    "focus": frozenset({"move_to", "wait_settled", "home"}),
    "meter": frozenset({"set_wavelength"}),
    "radiometer": frozenset({"set_wavelength", "zero"}),
    "power": frozenset({"set_voltage", "set_current_limit", "output"}),
}


_THREAD = threading.local()


@contextmanager
def capturing() -> Iterator[None]:
    """Mark this thread as a slot's capture thread: its shared changes meet the others'."""
    _THREAD.meets = True
    try:
        yield
    finally:
        _THREAD.meets = False


def _meets() -> bool:
    return bool(getattr(_THREAD, "meets", False))


class SharedStateConflict(DeviceError):
    """Slots asked a shared instrument for different states at the same meeting."""


class SharedStateTimeout(DeviceError):
    """Not every slot reached a meeting in time."""


def _describe(request: tuple[Any, ...]) -> str:
    role, method, args, kwargs = request
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]
    return f"{role}.{method}({', '.join(parts)})"


@dataclass
class _Arrival:
    request: tuple[Any, ...]
    action: Callable[[], Any]
    since: float


class Rendezvous:
    """Meetings of the slots at each change of shared state (see the module docstring)."""

    def __init__(self, slots: Iterable[str], *, timeout_s: float = 600.0) -> None:
        self._live = set(slots)
        if not self._live:
            raise ValueError("a rendezvous needs at least one slot")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._arrived: dict[str, _Arrival] = {}
        self._generation = 0
        self._results: dict[int, tuple[bool, Any]] = {}
        self._waited: dict[str, float] = {s: 0.0 for s in self._live}
        self._aborted: str | None = None
        self._among: frozenset[str] | None = None
        self.changes_made = 0
        """How many shared changes were made (once per meeting)."""
        self.log: list[str] = []
        """Each change made, in order (``light.set_level(50.0)``)."""

    @property
    def live(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._live)

    @contextmanager
    def among(self, slots: Iterable[str]) -> Iterator[None]:
        """Meetings of only ``slots`` (the live ones) while inside: a step that some slots
        capture apart from the others (each group at its own focus position)."""
        with self._cond:
            self._among = frozenset(slots)
        try:
            yield
        finally:
            with self._cond:
                self._among = None
                self._complete_if_all_here()

    def _expected(self) -> set[str]:
        return self._live if self._among is None else self._live & self._among

    def waited_s(self, slot: str) -> float:
        """Seconds ``slot`` spent waiting for the other slots (not the change itself)."""
        with self._cond:
            return self._waited.get(slot, 0.0)

    def call(self, slot: str, request: tuple[Any, ...], action: Callable[[], T]) -> T:
        """Meet the other live slots with ``request`` (role, method, args, sorted kwargs);
        the change ``action`` is made once when all are here. Returns its result to every
        slot, or raises its exception (or a conflict, a timeout, Aborted) in every slot."""
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            if self._aborted is not None:
                raise Aborted(self._aborted)
            if slot not in self._expected():
                raise ValueError(f"slot {slot!r} is not part of this rendezvous "
                                 f"(live: {', '.join(sorted(self._expected()))})")
            generation = self._generation
            self._arrived[slot] = _Arrival(request, action, time.monotonic())
            self._complete_if_all_here()
            while self._generation == generation:
                if self._aborted is not None:
                    self._arrived.pop(slot, None)
                    raise Aborted(self._aborted)
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(self._expected() - set(self._arrived))
                    self._arrived.pop(slot, None)
                    raise SharedStateTimeout(
                        f"slot {slot} waited {self.timeout_s:g} s at {_describe(request)} for "
                        f"slot(s) {', '.join(missing)}, which never asked for it",
                        device=str(request[0]))
                self._cond.wait(min(left, 1.0))
            ok, value = self._results[generation]
        if ok:
            return value
        raise value

    def leave(self, slot: str) -> None:
        """``slot`` stops capturing: the others no longer wait for it (idempotent)."""
        with self._cond:
            self._live.discard(slot)
            self._arrived.pop(slot, None)
            self._complete_if_all_here()

    def abort(self, reason: str) -> None:
        """Wake every waiting slot with :class:`Aborted` (and refuse new meetings)."""
        with self._cond:
            self._aborted = reason
            self._cond.notify_all()

    def _complete_if_all_here(self) -> None:
        """With the lock held: when every live slot has arrived, make the change once."""
        if not self._arrived or not self._expected() <= set(self._arrived):
            return
        now = time.monotonic()
        for name, arrival in self._arrived.items():
            self._waited[name] = self._waited.get(name, 0.0) + (now - arrival.since)
        requests = {name: a.request for name, a in self._arrived.items()}
        first = next(iter(self._arrived.values()))
        result: tuple[bool, Any]
        if len(set(requests.values())) > 1:
            asked = "; ".join(f"{name}: {_describe(r)}" for name, r in sorted(requests.items()))
            result = (False, SharedStateConflict(
                f"the slots asked the shared {first.request[0]} for different states ({asked}): "
                "one instrument cannot serve both", device=str(first.request[0])))
        else:
            try:
                result = (True, first.action())
                self.changes_made += 1
                self.log.append(_describe(first.request))
            except BaseException as exc:  # handed to every slot that waited for it
                result = (False, exc)
        self._results[self._generation] = result
        self._results.pop(self._generation - 8, None)
        self._generation += 1
        self._arrived = {}
        self._cond.notify_all()


class SharedDevice:
    """One slot's view of a shared instrument: the calls in :data:`STATE_CHANGES` for its
    role meet the other slots (:class:`Rendezvous`), the rest pass through under ``lock``."""

    def __init__(self, device: Any, role: str, slot: str, rendezvous: Rendezvous,
                 lock: threading.RLock, changes: frozenset[str] | None = None) -> None:
        self._device = device
        self._role = role
        self._slot = slot
        self._rendezvous = rendezvous
        self._lock = lock
        self._changes = STATE_CHANGES.get(role, frozenset()) if changes is None else changes

    @property
    def shared_device(self) -> Any:
        """The instrument behind this view."""
        return self._device

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._device, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return attr(*args, **kwargs)

        if name not in self._changes:
            return locked

        def meet(*args: Any, **kwargs: Any) -> Any:
            if not _meets():  # outside the slots' capture threads: nobody to meet
                return locked(*args, **kwargs)
            request = (self._role, name, tuple(args), tuple(sorted(kwargs.items())))
            return self._rendezvous.call(self._slot, request, lambda: locked(*args, **kwargs))

        return meet


def shared_call(rendezvous: Rendezvous, slot: str, name: str, func: Callable[[], T]) -> T:
    """``func`` made once for all slots at a meeting named ``name`` (a light settle: every
    slot waits for the one settle and gets its result); outside the capture threads, just
    ``func()``."""
    if not _meets():
        return func()
    return rendezvous.call(slot, (name, "call", (), ()), func)


__all__ = ["STATE_CHANGES", "Rendezvous", "SharedDevice", "SharedStateConflict",
           "SharedStateTimeout", "capturing", "shared_call"]
