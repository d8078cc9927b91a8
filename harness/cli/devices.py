"""``harness devices`` commands."""

from __future__ import annotations
