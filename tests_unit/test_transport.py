"""The line transports (pyserial and PyVISA) against a tiny simulator on a pty and on TCP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from harness.devices.transport import LinkSettings, open_transport, show
from harness.errors import InstrumentError
from harness.sim.faults import InstrumentFault
from harness.sim.instruments.base import LineSimulator, PtyServer, TcpServer, serve

from .instrument_sim import no_leaks


class Echo(LineSimulator):
    """Answers ``ECHO <text>`` with ``<text>`` and ``N?`` with a counter."""

    def __init__(self) -> None:
        super().__init__("echo")
        self.n = 0

    def handle(self, line: str) -> str | None:
        if line.startswith("ECHO "):
            return line[5:]
        if line == "N?":
            self.n += 1
            return str(self.n)
        if line == "SILENT":
            return None
        return "?"


LINK = LinkSettings(timeout_s=0.1, retries=1)


@pytest.fixture(params=["pty-serial", "pty-visa", "tcp-visa"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Echo, PtyServer | TcpServer, str]]:
    kind, backend = request.param.split("-")
    sim = Echo()
    with no_leaks():
        server = serve(sim, kind)
        try:
            address = server.address
            if kind == "tcp" and backend == "serial":
                address = f"socket://127.0.0.1:{server.port}"  # type: ignore[union-attr]
            yield sim, server, address + "|" + backend
        finally:
            server.close()


def _open(address_backend: str) -> object:
    address, backend = address_backend.split("|")
    return open_transport("dev", address, LINK, backend)  # type: ignore[arg-type]


def test_query_round_trip(setup: tuple[Echo, object, str]) -> None:
    sim, _, address = setup
    t = _open(address)
    try:
        assert t.query("ECHO hello world") == "hello world"  # type: ignore[attr-defined]
        t.write("SILENT")  # type: ignore[attr-defined]
        assert t.query("N?") == "1"  # type: ignore[attr-defined]
        assert sim.log[-1] == ("N?", "1")
    finally:
        t.close()  # type: ignore[attr-defined]


def test_timeout_names_device_command_and_attempts(setup: tuple[Echo, object, str]) -> None:
    sim, _, address = setup
    t = _open(address)
    try:
        with pytest.raises(InstrumentError) as info:
            t.query("SILENT")  # type: ignore[attr-defined]
        msg = str(info.value)
        assert msg.startswith("dev: no reply within 0.1 s after 3 attempts")  # 1 + 1 retry + 1
        assert "'SILENT'" in msg
        assert [c for c, _ in sim.log].count("SILENT") == 3
        assert t.query("ECHO ok") == "ok"  # type: ignore[attr-defined]  # usable afterwards
    finally:
        t.close()  # type: ignore[attr-defined]


def test_transient_delay_is_retried(setup: tuple[Echo, object, str]) -> None:
    sim, _, address = setup
    t = _open(address)
    try:
        sim.faults.arm(InstrumentFault(kind="delay", delay_s=0.15, count=1))
        assert t.query("ECHO late") == "late"  # type: ignore[attr-defined]
        assert t.query("ECHO next") == "next"  # type: ignore[attr-defined]  # no stale reply
    finally:
        t.close()  # type: ignore[attr-defined]


def test_dropped_connection_reconnects_once(setup: tuple[Echo, object, str]) -> None:
    sim, server, address = setup
    t = _open(address)
    try:
        assert t.query("ECHO a") == "a"  # type: ignore[attr-defined]
        sim.faults.arm(InstrumentFault(kind="drop", count=1))
        assert t.query("ECHO b") == "b"  # type: ignore[attr-defined]
        assert t.reconnects == 1  # type: ignore[attr-defined]
        if isinstance(server, PtyServer):
            assert server.reconnects == 1
        else:
            assert server.connections == 2
    finally:
        t.close()  # type: ignore[attr-defined]


def test_persistent_drop_gives_up(setup: tuple[Echo, object, str]) -> None:
    sim, _, address = setup
    t = _open(address)
    try:
        sim.faults.arm(InstrumentFault(kind="drop"))
        with pytest.raises(InstrumentError, match=r"dev: .*'ECHO x'"):
            t.query("ECHO x")  # type: ignore[attr-defined]
    finally:
        t.close()  # type: ignore[attr-defined]


def test_garbage_bytes_are_an_error_not_replaced(setup: tuple[Echo, object, str]) -> None:
    sim, _, address = setup
    t = _open(address)
    try:
        sim.faults.arm(InstrumentFault(kind="garbage", count=1))
        with pytest.raises(InstrumentError, match=r"undecodable reply \(command 'N\?', reply "):
            t.query("N?")  # type: ignore[attr-defined]
    finally:
        t.close()  # type: ignore[attr-defined]


def test_lock_serialises_threads(setup: tuple[Echo, object, str]) -> None:
    _, _, address = setup
    t = _open(address)
    errors: list[str] = []

    def worker(tag: str) -> None:
        for i in range(15):
            reply = t.query(f"ECHO {tag}{i}")  # type: ignore[attr-defined]
            if reply != f"{tag}{i}":
                errors.append(reply)

    try:
        threads = [threading.Thread(target=worker, args=(tag,)) for tag in "abc"]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
    finally:
        t.close()  # type: ignore[attr-defined]


def test_pyserial_socket_url_round_trip_and_reconnect() -> None:
    """``socket://`` (a terminal server, ser2net) works through the same serial transport."""
    sim = Echo()
    with no_leaks():
        server = TcpServer(sim)
        try:
            t = open_transport("dev", f"socket://127.0.0.1:{server.port}", LINK)
            assert t.query("ECHO a") == "a"
            sim.faults.arm(InstrumentFault(kind="drop", count=1))
            assert t.query("ECHO b") == "b"
            assert server.connections == 2
            t.close()
        finally:
            server.close()


def test_unopenable_address_is_one_line_instrument_error() -> None:
    with pytest.raises(InstrumentError, match="dev: cannot open") as info:
        open_transport("dev", "/nonexistent/ttyX", LINK)
    assert "\n" not in str(info.value)


def test_show_truncates() -> None:
    assert show("x" * 200).endswith("...")
    assert len(show("x" * 200)) == 60
