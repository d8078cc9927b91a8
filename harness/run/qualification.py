"""One qualification run: evidence, judging, captures and coverage, for any runner.

:class:`QualificationRun` is what the pytest plugin (and later the CLI and the station app)
drives: it opens the run's evidence (journal first, then Allure, then the records database),
hands each test a :class:`~harness.run.checker.Checker` bound to the run-wide
:class:`~harness.run.checker.Judgements`, owns the run's one
:class:`~harness.run.session.CaptureSession` (whose every event reaches the journal), and at
the end lists the limits of the spec that got no verdict (:mod:`harness.run.coverage`)
before it closes the journal. Nothing here knows pytest.

Every instrument exchange of the run (from the station's opening, kept in a backlog until the
run's folder exists, to its safe state) goes to ``<run>/instruments.log``
(:mod:`harness.devices.traffic`), opened by :meth:`QualificationRun.start` and closed by
:meth:`QualificationRun.finish`; a log that cannot be written makes the run ERROR.

Outcome rules: a characterisation run (no limits, ``characterise=True``) records every figure
as INFO and is INCOMPLETE; a run with an unjudged limit is INCOMPLETE; a failed evidence write
makes the run ERROR, never PASS.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from harness.devices import traffic
from harness.devices.camera.frames import FrameStack
from harness.devices.protocols import PowerReading
from harness.errors import EvidenceError
from harness.evidence.model import RunRecord, Unjudged
from harness.evidence.run import RunEvidence
from harness.inputs.captureset import CaptureSet
from harness.limits import LimitSpec
from harness.measurement import Measurement, Outcome
from harness.run.checker import Checker, Judgements
from harness.run.coverage import TestPlan, unjudged_limits
from harness.run.session import PRE_STEP, CaptureSession
from harness.run.station_study import StationStudy

log = logging.getLogger(__name__)
T = TypeVar("T")
ParamsOf = Callable[["TestSession"], Mapping[str, Any]]
"""The keyword parameters of an analysis, from the session of the slot it analyses."""

CHARACTERISATION = "characterisation run (no limits judged)"


@dataclass
class QualificationRun:
    """The evidence, verdicts and captures of one run (see the module docstring)."""

    station_id: str
    evidence_dir: Path
    spec: LimitSpec | None
    operator: str = ""
    records_target: str | None = None
    alluredir: str | None = None
    characterise: bool = False
    rejudged_from: str = ""
    signing_key: Path | None = None
    """The station's private key (its settings); None: ``$HARNESS_SIGNING_KEY``, else the
    run is stored unsigned."""
    station_study: StationStudy | None = None
    """The station's repeatability study (``harness msa --save``), used by guarded limits."""
    slot: str = ""
    """The slot of a multi-up station this run qualifies (``""``: the station's one DUT)."""
    traffic_add: bool = False
    """Write the instrument log beside another slot's run's (they share the instruments)."""
    sequencer: Callable[[str, str, Mapping[str, Any]], CaptureSet] | None = None
    """How a test's sequence is captured: None, by this run's session; with slots, by every
    slot at once (:class:`~harness.run.slots.SlotCapture`)."""
    sequencer_for: Callable[[str, str, ParamsOf], CaptureSet] | None = None
    """How :meth:`TestSession.sequence_for` captures: None, by this run's session; with slots,
    every slot at its own overrides, those asking the same together."""
    prefetch: Callable[[str, str, Callable[..., Any], ParamsOf | None, str], None] | None = None
    """How :meth:`TestSession.analysed` starts an analysis: None, here and now; with slots,
    every slot's in worker processes (:mod:`harness.run.analysis_pool`), each slot's future
    left in its run's :attr:`results`."""
    evidence: RunEvidence | None = None
    judgements: Judgements = field(default_factory=Judgements)
    plan: TestPlan = field(default_factory=TestPlan)
    session: CaptureSession | None = None
    results: dict[str, Any] = field(default_factory=dict)
    outcome_override: Outcome | None = None
    notes: list[str] = field(default_factory=list)
    unjudged: list[Unjudged] = field(default_factory=list)
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
        spec = self.spec
        self.evidence = RunEvidence(
            self.evidence_dir, station=self.station_id, dut=dut, operator=self.operator,
            limits_file=spec.source if spec else "", limits_hash=spec.sha256 if spec else "",
            devices=devices, calibrations=calibrations, records=self.records_target,
            characterisation=self.characterise, rejudged_from=self.rejudged_from,
            signing_key=self.signing_key)
        try:
            traffic.open_log(self.folder / traffic.LOG_NAME, add=self.traffic_add)
        except OSError as exc:
            self._traffic_lost(f"cannot open the instrument log: {exc}")

    def _traffic_lost(self, message: str) -> None:
        """Instrument traffic is evidence: losing it makes the run ERROR, never PASS."""
        log.error("%s", message)
        self.outcome_override = Outcome.ERROR
        self.notes.append(message)

    def _write(self, func: str, *args: Any, **kwargs: Any) -> Any:
        if self.evidence is None:
            return None
        try:
            return getattr(self.evidence, func)(*args, **kwargs)
        except EvidenceError as exc:
            self.outcome_override = Outcome.ERROR
            self.notes.append(str(exc))
            raise

    # -- tests and verdicts ---------------------------------------------------------------

    def checker(self, test_id: str, declared: frozenset[str] | None = None) -> Checker:
        """A checker for one test, judging against the run's spec (INFO when characterising)."""
        return Checker(test_id, self.spec, self.record_measurement, self.judgements,
                       characterise=self.characterise, declared=declared,
                       station_sd=self.station_study.lookup if self.station_study else None)

    def test_start(self, test_id: str, title: str, family: str) -> None:
        self._write("test_start", test_id, title=title, family=family)

    def test_end(self, test_id: str, outcome: Outcome, message: str = "") -> None:
        self.plan.end(test_id, outcome, message)
        self._write("test_end", test_id, outcome, message[:2000])

    def record_measurement(self, verdict: Measurement) -> None:
        self._write("measurement", verdict, verdict.test_id)

    def record_error(self, test_id: str, message: str, kind: str, outcome: Outcome) -> None:
        self._write("error", message[:2000], test_id=test_id, kind=kind, outcome=outcome)

    def note(self, message: str, *, test_id: str = "", **facts: Any) -> None:
        self._write("note", message, test_id=test_id, **facts)

    def reading(self, test_id: str, role: str, method: str, value: Mapping[str, Any]) -> None:
        self._write("reading", test_id, role, method, value)

    def attach(self, test_id: str, data: bytes, name: str, *, kind: str = "plot",
               ext: str = "png") -> Path | None:
        """Keep a plot or table beside the journal (by hash), journal it, attach it to Allure."""
        result: Path | None = self._write("attach", test_id, data, name, kind=kind, ext=ext)
        return result

    # -- captures -------------------------------------------------------------------------

    def _on_event(self, test_id: str, event: str, payload: dict[str, Any]) -> None:
        if event == "capture":
            # every step as soon as its frames are captured and hashed, before anything
            # analyses them (files reach disk from the set's writer thread before the
            # sequence returns; the manifest lists only files on disk)
            self._write("capture", test_id, payload["frames_sha256"],
                        capture_set=payload["path"], sequence=payload.get("sequence", ""))
        elif event == "note":
            self._write("note", str(payload.get("message", "")), test_id=test_id,
                        **dict(payload.get("facts") or {}))
        else:
            self._write("sequence", test_id, event, **payload)

    def open_session(self, station: Any) -> CaptureSession:
        """The run's capture session on ``station`` (sets under ``<run>/captures``)."""
        if self.session is None:
            conditions = self.spec.conditions if self.spec is not None else {}
            self.session = CaptureSession(station, self.folder / "captures",
                                          conditions=conditions, events=self._on_event)
        return self.session

    def view(self, test_id: str) -> TestSession:
        """What one test sees of the run (the ``hil_session`` fixture)."""
        if self.session is None:
            raise EvidenceError("the run has no capture session (the station is not open)")
        return TestSession(self, self.session, test_id)

    # -- the end --------------------------------------------------------------------------

    def finish(self, outcome: Outcome, reason: str = "") -> RunRecord | None:
        """List the unjudged limits, close the journal with the run's outcome, rebuild the
        record and store it."""
        if self.evidence is None or self.finished:
            return None
        self.finished = True
        summary = traffic.close_log()
        if summary is not None and (summary.lost or summary.error):
            self._traffic_lost(f"instrument log {summary.path.name}: {summary.lost} lines lost "
                               f"({summary.error})")
        final = outcome if self.outcome_override is None else Outcome.ERROR
        try:
            if self.spec is not None and not self.characterise \
                    and outcome is not Outcome.ABORTED:
                self.unjudged = unjudged_limits(self.spec, self.judgements.judged, self.plan)
                self.evidence.unjudged(self.unjudged)
            notes = list(self.notes)
            if self.characterise:
                notes.insert(0, CHARACTERISATION)
            return self.evidence.finish(final, reason or "; ".join(notes),
                                        alluredir=self.alluredir)
        except EvidenceError as exc:
            log.error("could not finish the run's evidence: %s", exc)
            return None


