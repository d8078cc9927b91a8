"""Limit specs: load, validate, hash and judge.

A limit spec is versioned YAML data, one file per product (``tests_hil/limits/<product>.yaml``)::

    product: cm12
    version: 3
    description: 12 MP module, production limits
    limits:
      - id: EMVA-K
        description: system gain at 0 dB
        measurement: system_gain_dn_per_e
        unit: DN/e-
        min: 0.09
        max: 0.11
        guard: 0.002                 # MARGINAL band inside each limit, in the unit
        requirement: REQ-SEN-001     # optional: becomes a requirement link in the report
      - id: MTF50-CORNER
        measurement: mtf50_cy_per_px
        unit: cy/px
        min: 0.20
        condition: {zone: corner}    # zone, channel, illuminant, ... matched by the suite

An optional ``conditions:`` section holds the test conditions per sequence (exposure steps,
frame counts, focus positions, illuminants), so a product's limits and the conditions they
were set for travel together.

The file's sha256 goes into every record, so a verdict can always be traced to the exact
limits it was judged against. :func:`judge` turns a value into a
:class:`~harness.evidence.model.Measurement` (the verdict: value, unit, limits, margin,
outcome), using the marginal band the way OpenHTF's validators do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import ConfigError
from harness.measurement import Measurement
from harness.yamlio import close_matches, load_yaml, validation_error

Verdict = Measurement
"""A judged measurement: value, unit, limit, margin and outcome."""

NAME = r"^[a-z][a-z0-9_]*$"
LIMIT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
CONDITION_KEYS = ("zone", "channel", "illuminant", "field", "gain_db", "temperature", "ccm",
                  "radius")


class Limit(BaseModel):
    """One limit: a measurement name, its unit, min and/or max, a guard band, a condition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=LIMIT_ID)
    measurement: str = Field(pattern=NAME)
    unit: str = Field(min_length=1)
    description: str = ""
    min: float | None = None
    max: float | None = None
    guard: float = Field(0.0, ge=0.0)
    condition: dict[str, str | float | int] = Field(default_factory=dict)
    requirement: str = ""
    severity: str = Field("critical", pattern=r"^(blocker|critical|normal|minor|trivial)$")

    @model_validator(mode="after")
    def _check(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None:
            if self.min > self.max:
                raise ValueError(f"min {self.min} is above max {self.max}")
            if self.guard and 2 * self.guard >= self.max - self.min:
                raise ValueError(f"guard {self.guard} leaves no PASS band between "
                                 f"{self.min} and {self.max}")
        unknown = [k for k in self.condition if k not in CONDITION_KEYS]
        if unknown:
            raise ValueError(f"unknown condition key {unknown[0]!r}"
                             f"{close_matches(unknown[0], CONDITION_KEYS)}; allowed: "
                             f"{', '.join(CONDITION_KEYS)}")
        return self

    def matches(self, measurement: str, condition: Mapping[str, Any]) -> bool:
        """True when this limit applies to ``measurement`` under ``condition``."""
        if measurement != self.measurement:
            return False
        return all(str(condition.get(k)) == str(v) for k, v in self.condition.items())

    def judge(self, value: float | None, *, test_id: str = "",
              condition: Mapping[str, Any] | None = None, flag: str | None = None
              ) -> Measurement:
        """The verdict for ``value``: PASS, MARGINAL (inside the guard band), FAIL, or ERROR
        (no finite value, or a figure the analysis ``flag``-ged as physically impossible)."""
        return Measurement.judged(
            self.measurement, value, self.unit, low=self.min, high=self.max,
            marginal_low=self.min + self.guard if self.min is not None and self.guard else None,
            marginal_high=self.max - self.guard if self.max is not None and self.guard else None,
            limit_id=self.id, condition={**self.condition, **(condition or {})},
            test_id=test_id, flag=flag,
        )


class LimitFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str = Field(pattern=LIMIT_ID)
    version: int | str
    description: str = ""
    conditions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    limits: list[Limit] = Field(min_length=1)


@dataclass(frozen=True)
class LimitSpec:
    """A validated limit spec with its file's hash."""

    product: str
    version: str
    description: str
    limits: tuple[Limit, ...]
    source: str
    sha256: str
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def condition(self, sequence: str) -> dict[str, Any]:
        """Test conditions for ``sequence`` (exposures, frame counts, positions...)."""
        return dict(self.conditions.get(sequence, {}))

    def __iter__(self) -> Iterator[Limit]:
        return iter(self.limits)

    def by_id(self, limit_id: str) -> Limit:
        for limit in self.limits:
            if limit.id == limit_id:
                return limit
        ids = [lim.id for lim in self.limits]
        raise ConfigError(f"no limit {limit_id!r}{close_matches(limit_id, ids)}",
                          source=self.source)

    def find(self, measurement: str, **condition: Any) -> list[Limit]:
        """Every limit on ``measurement`` whose condition matches ``condition``."""
        return [lim for lim in self.limits if lim.matches(measurement, condition)]

    def judge(self, measurement: str, value: float | None, *, test_id: str = "",
              flag: str | None = None, **condition: Any) -> list[Measurement]:
        """Judge ``value`` against every matching limit (none match → an empty list)."""
        return [lim.judge(value, test_id=test_id, condition=condition, flag=flag)
                for lim in self.find(measurement, **condition)]

    def measurements(self) -> set[str]:
        return {lim.measurement for lim in self.limits}


def load_limits(path: str | Path) -> LimitSpec:
    """Load and validate a limit spec; one-line :class:`ConfigError` on any problem."""
    doc = load_yaml(path, what="limit spec")
    try:
        parsed = LimitFile.model_validate(doc.data)
    except ValidationError as exc:
        fields: dict[tuple[str | int, ...], list[str]] = {(): list(LimitFile.model_fields)}
        listed = doc.data.get("limits") if isinstance(doc.data, dict) else None
        for i in range(len(listed) if isinstance(listed, list) else 0):
            fields[("limits", i)] = list(Limit.model_fields)
        raise validation_error(doc, exc, model_fields=fields) from None
    seen: dict[str, int] = {}
    for i, limit in enumerate(parsed.limits):
        if limit.id in seen:
            raise doc.error(("limits", i, "id"),
                            f"duplicate limit id {limit.id!r} (also limits[{seen[limit.id]}])")
        seen[limit.id] = i
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return LimitSpec(parsed.product, str(parsed.version), parsed.description,
                     tuple(parsed.limits), str(path), digest, dict(parsed.conditions))


def judge(limit: Limit, value: float | None, **condition: Any) -> Measurement:
    """Judge one value against one limit (``harness.limits.judge``)."""
    return limit.judge(value, condition=condition)


__all__ = ["Limit", "LimitFile", "LimitSpec", "Verdict", "judge", "load_limits"]
