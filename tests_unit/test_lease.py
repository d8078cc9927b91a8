"""Leases on shared instruments across processes (harness.station.lease, issue 20 item 4).

Timing tolerances: the waiter polls with backoff capped at 0.2 s, so it may get a freed lease
up to ~0.2 s late; the machine is shared with a benchmark, so a child process may be slow to
start or to act on its sleep: upper bounds allow +1.0 s. Lower bounds are tight (a lease must
never be had before its holder let it go or its expiry passed): they compare times taken on
the same host clock.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError, StationLocked
from harness.station.lease import (
    LEASE_DB_ENV,
    LeaseManager,
    LeaseTimeout,
    _process_gone,
    _started,
    default_lease_db,
    lease_keys,
)
from harness.station.schema import load_station_file
from harness.station.station import Station

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys, time
    from harness.station.lease import LeaseManager
    mode, db, ttl, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")
    manager = LeaseManager(db, ttl_s=ttl)
    if mode in ("hold", "guarded"):
        held = manager.acquire(keys, "child run", timeout_s=10)
        if mode == "guarded":
            held.guard_with(int(sys.argv[6]))
        print("held", held.resources, flush=True)
        hold_s = float(sys.argv[5])
        time.sleep(hold_s if hold_s >= 0 else 3600)
        held.release()
        print("released", repr(time.time()), flush=True)
    else:
        n, hold_s, out = int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
        for _ in range(n):
            with manager.acquire(keys, "looper", timeout_s=20):
                t0 = time.time()
                time.sleep(hold_s)
                t1 = time.time()
            with open(out, "a") as fh:
                fh.write(f"{t0!r} {t1!r}\\n")
""")


def child(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def wait_held(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("held"), f"child did not take its lease: {line!r}"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "locks" / "leases.sqlite"


def test_a_second_lease_in_one_process_waits_for_the_release(db: Path) -> None:
    """The second request waits until the first holder releases (0.4 s later), no longer."""
    first = LeaseManager(db).acquire(["sim:light"], "run A")
    threading.Timer(0.4, first.release).start()
    second = LeaseManager(db).acquire(["sim:light"], "run B", timeout_s=5)
    try:
        assert first.released
        assert 0.35 <= second.waited_s <= 1.4, second.waited_s
        assert [x.holder for x in LeaseManager(db).holders()] == ["run B"]
    finally:
        second.release()
    assert LeaseManager(db).holders() == []


def test_a_timeout_names_the_resource_holder_pid_host_and_expiry(db: Path) -> None:
    held = LeaseManager(db).acquire(["TCPIP::10.0.0.5::5025::SOCKET", "b"], "run-42")
    try:
        with pytest.raises(LeaseTimeout) as info:
            LeaseManager(db).acquire(["b", "c"], "harness capture", timeout_s=0.3)
    finally:
        held.release()
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, StationLocked)
    assert message.startswith("b is leased to 'run-42'"), message
    assert f"pid {os.getpid()} on host " in message and "until 20" in message, message
    assert info.value.waited_s >= 0.3
    # all or nothing: "c" was free but was not taken
    assert LeaseManager(db).holders() == []


def test_a_lease_held_by_another_process_is_had_when_it_is_released(db: Path) -> None:
    """The child holds for 1.0 s after saying so; the parent waits about that long and gets
    the lease only after the child's release (times on the same clock)."""
    proc = child("hold", db, 5, "sim:light,sim:chart", 1.0)
    try:
        wait_held(proc)
        held = LeaseManager(db).acquire(["sim:chart"], "parent", timeout_s=10)
        got = time.time()
        held.release()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    released = float(out.split()[-1])
    assert got >= released
    assert 0.8 <= held.waited_s <= 2.0, held.waited_s


def test_a_sigkilled_holder_on_another_host_loses_its_lease_at_expiry_not_before(
        db: Path) -> None:
    """Seen from "another host" (the dead-pid rule cannot apply), only the expiry frees the
    lease: refused while the last renewal's expiry is ahead, had once it passed (ttl 1 s)."""
    proc = child("hold", db, 1.0, "sim:light", -1)
    try:
        wait_held(proc)
        time.sleep(0.5)  # at least one renewal
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        remote = LeaseManager(db)
        remote.node = "another-host||"
        (row,) = remote.holders()
        assert row.expires > time.time(), "expired before the test could look"
        with pytest.raises(LeaseTimeout):
            remote.acquire(["sim:light"], "remote", timeout_s=0)
        held = remote.acquire(["sim:light"], "remote", timeout_s=5)
        got = time.time()
        held.release()
    finally:
        proc.kill()
        proc.wait()
    assert got >= row.expires
    assert got - row.expires <= 1.0
    assert [x.resource for x in held.took_over] == ["sim:light"]


def test_a_sigkilled_holder_on_this_host_loses_its_lease_at_once(db: Path) -> None:
    """Same host: a dead (here, a not yet reaped zombie) holder's lease is free at once,
    well before its 30 s ttl."""
    proc = child("hold", db, 30, "sim:light", -1)
    try:
        wait_held(proc)
        proc.send_signal(signal.SIGKILL)
        held = LeaseManager(db).acquire(["sim:light"], "next run", timeout_s=5)
        held.release()
    finally:
        proc.kill()
        proc.wait()
    assert held.waited_s < 2.0
    assert held.took_over[0].holder == "child run"


def test_a_reused_pid_does_not_keep_a_lease(db: Path) -> None:
    """A row naming a live pid of this host with another start time is a dead holder's."""
    pid = os.getpid()
    assert not _process_gone(pid, _started(pid))
    assert _process_gone(pid, "1")
    manager = LeaseManager(db)
    manager.acquire([], "x")  # no resources: nothing written
    assert not db.exists()
    db.parent.mkdir(parents=True)
    with manager.acquire(["seed"], "seed"):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO leases VALUES ('sim:light', 'old run', 't', ?, 'h', ?, '1', ?, ?, '')",
                     (pid, manager.node, time.time(), time.time() + 60))
    with manager.acquire("sim:light", "new run", timeout_s=0) as held:
        assert held.took_over[0].holder == "old run"


