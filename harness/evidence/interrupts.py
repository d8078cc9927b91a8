"""Signals held back while the main thread writes evidence.

A Python signal handler runs in the main thread between any two bytecodes, so Ctrl-C
(KeyboardInterrupt) or SIGTERM (the plugin's Aborted) can land between a journal line reaching
the file and the journal counting it: the next event then reused its sequence number (found
by tests_unit/test_signals.py: ``seq 10 -> 9``). :func:`deferring` wraps a handler so that,
inside :func:`held`, the signal is only noted; it is acted on when the outermost ``held`` block
ends, with the evidence consistent. Other threads never run signal handlers, so ``held`` does
nothing there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]

_depth = 0
_pending: list[tuple[Handler, int]] = []


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def held() -> Iterator[None]:
    """Run the block with the signals of :func:`deferring` handlers held back (main thread)."""
    global _depth
    if not _in_main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            handler, signum = _pending[0]  # the first signal decides; repeats add nothing
            _pending.clear()
            handler(signum, None)


def deferring(handler: Handler) -> Handler:
    """``handler``, acted on at once outside :func:`held` and at its end inside it."""

    def deferred(signum: int, frame: FrameType | None) -> Any:
        if _depth > 0:
            _pending.append((handler, signum))
            return None
        return handler(signum, frame)

    return deferred


def install(signals: tuple[signal.Signals, ...], handler: Handler | None = None
            ) -> dict[signal.Signals, Any]:
    """Wrap the current handler of each of ``signals`` (or ``handler``) with :func:`deferring`;
    returns the previous handlers, for :func:`restore`."""
    previous: dict[signal.Signals, Any] = {}
    for sig in signals:
        current = signal.getsignal(sig)
        base = handler if handler is not None else current
        if not callable(base):  # SIG_DFL / SIG_IGN: nothing of ours to hold back
            continue
        previous[sig] = signal.signal(sig, deferring(base))
    return previous


def restore(previous: dict[signal.Signals, Any]) -> None:
    """Give back the handlers :func:`install` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


__all__ = ["deferring", "held", "install", "restore"]
