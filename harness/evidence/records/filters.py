"""The run selection every query shares: ``--product``, ``--station``, ``--since`` (and
``--until``, ``--outcome`` for the commands that take them)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from harness.errors import ConfigError
from harness.evidence.records.tables import T
from harness.measurement import Outcome


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


def parse_until(until: str) -> str:
    """``--until`` as a fixed-width ISO UTC string; a bare date ``YYYY-MM-DD`` means the end of
    that day (runs started on it are in)."""
    try:
        moment = parse_since(until)
    except ConfigError as exc:
        raise ConfigError(exc.detail, field="--until") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", until.strip()):
        end = dt.datetime.fromisoformat(moment) + dt.timedelta(days=1)
        return end.isoformat(timespec="microseconds")
    return moment


def parse_outcomes(outcomes: str | Iterable[str]) -> tuple[Outcome, ...]:
    """``--outcome`` as run outcomes: one name or several (``FAIL,MARGINAL``), any case."""
    names = outcomes.split(",") if isinstance(outcomes, str) else \
        [n for o in outcomes for n in str(o).split(",")]
    found: list[Outcome] = []
    for name in (n.strip() for n in names):
        try:
            outcome = Outcome(name.upper())
        except ValueError:
            raise ConfigError(f"{name!r} is not a run outcome; allowed: "
                              f"{', '.join(o.value for o in Outcome)}",
                              field="--outcome") from None
        if outcome not in found:
            found.append(outcome)
    if not found:
        raise ConfigError(f"no outcome given; allowed: {', '.join(o.value for o in Outcome)}",
                          field="--outcome")
    return tuple(found)


def run_filters(product: str | None = None, station: str | None = None,
                since: str | None = None, *, until: str | None = None,
                outcome: str | Iterable[str] | None = None) -> list[Any]:
    """WHERE clauses on ``runs`` for the given selection (bound parameters, never text):
    runs started at or after ``since`` and before ``until`` (:func:`parse_until`), whose
    outcome is one of ``outcome`` (:func:`parse_outcomes`)."""
    runs = T["runs"]
    where: list[Any] = []
    if product:
        where.append(runs.c.product == product)
    if station:
        where.append(runs.c.station == station)
    if since:
        where.append(runs.c.started >= parse_since(since))
    if until:
        where.append(runs.c.started < parse_until(until))
    if outcome:
        where.append(runs.c.outcome.in_([o.value for o in parse_outcomes(outcome)]))
    return where


__all__ = ["parse_outcomes", "parse_since", "parse_until", "run_filters"]
