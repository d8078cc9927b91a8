"""Line-protocol simulators and the servers that put them on a pty or a loopback TCP port.

A simulator (:class:`LineSimulator`) holds an instrument's state and answers its real protocol
one command line at a time (:meth:`LineSimulator.handle`). A server carries the bytes:

* :class:`PtyServer`: ``pty.openpty()`` with the slave in raw mode, a daemon thread serving the
  master; clients open a stable symlink to the slave (``/tmp/harness-sim-*/light``) unchanged,
  with pyserial (``serial.Serial(path)``) or PyVISA (``ASRL<path>::INSTR``). A *dropped
  connection* hangs up the pty (the client's reads fail with EIO) and re-creates it behind the
  same symlink, as a USB-serial adapter re-enumerates behind ``/dev/serial/by-id``.
* :class:`TcpServer`: ``127.0.0.1`` on an OS-chosen port, one client at a time (like an
  instrument's raw SCPI socket); a dropped connection closes the client socket.

Fault handling common to every simulator (see :mod:`harness.sim.faults`) lives in
:meth:`LineSimulator.respond`: delay, drop, garbage; the ``error`` fault is protocol-specific
and is handled by each simulator's ``handle``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pty
import select
import shutil
import socket
import tempfile
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.sim.faults import FaultState, InstrumentFault

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class SimSpec(BaseModel):
    """What every ``simulators:`` entry may say; each simulator extends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    transport: Literal["pty", "tcp"] | None = Field(None, description="default: the model's")
    serial: str | None = Field(None, description="serial number the instrument reports")
    faults: tuple[InstrumentFault, ...] = ()


@dataclass(frozen=True)
class Drop:
    """Sentinel reply: hang up the connection instead of answering."""


DROP = Drop()


@dataclass(frozen=True)
class Delayed:
    """Reply bytes to send after ``delay_s`` (a delay fault); input meanwhile is discarded."""

    data: bytes
    delay_s: float


Reply = bytes | Delayed | Drop | None


