"""From a run's journal to the page: tail the file, broadcast what happened as server-sent events.

The journal (:mod:`harness.evidence.journal`) is the run's only event stream: the app reads
what the child process wrote and fsynced, so what the kiosk shows is exactly what the record
will say. :class:`JournalTail` reads a journal incrementally (whole lines only: a line still
being written is left for the next read). :class:`EventBus` hands every app event to each
connected ``/api/events`` stream (thread-safe: the run manager's threads publish, the server's
event loop delivers); :func:`sse_stream` is the body of that response, with keep-alive
comments so proxies and the browser keep the connection open during long captures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

Stream = asyncio.Queue[dict[str, Any] | None]
"""One subscriber's queue of events (None: the stream ends)."""

#: Events a stream may fall behind by before it is dropped (the page then reconnects).
QUEUE_SIZE = 1000


class JournalTail:
    """Incremental reader of one journal file: :meth:`read` returns the events written since
    the last call (complete lines only; damaged lines are skipped, as the reader does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        events: list[dict[str, Any]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                events.append(event)
        return events


class EventBus:
    """Broadcast app events (dicts) to every subscribed stream; numbered in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, Stream]] = []
        self._seq = itertools.count(1)
        self.closed = False

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue for the calling event loop's stream (None in it means: end)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Number ``event`` and deliver it to every stream (from any thread)."""
        with self._lock:
            numbered = {"seq": next(self._seq), **event}
            targets = list(self._subscribers)
        for loop, queue in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, numbered)
            except RuntimeError:  # that loop is closed: its stream is gone
                self.unsubscribe(queue)
        return numbered

    def close(self) -> None:
        """End every stream (server shutdown)."""
        with self._lock:
            self.closed = True
            targets = list(self._subscribers)
        for loop, queue in targets:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, queue, None)


def _offer(queue: asyncio.Queue[dict[str, Any] | None], event: dict[str, Any] | None) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:  # a stalled client: end its stream, the page reconnects
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


def format_sse(event: dict[str, Any]) -> str:
    """One server-sent event: ``id``, and the event as JSON in ``data``."""
    return f"id: {event.get('seq', '')}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def sse_stream(bus: EventBus, keepalive_s: float,
                     disconnected: Callable[[], Any] | None = None,
                     first: Callable[[], dict[str, Any]] | None = None
                     ) -> AsyncIterator[str]:
    """The body of ``GET /api/events``: a retry hint, the event ``first()`` makes (the
    server's ``state``: where the station is now), then every event, with a ``: keep-alive``
    comment after ``keepalive_s`` of silence; ends when the bus closes or the client goes
    away. ``first`` is called after subscribing, so nothing that happens after it is missed."""
    queue = bus.subscribe()
    try:
        yield "retry: 2000\n\n"
        if first is not None:
            yield format_sse(first())
        while not bus.closed:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=keepalive_s)
            except TimeoutError:
                if disconnected is not None and await disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            yield format_sse(event)
    finally:
        bus.unsubscribe(queue)


__all__ = ["QUEUE_SIZE", "EventBus", "JournalTail", "Stream", "format_sse", "sse_stream"]