@dataclass
class TestSession:
    """One test's view of the run: captures, conditions, shared results and attachments."""

    __test__ = False  # not a pytest test class

    run: QualificationRun
    session: CaptureSession
    test_id: str

    @property
    def station(self) -> Any:
        return self.session.station

    @property
    def camera(self) -> Any:
        return self.session.camera

    @property
    def cfa(self) -> str | None:
        return self.session.prepare(self.test_id).cfa

    @property
    def bits(self) -> int:
        return self.session.prepare(self.test_id).bits

    @property
    def black_dn(self) -> float:
        """The black level measured from this run's dark frames (DN)."""
        if self.run.sequencer is not None and self.session.saturation_dn is None \
                and self.session.station.has("light"):
            self.run.sequencer(PRE_STEP, self.test_id, {})  # every slot's levels at once
        self.session.ensure_levels(self.test_id)
        if self.session.black_dn is None:
            from harness.errors import MeasurementError

            raise MeasurementError("no measured black level (the station has no light for "
                                   "the saturation pre-step)", figure="black_dn")
        return self.session.black_dn

    def condition(self, section: str) -> dict[str, Any]:
        """The spec's conditions for ``section`` (a sequence or a test's own settings)."""
        return self.session.condition(section)

    def sequence(self, name: str, **override: Any) -> CaptureSet:
        """Run capture sequence ``name`` once per run (see :class:`CaptureSession`); on a
        multi-up station every slot captures it at once."""
        if self.run.sequencer is not None:
            return self.run.sequencer(name, self.test_id, override)
        return self.session.sequence(name, self.test_id, **override)

    def sequence_for(self, name: str, override_of: ParamsOf) -> CaptureSet:
        """Sequence ``name`` with the overrides ``override_of(session)`` gives for this DUT
        (a chart at its own best focus). On a multi-up station every slot captures it at its
        own overrides, the slots that ask the same together (:meth:`sequence` assumes all
        slots ask the same)."""
        if self.run.sequencer_for is not None:
            return self.run.sequencer_for(name, self.test_id, override_of)
        return self.sequence(name, **override_of(self))

    def grab(self, name: str, n: int, *, role: str = "grab", strict: bool = True
             ) -> tuple[CaptureSet, FrameStack]:
        """A plain burst of ``n`` frames, recorded in a capture set of its own."""
        self.session.prepare(self.test_id)
        return self.session.grab(name, n, self.test_id, role=role, strict=strict)

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """An analysis result shared by the tests of the run (computed once)."""
        if key not in self.run.results:
            self.run.results[key] = compute()
        result: T = self.run.results[key]
        return result

    def analysed(self, key: str, sequence: str, analyse: Callable[..., T],
                 params: ParamsOf | None = None) -> T:
        """``analyse(capture_set_root, **params(session))`` on this run's capture of
        ``sequence``, once per run (shared by its tests under ``key``).

        ``analyse`` is a module-level function and ``params`` gives plain, picklable values:
        on a multi-up station the first slot to ask starts the analysis of every slot that
        captured ``sequence`` in worker processes (:mod:`harness.run.analysis_pool`), so the
        other slots' figures are computed while the station captures on; each slot's
        parameters come from its own session (its own CFA, its own spec conditions)."""
        results = self.run.results
        if key not in results:
            if self.run.prefetch is not None:
                self.run.prefetch(key, sequence, analyse, params, self.test_id)
            else:
                cs = self.sequence(sequence)
                results[key] = analyse(cs.root, **(params(self) if params else {}))
        value = results[key]
        if isinstance(value, Future):
            value = value.result()  # a worker's exception is raised here, with its type
            results[key] = value
        out: T = value
        return out

    def note(self, message: str, **facts: Any) -> None:
        """Record a fact that qualifies this test's figures."""
        self.run.note(message, test_id=self.test_id, **facts)

    def measure_supply(self) -> PowerReading:
        """The supply's voltage and current now, journaled (a ``reading`` event) so that a
        replay of the run serves the same reading to the same test."""
        reading: PowerReading = self.station.device("power").measure()
        self.run.reading(self.test_id, "power", "measure", dataclasses.asdict(reading))
        return reading

    def attach_png(self, png: bytes, name: str) -> None:
        self.run.attach(self.test_id, png, name)

    def attach_json(self, data: bytes, name: str) -> None:
        self.run.attach(self.test_id, data, name, kind="data", ext="json")

    def attach_thumbnail(self, frame: np.ndarray, name: str) -> None:
        """A downscaled 8-bit preview in the report (the raw frame stays in its set)."""
        from harness.evidence.allure import attach_thumbnail

        attach_thumbnail(frame, name)


__all__ = ["CHARACTERISATION", "QualificationRun", "TestSession"]
