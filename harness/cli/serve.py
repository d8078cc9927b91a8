"""``harness serve``: the station web app (:mod:`harness.app`)."""

from __future__ import annotations

__all__: list[str] = []
