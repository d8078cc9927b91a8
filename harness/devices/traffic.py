"""Instrument traffic: every command, reply, timeout, retry and reconnect, one line each.

The transports (:mod:`harness.devices.transport`) call :func:`record` for everything that
crosses an instrument's wire; the run opens the sink on ``<run folder>/instruments.log``
(:func:`open_log`) and closes it at the end (:func:`close_log`). A station fault is then
explained by the exchanges that led to it: :func:`last_exchanges` gives the last lines of one
device (a ring per device, kept whether a log is open or not) for the report of a test that
ended in an instrument ERROR.

One line per event, tab-separated (a tab inside a text is escaped, so the columns never
shift)::

    2025-03-01T09:12:03.117+00:00  0.4  light  >  SOUR1:BRIG?  attempt 2/3
    time (UTC, ISO 8601)           ms   device dir text         note

``>`` a command, ``<`` a reply, ``!`` a timeout, retry, reconnect, drained late reply, open,
close or error. ``ms`` is how long the event took: the write for ``>``, command to reply for
``<``, the wait for a timeout, the reconnect for a reconnect (empty when it means nothing).
Texts are escaped to printable ASCII (``\\n``, ``\\xff``, ``\\u00e9``), so binary garbage
cannot break a line or the file, and cut at :data:`MAX_TEXT` characters.

Events recorded while no log is open (the station opens and identifies its instruments before
the run's folder exists) wait in a bounded backlog that :func:`open_log` writes first;
:func:`reset` forgets them and the rings (a new run in the same process). Nothing here raises
into instrument code: a failed write is counted and reported by :func:`close_log`, so the run
can call its evidence incomplete. No command carries a secret today; :func:`set_redactor`
installs a hook that rewrites a text before it is kept anywhere.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Direction = Literal[">", "<", "!"]
Redactor = Callable[[str, str, str], str]
"""``(device, direction, text) -> text`` applied before a text is escaped and kept."""

LOG_NAME = "instruments.log"
RING = 50
"""Lines kept per device for :func:`last_exchanges`."""
BACKLOG = 2000
"""Lines kept while no log is open (written first by :func:`open_log`)."""
MAX_TEXT = 2000
HEADER = ("# instrument traffic: time (UTC)\tms\tdevice\tdirection (> command, < reply, "
          "! timeout/retry/reconnect/error)\ttext\tnote\n")

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str | bytes) -> str:
    """``text`` as one line of printable ASCII: backslash escapes for control characters,
    tabs, newlines, undecodable bytes (``\\xNN``) and non-ASCII characters (``\\uNNNN``)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")  # one character per byte, escaped below as \xNN
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    line = "".join(out)
    if len(line) > MAX_TEXT:
        line = f"{line[:MAX_TEXT]}...(+{len(line) - MAX_TEXT} chars)"
    return line


def format_line(when: dt.datetime, elapsed_s: float | None, device: str, direction: str,
                text: str | bytes, note: str = "") -> str:
    """One log line (with its newline) in the format of the module docstring."""
    ms = "" if elapsed_s is None else f"{elapsed_s * 1000.0:.1f}"
    stamp = when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return "\t".join((stamp, ms, escape(device), direction, escape(text), escape(note))) + "\n"


@dataclass(frozen=True)
class LogSummary:
    """What one log received: lines written, lines lost to write errors and the first
    error (empty when none)."""

    path: Path
    lines: int
    lost: int
    error: str = ""


