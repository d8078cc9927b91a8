"""Line-oriented instrument transports: pyserial and PyVISA behind one small interface.

Every instrument driver talks through a :class:`LineTransport`:

* :class:`SerialTransport`: ``serial.serial_for_url`` (a device path, ``socket://host:port``,
  ``loop://``) with baud rate, framing and a read timeout; lines end at ``read_termination``.
* :class:`VisaTransport`: ``pyvisa.ResourceManager('@py')`` (TCPIP SOCKET, ASRL, USB-TMC) with
  termination characters and a timeout in ms. A bare device path becomes ``ASRL<path>::INSTR``.

What both guarantee (the lessons of labgrid/OpenHTF plugs: no unbounded waits, errors that name
the instrument):

* every read has a timeout; :meth:`LineTransport.query` re-sends on a timeout up to ``retries``
  times, then reconnects once and tries again (pyvisa-py reports a peer that hung up only as a
  timeout); a connection error (EIO, reset, broken pipe) reconnects at once (one reconnect per
  query); after a timeout the next command first drains late replies so they cannot be taken for
  its answer;
* failures raise :class:`~harness.errors.InstrumentError` naming the device, the command and the
  reply (``repr``, truncated); undecodable bytes are a failure, never silently replaced;
* a lock serialises whole command/reply exchanges, so threads (a watchdog's safe state, a
  monitor) cannot interleave;
* every command, reply, timeout, retry, reconnect, late reply drained and error is recorded
  with its timing (:mod:`harness.devices.traffic`: the run's ``instruments.log``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.devices import traffic
from harness.errors import InstrumentError

MAX_REPR = 60
POLL_S = 0.02
"""pyserial read granularity; the overall read timeout is enforced by a deadline."""
VISA_PREFIXES = ("TCPIP", "ASRL", "USB", "GPIB", "VXI", "PXI")


def _is_pty(address: str) -> bool:
    return os.path.realpath(address).startswith("/dev/pts/")


def show(reply: str | bytes) -> str:
    """``repr`` of a reply, truncated for an error message."""
    text = repr(reply)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


class LinkSettings(BaseModel):
    """Framing and timing of one instrument link (defaults suit the instrument's driver)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(1.0, gt=0.0, le=60.0)
    retries: int = Field(2, ge=0, le=10)
    read_termination: str = "\n"
    write_termination: str = "\n"
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    encoding: str = "ascii"


class ConnectionLost(Exception):
    """The link failed in a way a reconnect may cure (internal to this module)."""


class ReadTimeout(Exception):
    """No complete line within the timeout (internal to this module)."""


class LineTransport(ABC):
    """A line-oriented link with timeouts, bounded retries, one reconnect and a lock."""

    def __init__(self, device: str, address: str, link: LinkSettings) -> None:
        self.device = device
        self.address = address
        self.link = link
        self._lock = threading.RLock()
        self._dirty = False
        self._is_open = False
        self.reconnects = 0

    # -- backend hooks -------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        ...

    @abstractmethod
    def _close(self) -> None:
        ...

    @abstractmethod
    def _write(self, data: str) -> None:
        ...

    @abstractmethod
    def _read_line(self, timeout_s: float) -> str:
        """One reply line without its terminator; ReadTimeout / ConnectionLost on failure."""

    @abstractmethod
    def _drain(self, quiet_s: float) -> bytes:
        """Discard input until the line is quiet for ``quiet_s``; the bytes discarded."""

    # -- public --------------------------------------------------------------------------
    def error(self, message: str, command: str | None = None,
              reply: str | bytes | None = None) -> InstrumentError:
        """The error to raise, naming device, command and reply; recorded as a ``!`` line."""
        parts = [message]
        if command is not None:
            parts.append(f"command {command!r}")
        if reply is not None:
            parts.append(f"reply {show(reply)}")
        text = (f"{parts[0]}" + (f" ({', '.join(parts[1:])})" if parts[1:] else "")
                + f" at {self.address}")
        self._event("!", f"error: {text}")
        return InstrumentError(text, device=self.device)

    def _event(self, direction: traffic.Direction, text: str | bytes, since: float | None = None,
               note: str = "") -> None:
        """Record one event of this link (``since``: when it began, for its duration)."""
        elapsed = None if since is None else time.monotonic() - since
        traffic.record(self.device, direction, text, elapsed, note)

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        with self._lock:
            if self._is_open:
                return
            t0 = time.monotonic()
            try:
                self._open()
            except ConnectionLost as exc:
                raise self.error(f"cannot open: {exc}") from None
            self._is_open = True
            self._dirty = False
            self._event("!", f"open {self.address}", t0)

    def close(self) -> None:
        with self._lock:
            if self._shut():
                self._event("!", "close")

    def _shut(self) -> bool:
        """Close the backend (errors ignored); whether it was open."""
        was_open = self._is_open
        if was_open:
            with contextlib.suppress(Exception):
                self._close()
        self._is_open = False
        return was_open

    def reconnect(self, why: str = "") -> None:
        """Close and reopen, retrying the open for up to ``timeout_s`` (a USB-serial adapter
        or a terminal server takes a moment to come back)."""
        with self._lock:
            self._shut()
            self.reconnects += 1
            label = f"reconnect #{self.reconnects}" + (f" after {why}" if why else "")
            t0 = time.monotonic()
            deadline = t0 + self.link.timeout_s
            while True:
                try:
                    self._open()
                except ConnectionLost as exc:
                    if time.monotonic() <= deadline:
                        time.sleep(0.02)
                        continue
                    self._event("!", f"{label} failed: {exc}", t0)
                    raise self.error(f"cannot open: {exc}") from None
                self._is_open = True
                self._dirty = False
                self._event("!", label, t0, self.address)
                return

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the link for a multi-command exchange."""
        with self._lock:
            yield

    def write(self, command: str) -> None:
        """Send one command that has no reply (reconnects once on a connection error)."""
        with self._lock:
            self._ensure_open()
            self._resync()
            t0 = time.monotonic()
            try:
                self._write(command)
                self._event(">", command, t0)
                return
            except ConnectionLost as exc:
                self._event(">", command, t0, "not sent")
                self._event("!", f"connection lost: {exc}", t0, "reconnecting")
            self.reconnect("connection lost")
            t0 = time.monotonic()
            try:
                self._write(command)
                self._event(">", command, t0, "re-sent after reconnect")
            except ConnectionLost as exc:
                self._event(">", command, t0, "not sent")
                raise self.error(f"connection lost: {exc}", command) from None

    def query(self, command: str, *, timeout_s: float | None = None,
              retries: int | None = None) -> str:
        """Send ``command`` and return its reply line (stripped).

        Timeouts re-send up to ``retries`` times, then one reconnect and a last try; a
        connection error reconnects at once (once per query).
        """
        timeout = self.link.timeout_s if timeout_s is None else timeout_s
        tries = self.link.retries if retries is None else retries
        with self._lock:
            self._ensure_open()
            reconnected = False
            attempts = 0
            self._resync()
            while True:
                attempts += 1
                t0 = time.monotonic()
                sent = False
                try:
                    self._write(command)
                    sent = True
                    self._event(">", command, t0, f"attempt {attempts}" if attempts > 1 else "")
                    reply = self._read_line(timeout)
                    self._event("<", reply, t0)
                    return reply.strip()
                except ReadTimeout:
                    self._dirty = True
                    then = ("re-sending" if attempts <= tries else
                            "giving up" if reconnected else "reconnecting")
                    self._event("!", f"timeout: no reply within {timeout:g} s", t0, then)
                    if attempts <= tries:
                        continue
                    if reconnected:
                        raise self.error(f"no reply within {timeout:g} s after {attempts} "
                                         f"attempts", command) from None
                    why = "timeout"
                except ConnectionLost as exc:
                    if not sent:
                        self._event(">", command, t0, "not sent")
                    self._event("!", f"connection lost: {exc}", t0,
                                "giving up" if reconnected else "reconnecting")
                    if reconnected:
                        raise self.error(f"connection lost: {exc}", command) from None
                    why = "connection lost"
                except UnicodeDecodeError as exc:
                    self._dirty = True
                    self._event("<", exc.object, t0, "undecodable")
                    raise self.error("undecodable reply", command, exc.object) from None
                reconnected = True
                try:
                    self.reconnect(why)
                except InstrumentError:
                    raise self.error("connection lost and reconnect failed", command) from None

    def read_line(self, timeout_s: float | None = None) -> str:
        """Read one more reply line (multi-line replies)."""
        timeout = self.link.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            t0 = time.monotonic()
            try:
                reply = self._read_line(timeout)
                self._event("<", reply, t0, "further line")
                return reply.strip()
            except ReadTimeout:
                self._dirty = True
                self._event("!", f"timeout: no further line within {timeout:g} s", t0)
                raise self.error(f"no further reply line within {timeout:g} s") from None
            except ConnectionLost as exc:
                self._event("!", f"connection lost: {exc}", t0)
                raise self.error(f"connection lost: {exc}") from None
            except UnicodeDecodeError as exc:
                self._event("<", exc.object, t0, "undecodable")
                raise self.error("undecodable reply", None, exc.object) from None

    def _ensure_open(self) -> None:
        if not self._is_open:
            self.open()

    def _resync(self) -> None:
        """After a timeout, discard late replies until the line is quiet."""
        if self._dirty:
            t0 = time.monotonic()
            late = b""
            with contextlib.suppress(ConnectionLost):
                late = self._drain(min(self.link.timeout_s / 2, 0.25)) or b""
            self._event("<" if late else "!", late if late else "nothing late", t0,
                        "late reply discarded" if late else "drained after a timeout")
            self._dirty = False


class SerialTransport(LineTransport):
    """pyserial: device paths and URLs (``socket://``, ``loop://``, ``rfc2217://``)."""

    def __init__(self, device: str, address: str, link: LinkSettings) -> None:
        super().__init__(device, address, link)
        self._port: Any = None
        self._rx = b""

    def _open(self) -> None:
        framing = {"bytesize": self.link.bytesize, "parity": self.link.parity,
                   "stopbits": self.link.stopbits}
        try:
            self._port = self._serial(framing)
        except Exception as exc:  # SerialException, OSError, termios.error, ValueError
            if not (_is_pty(self.address) and "Invalid argument" in str(exc)):
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
            # A Linux pty keeps CS8 and no parity whatever is asked, and then refuses a second
            # request for the same unsupported framing (EINVAL); ptys carry bytes, so open 8N1.
            try:
                self._port = self._serial({"bytesize": 8, "parity": "N", "stopbits": 1})
            except Exception as exc2:
                raise ConnectionLost(f"{type(exc2).__name__}: {exc2}") from None
        self._rx = b""

    def _serial(self, framing: dict[str, Any]) -> Any:
        import serial

        return serial.serial_for_url(self.address, baudrate=self.link.baudrate, timeout=POLL_S,
                                     write_timeout=self.link.timeout_s, **framing)

    def _close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _write(self, data: str) -> None:

        try:
            self._port.write((data + self.link.write_termination).encode(self.link.encoding))
            self._port.flush()
        except Exception as exc:  # SerialException, OSError, termios.error
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None

    def _read_line(self, timeout_s: float) -> str:
        term = self.link.read_termination.encode(self.link.encoding)
        deadline = time.monotonic() + timeout_s
        while term not in self._rx:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReadTimeout()
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except Exception as exc:  # SerialException, OSError, termios.error
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
            self._rx += chunk
        line, self._rx = self._rx.split(term, 1)
        return line.decode(self.link.encoding)

    def _drain(self, quiet_s: float) -> bytes:
        now = time.monotonic()
        deadline, last = now + 4 * quiet_s, now
        late, self._rx = self._rx, b""
        try:
            while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
                chunk = self._port.read(max(1, self._port.in_waiting))
                if chunk:
                    late += chunk
                    last = time.monotonic()
            self._port.reset_input_buffer()
        except Exception as exc:  # SerialException, OSError, termios.error
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
        return late


class VisaTransport(LineTransport):
    """PyVISA with the pure-Python backend (``@py``): TCPIP SOCKET, ASRL, USB-TMC."""

    _rm: Any = None
    _rm_lock = threading.Lock()

    def __init__(self, device: str, address: str, link: LinkSettings) -> None:
        if not address.upper().startswith(VISA_PREFIXES):
            address = f"ASRL{address}::INSTR"
        super().__init__(device, address, link)
        self._res: Any = None

    @classmethod
    def resource_manager(cls) -> Any:
        with cls._rm_lock:
            if cls._rm is None:
                import pyvisa

                cls._rm = pyvisa.ResourceManager("@py")
            return cls._rm

    def _open(self) -> None:
        kwargs: dict[str, Any] = {
            "read_termination": self.link.read_termination,
            "write_termination": self.link.write_termination,
            "timeout": int(self.link.timeout_s * 1000),
            "encoding": self.link.encoding,
        }
        if self.address.upper().startswith("ASRL"):
            from pyvisa.constants import Parity, StopBits

            kwargs.update(baud_rate=self.link.baudrate, data_bits=self.link.bytesize,
                          parity={"N": Parity.none, "E": Parity.even, "O": Parity.odd,
                                  "M": Parity.mark, "S": Parity.space}[self.link.parity],
                          stop_bits=StopBits.two if self.link.stopbits == 2 else StopBits.one)
        try:
            self._res = self.resource_manager().open_resource(self.address, **kwargs)
        except Exception as exc:  # VisaIOError, OSError, ValueError, SerialException
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None

    def _close(self) -> None:
        if self._res is not None:
            self._res.close()
            self._res = None

    def _write(self, data: str) -> None:

        try:
            self._res.write(data)
        except Exception as exc:  # VisaIOError, OSError, pyserial's SerialException under ASRL
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None

    def _read_line(self, timeout_s: float) -> str:
        import pyvisa

        try:
            self._res.timeout = max(1, int(timeout_s * 1000))
            raw: bytes = self._res.read_raw()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise ReadTimeout() from None
            raise ConnectionLost(str(exc)) from None
        except Exception as exc:  # OSError, pyserial's SerialException under ASRL
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
        term = self.link.read_termination.encode(self.link.encoding)
        if raw.endswith(term):
            raw = raw[: -len(term)]
        return raw.decode(self.link.encoding)

    def _drain(self, quiet_s: float) -> bytes:
        import pyvisa

        deadline = time.monotonic() + 4 * quiet_s
        late = b""
        try:
            self._res.timeout = max(1, int(quiet_s * 1000))
            while time.monotonic() < deadline:
                late += self._res.read_raw()
        except pyvisa.errors.VisaIOError:
            pass
        except Exception as exc:
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
        return late


def open_transport(device: str, address: str, link: LinkSettings,
                   backend: Literal["serial", "visa", "auto"] = "auto") -> LineTransport:
    """A transport for ``address``: VISA resource names use PyVISA, anything else pyserial."""
    if backend == "visa" or (backend == "auto" and address.upper().startswith(VISA_PREFIXES)):
        transport: LineTransport = VisaTransport(device, address, link)
    else:
        transport = SerialTransport(device, address, link)
    transport.open()
    return transport


__all__ = ["ConnectionLost", "LineTransport", "LinkSettings", "ReadTimeout", "SerialTransport",
           "VisaTransport", "open_transport", "show"]
