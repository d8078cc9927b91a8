"""The plugin object registered on ``--station``: pytest's hooks as methods, state as attributes.

One :class:`HilPlugin` per pytest session (after pytest-xdist's ``DSession``). It validates
the inputs at configure time, opens the station and the
:class:`~harness.run.qualification.QualificationRun` when the first test needs them, records
what was collected and deselected (so the run can say which limits went unjudged and why),
journals each test's start and end with its outcome classified by exception type
(:mod:`harness.run.outcome`), attaches the last exchanges of the instrument a
:class:`~harness.errors.DeviceError` names to the test's Allure result
(:mod:`harness.devices.traffic`), and closes everything on one path: the station to its safe
state, then the run's record, then the watchdog, also after Ctrl-C and SIGTERM (turned into
:class:`~harness.errors.Aborted`, which pytest treats like Ctrl-C).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness.devices import traffic
from harness.errors import Aborted, ConfigError, DeviceError, EvidenceError, HarnessError
from harness.evidence.allure import attach_text
from harness.limits import LimitSpec, load_limits
from harness.measurement import Outcome
from harness.pytestplugin import DEVICE_ROLES
from harness.run.checker import Checker
from harness.run.coverage import TestPlan
from harness.run.outcome import classify
from harness.run.qualification import QualificationRun, TestSession
from harness.run.station_study import StationStudy, load_study, study_path
from harness.station.schema import StationConfig, load_station_file
from harness.station.station import Station

_CHECKER = pytest.StashKey[Checker]()
_STARTED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class DutInfo:
    """The device under test as this run knows it."""

    serial: str
    expected_serial: str | None
    operator: str | None
    identity: dict[str, Any]


def declared_measurements(item: pytest.Item) -> frozenset[str]:
    """The figures a test declares with ``hil_measures`` (test, class and module markers)."""
    names: set[str] = set()
    for marker in item.iter_markers("hil_measures"):
        names.update(str(a) for a in marker.args)
    return frozenset(names)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def _raise_aborted(signum: int, frame: FrameType | None) -> None:
    raise Aborted(f"received {signal.Signals(signum).name}")


class HilPlugin:
    """The harness in a pytest session with ``--station`` (see the module docstring)."""

    def __init__(self, config: pytest.Config, station_config: StationConfig,
                 spec: LimitSpec | None, *, characterise: bool) -> None:
        self.config = config
        self.station_config = station_config
        self.spec = spec
        self.characterise = characterise
        self.dut_expected: str | None = config.getoption("dut")
        self.operator: str | None = config.getoption("operator")
        self.records: str | None = config.getoption("records")
        self.evidence_dir = Path(config.getoption("evidence_dir"))
        self.allow_expired = bool(config.getoption("allow_expired_calibration"))
        self.label: str | None = config.getoption("label")
        self.rejudged_from: str = config.getoption("rejudged_from") or ""
        self.alluredir: str | None = config.getoption("allure_report_dir", default=None)
        self.plan = TestPlan()
        self.station: Station | None = None
        self.run: QualificationRun | None = None
        self.record: Any = None
        self.safe_report: Any = None
        self.watchdog: Any = None
        self.interrupted = False
        self.current_test = ""
        self.current_runs: list[QualificationRun] = []
        self.previous_signals: dict[signal.Signals, Any] = {}
        self.no_run = False
        self.station_study: StationStudy | None = None
        self.slots: tuple[str, ...] = station_config.slots
        """The slots of a station with ``slots:``: one run per slot (none: one run)."""
        self.plans: dict[str, TestPlan] = {slot: TestPlan() for slot in self.slots}
        self.runs: dict[str, QualificationRun] = {}
        self.slot_records: dict[str, Any] = {}
        self.slot_capture: Any = None
        self.refused: dict[str, HarnessError] = {}
        """Slots whose DUT failed its identity check: each of their tests is an ERROR."""
        self.analysis_pool: Any = None
        """The slots' analysis workers (:mod:`harness.run.analysis_pool`), started on first
        use."""

    @classmethod
    def from_config(cls, config: pytest.Config) -> HilPlugin:
        """Validate the station file and the limit spec; one-line UsageError otherwise."""
        station_file = config.getoption("station")
        try:
            station_config = load_station_file(station_file)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        for option in ("dut", "label"):
            if len(station_config.slots) > 1 and config.getoption(option):
                raise pytest.UsageError(
                    f"--{option} names one DUT, but {station_file} has "
                    f"{len(station_config.slots)} slots: each slot's serial is read from its "
                    "camera (and its label scanned when settings.confirm_label asks)")
        characterise = bool(config.getoption("characterise"))
        limits = config.getoption("limits") or station_config.limits
        if limits is None and not characterise:
            raise pytest.UsageError(
                "--station needs a limit spec: give --limits FILE (or limits: in "
                f"{station_file}), or --characterise to record figures without limits")
        try:
            spec = load_limits(limits) if limits is not None else None
            study = load_study(study_path(station_config.source), station_config.id)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        plugin = cls(config, station_config, spec, characterise=characterise)
        plugin.station_study = study
        return plugin

    def has(self, role: str, slot: str | None = None) -> bool:
        roles = self.station_config.roles()
        if role == "camera":
            return any(r == "camera" or r.startswith("camera.") for r in roles)
        return role in roles or (slot is not None and f"{role}.{slot}" in roles)

    # -- slots ------------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """On a multi-up station every test that uses a slot's devices runs once per slot."""
        if self.slots and "hil_slot" in metafunc.fixturenames:
            metafunc.parametrize("hil_slot", self.slots, indirect=True)

    def _plans_of(self, item: pytest.Item) -> list[TestPlan]:
        if not self.slots:
            return [self.plan]
        slot = slot_of(item)
        return [self.plans[slot]] if slot is not None else list(self.plans.values())

    def _runs_of(self, item: pytest.Item) -> list[QualificationRun]:
        if not self.slots:
            return [self.run] if self.run is not None else []
        slot = slot_of(item)
        if slot is not None:
            return [self.runs[slot]] if slot in self.runs else []
        return list(self.runs.values())

    def _refuse(self, slot: str, exc: HarnessError) -> None:
        self.refused[slot] = exc
        self.slot_capture.errors.setdefault(slot, exc)
        self.slot_capture.rendezvous.leave(slot)

    def _run_of(self, item: pytest.Item) -> QualificationRun:
        slot = slot_of(item)
        if slot is not None and slot in self.refused:
            raise self.refused[slot]
        runs = self._runs_of(item)
        if len(runs) != 1:
            raise EvidenceError(f"{item.nodeid}: no run of its own (a multi-up station's test "
                                "must use a slot: hil_session, hil_check or hil_camera)")
        return runs[0]

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """On a multi-up station the tests run slot by slot (those of no slot first): the
        first slot's tests capture every step for all slots, and while they go on to the
        next step the other slots' analyses run in worker processes (:meth:`_slot_prefetch`),
        so the later slots' tests find their figures ready."""
        if self.slots:
            rank = {slot: i for i, slot in enumerate(self.slots)}
            items.sort(key=lambda item: rank.get(slot_of(item) or "", -1))

    def _slot_prefetch(self, slot: str, key: str, sequence: str, analyse: Any, params: Any,
                       test_id: str) -> None:
        """Capture ``sequence`` on every live slot (if not yet), then start ``analyse`` of
        each slot's capture set in the analysis workers, this slot's first; each future is
        left under ``key`` in its slot's run results (:meth:`TestSession.analysed`). A slot
        whose parameters cannot be had is left to its own test, which then raises."""
        from harness.run.analysis_pool import AnalysisPool, default_workers

        capture = self.slot_capture
        cs = self._slot_sequence(slot, sequence, test_id, {})
        workers = self.station_config.settings.analysis_workers
        if workers == 0:
            own = self.runs[slot]
            own.results[key] = analyse(cs.root, **(dict(params(own.view(test_id)))
                                                   if params is not None else {}))
            return
        if self.analysis_pool is None:
            self.analysis_pool = AnalysisPool(workers or default_workers(len(self.slots)))
        sets = {s: capture.sessions[s].capture_of(sequence) for s in capture.live}
        wanted = self._per_slot(slot, test_id, params, keep=lambda other: (
            sets.get(other) is not None and key not in self.runs[other].results))
        for other, kwargs in wanted.items():
            self.runs[other].results[key] = self.analysis_pool.submit(
                analyse, sets[other].root, **kwargs)

    def _per_slot(self, slot: str, test_id: str, values_of: Any,
                  keep: Callable[[str], bool] = lambda other: True) -> dict[str, dict[str, Any]]:
        """``values_of(session)`` (None: no values) of this slot and of each other live,
        unrefused slot that ``keep`` keeps, this slot first, each from its own session. A
        slot whose values cannot be had is left to its own test, which then raises."""
        out: dict[str, dict[str, Any]] = {}
        for other in [slot, *(s for s in self.slot_capture.live if s != slot)]:
            if other in self.refused or other not in self.runs or not keep(other):
                continue
            try:
                out[other] = {} if values_of is None else dict(values_of(
                    self.runs[other].view(sibling_id(test_id, slot, other))))
            except HarnessError:
                if other == slot:
                    raise
        return out

    def _slot_overrides(self, slot: str, test_id: str, override_of: Any
                        ) -> dict[str, dict[str, Any]]:
        """Each live slot's overrides (:meth:`_per_slot`); a ``focus_um`` on a focus stage
        the slots share is rounded to the station's ``shared_focus_step_um``."""
        from harness.run.slots import shared_focus_position

        step = self.station_config.settings.shared_focus_step_um
        out = self._per_slot(slot, test_id, override_of)
        for other, own in out.items():
            shared = self.station is not None and not self.station.has(f"focus.{other}")
            if "focus_um" in own and shared:
                own["focus_um"] = shared_focus_position(float(own["focus_um"]), step)
        return out

    def _slot_sequence_for(self, slot: str, name: str, test_id: str, override_of: Any) -> Any:
        """A sequence each slot captures at its own overrides (its chart at its own best
        focus): the slots asking the same capture together, one group after another."""
        capture = self.slot_capture
        if slot in capture.errors:
            raise capture.errors[slot]
        overrides = self._slot_overrides(slot, test_id, override_of)
        own = capture.sessions[slot]
        if own.captured(name, overrides[slot]):
            return own.sequence(name, test_id, **overrides[slot])
        groups: dict[str, list[str]] = {}
        for other, values in overrides.items():
            if not capture.sessions[other].captured(name, values):
                groups.setdefault(repr(sorted(values.items())), []).append(other)
        result: Any = None
        for members in groups.values():
            values = overrides[members[0]]
            ids = {s: sibling_id(test_id, slot, s) for s in members}
            got = capture.sequence(name, ids, slots=members, **values)
            if len(groups) > 1:
                for member in members:
                    with contextlib.suppress(HarnessError):
                        self.runs[member].note(
                            f"{name} captured apart from slot(s) "
                            f"{', '.join(s for s in overrides if s not in members)} "
                            f"at {values}", test_id=ids[member], slot=member,
                            sequence=name, group=members)
            result = got.get(slot, result)
        if isinstance(result, BaseException):
            raise result
        return result

    def _slot_sequence(self, slot: str, name: str, test_id: str,
                       override: Mapping[str, Any]) -> Any:
        """A sequence a test of ``slot`` asks for, captured by every live slot at once."""
        capture = self.slot_capture
        if slot in capture.errors:
            raise capture.errors[slot]
        own = capture.sessions[slot]
        if own.captured(name, override):  # every slot captured it when the first one asked
            return own.sequence(name, test_id, **override)
        ids = {other: sibling_id(test_id, slot, other) for other in capture.live}
        result = capture.sequence(name, ids, **override)[slot]
        if isinstance(result, BaseException):
            raise result
        return result

    # -- session hooks --------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from harness.evidence.interrupts import install

        # SIGTERM raises Aborted, Ctrl-C KeyboardInterrupt, but never between a journal line
        # and its count (harness.evidence.interrupts)
        self.previous_signals = {**install((signal.SIGTERM,), _raise_aborted),
                                 **install((signal.SIGINT,))}

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            for plan in self._plans_of(item):
                plan.deselect(item.nodeid, declared_measurements(item))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            names = declared_measurements(item)
            if names:
                for plan in self._plans_of(item):
                    plan.declare(item.nodeid, names)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker("hil_requires")
        if marker is None:
            return
        unknown = [d for d in marker.args if d not in DEVICE_ROLES]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: hil_requires names unknown device(s) "
                                    f"{unknown}; allowed: {', '.join(DEVICE_ROLES)}")
        missing = [d for d in marker.args if not self.has(d, slot_of(item))]
        if missing:
            pytest.skip(f"station {self.station_config.id} has no {', '.join(missing)} "
                        "(hil_requires)")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """Soft assertions: after the body, ERROR verdicts raise MeasurementError and FAIL
        verdicts one LimitFailure (see :class:`~harness.run.checker.Checker`)."""
        result = yield
        checker = item.stash.get(_CHECKER, None)
        if checker is not None:
            checker.raise_if_failed()
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report: pytest.TestReport = yield
        exc = call.excinfo.value if call.excinfo is not None else None
        if isinstance(exc, HarnessError):
            item.user_properties.append(("harness_error", str(exc)))
        if isinstance(exc, DeviceError) and exc.device and report.failed:
            # also when the station failed to open, before any run exists
            exchanges = traffic.last_exchanges(exc.device)
            if exchanges:
                attach_text("\n".join(exchanges) + "\n", f"{exc.device} traffic")
        ends_here = report.when == "call" or (report.when == "setup" and not report.passed)
        if report.skipped and ends_here:
            for plan in self._plans_of(item):
                plan.end(item.nodeid, Outcome.SKIPPED, _skip_reason(report))
        runs = [r for r in self._runs_of(item) if not r.finished]
        if not runs or "hil_station" not in getattr(item, "fixturenames", ()):
            return report
        test_id = item.nodeid
        if not item.stash.get(_STARTED, False):
            item.stash[_STARTED] = True
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            for run in runs:
                run.test_start(test_id, doc.strip().splitlines()[0] if doc.strip()
                               else item.name, _family(item))
            self.current_test = test_id
            self.current_runs = runs
        if not ends_here:
            return report
        if report.skipped:
            outcome, kind, message = Outcome.SKIPPED, "", _skip_reason(report)
        else:
            found = classify(exc)
            outcome, kind = found.outcome, found.kind
            message = (f"{type(exc).__name__}: {exc}".splitlines()[0]
                       if exc is not None else "")
        checker = item.stash.get(_CHECKER, None)
        if outcome is Outcome.PASS and checker is not None:
            outcome = max(Outcome.PASS, checker.outcome, key=lambda o: o.rank)
        for run in runs:
            if outcome in (Outcome.ERROR, Outcome.ABORTED):
                run.record_error(test_id, message, kind, outcome)
            run.test_end(test_id, outcome, message)
        self.current_test = ""
        self.current_runs = []
        return report

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """End the run after every test and the station's teardown (safe state)."""
        self.finish_run()
        record = self.record
        if record is None and self.run is None and not self.characterise \
                and session.exitstatus == 0 and self.plan.declared:
            # every test that judges a limit was skipped before the station opened
            self.no_run = True
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if record is None or session.exitstatus != 0:
            return
        records = list(self.slot_records.values()) or [record]
        bad = any(r.outcome in (Outcome.ERROR, Outcome.ABORTED) or (
            r.outcome is Outcome.INCOMPLETE and not self.characterise) for r in records)
        if bad:
            # every test passed, yet the run cannot be signed (evidence lost, limits unjudged)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        record = self.record
        if self.no_run:
            terminalreporter.write_sep("=", "harness: INCOMPLETE: no qualification ran (every "
                                            "test that judges a limit was skipped)", red=True)
        if record is None:
            return
        if self.slots:
            terminalreporter.write_sep("=", f"harness: {len(self.slot_records)} slots")
        for slot, rec in (self.slot_records or {"": record}).items():
            colour = {"green": rec.outcome in (Outcome.PASS, Outcome.MARGINAL),
                      "red": rec.outcome not in (Outcome.PASS, Outcome.MARGINAL)}
            where = f"slot {slot} ({rec.dut_serial}) " if slot else ""
            line = f"harness run {where}{rec.run_id}: {rec.outcome.value}"
            if slot:
                terminalreporter.write_line(line, **colour)
            else:
                terminalreporter.write_sep("=", line, **colour)
            if rec.reason:
                terminalreporter.write_line(f"{'  ' if slot else ''}reason: {rec.reason}")
            for u in rec.unjudged:
                terminalreporter.write_line(f"{'  ' if slot else ''}unjudged {u.limit_id} "
                                            f"({u.measurement}): {u.reason}", red=True)
        for run in list(self.runs.values()) or ([self.run] if self.run else []):
            for failure in getattr(run.evidence, "output_failures", ()):
                terminalreporter.write_line(f"{failure} (harness records publish --retry)",
                                            yellow=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()

    def close(self) -> None:
        """The one close path (idempotent): the station to its safe state and closed (if the
        session fixture's teardown did not run), the run finished, the watchdog stopped, the
        signal handlers given back."""
        if self.station is not None and self.station.is_open:
            self.safe_report = self.station.close()
        self.finish_run()
        self._stop_watchdog()
        if self.previous_signals:
            from harness.evidence.interrupts import restore

            restore(self.previous_signals)
            self.previous_signals = {}

    # -- what the fixtures ask for --------------------------------------------------------

    def station_fixture(self, request: pytest.FixtureRequest) -> Iterator[Station]:
        station = Station(self.station_config, allow_expired_calibration=self.allow_expired)
        self.station = station
        traffic.reset()  # this run's traffic only, from the station's opening on
        station.open()
        try:
            try:
                if self.slots:
                    self._start_slot_runs(station)
                else:
                    self.run = self._start_run(station)
                    self.run.open_session(station)
            except EvidenceError as exc:
                # no journal, no run: stop at once with one line (the station still goes safe)
                pytest.exit(f"harness: ERROR: the run's evidence cannot be written: {exc}",
                            returncode=pytest.ExitCode.TESTS_FAILED)
            assert self.run is not None
            if station.leases is not None and station.leases.resources:
                held = station.leases
                for run in list(self.runs.values()) or [self.run]:
                    run.note(f"leased {len(held.resources)} shared instrument(s) after "
                             f"waiting {held.waited_s:.2f} s for other holders",
                             lease_waited_s=round(held.waited_s, 3),
                             leased=list(held.resources),
                             leases_taken_over=[f"{t.resource} from {t.holder} (pid {t.pid} "
                                                f"on {t.host})" for t in held.took_over])
            self.watchdog = self._start_watchdog()
            if self.has("camera"):
                pairs: list[tuple[str | None, QualificationRun]] = \
                    list(self.runs.items()) or [(None, self.run)]
                for slot, run in pairs:
                    serial = self._camera_of(station, slot).identity().serial
                    try:
                        if self.dut_expected is not None and serial != self.dut_expected:
                            raise ConfigError(f"DUT serial mismatch: --dut "
                                              f"{self.dut_expected!r} but the camera reports "
                                              f"{serial!r}", field="--dut")
                        self._confirm_label(serial, run)
                    except ConfigError as exc:
                        run.record_error("", str(exc), "station", Outcome.ERROR)
                        if slot is None:
                            raise
                        self._refuse(slot, exc)  # that slot's DUT only; the others go on
            yield station
        finally:
            for run in list(self.runs.values()) or ([self.run] if self.run else []):
                if run.session is not None:
                    with contextlib.suppress(HarnessError):
                        run.session.stop()
            self.safe_report = station.close()

    @staticmethod
    def _camera_of(station: Station, slot: str | None) -> Any:
        return station.device(f"camera.{slot}") if slot else station.camera()

    def _start_slot_runs(self, station: Station) -> None:
        """One run per slot (its own journal, evidence folder and record), their capture
        sessions from one :class:`~harness.run.slots.SlotCapture` (shared state set once)."""
        from functools import partial

        from harness.run.slots import SlotCapture

        for i, slot in enumerate(self.slots):
            self.runs[slot] = self._start_run(station, slot=slot, traffic_add=i > 0)
        self.run = self.runs[self.slots[0]]
        conditions = self.spec.conditions if self.spec is not None else {}
        self.slot_capture = SlotCapture(
            station, {s: r.folder / "captures" for s, r in self.runs.items()},
            conditions=conditions, events={s: r._on_event for s, r in self.runs.items()})
        for slot, run in self.runs.items():
            run.session = self.slot_capture.sessions[slot]
            run.sequencer = partial(self._slot_sequence, slot)
            run.prefetch = partial(self._slot_prefetch, slot)
            run.sequencer_for = partial(self._slot_sequence_for, slot)

    def device(self, role: str, slot: str | None = None) -> Any:
        """The open device for ``role``; a slot's own (``power.A``) before the shared one."""
        station = self.station
        assert station is not None
        if slot is not None and slot in self.refused:
            raise self.refused[slot]
        if slot is not None and station.has(f"{role}.{slot}"):
            return station.device(f"{role}.{slot}")
        if role == "camera":
            try:
                return station.camera()
            except KeyError:
                pytest.skip(f"station {station.id} has no camera")
        if not station.has(role):
            pytest.skip(f"station {station.id} has no {role}")
        return station.device(role)

    def dut(self, slot: str | None = None) -> DutInfo:
        ident = self.device("camera", slot).identity()
        return DutInfo(ident.serial, self.dut_expected, self.operator, ident.as_dict())

    def checker(self, item: pytest.Item) -> Checker:
        checker = self._run_of(item).checker(item.nodeid, declared_measurements(item))
        item.stash[_CHECKER] = checker
        return checker

    def test_session(self, item: pytest.Item) -> TestSession:
        return self._run_of(item).view(item.nodeid)

    # -- run start and end ----------------------------------------------------------------

    def _start_run(self, station: Station, *, slot: str | None = None,
                   traffic_add: bool = False) -> QualificationRun:
        run = QualificationRun(station.id, self.evidence_dir, self.spec,
                               operator=self.operator or "", records_target=self.records,
                               alluredir=self.alluredir, characterise=self.characterise,
                               plan=self.plans[slot] if slot else self.plan,
                               rejudged_from=self.rejudged_from,
                               signing_key=self.station_config.settings.signing_key,
                               station_study=self.station_study, slot=slot or "",
                               traffic_add=traffic_add)
        dut: dict[str, Any] = {}
        if self.has("camera"):
            ident = self._camera_of(station, slot).identity()
            dut = {"serial": ident.serial, "firmware": ident.firmware, "model": ident.model,
                   "vendor": ident.vendor, "expected_serial": self.dut_expected,
                   "product": self.spec.product if self.spec else ""}
            if slot:
                dut["slot"] = slot
        devices = [{"role": role, **ident.as_dict()}
                   for role, ident in station.identities().items()
                   if slot is None or role.partition(".")[2] in ("", slot)]
        calibrations = [{"device": role, **cal.model_dump(mode="json")}
                        for role, cal in station.config.calibration.items()]
        run.start(dut=dut, devices=devices, calibrations=calibrations)
        return run

    def finish_run(self) -> None:
        """Record safe-state failures and an interruption, then finish the run (once; every
        slot's run on a multi-up station)."""
        if self.slots:
            capture = self.slot_capture
            for slot, run in self.runs.items():
                if capture is not None and run.journal is not None and not run.finished:
                    with contextlib.suppress(HarnessError):
                        run.note(f"slot {slot} waited {capture.rendezvous.waited_s(slot):.2f} s "
                                 "for the other slots at shared changes",
                                 slot=slot, slot_wait_s=round(capture.rendezvous.waited_s(slot),
                                                              3),
                                 shared_changes=capture.rendezvous.changes_made)
                record = self._finish(run)
                if record is not None:
                    self.slot_records[slot] = record
            if self.slot_records and self.record is None:
                self.record = next(iter(self.slot_records.values()))
            pool, self.analysis_pool = self.analysis_pool, None
            if pool is not None:
                pool.close(cancel=True)
        elif self.run is not None:
            record = self._finish(self.run)
            if record is not None:
                self.record = record
        self._stop_watchdog()

    def _finish(self, run: QualificationRun) -> Any:
        if run.journal is None or run.finished:
            return None
        for role, message in getattr(self.safe_report, "failed", ()):
            with contextlib.suppress(HarnessError):
                run.record_error("", f"{role}: safe state not reached: {message}", "station",
                                 Outcome.ERROR)
        if self.interrupted and self.current_test and run in self.current_runs:
            with contextlib.suppress(HarnessError):
                run.test_end(self.current_test, Outcome.ABORTED, "interrupted")
        outcome = Outcome.ABORTED if self.interrupted else run.journal.outcome
        return run.finish(outcome, reason="interrupted" if self.interrupted else "")

    def _start_watchdog(self) -> Any:
        """The SIGKILL watchdog (:mod:`harness.run.watchdog`), unless the station's
        ``settings.watchdog`` is false."""
        if not self.station_config.settings.watchdog or self.run is None:
            return None
        from harness.run.watchdog import start_watchdog

        runs = list(self.runs.values()) or [self.run]
        journals = [r.journal.path for r in runs if r.journal is not None]
        leases = self.station.leases if self.station is not None else None
        return start_watchdog(self.station_config.source, journals, leases=leases)

    def _stop_watchdog(self) -> None:
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            watchdog.stop()

    # -- operator -------------------------------------------------------------------------

    def _confirm_label(self, serial: str, run: QualificationRun | None = None) -> None:
        """When the station asks for it (``settings.confirm_label``), the scanned DUT label
        must match the camera's serial; no label within ``settings.label_timeout_s`` or a
        mismatch is an ERROR (the wrong unit must never be qualified under another's
        serial)."""
        settings = self.station_config.settings
        if not settings.confirm_label and self.label is None:
            return
        label = self.label
        if label is None:
            timeout = settings.label_timeout_s
            if run is not None:  # the station app shows the prompt from this note
                with contextlib.suppress(HarnessError):
                    run.note("waiting for the DUT label scan", prompt="label",
                             timeout_s=timeout)
            capture = self.config.pluginmanager.getplugin("capturemanager")
            if capture is not None:
                capture.suspend_global_capture(in_=True)  # the real stdin and terminal
            try:
                label = read_label(f"\nScan the DUT label (camera reports {serial}; "
                                   f"{timeout:g} s): ", timeout)
            finally:
                if capture is not None:
                    capture.resume_global_capture()
            if label is None:
                raise ConfigError(f"no DUT label scanned within {timeout:g} s", field="label")
        if label != serial:
            raise ConfigError(f"DUT label mismatch: the label reads {label!r} but the camera "
                              f"reports {serial!r}", field="label")


def slot_of(item: pytest.Item) -> str | None:
    """The slot an item runs for (its ``hil_slot`` parameter), or None."""
    callspec = getattr(item, "callspec", None)
    slot = callspec.params.get("hil_slot") if callspec is not None else None
    return str(slot) if slot is not None else None


def sibling_id(test_id: str, slot: str, other: str) -> str:
    """``test_id`` of slot ``slot`` as the same test of slot ``other`` (``test_x[A]`` ->
    ``test_x[B]``, ``test_y[A-flat]`` -> ``test_y[B-flat]``)."""
    head, sep, params = test_id.partition("[")
    if not sep or not params.endswith("]"):
        return test_id
    tokens = params[:-1].split("-")
    if slot in tokens:
        tokens[tokens.index(slot)] = other
    return f"{head}[{'-'.join(tokens)}]"


def read_label(prompt: str, timeout_s: float) -> str | None:
    """One line from standard input within ``timeout_s`` (a barcode scanner types the label
    and Enter), or None."""
    import select
    import sys

    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    except (OSError, ValueError):
        return None
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip() or None


def _family(item: pytest.Item) -> str:
    marker = item.get_closest_marker("hil_family")
    if marker and marker.args:
        return str(marker.args[0])
    module = getattr(item, "module", None)
    name = getattr(module, "__name__", "") or ""
    return name.rsplit(".", 1)[-1].removeprefix("test_")


__all__ = ["DutInfo", "HilPlugin", "declared_measurements", "read_label", "sibling_id", "slot_of"]
