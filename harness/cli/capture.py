"""``harness capture`` commands."""

from __future__ import annotations
