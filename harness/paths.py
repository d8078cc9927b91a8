"""Names from the outside world made safe to use in file paths, and files written whole.

Station ids, DUT serials, run ids and sequence names end up in file names (lock files,
evidence folders, sign-off pages, capture sets); file names inside a capture-set manifest are
joined to the set's folder. A hostile or broken value (``../../etc/x``, ``/abs``, a NUL byte,
a 5000-character name) must never reach a path outside the folder it was meant for: these
helpers refuse it with a one-line :class:`~harness.errors.ConfigError` (OWASP "Path
Traversal"; POSIX.1-2017 3.282 portable filename character set).

:func:`atomic_open` writes a file so that a crash leaves either the old file or the new one,
never half of it; :func:`atomic_write_bytes` writes bytes through it (capture-set frames and
manifests, evidence artefacts, record exports).

:data:`DEFAULT_RECORDS` is where the records database lives unless told otherwise; it is here,
on the ground floor, so the command line can show it without loading the database layer.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from harness.errors import ConfigError

#: POSIX portable filename characters; first one not a dot or dash (no hidden files, no
#: option-like names); 128 characters leave room for suffixes under NAME_MAX = 255.
COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_RELATIVE = 1024
#: The records database when no ``--records`` / ``HARNESS_RECORDS`` names one.
DEFAULT_RECORDS = Path("out/records.sqlite")
#: portable components joined by ``/`` or ``\``, none starting with a dot: never absolute
#: (no leading separator, no drive colon), never ``..``; such a path needs no further
#: parsing (a data set lists hundreds of them).
_PLAIN_RELATIVE = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:[/\\][A-Za-z0-9_][A-Za-z0-9._-]*)*")


def safe_component(text: str, what: str) -> str:
    """``text`` unchanged if it is usable as ONE file-name component, else a ConfigError.

    Allowed: letters, digits, ``.``, ``_``, ``-``, 1..128 characters, not starting with
    ``.`` or ``-`` (so never ``.``, ``..`` or a hidden file) and never a separator or NUL.
    """
    if not isinstance(text, str) or not COMPONENT.fullmatch(text):
        shown = repr(text)[:60]
        raise ConfigError(f"{shown} cannot be used in a file name; allowed: 1..128 of "
                          "A-Z a-z 0-9 . _ - (not starting with . or -)", field=what)
    return text


def safe_relative(text: str, what: str, *, source: str | None = None) -> str:
    """``text`` unchanged if it is a relative path that stays inside its base folder.

    Refused: empty, NUL bytes, absolute paths (POSIX ``/x`` or Windows ``C:\\x``, ``\\\\host``),
    any ``..`` component, longer than 1024 characters.
    """
    if isinstance(text, str) and len(text) <= MAX_RELATIVE and _PLAIN_RELATIVE.fullmatch(text):
        return text
    problem = ""
    if not isinstance(text, str) or not text:
        problem = "empty path"
    elif "\x00" in text:
        problem = "NUL byte in path"
    elif len(text) > MAX_RELATIVE:
        problem = f"path longer than {MAX_RELATIVE} characters"
    else:
        posix, windows = PurePosixPath(text), PureWindowsPath(text)
        if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
            problem = "absolute path"
        elif ".." in posix.parts or ".." in windows.parts:
            problem = "'..' leaves the folder"
    if problem:
        raise ConfigError(f"{problem} {repr(text)[:60]}; allowed: a relative path inside "
                          "the folder", source=source, field=what)
    return text


@contextmanager
def atomic_open(path: Path, mode: str = "wb", *, encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO[Any]]:
    """A file to write ``path`` through: a temporary file in the same folder which, when the
    block ends normally, is flushed, fsynced and renamed over ``path``; when the block raises,
    it is removed and ``path`` (if it existed) is left as it was. ``mode`` is ``"wb"`` or
    ``"w"`` (text: ``encoding`` defaults to UTF-8, ``newline`` as for :func:`open`)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', not {mode!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        opened: IO[Any] = (os.fdopen(fd, "wb") if mode == "wb" else
                           os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline))
        with opened as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes | Sequence[bytes | memoryview]) -> None:
    """Write ``data`` (bytes, or buffers written one after the other) to ``path`` through
    :func:`atomic_open`."""
    with atomic_open(path, "wb") as fh:
        for part in (data,) if isinstance(data, bytes) else data:
            fh.write(part)


__all__ = ["COMPONENT", "DEFAULT_RECORDS", "MAX_RELATIVE", "atomic_open", "atomic_write_bytes",
           "safe_component", "safe_relative"]