class TrafficRecorder:
    """The sink behind the module functions (one per process; separate ones for tests)."""

    def __init__(self, ring: int = RING, backlog: int = BACKLOG) -> None:
        self._lock = threading.Lock()
        self._ring_size = ring
        self._rings: dict[str, deque[str]] = {}
        self._backlog: deque[str] = deque(maxlen=backlog)
        self._backlog_dropped = 0
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._lines = 0
        self._lost = 0
        self._error = ""
        self._redactor: Redactor | None = None
        self._copies: list[IO[str]] = []

    @property
    def path(self) -> Path | None:
        """The open log, or None."""
        return self._path

    def set_redactor(self, redactor: Redactor | None) -> None:
        self._redactor = redactor

    def open_log(self, path: str | Path, *, add: bool = False) -> Path:
        """Append to ``path`` from now on (closing a log still open), backlog first.
        ``add``: keep the open log and write every later event to both (the runs of the
        slots of one station share its instruments). Raises OSError if the file cannot be
        opened."""
        target = Path(path)
        handle = target.open("a", encoding="ascii", newline="\n")
        with self._lock:
            if add and self._file is not None:
                self._copies.append(handle)
                handle.write(HEADER)
                handle.flush()
                return target
            self._close_locked()
            self._file, self._path = handle, target
            self._lines = self._lost = 0
            self._error = ""
            self._write_locked(HEADER, count=False)
            if self._backlog_dropped:
                self._write_locked(f"# {self._backlog_dropped} earlier events were not kept "
                                   "(backlog full)\n", count=False)
            for line in self._backlog:
                self._write_locked(line)
            self._backlog.clear()
            self._backlog_dropped = 0
        return target

    def close_log(self) -> LogSummary | None:
        """Close the log; what it received, or None when none was open."""
        with self._lock:
            return self._close_locked()

    def record(self, device: str, direction: Direction, text: str | bytes,
               elapsed_s: float | None = None, note: str = "") -> None:
        """Keep one event: in ``device``'s ring, and in the log (or the backlog)."""
        redactor = self._redactor
        if redactor is not None:
            raw = text.decode("latin-1") if isinstance(text, bytes) else text
            try:
                text = redactor(device, direction, raw)
            except Exception as exc:  # a broken hook must neither leak the text nor raise
                text = f"<redactor failed: {type(exc).__name__}>"
        line = format_line(dt.datetime.now(dt.UTC), elapsed_s, device, direction, text, note)
        with self._lock:
            ring = self._rings.get(device)
            if ring is None:
                ring = self._rings[device] = deque(maxlen=self._ring_size)
            ring.append(line.rstrip("\n"))
            if self._file is not None:
                self._write_locked(line)
            else:
                if len(self._backlog) == self._backlog.maxlen:
                    self._backlog_dropped += 1
                self._backlog.append(line)

    def last_exchanges(self, device: str, n: int = 20) -> list[str]:
        """The last ``n`` lines of ``device`` (oldest first; empty for a device never heard)."""
        with self._lock:
            ring = self._rings.get(device)
            return list(ring)[-n:] if ring and n > 0 else []

    def reset(self) -> None:
        """Forget the rings and the backlog (the log, if open, stays open)."""
        with self._lock:
            self._rings.clear()
            self._backlog.clear()
            self._backlog_dropped = 0

    # -- under the lock ------------------------------------------------------------------
    def _write_locked(self, line: str, *, count: bool = True) -> None:
        if self._file is None:
            return
        n = 1 if count else 0
        if self._error:
            self._lost += n
            return
        try:
            self._file.write(line)
            self._file.flush()  # a killed run keeps everything up to its last exchange
            for copy in self._copies:
                copy.write(line)
                copy.flush()
            self._lines += n
        except (OSError, ValueError) as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            self._lost += n

    def _close_locked(self) -> LogSummary | None:
        handle, path = self._file, self._path
        if handle is None or path is None:
            return None
        self._file = self._path = None
        copies, self._copies = self._copies, []
        try:
            for copy in copies:
                copy.close()
            handle.close()
        except OSError as exc:
            self._error = self._error or f"{type(exc).__name__}: {exc}"
        return LogSummary(path, self._lines, self._lost, self._error)


_RECORDER = TrafficRecorder()


def recorder() -> TrafficRecorder:
    """The process-wide recorder the module functions use."""
    return _RECORDER


def open_log(path: str | Path, *, add: bool = False) -> Path:
    """Write every instrument event to ``path`` from now on, the backlog first (OSError if
    it cannot be opened); ``add``: to it as well as to the log already open."""
    return _RECORDER.open_log(path, add=add)


def close_log() -> LogSummary | None:
    """Close the log opened by :func:`open_log`; its :class:`LogSummary`, or None."""
    return _RECORDER.close_log()


def record(device: str, direction: Direction, text: str | bytes,
           elapsed_s: float | None = None, note: str = "") -> None:
    """Keep one event of ``device`` (never raises into the caller's exchange)."""
    _RECORDER.record(device, direction, text, elapsed_s, note)


def last_exchanges(device: str, n: int = 20) -> list[str]:
    """The last ``n`` log lines of ``device``, oldest first."""
    return _RECORDER.last_exchanges(device, n)


def set_redactor(redactor: Redactor | None) -> None:
    """Rewrite texts before they are kept (None: keep them as they are)."""
    _RECORDER.set_redactor(redactor)


def reset() -> None:
    """Forget every ring and the backlog (called before a run opens its station)."""
    _RECORDER.reset()


__all__ = ["BACKLOG", "LOG_NAME", "RING", "Direction", "LogSummary", "Redactor",
           "TrafficRecorder", "close_log", "escape", "format_line", "last_exchanges",
           "open_log", "record", "recorder", "reset", "set_redactor"]