class LineSimulator(ABC):
    """Base of every instrument simulator: framing, fault handling, a lock around state.

    Subclasses set the framing class variables and implement :meth:`handle`, which returns the
    reply text (without terminator) or ``None`` when the command has no reply.
    """

    read_termination: ClassVar[bytes] = b"\n"
    """What ends a command line on the wire."""
    write_termination: ClassVar[bytes] = b"\n"
    """What ends a reply line on the wire."""
    prompt: ClassVar[bytes] = b""
    """Sent after every reply (Gardasoft's ``>``), also after commands that have no reply."""
    transport: ClassVar[str] = "pty"
    """Default server: ``pty`` (serial instruments) or ``tcp`` (LAN/SCPI instruments)."""
    encoding: ClassVar[str] = "ascii"

    def __init__(self, name: str, *, clock: Clock | None = None,
                 faults: FaultState | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or time.monotonic
        self.faults = faults or FaultState()
        self.lock = threading.RLock()
        self.log: list[tuple[str, str | None]] = []
        """Every (command, reply) this simulator answered, for tests."""

    @abstractmethod
    def handle(self, line: str) -> str | None:
        ...

    def error_fault(self) -> InstrumentFault | None:
        """The ``error`` fault, if due (consumed); simulators call this from ``handle``."""
        return self.faults.take("error")

    def respond(self, raw: bytes) -> Reply:
        """Bytes to send for one command line (terminator stripped), or :data:`DROP`."""
        try:
            line = raw.decode(self.encoding).strip()
        except UnicodeDecodeError:
            line = "\ufffd"
        if not line:
            return self.prompt or None
        fault = self.faults.take("drop", "delay", "garbage")
        reply: str | None
        if fault is not None and fault.kind == "drop":
            self.faults.command_seen()
            self.log.append((line, None))
            return DROP
        with self.lock:
            reply = self.handle(line)
        self.faults.command_seen()
        self.log.append((line, reply))
        if fault is not None and fault.kind == "garbage":
            return fault.text.encode("latin-1", "replace") + self.write_termination
        out = b"" if reply is None else reply.encode(self.encoding) + self.write_termination
        out += self.prompt
        if fault is not None and fault.kind == "delay":
            return Delayed(out, fault.delay_s)
        return out or None

    def describe(self) -> dict[str, object]:
        """State for logs and test assertions."""
        return {"name": self.name}


class _Conversation:
    """One client connection: its input buffer and how to send and discard bytes."""

    def __init__(self, send: Callable[[bytes], None], discard: Callable[[], None]) -> None:
        self.buffer = b""
        self.send = send
        self.discard = discard


class _Server(ABC):
    """Shared server machinery: daemon threads, a stop event, line splitting."""

    def __init__(self, sim: LineSimulator) -> None:
        self.sim = sim
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    @abstractmethod
    def address(self) -> str:
        ...

    def _serve_bytes(self, conv: _Conversation, data: bytes) -> bool:
        """Answer every complete line; ``False`` if the connection must drop."""
        conv.buffer += data
        term = self.sim.read_termination
        while term in conv.buffer:
            line, conv.buffer = conv.buffer.split(term, 1)
            try:
                out = self.sim.respond(line.strip(b"\r\n"))
            except Exception:  # a simulator bug must not kill the server: no reply
                log.exception("simulator %s failed on %r", self.sim.name, line)
                continue
            if isinstance(out, Drop):
                conv.buffer = b""
                return False
            if isinstance(out, Delayed):
                if self._stop.wait(out.delay_s):
                    return True
                conv.send(out.data)
                conv.discard()  # a busy instrument loses what was sent meanwhile
                conv.buffer = b""
                return True
            if out:
                conv.send(out)
        if len(conv.buffer) > 4096:  # a runaway client: drop what cannot be a command
            conv.buffer = b""
        return True

    def _spawn(self, target: Callable[[], None], suffix: str = "") -> None:
        thread = threading.Thread(target=target, name=f"sim-{self.sim.name}{suffix}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()


class PtyServer(_Server):
    """Serve ``sim`` on a pseudo-terminal behind a stable symlink."""

    def __init__(self, sim: LineSimulator) -> None:
        super().__init__(sim)
        self._dir = tempfile.mkdtemp(prefix="harness-sim-")
        self._link = os.path.join(self._dir, sim.name)
        self._master = -1
        self._slave = -1
        self.reconnects = 0
        self._open_pty()
        self._spawn(self._run)

    @property
    def address(self) -> str:
        return self._link

    def _open_pty(self) -> None:
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes pass as sent
        tmp = self._link + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self._link)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    def _discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while select.select([self._master], [], [], 0)[0]:
                if not os.read(self._master, 4096):
                    break

    def _run(self) -> None:
        conv = _Conversation(self._send, self._discard)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                if self._stop.wait(0.01):
                    break
                continue
            if not self._serve_bytes(conv, data):
                old = (self._master, self._slave)
                self._open_pty()  # the symlink now names a fresh pty ...
                for fd in old:  # ... and the client's next read of the old one fails (EIO)
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self.reconnects += 1
                conv = _Conversation(self._send, self._discard)

    def close(self) -> None:
        super().close()
        self._close_pty()
        shutil.rmtree(self._dir, ignore_errors=True)


class TcpServer(_Server):
    """Serve ``sim`` on ``127.0.0.1:<port>``; each client connection gets its own thread."""

    def __init__(self, sim: LineSimulator, port: int = 0) -> None:
        super().__init__(sim)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._spawn(self._accept)

    @property
    def address(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._threads = [t for t in self._threads if t.is_alive()]
            self._spawn(functools.partial(self._serve_client, client), f"-{self.connections}")

    def _serve_client(self, client: socket.socket) -> None:
        client.settimeout(0.05)

        def discard() -> None:
            with contextlib.suppress(OSError, ValueError):
                while select.select([client], [], [], 0)[0]:
                    if not client.recv(4096):
                        break

        conv = _Conversation(client.sendall, discard)
        try:
            while not self._stop.is_set():
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                try:
                    keep = self._serve_bytes(conv, data)
                except OSError:
                    return
                if not keep:
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
                    return
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def close(self) -> None:
        super().close()
        with contextlib.suppress(OSError):
            self._listener.close()


def serve(sim: LineSimulator, transport: str | None = None) -> PtyServer | TcpServer:
    """Start the server ``transport`` (default: the simulator's own) for ``sim``."""
    kind = transport or sim.transport
    if kind == "pty":
        return PtyServer(sim)
    if kind == "tcp":
        return TcpServer(sim)
    raise ValueError(f"unknown transport {kind!r}; allowed: pty, tcp")


__all__ = ["DROP", "Clock", "Delayed", "Drop", "LineSimulator", "PtyServer", "Reply", "SimSpec",
           "TcpServer", "serve"]
