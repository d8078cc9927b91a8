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
      - id: DARK-NOISE
        measurement: temporal_dark_noise_e
        unit: e-
        max: 3.0
        guard: auto                  # guarded acceptance: band = k * u, u from the data
        k: 2                         # coverage factor (default 2, about 95 %)
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

Decision rules (ISO 14253-1:2017 clause 5, ILAC-G8:09/2019 clause 4): a limit with no guard
is *simple acceptance*; a number as ``guard`` is a band typed by hand; ``guard: auto`` is
*guarded acceptance*: the band is k·u, u the standard uncertainty the analysis stated for this
figure in this run, so conformance is declared (PASS) only when the value is at least k·u
inside the limit; inside the limit but closer is MARGINAL (ILAC-G8's conditional pass). A
guarded limit whose figure comes without an uncertainty cannot be judged: ERROR. Where the
station has a repeatability study (``harness msa --save``), the band uses the larger of the
analysis's u and the station's repeatability s for that figure. Every verdict records its
rule, u and k.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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
    guard: float | Literal["auto"] = Field(0.0)
    k: float = Field(2.0, gt=0.0, le=10.0)
    condition: dict[str, str | float | int] = Field(default_factory=dict)
    requirement: str = ""
    severity: str = Field("critical", pattern=r"^(blocker|critical|normal|minor|trivial)$")

    @field_validator("guard", mode="before")
    @classmethod
    def _guard(cls, value: Any) -> float | str:
        if value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"guard {value!r} is neither a number >= 0 (a band in the "
                             "limit's unit) nor auto (k times the figure's uncertainty)")
        return float(value)

    @model_validator(mode="after")
    def _check(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if "k" in self.model_fields_set and not self.guarded:
            raise ValueError("k (the coverage factor) applies only with guard: auto")
        if isinstance(self.guard, float) and self.guard < 0:
            raise ValueError(f"guard {self.guard} is negative; give a band >= 0 or auto")
        if self.min is not None and self.max is not None:
            if self.min > self.max:
                raise ValueError(f"min {self.min} is above max {self.max}")
            if (isinstance(self.guard, float) and self.guard
                    and 2 * self.guard >= self.max - self.min):
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

    @property
    def guarded(self) -> bool:
        """True for ``guard: auto`` (the band comes from the figure's uncertainty)."""
        return self.guard == "auto"

    def judge(self, value: float | None, *, test_id: str = "",
              condition: Mapping[str, Any] | None = None, flag: str | None = None,
              uncertainty: float | None = None, station_sd: float | None = None
              ) -> Measurement:
        """The verdict for ``value``: PASS, MARGINAL (inside the guard band), FAIL, or ERROR
        (no finite value, a figure the analysis ``flag``-ged as physically impossible, or a
        guarded limit and no finite uncertainty); see the module docstring.

        A guarded limit's band is k times the larger of ``uncertainty`` (the analysis's u for
        this run) and ``station_sd`` (the station's repeatability for this figure from its
        study, :mod:`harness.run.station_study`); ``decision`` says which: ``guarded`` or
        ``guarded-msa``. The verdict keeps the analysis's u as its ``uncertainty``."""
        u = _finite(uncertainty)
        s = _finite(station_sd)
        unjudgeable = None
        if self.guarded:
            k = self.k
            used = max((x for x in (u, s) if x is not None), default=None)
            decision = "guarded-msa" if s is not None and used == s and s != u else "guarded"
            if used is None:
                unjudgeable = (f"{self.id} is guarded (guard: auto) but the analysis stated no "
                               f"uncertainty for {self.measurement} and the station has no "
                               "repeatability study of it")
            band = self.k * used if used is not None else 0.0
        else:
            band = float(self.guard)
            decision, k = ("fixed-guard" if band else "simple"), None
        return Measurement.judged(
            self.measurement, value, self.unit, low=self.min, high=self.max,
            marginal_low=self.min + band if self.min is not None and band else None,
            marginal_high=self.max - band if self.max is not None and band else None,
            limit_id=self.id, condition={**self.condition, **(condition or {})},
            test_id=test_id, flag=flag, uncertainty=uncertainty, decision=decision,
            coverage_k=k, unjudgeable=unjudgeable,
        )


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) and x >= 0 else None


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
              flag: str | None = None, uncertainty: float | None = None,
              **condition: Any) -> list[Measurement]:
        """Judge ``value`` against every matching limit (none match → an empty list)."""
        return [lim.judge(value, test_id=test_id, condition=condition, flag=flag,
                          uncertainty=uncertainty)
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
