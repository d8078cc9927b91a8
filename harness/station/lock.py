"""An exclusive per-station lock.

``fcntl.flock`` on ``<lock_dir>/<station id>.lock``: the kernel drops the lock when its holder
dies, so a lock left by a dead process is taken over without guessing from pids. The file
holds the holder's pid, host and start time so that a refused run can name who holds it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import IO, Any

from harness.errors import StationLocked
from harness.paths import safe_component

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    return Path(os.environ.get("HARNESS_LOCK_DIR", Path(tempfile.gettempdir()) / "harness-locks"))


class StationLock:
    """Hold the station exclusively for the life of a run."""

    def __init__(self, station_id: str, lock_dir: Path | None = None) -> None:
        self.station_id = station_id
        name = safe_component(station_id, "station id")  # never a path outside lock_dir
        self.path = (lock_dir or default_lock_dir()) / f"{name}.lock"
        self._file: IO[str] | None = None
        self.previous_holder: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def holder(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
            data = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            info = self.holder() or {}
            raise StationLocked(
                f"station {self.station_id} is in use by pid {info.get('pid', '?')} on host "
                f"{info.get('host', '?')} since {info.get('since', '?')} (lock {self.path})"
            ) from None
        handle.seek(0)
        text = handle.read()
        if text.strip():
            try:
                self.previous_holder = json.loads(text)
            except ValueError:
                self.previous_holder = {"raw": text[:200]}
            log.warning("station %s: took over a stale lock left by %s", self.station_id,
                        self.previous_holder)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "station": self.station_id,
        }))
        handle.flush()
        os.fsync(handle.fileno())
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> StationLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["StationLock", "default_lock_dir"]