def test_renewal_keeps_a_lease_beyond_its_ttl(db: Path) -> None:
    """ttl 0.3 s, held 1.2 s: renewed (every 0.1 s) so still refused to others."""
    held = LeaseManager(db, ttl_s=0.3).acquire(["sim:light"], "long step")
    time.sleep(1.2)
    try:
        with pytest.raises(LeaseTimeout):
            LeaseManager(db).acquire(["sim:light"], "other", timeout_s=0)
        assert held.renewals >= 5 and held.lost == ()
    finally:
        held.release()
    LeaseManager(db).acquire(["sim:light"], "other", timeout_s=0).release()


def test_overlapping_sets_from_two_processes_do_not_deadlock(db: Path, tmp_path: Path) -> None:
    """{light, meter} and {meter, chart} taken 15 times each by two processes: both finish,
    and their holding intervals never overlap (they share the meter)."""
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    procs = [child("loop", db, 2, "sim:light,sim:meter", 15, 0.01, outs[0]),
             child("loop", db, 2, "sim:chart,sim:meter", 15, 0.01, outs[1])]
    try:
        codes = [p.wait(timeout=15) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert codes == [0, 0]
    spans = [[tuple(map(float, line.split())) for line in o.read_text().splitlines()]
             for o in outs]
    assert [len(s) for s in spans] == [15, 15]
    for a0, a1 in spans[0]:
        for b0, b1 in spans[1]:
            assert a1 <= b0 or b1 <= a0, ((a0, a1), (b0, b1))


@pytest.mark.parametrize(("call", "field"), [
    (lambda db: LeaseManager(db, ttl_s=0), "ttl_s"),
    (lambda db: LeaseManager(db, ttl_s=-1.0), "ttl_s"),
    (lambda db: LeaseManager(db, ttl_s=float("nan")), "ttl_s"),
    (lambda db: LeaseManager(db, ttl_s=True), "ttl_s"),
    (lambda db: LeaseManager(db).acquire([""], "x"), "resource"),
    (lambda db: LeaseManager(db).acquire(["a", "  "], "x"), "resource"),
    (lambda db: LeaseManager(db).acquire(["a\nb"], "x"), "resource"),
    (lambda db: LeaseManager(db).acquire(["a"], ""), "holder"),
    (lambda db: LeaseManager(db).acquire(["a"], "x", timeout_s=-1), "timeout_s"),
])
def test_bad_inputs_are_one_line_naming_the_parameter(db: Path, call: object,
                                                      field: str) -> None:
    with pytest.raises(ConfigError) as info:
        call(db)  # type: ignore[operator]
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ") and "\n" not in str(info.value)
    assert not db.exists()


def test_the_registry_is_in_the_lock_folder_unless_overridden(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEASE_DB_ENV, raising=False)
    assert default_lease_db(tmp_path) == tmp_path / "leases.sqlite"
    monkeypatch.setenv(LEASE_DB_ENV, str(tmp_path / "shared.sqlite"))
    assert default_lease_db(tmp_path) == tmp_path / "shared.sqlite"


def station_file(tmp_path: Path, devices: str, settings: str = "") -> Path:
    path = tmp_path / "st.yaml"
    path.write_text(f"id: st-9\nlock_dir: {tmp_path / 'locks'}\n{devices}{settings}")
    return path


def test_lease_keys_name_each_shared_instrument_by_its_address(tmp_path: Path) -> None:
    import socket

    config = load_station_file(station_file(tmp_path, (
        "light: {driver: scpi-led, resource: 'tcpip::10.0.0.5::5025::SOCKET'}\n"
        "power: {driver: scpi-psu, resource: 'sim:psu', max_voltage_v: 5, max_current_a: 1,"
        " voltage_v: 3.3, current_limit_a: 0.5}\n"
        "meter: {driver: cs100a, port: /dev/ttyUSB7}\n"
        "radiometer: {driver: optical-power-meter, resource: 'TCPIP0::pm.lab::inst0::INSTR'}\n"
        "chart: {driver: serial-chart, port: 'socket://10.0.0.9:4001'}\n"
        "focus: {driver: fake}\n"
        "cameras: {a: {driver: fake}, b: {driver: fake}}\n")))
    host = socket.gethostname()
    assert lease_keys(config) == sorted([
        "TCPIP::10.0.0.5::5025::SOCKET", "st-9/sim:psu", f"{host}:/dev/ttyUSB7",
        "socket://10.0.0.9:4001", "st-9/focus", "TCPIP::PM.LAB::INST0::INSTR"])


def test_the_station_leases_its_instruments_while_open(tmp_path: Path) -> None:
    path = station_file(tmp_path, "light: {driver: fake}\ncamera: {driver: fake}\n")
    db = tmp_path / "locks" / "leases.sqlite"
    with Station.load(path) as station:
        assert station.leases is not None and station.leases.waited_s < 1.0
        (row,) = LeaseManager(db).holders()
        assert (row.resource, row.holder, row.pid) == ("st-9/light", f"st-9 pid {os.getpid()}",
                                                       os.getpid())
    assert station.leases.released and LeaseManager(db).holders() == []


def test_a_station_whose_instrument_is_leased_waits_then_gives_up_cleanly(
        tmp_path: Path) -> None:
    """open() fails with the holder's name after settings.lease.timeout_s, and leaves the
    station lock free and nothing open."""
    path = station_file(tmp_path, "light: {driver: fake}\npower: {driver: fake}\n",
                        "settings: {lease: {timeout_s: 0.2, ttl_s: 2}}\n")
    db = tmp_path / "locks" / "leases.sqlite"
    with LeaseManager(db).acquire(["st-9/light"], "engineer capture"):
        station = Station.load(path)
        with pytest.raises(LeaseTimeout, match="leased to 'engineer capture'"):
            station.open()
        assert not station.is_open and not station.lock.held
        assert [x.holder for x in LeaseManager(db).holders()] == ["engineer capture"]
    with Station.load(path) as station:
        assert station.leases is not None and station.leases.resources == ("st-9/light",
                                                                             "st-9/power")


def test_a_station_with_leases_off_takes_none(tmp_path: Path) -> None:
    path = station_file(tmp_path, "light: {driver: fake}\n",
                        "settings: {lease: {enabled: false}}\n")
    with Station.load(path) as station:
        assert station.leases is None
    assert not (tmp_path / "locks" / "leases.sqlite").exists()


def test_a_bad_lease_setting_is_a_one_line_load_error(tmp_path: Path) -> None:
    path = station_file(tmp_path, "light: {driver: fake}\n",
                        "settings: {lease: {ttl_s: 0}}\n")
    with pytest.raises(ConfigError) as info:
        load_station_file(path)
    assert "settings.lease.ttl_s" in str(info.value) and "\n" not in str(info.value)


def sleeper() -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])


