"""One qualification run as the pytest plugin sees it: journal, limits, checks, records.

The plugin creates a :class:`QualificationRun` when the station opens. Every test that uses
the station is journaled (start, captures, each measurement with its verdict, errors, end);
measurements are judged against the limit spec through a :class:`Checker`; at the end the
run record is rebuilt from the journal (so what the database holds is exactly what survived
on disk) and stored. A failed evidence write makes the run ERROR, never PASS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.capture.sequences import CaptureContext
from harness.errors import EvidenceError, HarnessError
from harness.evidence.allure import report_measurement
from harness.evidence.model import Measurement, Outcome, RunRecord, worst
from harness.evidence.run import RunEvidence
from harness.limits import LimitSpec

log = logging.getLogger(__name__)

class MeasurementError(HarnessError):
    """A figure could not be measured (no finite value): an ERROR, not a FAIL."""


@dataclass
class Checker:
    """Judges a test's measurements against the limit spec, journals and reports each one.

    ``check(name, value, unit, **condition)`` judges ``value`` against every limit on
    ``name`` whose condition matches; a figure with no limit is still recorded (as PASS with
    no limits) so nothing measured is lost. Failures are collected and turned into one
    ``AssertionError`` when the test body ends (soft assertions: every figure is judged).
    """

    test_id: str
    run: QualificationRun | None
    limits: LimitSpec | None
    verdicts: list[Measurement] = field(default_factory=list)

    def __call__(self, name: str, value: float | None, unit: str = "", **condition: Any
                 ) -> list[Measurement]:
        verdicts = (self.limits.judge(name, value, test_id=self.test_id, **condition)
                    if self.limits is not None else [])
        if not verdicts:
            verdicts = [Measurement.judged(name, value, unit, condition=condition,
                                           test_id=self.test_id)]
        for verdict in verdicts:
            limited = verdict.low is not None or verdict.high is not None
            if unit and limited and verdict.unit != unit:
                raise MeasurementError(f"{verdict.limit_id}: limit is in {verdict.unit!r} but the "
                                       f"test measured {name} in {unit!r}")
            self.verdicts.append(verdict)
            if self.run is not None and self.run.evidence is not None:
                self.run.record_measurement(verdict)
            else:
                report_measurement(verdict)
        return verdicts

    def against(self, name: str, value: float | None, unit: str, *, limit_id: str,
                low: float | None = None, high: float | None = None, **condition: Any
                ) -> Measurement:
        """Judge ``value`` against limits given here (e.g. a self-test's stored reference)
        rather than the spec; journaled and reported like every other figure."""
        verdict = Measurement.judged(name, value, unit, low=low, high=high, limit_id=limit_id,
                                     condition=condition, test_id=self.test_id)
        self.verdicts.append(verdict)
        if self.run is not None and self.run.evidence is not None:
            self.run.record_measurement(verdict)
        else:
            report_measurement(verdict)
        return verdict

    def limited(self, name: str, **condition: Any) -> bool:
        """True when the spec has a limit on ``name`` under ``condition``."""
        return bool(self.limits and self.limits.find(name, **condition))

    @property
    def failures(self) -> list[Measurement]:
        return [v for v in self.verdicts if v.outcome is Outcome.FAIL]

    @property
    def errors(self) -> list[Measurement]:
        return [v for v in self.verdicts if v.outcome is Outcome.ERROR]

    @property
    def outcome(self) -> Outcome:
        return worst(v.outcome for v in self.verdicts)

    def raise_if_failed(self) -> None:
        if self.errors:
            names = ", ".join(f"{v.limit_id or v.name}" for v in self.errors)
            raise MeasurementError(f"not measured (no finite value): {names}")
        if self.failures:
            detail = "; ".join(f"{v.limit_id} {v.name}={v.allure_parameter()}"
                               for v in self.failures)
            raise AssertionError(f"out of spec: {detail}")


@dataclass
class QualificationRun:
    """The evidence of one run (a :class:`~harness.evidence.run.RunEvidence`: journal, Allure,
    records) plus what the suites need from it: checks and capture contexts."""

    station_id: str
    evidence_dir: Path
    limits: LimitSpec | None
    operator: str = ""
    records_target: str | None = None
    alluredir: str | None = None
    evidence: RunEvidence | None = None
    outcome_override: Outcome | None = None
    notes: list[str] = field(default_factory=list)
    finished: bool = False

    @property
    def run_id(self) -> str:
        return self.evidence.run_id if self.evidence else ""

    @property
    def folder(self) -> Path:
        if self.evidence is None:
            raise EvidenceError("the run has not started")
        return self.evidence.dir

    @property
    def journal(self) -> Any:
        return self.evidence.journal if self.evidence else None

    def start(self, *, dut: Mapping[str, Any], devices: list[dict[str, Any]],
              calibrations: list[dict[str, Any]]) -> None:
        self.evidence = RunEvidence(
            self.evidence_dir, station=self.station_id, dut=dut, operator=self.operator,
            limits_file=self.limits.source if self.limits else "",
            limits_hash=self.limits.sha256 if self.limits else "",
            devices=devices, calibrations=calibrations, records=self.records_target)

    def _write(self, func: str, *args: Any, **kwargs: Any) -> Any:
        if self.evidence is None:
            return None
        try:
            return getattr(self.evidence, func)(*args, **kwargs)
        except EvidenceError as exc:
            self.outcome_override = Outcome.ERROR
            self.notes.append(str(exc))
            raise

    def test_start(self, test_id: str, title: str, family: str) -> None:
        self._write("test_start", test_id, title=title, family=family)

    def test_end(self, test_id: str, outcome: Outcome, message: str = "") -> None:
        self._write("test_end", test_id, outcome, message[:2000])

    def record_measurement(self, verdict: Measurement) -> None:
        self._write("measurement", verdict, verdict.test_id)

    def record_error(self, test_id: str, message: str, kind: str, outcome: Outcome) -> None:
        self._write("error", message[:2000], test_id=test_id, kind=kind, outcome=outcome)

    def attach(self, test_id: str, data: bytes, name: str, *, kind: str = "plot",
               ext: str = "png") -> Path | None:
        """Keep a plot or table beside the journal (by hash), journal it, attach it to Allure."""
        result: Path | None = self._write("attach", test_id, data, name, kind=kind, ext=ext)
        return result

    def capture_context(self, test_id: str, station: Any, **kwargs: Any) -> CaptureContext:
        """A capture context writing under this run's ``captures/`` and journaling each set."""
        run = self

        def journal(event: str, payload: dict[str, Any]) -> None:
            # every step as soon as its frames are captured and hashed, before anything
            # analyses them (the files reach disk from the capture set's writer thread; the
            # set's manifest lists only files on disk, and all are before the sequence ends)
            if event == "capture":
                run._write("capture", test_id, payload["frames_sha256"],
                           capture_set=payload["path"], sequence=payload.get("sequence", ""))

        def device(role: str) -> Any:
            return station.device(role) if station.has(role) else None

        camera = station.camera()
        header = {"station": {"id": station.id, "site": station.config.site},
                  "bits": kwargs.pop("bits", 12), "cfa": kwargs.pop("cfa", None),
                  "instruments": {r: d.identity().as_dict() for r, d in station.devices.items()
                                  if not r.startswith("camera")}}
        return CaptureContext(camera=camera, out_dir=self.folder / "captures",
                              light=device("light"), chart=device("chart"),
                              focus=device("focus"), meter=device("meter"), header=header,
                              journal=journal, **kwargs)

    def finish(self, outcome: Outcome, reason: str = "") -> RunRecord | None:
        """Close the journal with the run's outcome, rebuild the record, store it."""
        if self.evidence is None or self.finished:
            return None
        self.finished = True
        final = outcome if self.outcome_override is None else Outcome.ERROR
        try:
            return self.evidence.finish(final, reason or "; ".join(self.notes),
                                        alluredir=self.alluredir)
        except EvidenceError as exc:
            log.error("could not finish the run's evidence: %s", exc)
            return None
