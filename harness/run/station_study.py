"""A station's stored repeatability study (``harness msa --save``): the measured uncertainty of
that station for each figure, which guarded limits use.

``<station>.msa.json`` beside the station file holds, per limit and condition, the repeatability
standard deviation s of a single run's figure over the study's repeats on one DUT. s is the
experimental standard deviation of one observation (GUM, JCGM 100:2008, 4.2.2), so it covers
every source that varied between the repeats (frame noise, exposure and light settling,
re-seat), where the analysis's own u covers the frames of one run only. A guarded limit
(``guard: auto``) judges with the larger of the two (:meth:`harness.limits.Limit.judge`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

ConditionKey = tuple[tuple[str, str], ...]


def condition_key(condition: Mapping[str, Any]) -> ConditionKey:
    """A condition as a hashable, order-free key (values compared as text)."""
    return tuple(sorted((str(k), str(v)) for k, v in condition.items()))


def study_path(station_file: str | Path) -> Path:
    """Where a station file's repeatability study lives: ``<station>.msa.json`` beside it."""
    p = Path(station_file)
    return p.with_name(p.stem + ".msa.json")


@dataclass(frozen=True)
class StationStudy:
    """Repeatability s per (limit id, condition) of one station (see the module docstring)."""

    station_id: str
    recorded: str
    source: str
    sd: Mapping[tuple[str, ConditionKey], float]

    def lookup(self, limit_id: str, condition: Mapping[str, Any]) -> float | None:
        """s of ``limit_id`` under ``condition`` (the judged figure's whole condition), or
        None when the study has no such row."""
        return self.sd.get((limit_id, condition_key(condition)))


def load_study(path: str | Path, station_id: str) -> StationStudy | None:
    """The study at ``path``; None when there is none. A file that is not a study of this
    station, or not a study at all, is a one-line :class:`ConfigError` naming the field."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"not a readable repeatability study: {exc}", source=str(p)) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ConfigError("no 'rows' list: not a study written by harness msa --save",
                          source=str(p), field="rows")
    if data.get("station_id") != station_id:
        raise ConfigError(f"a study of station {data.get('station_id')!r}, not of "
                          f"{station_id!r}: it does not measure this station", source=str(p),
                          field="station_id")
    sd: dict[tuple[str, ConditionKey], float] = {}
    for i, row in enumerate(data["rows"]):
        try:
            value = float(row["sd"])
            key = (str(row["limit_id"]), condition_key(dict(row.get("condition") or {})))
        except (KeyError, TypeError, ValueError):
            raise ConfigError("each row needs limit_id, condition and a number sd",
                              source=str(p), field=f"rows[{i}]") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"sd {value!r} is not a finite number >= 0", source=str(p),
                              field=f"rows[{i}].sd")
        sd[key] = value
    return StationStudy(station_id, str(data.get("recorded", "")), str(p), sd)


__all__ = ["ConditionKey", "StationStudy", "condition_key", "load_study", "study_path"]
