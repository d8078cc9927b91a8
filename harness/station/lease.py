"""Leases on shared instruments, seen by every process that opens the same lease registry.

The station lock (:mod:`harness.station.lock`) keeps a station file to one run. Instruments
can be shared beyond it: a second station file on the same light, an engineer's
``harness capture``. Each process takes a *lease* on the instruments it drives, in a small
SQLite registry (``<lock_dir>/leases.sqlite``, or ``$HARNESS_LEASE_DB``), one row per leased
resource: the holder's label, pid, host, when it was taken and when it expires.

Rules:

* A set of resources is taken all or nothing, in one ``BEGIN IMMEDIATE`` transaction, so two
  processes asking for overlapping sets never hold part of a set while waiting for the rest
  (no deadlock). A held resource makes the request wait, polling with backoff, up to its
  timeout; then :class:`LeaseTimeout` names the resource, holder, pid, host and expiry.
* While the holder lives, a thread renews its expiry every ``ttl_s / 3``. A lease whose expiry
  has passed is free: its holder died (SIGKILL), hung or lost the registry.
* A lease whose holder ran on this machine (same kernel boot and pid namespace) and whose
  process is gone, a zombie, or a new process under a reused pid is free at once, unless its
  *guardian* lives: the runner names its SIGKILL watchdog (:meth:`Held.guard_with`), which on
  the runner's death adopts the leases (:meth:`LeaseManager.adopt`), keeps renewing them while
  it brings the instruments to their safe state, and then frees them; so nobody drives an
  instrument the watchdog is still making safe. On any other host only the expiry frees it.
* Expiry is wall-clock time (``time.time``), so hosts sharing a registry need synchronised
  clocks (NTP); the ttl must exceed their skew.

The registry uses SQLite's rollback journal (not WAL, which needs shared memory that network
file systems do not give), so a registry on a shared file system is correct as far as that
file system's POSIX byte-range locks are (SQLite's own warning on NFS applies); on a local file
system it is correct for every process of the host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, StationLocked, one_line
from harness.station.lock import default_lock_dir

if TYPE_CHECKING:
    from harness.station.schema import StationConfig

log = logging.getLogger(__name__)

LEASE_DB_ENV = "HARNESS_LEASE_DB"
DEFAULT_TTL_S = 10.0
DEFAULT_TIMEOUT_S = 30.0
_BUSY_S = 5.0  # SQLite's own wait for another process's transaction (milliseconds long)
_POLL_FIRST_S = 0.02
_POLL_MAX_S = 0.2  # a freed lease is noticed within this; a poll costs ~1 ms
_NETWORK_PREFIXES = ("TCPIP", "SOCKET://", "RFC2217://")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    resource TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    token    TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    node     TEXT NOT NULL,
    started  TEXT NOT NULL,
    acquired REAL NOT NULL,
    expires  REAL NOT NULL,
    guardian TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS leases_token ON leases(token);
"""
_COLUMNS = "resource, holder, token, pid, host, node, started, acquired, expires, guardian"
_SELECT_ALL = f"SELECT {_COLUMNS} FROM leases ORDER BY resource"
_SELECT_ONE = f"SELECT {_COLUMNS} FROM leases WHERE resource = ?"
_REPLACE = f"INSERT OR REPLACE INTO leases ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_ADD_GUARDIAN = "ALTER TABLE leases ADD COLUMN guardian TEXT NOT NULL DEFAULT ''"


def default_lease_db(lock_dir: Path | None = None) -> Path:
    """``$HARNESS_LEASE_DB`` if set, else ``<lock_dir>/leases.sqlite``."""
    env = os.environ.get(LEASE_DB_ENV)
    if env:
        return Path(env).expanduser()
    return (lock_dir or default_lock_dir()) / "leases.sqlite"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _node() -> str:
    """This host, kernel boot and pid namespace: where a pid names the same process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}|{boot}|{namespace}"


def _stat_fields(pid: int) -> list[bytes]:
    """``/proc/<pid>/stat`` from field 3 (state) on (OSError if there is no such process)."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw.rsplit(b")", 1)[-1].split()


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid), or ``""``."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return ""
    return fields[19].decode() if fields and len(fields) > 19 else ""


