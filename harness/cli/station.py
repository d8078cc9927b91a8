"""``harness station`` commands."""

from __future__ import annotations
