"""The run selection every query shares: ``--product``, ``--station``, ``--since``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from harness.errors import ConfigError
from harness.evidence.records.tables import T


def parse_since(since: str) -> str:
    """``--since`` as a fixed-width ISO UTC string (a date, a datetime, or ``7d``/``12h``)."""
    s = since.strip()
    try:
        if s[-1:] in ("d", "h") and s[:-1].isdigit():
            delta = dt.timedelta(days=int(s[:-1])) if s[-1] == "d" else \
                dt.timedelta(hours=int(s[:-1]))
            moment = dt.datetime.now(dt.UTC) - delta
        else:
            moment = dt.datetime.fromisoformat(s)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ConfigError(f"{since!r} is not a date; allowed: YYYY-MM-DD, an ISO date-time, "
                          "or Nd / Nh (days / hours ago)", field="--since") from None
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def run_filters(product: str | None = None, station: str | None = None,
                since: str | None = None) -> list[Any]:
    """WHERE clauses on ``runs`` for the given selection (bound parameters, never text)."""
    runs = T["runs"]
    where: list[Any] = []
    if product:
        where.append(runs.c.product == product)
    if station:
        where.append(runs.c.station == station)
    if since:
        where.append(runs.c.started >= parse_since(since))
    return where


__all__ = ["parse_since", "run_filters"]