def test_a_dead_holder_s_lease_stays_held_while_its_guardian_lives(db: Path) -> None:
    """The runner names its watchdog the guardian: SIGKILLed, its lease is not free while the
    watchdog lives (the watchdog is making the instrument safe), and free once it is gone."""
    guardian = sleeper()
    proc = child("guarded", db, 30, "sim:light", -1, guardian.pid)
    try:
        wait_held(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with pytest.raises(LeaseTimeout, match="leased to 'child run'"):
            LeaseManager(db).acquire(["sim:light"], "next run", timeout_s=0.5)
        (row,) = LeaseManager(db).holders()
        assert row.guardian.startswith(f"{guardian.pid}:")
        guardian.kill()
        guardian.wait()
        with LeaseManager(db).acquire(["sim:light"], "next run", timeout_s=5) as held:
            assert held.waited_s < 2.0 and held.took_over[0].holder == "child run"
    finally:
        for p in (proc, guardian):
            p.kill()
            p.wait()


def test_the_watchdog_adopts_the_dead_runner_s_leases_renews_then_frees_them(db: Path) -> None:
    """adopt(): the adopter becomes the holder and renews past the ttl; release frees."""
    runner = LeaseManager(db, ttl_s=0.3)
    held = runner.acquire(["sim:light", "sim:psu"], "run pid 1")
    held._stop.set()  # the runner "dies": no more renewals from it
    adopted = LeaseManager(db, ttl_s=0.3).adopt(held.token, "watchdog of pid 1 (safe state)")
    try:
        assert adopted.resources == ("sim:light", "sim:psu")
        time.sleep(1.0)  # three ttls: only the adopter's renewals keep it
        with pytest.raises(LeaseTimeout, match="watchdog of pid 1"):
            LeaseManager(db).acquire(["sim:psu"], "next run", timeout_s=0)
        assert {r.pid for r in LeaseManager(db).holders()} == {os.getpid()}
    finally:
        adopted.release()
    with LeaseManager(db).acquire(["sim:light", "sim:psu"], "next run", timeout_s=0) as nxt:
        assert nxt.took_over == ()
    assert LeaseManager(db, ttl_s=0.3).adopt(held.token, "late watchdog").resources == ()


def test_a_registry_from_before_guardians_gets_the_column(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE leases (resource TEXT PRIMARY KEY, holder TEXT NOT NULL, "
                     "token TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, "
                     "node TEXT NOT NULL, started TEXT NOT NULL, acquired REAL NOT NULL, "
                     "expires REAL NOT NULL)")
        conn.execute("INSERT INTO leases VALUES ('sim:chart', 'old', 't', 1, 'h', 'n', '', 0, 1)")
    (row,) = LeaseManager(db).holders()
    assert (row.holder, row.guardian) == ("old", "")
    with LeaseManager(db).acquire(["sim:chart"], "new", timeout_s=0) as held:
        assert held.took_over[0].holder == "old"
