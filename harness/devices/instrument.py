"""Shared base of the line-protocol instrument drivers (light, power, meter, focus, chart).

A driver subclasses :class:`InstrumentDriver`, declares its framing (:attr:`link_defaults`), its
backend (``serial`` for pyserial, ``visa`` for PyVISA) and implements ``_identify`` and
``_safe``. The base resolves ``sim:<name>`` addresses, opens the transport, checks the expected
serial number, and makes ``safe_state`` idempotent, bounded (short timeout, no retries) and
safe to call before ``open`` or after a failed one.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.devices.base import DeviceIdentity
from harness.devices.transport import LineTransport, LinkSettings, open_transport
from harness.errors import InstrumentError
from harness.registry import DriverContext

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class InstrumentSettings(BaseModel):
    """Settings every instrument driver accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(1.0, gt=0.0, le=60.0, description="every read's timeout")
    retries: int = Field(2, ge=0, le=10, description="re-sends after a timeout")
    safe_timeout_s: float = Field(0.5, gt=0.0, le=10.0, description="timeout in safe_state")
    serial: str | None = Field(None, description="expected serial number (checked at open)")


class SerialSettings(InstrumentSettings):
    """An instrument on a serial line (``port``: a device path, ``socket://``, ``sim:<name>``)."""

    port: str = Field(min_length=1)
    baudrate: int | None = Field(None, gt=0, description="default: the instrument's own")


class VisaSettings(InstrumentSettings):
    """An instrument addressed by a VISA resource name (or ``sim:<name>``)."""

    resource: str = Field(min_length=1)


class InstrumentDriver(ABC):
    """Base of every line-protocol driver: open/close, identity, bounded safe state."""

    kind: ClassVar[str]
    driver_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = InstrumentSettings
    backend: ClassVar[Literal["serial", "visa"]] = "serial"
    link_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, name: str, settings: Any, context: DriverContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.transport: LineTransport | None = None
        self._identity: DeviceIdentity | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def address(self) -> str:
        raw = getattr(self.settings, "resource", None) or getattr(self.settings, "port", "")
        return self.context.resolve_address(str(raw))

    def link(self) -> LinkSettings:
        values = dict(self.link_defaults)
        values.update(timeout_s=self.settings.timeout_s, retries=self.settings.retries)
        baud = getattr(self.settings, "baudrate", None)
        if baud:
            values["baudrate"] = baud
        return LinkSettings(**values)

    def open(self) -> None:
        if self.transport is not None and self.transport.is_open:
            return
        self.transport = open_transport(self.name, self.address(), self.link(), self.backend)
        try:
            ident = self.identity()
            expected = self.settings.serial
            if expected is not None and ident.serial != expected:
                raise InstrumentError(f"serial {ident.serial!r} is not the station file's "
                                      f"{expected!r} (wrong instrument on {self.address()}?)",
                                      device=self.name)
            self._after_open()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def identity(self) -> DeviceIdentity:
        self._identity = self._identify()
        return self._identity

    @property
    def last_identity(self) -> DeviceIdentity | None:
        return self._identity

    def safe_state(self) -> None:
        """Reach the safe state with a short timeout; a no-op when never opened."""
        if self.transport is None:
            return
        self._safe()

    # -- for subclasses ------------------------------------------------------------------
    @abstractmethod
    def _identify(self) -> DeviceIdentity:
        ...

    @abstractmethod
    def _safe(self) -> None:
        ...

    def _after_open(self) -> None:
        """Bring the instrument to a known state after open (default: nothing)."""
        return None

    @property
    def link_(self) -> LineTransport:
        if self.transport is None:
            raise InstrumentError("not open", device=self.name)
        return self.transport

    def query(self, command: str, *, safe: bool = False) -> str:
        if safe:
            return self.link_.query(command, timeout_s=self.settings.safe_timeout_s, retries=0)
        return self.link_.query(command)

    def write(self, command: str) -> None:
        self.link_.write(command)

    def confirmed(self, send: Callable[[], None], check: Callable[[], bool]) -> bool:
        """Send a setting and check its read-back; if the link reconnected meanwhile (a write
        lost with a dropped connection is only seen by its read-back), send it once more."""
        before = self.link_.reconnects
        send()
        if check():
            return True
        if self.link_.reconnects != before:
            send()
            return check()
        return False

    def fail(self, message: str, command: str | None = None,
             reply: str | None = None) -> InstrumentError:
        return self.link_.error(message, command, reply) if self.transport is not None else \
            InstrumentError(message, device=self.name)

    def number(self, reply: str, command: str, *, lo: float | None = None,
               hi: float | None = None) -> float:
        """``reply`` as a number, strictly (no units, no junk), optionally within [lo, hi]."""
        text = reply.strip()
        if not _NUMBER.match(text):
            raise self.fail("reply is not a number", command, reply)
        value = float(text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(f"reply {value:g} outside the plausible range [{lo}, {hi}]",
                            command, reply)
        return value

    def fields(self, reply: str, command: str, n: int, sep: str = ",") -> list[str]:
        """``reply`` split into exactly ``n`` fields."""
        parts = [p.strip() for p in reply.split(sep)]
        if len(parts) != n or any(not p for p in parts):
            raise self.fail(f"expected {n} fields separated by {sep!r}", command, reply)
        return parts

    def idn(self, command: str = "*IDN?", *, safe: bool = False) -> DeviceIdentity:
        """Identity from an ``*IDN?``-style reply ``vendor,model,serial,firmware``."""
        reply = self.query(command, safe=safe)
        vendor, model, serial, firmware = self.fields(reply, command, 4)
        return DeviceIdentity(self.kind, self.driver_name, vendor, model, serial, firmware,
                              {"address": self.link_.address})


__all__ = ["InstrumentDriver", "InstrumentSettings", "ScpiErrorQueue", "SerialSettings",
           "VisaSettings"]


class ScpiErrorQueue:
    """What the SCPI drivers share: VISA with newline termination, and the error queue
    (IEEE 488.2 ``*CLS``, ``SYST:ERR?``) checked after every setting."""

    backend: ClassVar[Literal["serial", "visa"]] = "visa"
    link_defaults: ClassVar[dict[str, Any]] = {"read_termination": "\n",
                                               "write_termination": "\n"}

    def clear_status(self: Any) -> None:
        """``*CLS``, then check that the error queue is empty."""
        self.send_checked("*CLS")

    def check_errors(self: Any, after: str, *, safe: bool = False) -> None:
        """Raise if the error queue (``SYST:ERR?``) holds anything after ``after``."""
        reply = self.query("SYST:ERR?", safe=safe)
        code, _, message = reply.partition(",")
        try:
            number = int(code)
        except ValueError:
            raise self.fail("unreadable error queue", "SYST:ERR?", reply) from None
        if number != 0:
            raise self.fail(f"instrument error {number} {message.strip()} after {after!r}",
                            "SYST:ERR?", reply)

    def send_checked(self: Any, command: str) -> None:
        """Write ``command`` and check the error queue after it."""
        self.write(command)
        self.check_errors(command)