def _process_gone(pid: int, started: str) -> bool:
    """True if ``pid`` of this node is gone, a zombie, or now another process."""
    fields: list[bytes] | None = None
    try:
        fields = _stat_fields(pid)
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return True
    except OSError:
        return False
    if fields is None:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    if fields and fields[0] == b"Z":
        return True
    return bool(started) and len(fields) > 19 and fields[19].decode() != started


@dataclass(frozen=True)
class Lease:
    """One row of the registry: who holds ``resource`` and until when."""

    resource: str
    holder: str
    pid: int
    host: str
    acquired: float
    """When it was taken (seconds since the epoch)."""
    expires: float
    """When it is free unless renewed (seconds since the epoch)."""
    token: str = ""
    node: str = ""
    started: str = ""
    guardian: str = ""
    """``<pid>:<start time>`` of a process of the holder's node that keeps the lease held
    after the holder died (its watchdog), or ``""``."""

    def describe(self, now: float | None = None) -> str:
        left = self.expires - (time.time() if now is None else now)
        return (f"{self.resource} is leased to {self.holder!r} (pid {self.pid} on host "
                f"{self.host}) until {_iso(self.expires)} ({left:.1f} s from now)")


class LeaseTimeout(StationLocked):
    """A shared instrument stayed leased by another holder for the whole timeout."""

    def __init__(self, blocker: Lease, waited_s: float, db: Path) -> None:
        self.blocker = blocker
        self.waited_s = waited_s
        self.db = db
        super().__init__(one_line(f"{blocker.describe()}; gave up after waiting "
                                  f"{waited_s:.1f} s (lease registry {db})"))


def _check_number(value: object, name: str, *, zero_ok: bool) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok)):
        allowed = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"{value!r}: must be a finite number of seconds {allowed}", field=name)
    return float(value)


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != one_line(value):
        raise ConfigError(f"{value!r}: must be a non-empty one-line string", field=name)
    return value


def _check_resources(resources: str | Iterable[str]) -> tuple[str, ...]:
    items = [resources] if isinstance(resources, str) else list(resources)
    return tuple(sorted({_check_text(r, "resource") for r in items}))


class Held:
    """Leases taken together by :meth:`LeaseManager.acquire`; renewed until :meth:`release`.

    ``waited_s`` is how long the request waited for other holders (apart from working time).
    """

    def __init__(self, manager: LeaseManager, resources: tuple[str, ...], holder: str,
                 token: str, waited_s: float, took_over: tuple[Lease, ...]) -> None:
        self.manager = manager
        self.resources = resources
        self.holder = holder
        self.token = token
        self.waited_s = waited_s
        self.took_over = took_over
        """Leases of dead or expired holders that this request took over."""
        self.acquired_at = time.time()
        self.renewals = 0
        self._pid = os.getpid()
        self._lost: set[str] = set()
        self._released = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if resources:
            self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                            name=f"lease renewal ({holder})")
            self._thread.start()

    @property
    def ttl_s(self) -> float:
        return self.manager.ttl_s

    @property
    def released(self) -> bool:
        return self._released

    @property
    def lost(self) -> tuple[str, ...]:
        """Resources whose lease another holder took (this process stalled past the ttl)."""
        return tuple(sorted(self._lost))

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3.0):
            try:
                kept = self.manager._renew(self.token)
            except sqlite3.Error as exc:
                log.warning("lease renewal for %s failed: %s", self.holder, exc)
                continue
            self.renewals += 1
            lost = set(self.resources) - set(kept) - self._lost
            if lost:
                self._lost |= lost
                log.error("%s lost its lease on %s (another holder took it after its expiry)",
                          self.holder, ", ".join(sorted(lost)))

    def release(self) -> None:
        """Stop renewing and free the leases; idempotent; never raises for the registry."""
        with self._guard:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=_BUSY_S + 1.0)
        if os.getpid() != self._pid or not self.resources:
            return  # a forked child never frees its parent's leases
        try:
            self.manager._delete(self.token)
        except sqlite3.Error as exc:
            log.error("could not release the leases of %s (%s); they expire in %.0f s",
                      self.holder, exc, self.ttl_s)

    def guard_with(self, pid: int) -> None:
        """Name process ``pid`` of this machine (the runner's watchdog) the guardian of these
        leases: while it lives they are not free, even if this process dies."""
        if self.resources and not self._released:
            self.manager._set_guardian(self.token, f"{pid}:{_started(pid)}")

    def __enter__(self) -> Held:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"Held({list(self.resources)!r}, holder={self.holder!r}, {state})"


