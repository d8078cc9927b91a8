"""A small SCPI-1999 command interpreter for the simulated LAN/USB instruments.

Headers match in short or long form, case-insensitively (``SOUR1:BRIG``, ``source1:brightness``),
optional nodes in brackets are optional (``OUTPut[:STATe]``), ``;`` chains commands. Errors go
to the error queue read by ``SYST:ERR?`` (SCPI-1999 Vol. 2 §21.8: ``-113,"Undefined header"``,
``-222,"Data out of range"``, ``-224,"Illegal parameter value"``); the queue answers
``0,"No error"`` when empty. Common commands: ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from harness.sim.instruments.base import LineSimulator

Handler = Callable[[str | None, list[str]], str | None]
"""``handler(channel_suffix, args)`` -> reply or ``None``; raise :class:`ScpiError` to refuse."""


class ScpiError(Exception):
    """A SCPI error (code, message) to queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


def _mnemonic(word: str) -> str:
    """``SOURce1`` -> regex for ``SOUR``/``SOURCE`` with an optional numeric suffix group."""
    m = re.fullmatch(r"([A-Z*]+)([a-z]*)(#?)", word)
    if m is None:
        raise ValueError(f"bad mnemonic {word!r}")
    short, rest, numbered = m.groups()
    body = re.escape(short) + (f"(?:{rest.upper()})?" if rest else "")
    return body + (r"(\d*)" if numbered else "")


def compile_header(pattern: str) -> re.Pattern[str]:
    """``SOURce#:BRIGhtness[:LEVel]?`` -> a regex capturing the ``#`` suffixes."""
    query = pattern.endswith("?")
    pattern = pattern.removesuffix("?")
    regex = ""
    for token in re.findall(r"\[:[^\]]+\]|:?[^:\[]+", pattern):
        if token.startswith("["):
            regex += f"(?::{_mnemonic(token[2:-1])})?"
        else:
            colon = ":" if token.startswith(":") else ""
            regex += colon + _mnemonic(token.lstrip(":"))
    return re.compile(f"^:?{regex}{re.escape('?') if query else ''}$", re.IGNORECASE)


class ScpiSimulator(LineSimulator):
    """A SCPI instrument: a table of header patterns, an error queue, ``*IDN?``."""

    transport: ClassVar[str] = "tcp"
    idn: ClassVar[tuple[str, str, str, str]] = ("Harness", "SCPI-SIM", "0000", "1.0")
    fault_error: ClassVar[tuple[int, str]] = (-310, '"System error"')

    def __init__(self, name: str, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.errors: deque[tuple[int, str]] = deque(maxlen=16)
        self.serial = self.idn[2]
        self._table: list[tuple[re.Pattern[str], Handler]] = []
        self.add("*IDN?", lambda _c, _a: ",".join((*self.idn[:2], self.serial, self.idn[3])))
        self.add("*RST", lambda _c, _a: self.reset())
        self.add("*CLS", lambda _c, _a: self.errors.clear())
        self.add("*OPC?", lambda _c, _a: "1")
        self.add("SYSTem:ERRor[:NEXT]?", lambda _c, _a: self._next_error())

    def add(self, pattern: str, handler: Handler) -> None:
        self._table.append((compile_header(pattern), handler))

    def reset(self) -> None:
        """``*RST``: subclasses restore their power-on state."""

    def _next_error(self) -> str:
        if not self.errors:
            return '0,"No error"'
        code, message = self.errors.popleft()
        return f"{code},{message}"

    def handle(self, line: str) -> str | None:
        replies = []
        for command in (c.strip() for c in line.split(";")):
            if not command:
                continue
            reply = self._one(command)
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _one(self, command: str) -> str | None:
        header, _, rest = command.partition(" ")
        args = [a.strip() for a in rest.split(",")] if rest.strip() else []
        for regex, handler in self._table:
            m = regex.match(header)
            if m is None:
                continue
            suffix = next((g for g in m.groups() if g), None)
            if not header.endswith("?") and self.error_fault() is not None:
                self.errors.append(self.fault_error)
                return None
            try:
                return handler(suffix, args)
            except ScpiError as exc:
                self.errors.append((exc.code, exc.message))
                return None
        self.errors.append((-113, '"Undefined header"'))
        return None

    # -- helpers for handlers ------------------------------------------------------------
    @staticmethod
    def number(args: list[str], lo: float, hi: float) -> float:
        if len(args) != 1:
            raise ScpiError(-109, '"Missing parameter"') if not args else \
                ScpiError(-108, '"Parameter not allowed"')
        word = args[0].upper()
        if word in ("MIN", "MINIMUM"):
            return lo
        if word in ("MAX", "MAXIMUM"):
            return hi
        try:
            value = float(args[0])
        except ValueError:
            raise ScpiError(-104, '"Data type error"') from None
        if not lo <= value <= hi:
            raise ScpiError(-222, '"Data out of range"')
        return value

    @staticmethod
    def boolean(args: list[str]) -> bool:
        if len(args) != 1 or args[0].upper() not in ("ON", "OFF", "1", "0"):
            raise ScpiError(-224, '"Illegal parameter value"')
        return args[0].upper() in ("ON", "1")

    @staticmethod
    def channel(suffix: str | None, count: int) -> int:
        ch = int(suffix) if suffix else 1
        if not 1 <= ch <= count:
            raise ScpiError(-114, '"Header suffix out of range"')
        return ch


__all__ = ["Handler", "ScpiError", "ScpiSimulator", "compile_header"]
