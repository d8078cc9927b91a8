"""A watchdog process that makes the station safe when its runner is killed (SIGKILL).

SIGINT and SIGTERM reach the runner's own handlers (safe state, journal closed); SIGKILL
cannot be caught, so the plugin starts this small process when it opens the station::

    python -m harness.run.watchdog --station FILE --pid PID [--journal PATH ...]

It sits on a pipe from the runner. A clean close writes ``done`` and the watchdog exits. End
of file without ``done`` means the runner died: the watchdog waits for the pid to go, takes the
station lock (the kernel released the dead runner's ``flock``; a lock held by a *new* run means
somebody already took over, and the watchdog leaves the station alone), opens every instrument
of the station file with its production driver and puts it in its safe state (light off,
supply output off, actuators parked), then appends to the run's journal (each slot's, on a
multi-up station): ``test_end`` ABORTED
for a test left open, an ``error`` saying what it did, and ``run_end`` ABORTED with the reason
"runner killed; watchdog applied the safe state". The journal stays append-only, so
:func:`harness.evidence.journal.rebuild` gives the ABORTED record.

The runner's leases on shared instruments (:mod:`harness.station.lease`) name the watchdog
their guardian, so they stay held when the runner dies; at its death the watchdog adopts them
(renewing them itself), makes the instruments safe, and only then frees them: another process
of the machine cannot take an instrument the watchdog is still making safe.

On a simulated station the protocol simulators live in the runner and die with it; the
watchdog says so in the journal instead of pretending it reached them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.station.lease import Held

DONE = b"done\n"
KILLED_REASON = "runner killed; watchdog applied the safe state"


@dataclass
class Watchdog:
    """The runner's handle on its watchdog process."""

    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 5.0) -> None:
        """The station was closed properly: tell the watchdog and wait for it to exit."""
        stdin: IO[bytes] | None = self.proc.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.write(DONE)
                stdin.flush()
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_watchdog(station_file: str | Path,
                   journal: str | Path | Sequence[str | Path] | None = None,
                   pid: int | None = None, leases: Held | None = None) -> Watchdog:
    """Start the watchdog for this process (``pid``) and the station in ``station_file``;
    ``journal``: the run's journal, or every slot's on a multi-up station; ``leases``: the
    station's leases, which the watchdog guards (see the module docstring).

    It runs in its own session so that a Ctrl-C at the terminal reaches only the runner.
    """
    args = [sys.executable, "-m", "harness.run.watchdog", "--station", str(station_file),
            "--pid", str(pid if pid is not None else os.getpid())]
    journals = [journal] if isinstance(journal, str | Path) else list(journal or ())
    for path in journals:
        args += ["--journal", str(path)]
    if leases is not None and leases.resources:
        args += ["--lease-db", str(leases.manager.path), "--lease-token", leases.token,
                 "--lease-ttl", repr(leases.ttl_s)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    if leases is not None:
        leases.guard_with(proc.pid)
    return Watchdog(proc)


@dataclass(frozen=True)
class GuardedLeases:
    """The dead runner's leases the watchdog adopts: registry, token and ttl."""

    db: Path
    token: str
    ttl_s: float

    def adopt(self, pid: int) -> Held:
        from harness.station.lease import LeaseManager

        return LeaseManager(self.db, ttl_s=self.ttl_s).adopt(
            self.token, f"watchdog of pid {pid} (safe state)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def apply_safe_state(station_file: str | Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Open each instrument of the station (not the camera) and put it in its safe state.

    Returns the roles reached and (role, why) for those that were not. The station lock is
    held meanwhile; if another run holds it, nothing is touched.
    """
    from harness.errors import HarnessError, StationLocked
    from harness.registry import DriverContext
    from harness.station.lock import StationLock
    from harness.station.schema import load_station_file

    config = load_station_file(station_file)
    lock = StationLock(config.id, config.lock_dir)
    try:
        lock.acquire()
    except StationLocked as exc:
        return [], [("station", f"left alone: {exc}")]
    reached: list[str] = []
    failed: list[tuple[str, str]] = []
    try:
        context = DriverContext(config.id, config.source.parent, None, {})
        for spec in reversed(config.devices):
            if spec.kind == "camera":
                continue
            driver: Any = None
            try:
                driver = spec.cls(spec.role, spec.settings, context)
                driver.open()
                driver.safe_state()
                reached.append(spec.role)
            except (HarnessError, OSError, ValueError) as exc:
                why = str(exc)
                if config.simulators and "sim:" in why:
                    why = "simulated instrument died with the runner"
                failed.append((spec.role, why))
            finally:
                if driver is not None:
                    with contextlib.suppress(Exception):  # must not stop the others
                        driver.close()
    finally:
        lock.release()
    return reached, failed


def close_journal(journal: str | Path, pid: int, reached: list[str],
                  failed: list[tuple[str, str]]) -> None:
    """Append the watchdog's events to a journal the runner left open (no ``run_end``)."""
    from harness.evidence.journal import Journal, read_journal
    from harness.measurement import Outcome

    contents = read_journal(journal)
    events = contents.events
    if not events or any(e.get("type") == "run_end" for e in events):
        return
    run_id = str(events[0].get("run_id", ""))
    open_tests: dict[str, None] = {}
    for event in events:
        test_id = str(event.get("test_id", ""))
        if event.get("type") == "test_start":
            open_tests[test_id] = None
        elif event.get("type") == "test_end":
            open_tests.pop(test_id, None)
    writer = Journal(journal, run_id)
    seqs = [e["seq"] for e in events if isinstance(e.get("seq"), int)]
    writer._seq = max(seqs, default=0)
    try:
        for test_id in open_tests:
            writer.test_end(test_id, Outcome.ABORTED, message=f"runner pid {pid} killed")
        detail = f"reached: {', '.join(reached) or 'none'}"
        if failed:
            detail += "; not reached: " + "; ".join(f"{r} ({m})" for r, m in failed)
        writer.error(f"runner pid {pid} died without closing the station; watchdog safe state "
                     f"{detail}", kind="station", outcome=Outcome.ABORTED)
        writer.run_end(Outcome.ABORTED, reason=KILLED_REASON)
    finally:
        writer.close()


def watch(stream: IO[bytes], station_file: str | Path, pid: int,
          journal: str | Path | Sequence[str | Path] | None = None,
          grace_s: float = 10.0, leases: GuardedLeases | None = None) -> bool:
    """Block until the runner says ``done`` (return False) or dies (act, return True: the
    runner's leases adopted, the safe state, each journal closed, the leases freed)."""
    line = stream.readline()
    if line == DONE:
        return False
    held: Held | None = None
    if leases is not None:
        try:
            held = leases.adopt(pid)
        except sqlite3.Error:
            held = None  # the registry is gone: the leases expire by themselves
    try:
        deadline = time.monotonic() + grace_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        reached, failed = apply_safe_state(station_file)
        for path in [journal] if isinstance(journal, str | Path) else list(journal or ()):
            if Path(path).exists():
                close_journal(path, pid, reached, failed)
    finally:
        if held is not None:
            held.release()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.watchdog")
    parser.add_argument("--station", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--journal", action="append", default=[],
                        help="a journal to close (repeat for every slot's run)")
    parser.add_argument("--lease-db", type=Path, default=None)
    parser.add_argument("--lease-token", default=None)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    ns = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner handles Ctrl-C; we wait for it
    leases = GuardedLeases(ns.lease_db, ns.lease_token, ns.lease_ttl) \
        if ns.lease_db is not None and ns.lease_token else None
    watch(sys.stdin.buffer, ns.station, ns.pid, ns.journal, leases=leases)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KILLED_REASON", "GuardedLeases", "Watchdog", "apply_safe_state", "close_journal",
           "main", "start_watchdog", "watch"]