class LeaseManager:
    """The lease registry at ``db`` (default :func:`default_lease_db`)."""

    def __init__(self, db: str | Path | None = None, *, ttl_s: float = DEFAULT_TTL_S,
                 lock_dir: Path | None = None) -> None:
        self.ttl_s = _check_number(ttl_s, "ttl_s", zero_ok=False)
        self.path = Path(db) if db is not None else default_lease_db(lock_dir)
        self.node = _node()
        self.host = socket.gethostname()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_S, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(leases)")}
            if "guardian" not in columns:  # a registry made before guardians
                with contextlib.suppress(sqlite3.OperationalError):  # another process did
                    conn.execute(_ADD_GUARDIAN)
            yield conn
        finally:
            conn.close()

    def holders(self) -> list[Lease]:
        """Every row of the registry (expired ones too), by resource."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(_SELECT_ALL).fetchall()
        return [_lease(row) for row in rows]

    def _free(self, lease: Lease, now: float) -> bool:
        if lease.expires <= now:
            return True
        if lease.node != self.node or not _process_gone(lease.pid, lease.started):
            return False
        pid, _, started = lease.guardian.partition(":")
        return not pid.isdigit() or _process_gone(int(pid), started)

    def _try(self, keys: tuple[str, ...], holder: str, token: str
             ) -> Lease | tuple[Lease, ...]:
        """Take every key, or none: the blocking lease, else the leases taken over."""
        now = time.time()
        pid = os.getpid()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = [row for key in keys
                        for row in conn.execute(_SELECT_ONE, (key,)).fetchall()]
                current = sorted((_lease(r) for r in rows), key=lambda x: x.resource)
                for lease in current:
                    if not self._free(lease, now):
                        conn.execute("ROLLBACK")
                        return lease
                conn.executemany(
                    _REPLACE,
                    [(k, holder, token, pid, self.host, self.node, _started(pid), now,
                      now + self.ttl_s, "") for k in keys])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        for lease in current:
            why = "expired" if lease.expires <= now else "its process is gone"
            log.warning("took over the lease on %s from %r (pid %d on %s): %s",
                        lease.resource, lease.holder, lease.pid, lease.host, why)
        return tuple(current)

    def acquire(self, resources: str | Iterable[str], holder: str,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> Held:
        """Lease every resource for ``holder``, waiting up to ``timeout_s`` for other holders.

        All or nothing; raises :class:`LeaseTimeout` naming the holder still in the way.
        """
        keys = _check_resources(resources)
        holder = _check_text(holder, "holder")
        timeout = _check_number(timeout_s, "timeout_s", zero_ok=True)
        token = uuid.uuid4().hex
        start = time.monotonic()
        delay = _POLL_FIRST_S
        took_over: tuple[Lease, ...] = ()
        while keys:
            try:
                outcome = self._try(keys, holder, token)
            except sqlite3.OperationalError as exc:  # locked past _BUSY_S: a busy registry
                if time.monotonic() - start >= timeout:
                    raise StationLocked(one_line(f"lease registry {self.path} stayed busy for "
                                                 f"{timeout:.1f} s: {exc}")) from None
                outcome = None
            if isinstance(outcome, tuple):
                took_over = outcome
                break
            waited = time.monotonic() - start
            if waited >= timeout:
                assert outcome is not None
                raise LeaseTimeout(outcome, waited, self.path)
            time.sleep(min(delay * random.uniform(0.8, 1.2), timeout - waited))
            delay = min(delay * 1.5, _POLL_MAX_S)
        return Held(self, keys, holder, token, time.monotonic() - start, took_over)

    def _renew(self, token: str) -> list[str]:
        """Push the expiry of ``token``'s leases on; the resources it still holds."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE leases SET expires = ? WHERE token = ?",
                             (time.time() + self.ttl_s, token))
                kept = [r[0] for r in conn.execute(
                    "SELECT resource FROM leases WHERE token = ?", (token,))]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return kept

    def _set_guardian(self, token: str, guardian: str) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE leases SET guardian = ? WHERE token = ?", (guardian, token))

    def adopt(self, token: str, holder: str) -> Held:
        """Take over the leases of ``token`` (a dead runner's, by its watchdog): this process
        becomes their holder and renews them until :meth:`Held.release`. The resources that
        another holder took meanwhile are not adopted (``Held.resources`` lists the rest)."""
        holder = _check_text(holder, "holder")
        pid = os.getpid()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE leases SET holder = ?, pid = ?, host = ?, node = ?, "
                             "started = ?, expires = ? WHERE token = ?",
                             (holder, pid, self.host, self.node, _started(pid),
                              time.time() + self.ttl_s, token))
                kept = tuple(sorted(r[0] for r in conn.execute(
                    "SELECT resource FROM leases WHERE token = ?", (token,))))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return Held(self, kept, holder, token, 0.0, ())

    def _delete(self, token: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM leases WHERE token = ?", (token,))


def _lease(row: tuple[Any, ...]) -> Lease:
    resource, holder, token, pid, host, node, started, acquired, expires, guardian = row
    return Lease(str(resource), str(holder), int(pid), str(host), float(acquired),
                 float(expires), str(token), str(node), str(started), str(guardian or ""))


def lease_keys(config: StationConfig) -> list[str]:
    """The resources a station leases: each of its devices except the cameras.

    An instrument is keyed by its address, so two station files driving one instrument share
    one lease: a network address (``TCPIP...``, ``socket://``, ``rfc2217://``) as written,
    a VISA name upper-cased and board ``TCPIP0`` as ``TCPIP`` (VISA names are
    case-insensitive, board 0 the default); a port of this host
    (a device path, resolved through symlinks, ``ASRL``/``USB``/``GPIB`` names) as
    ``<host>:<port>``, since the same name is another port elsewhere; a simulated address
    ``sim:<name>`` as ``<station id>/sim:<name>`` (each station serves its own simulators); a
    device with no address as ``<station id>/<role>``.
    """
    host = socket.gethostname()
    keys: list[str] = []
    for spec in config.devices:
        if spec.kind == "camera":
            continue
        address = getattr(spec.settings, "resource", None) or getattr(spec.settings, "port", None)
        if not isinstance(address, str) or not address.strip():
            keys.append(f"{config.id}/{spec.role}")
            continue
        address = address.strip()
        upper = address.upper()
        if address.startswith("sim:"):
            keys.append(f"{config.id}/{address}")
        elif upper.startswith("TCPIP"):
            keys.append(upper.replace("TCPIP0::", "TCPIP::", 1))  # board 0 is the default
        elif upper.startswith(_NETWORK_PREFIXES):
            keys.append(address)
        elif address.startswith("/"):
            keys.append(f"{host}:{os.path.realpath(address)}")
        else:
            keys.append(f"{host}:{upper if '::' in address else address}")
    return sorted(set(keys))


def station_leases(config: StationConfig, lock_dir: Path | None = None) -> Held | None:
    """Lease the station's shared instruments per its ``settings.lease`` (``None`` if off).

    The holder label is ``<station id> pid <pid>``; the registry is
    :func:`default_lease_db` of the station's lock folder.
    """
    settings = config.settings.lease
    keys = lease_keys(config)
    if not settings.enabled or not keys:
        return None
    manager = LeaseManager(lock_dir=lock_dir or config.lock_dir, ttl_s=settings.ttl_s)
    return manager.acquire(keys, f"{config.id} pid {os.getpid()}", settings.timeout_s)


__all__ = ["DEFAULT_TIMEOUT_S", "DEFAULT_TTL_S", "LEASE_DB_ENV", "Held", "Lease", "LeaseManager",
           "LeaseTimeout", "default_lease_db", "lease_keys", "station_leases"]
