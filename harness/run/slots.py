"""Several modules on one station: one capture session per slot, shared state set once.

A multi-up station has ``slots:``, each with its own camera (and optionally its own ``power``
and ``focus``), under one light, chart and meter. :class:`SlotStation` is one slot's view of
the station: its own devices (``camera.A``, ``power.A`` seen as ``camera``, ``power``), and the
shared instruments as :class:`~harness.capture.shared.SharedDevice` views of one
:class:`~harness.capture.shared.Rendezvous`. :class:`SlotCapture` runs a capture
sequence on every live slot at once, each slot in its own thread with its own
:class:`~harness.run.session.CaptureSession` (its own capture sets, black and saturation
levels, exposures); every change of the light, chart or focus is a meeting of the slots and
is made once, and a light settle is made once for all. A slot whose camera fails leaves the
meetings and keeps its error; the others go on. An instrument fault reaches every slot that
waited for the change.

This is the capture floor of the slots; one run record per slot (journal, verdicts,
sign-off) is the plugin's part.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.capture.shared import Rendezvous, SharedDevice, capturing, shared_call
from harness.inputs.captureset import CaptureSet
from harness.run.session import CaptureSession, EventSink


def slot_names(station: Any) -> list[str]:
    """The station's slots (``slots:``); a station without slots is one slot, ``camera``."""
    return list(getattr(station.config, "slots", ()) or ()) or ["camera"]


def _own(role: str) -> tuple[str, str | None]:
    """(base role, slot) of a device role: ``power.A`` -> (power, A); ``light`` -> (light,
    None)."""
    base, _, slot = role.partition(".")
    return base, slot or None


class SlotStation:
    """One slot's view of an open station: its camera, the shared instruments through the
    slots' rendezvous (the same interface :class:`CaptureSession` uses of a station)."""

    def __init__(self, station: Any, slot: str, rendezvous: Rendezvous,
                 locks: Mapping[str, threading.RLock]) -> None:
        self._station = station
        self.slot = slot
        self.rendezvous = rendezvous
        self.devices: dict[str, Any] = {}
        for name, device in station.devices.items():
            base, owner = _own(name)
            if owner == slot or (owner is None and slot == "camera" and base == "camera"):
                self.devices[base] = device  # the slot's own: no other slot drives it
            elif owner is None and base != "camera" and base not in self.devices:
                self.devices[base] = SharedDevice(device, base, slot, rendezvous, locks[name])
        if "camera" not in self.devices:
            raise KeyError(f"slot {slot} of station {station.id} has no camera")
        self._camera = self.devices["camera"]

    @property
    def id(self) -> str:
        return str(self._station.id)

    @property
    def config(self) -> Any:
        return self._station.config

    def has(self, role: str) -> bool:
        return role in self.devices

    def device(self, role: str) -> Any:
        if role not in self.devices:
            raise KeyError(f"slot {self.slot} of station {self.id} has no device {role!r}")
        return self.devices[role]

    def camera(self) -> Any:
        return self._camera


@dataclass
class SlotCapture:
    """The capture sessions of every slot of an open station (see the module docstring)."""

    station: Any
    out_dir: Path | Mapping[str, Path]
    """Where the capture sets go: a folder (a sub-folder per slot), or each slot's own."""
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    events: Mapping[str, EventSink] = field(default_factory=dict)
    """Each slot's event sink (its run's journal)."""
    timeout_s: float = 600.0
    sessions: dict[str, CaptureSession] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    """Why a slot stopped (its camera failed): it captures no more."""

    def __post_init__(self) -> None:
        slots = slot_names(self.station)
        self.rendezvous = Rendezvous(slots, timeout_s=self.timeout_s)
        locks = {role: threading.RLock() for role in self.station.devices}
        for slot in slots:
            view = SlotStation(self.station, slot, self.rendezvous, locks)
            out = self.out_dir[slot] if isinstance(self.out_dir, Mapping) \
                else self.out_dir / slot
            session = CaptureSession(view, out, conditions=self.conditions,
                                     events=self.events.get(slot),
                                     settle_factory=self._settle_factory(slot))
            self.sessions[slot] = session

    def _settle_factory(self, slot: str) -> Callable[[Any], Callable[[], dict[str, Any] | None]]:
        """A light settle made once for every slot (its result handed to each)."""
        def factory(meter: Any) -> Callable[[], dict[str, Any] | None]:
            from harness.station.stability import station_meter_settle

            settle = station_meter_settle(getattr(meter, "shared_device", meter),
                                          getattr(self.station, "config", None))
            return lambda: shared_call(self.rendezvous, slot, "settle", settle)
        return factory

    @property
    def live(self) -> list[str]:
        return [s for s in self.sessions if s not in self.errors]

    def sequence(self, name: str, test_ids: Mapping[str, str] | None = None, *,
                 slots: Iterable[str] | None = None, **override: Any
                 ) -> dict[str, CaptureSet | BaseException]:
        """Run sequence ``name`` on every live slot at once (each slot's session runs it at
        most once, as for one slot); the capture set of each slot, or its error. A slot
        whose capture failed leaves the meetings and stops (:attr:`errors`). ``slots``: only
        these (a group captured apart, e.g. at its own focus position); the shared changes
        are then meetings of the group alone."""
        group = [s for s in self.live if slots is None or s in set(slots)]
        if slots is not None:
            with self.rendezvous.among(group):
                return self._sequence(name, group, test_ids, override)
        return self._sequence(name, group, test_ids, override)

    def _sequence(self, name: str, group: list[str], test_ids: Mapping[str, str] | None,
                  override: Mapping[str, Any]) -> dict[str, CaptureSet | BaseException]:
        results: dict[str, CaptureSet | BaseException] = {}

        def run(slot: str) -> None:
            try:
                with capturing():
                    results[slot] = self.sessions[slot].sequence(
                        name, (test_ids or {}).get(slot, ""), **override)
            except BaseException as exc:
                results[slot] = exc
                self.errors.setdefault(slot, exc)
                self.rendezvous.leave(slot)

        threads = [threading.Thread(target=run, args=(slot,), name=f"slot-{slot}")
                   for slot in group]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException as exc:  # Ctrl-C in the main thread: wake every slot
            self.rendezvous.abort(f"{type(exc).__name__}: the run was stopped")
            for thread in threads:
                thread.join(self.timeout_s)
            raise
        for slot, error in self.errors.items():
            if slot in group:
                results.setdefault(slot, error)
        return results


def shared_focus_position(best_um: float, step_um: float) -> float:
    """Where a slot's chart is captured on a focus stage the slots share: its best focus
    rounded to a multiple of ``step_um`` (slots whose best focus rounds alike are captured
    together, each within ``step_um / 2`` of its own best)."""
    if not step_um > 0:
        raise ValueError(f"step_um must be > 0, got {step_um!r}")
    return round(round(best_um / step_um) * step_um, 9)


__all__ = ["SlotCapture", "SlotStation", "shared_focus_position", "slot_names"]
