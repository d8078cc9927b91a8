"""Camera-module hardware-in-the-loop qualification harness.

``harness.__version__`` is read from the installed package's metadata on first use, not on
import: ``importlib.metadata`` scans the environment, and every ``harness`` command and every
pytest run imports this package.
"""

from __future__ import annotations

from typing import Any

__version__: str  # served by __getattr__ below, then cached in the module


def __getattr__(name: str) -> Any:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("camera-qual-harness")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found


__all__ = ["__version__"]
