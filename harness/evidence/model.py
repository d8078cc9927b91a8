"""The run record: what a run left behind, as the journal rebuilds it and the store keeps it.

A :class:`RunRecord` holds the tests with their judged measurements
(:class:`~harness.measurement.Measurement`), the frames and plots by hash, the devices and
calibrations, and the limits of the spec that got no verdict (:class:`Unjudged`). The report,
the sign-off and the statistics read it. A run is never better than its worst test, and a run
with an unjudged limit is at best INCOMPLETE (see :mod:`harness.measurement`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from harness.measurement import Measurement, Outcome


@dataclass(frozen=True)
class Artefact:
    """A file the run produced, by content hash (frames, plots, capture-set manifests)."""

    sha256: str
    kind: str
    name: str = ""
    path: str = ""
    test_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TestRecord:
    """One test of a run with its measurements, errors and artefacts."""

    __test__ = False  # not a pytest test class

    test_id: str
    outcome: Outcome
    title: str = ""
    family: str = ""
    started: str = ""
    ended: str = ""
    message: str = ""
    measurements: tuple[Measurement, ...] = ()
    errors: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"test_id": self.test_id, "outcome": self.outcome.value, "title": self.title,
                "family": self.family, "started": self.started, "ended": self.ended,
                "message": self.message,
                "measurements": [m.as_dict() for m in self.measurements],
                "errors": list(self.errors)}


@dataclass(frozen=True)
class Unjudged:
    """A limit of the spec that got no verdict in a run, and why (test deselected, skipped,
    device missing, not measured, no test measures it)."""

    limit_id: str
    measurement: str
    reason: str
    condition: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"limit_id": self.limit_id, "measurement": self.measurement,
                "reason": self.reason, "condition": dict(self.condition)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unjudged:
        return cls(str(data["limit_id"]), str(data.get("measurement", "")),
                   str(data.get("reason", "")), dict(data.get("condition") or {}))


@dataclass(frozen=True)
class RunRecord:
    """Everything a run left behind; the unit the records store keeps and hashes."""

    run_id: str
    station: str
    outcome: Outcome
    product: str = ""
    dut_serial: str = ""
    dut_firmware: str = ""
    operator: str = ""
    started: str = ""
    ended: str = ""
    limits_file: str = ""
    limits_hash: str = ""
    software: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    tests: tuple[TestRecord, ...] = ()
    artefacts: tuple[Artefact, ...] = ()
    devices: tuple[Mapping[str, Any], ...] = ()
    calibrations: tuple[Mapping[str, Any], ...] = ()
    complete: bool = True
    unjudged: tuple[Unjudged, ...] = ()
    characterisation: bool = False
    rejudged_from: str = ""
    """The run id this run re-judged from its recorded frames (``harness rejudge``)."""

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(m for t in self.tests for m in t.measurements)

    def with_outcome(self, outcome: Outcome, reason: str = "") -> RunRecord:
        return replace(self, outcome=outcome, reason=reason or self.reason)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "station": self.station, "outcome": self.outcome.value,
                "product": self.product, "dut_serial": self.dut_serial,
                "dut_firmware": self.dut_firmware, "operator": self.operator,
                "started": self.started, "ended": self.ended,
                "limits_file": self.limits_file, "limits_hash": self.limits_hash,
                "software": dict(self.software), "reason": self.reason,
                "tests": [t.as_dict() for t in self.tests],
                "artefacts": [a.as_dict() for a in self.artefacts],
                "devices": [dict(d) for d in self.devices],
                "calibrations": [dict(c) for c in self.calibrations],
                "complete": self.complete,
                # only when there are some, so records stored before the field hash as before
                **({"unjudged": [u.as_dict() for u in self.unjudged]} if self.unjudged else {}),
                **({"characterisation": True} if self.characterisation else {}),
                **({"rejudged_from": self.rejudged_from} if self.rejudged_from else {})}


__all__ = ["Artefact", "RunRecord", "TestRecord", "Unjudged"]
