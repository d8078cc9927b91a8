"""Strict JSON from figures: every non-finite float becomes ``None`` (``null``).

``json.dumps(..., allow_nan=False)`` refuses NaN and infinity rather than writing the
non-standard ``NaN``; a figure that does not exist is ``null`` instead (ground floor: the
command line and the run both write such JSON).
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, tuples, scalars) with NaN and infinities as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


__all__ = ["json_safe"]
