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
from collections.abc import Generator, Iterator
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
        self.previous_sigterm: Any = None
        self.no_run = False
        self.station_study: StationStudy | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> HilPlugin:
        """Validate the station file and the limit spec; one-line UsageError otherwise."""
        station_file = config.getoption("station")
        try:
            station_config = load_station_file(station_file)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        if len(station_config.slots) > 1:
            raise pytest.UsageError(
                f"{station_file}: a station with {len(station_config.slots)} slots needs one "
                "run record per slot, which the pytest plugin does not make yet; qualify a "
                "slot at a time with a station file of that slot (see the README, Slots)")
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

    def has(self, role: str) -> bool:
        roles = self.station_config.roles()
        if role == "camera":
            return any(r == "camera" or r.startswith("camera.") for r in roles)
        return role in roles

    # -- session hooks --------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.previous_sigterm = signal.signal(signal.SIGTERM, _raise_aborted)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.plan.deselect(item.nodeid, declared_measurements(item))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            names = declared_measurements(item)
            if names:
                self.plan.declare(item.nodeid, names)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker("hil_requires")
        if marker is None:
            return
        unknown = [d for d in marker.args if d not in DEVICE_ROLES]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: hil_requires names unknown device(s) "
                                    f"{unknown}; allowed: {', '.join(DEVICE_ROLES)}")
        missing = [d for d in marker.args if not self.has(d)]
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
            self.plan.end(item.nodeid, Outcome.SKIPPED, _skip_reason(report))
        run = self.run
        if run is None or run.finished or "hil_station" not in getattr(item, "fixturenames", ()):
            return report
        test_id = item.nodeid
        if not item.stash.get(_STARTED, False):
            item.stash[_STARTED] = True
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            run.test_start(test_id, doc.strip().splitlines()[0] if doc.strip() else item.name,
                           _family(item))
            self.current_test = test_id
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
        if outcome in (Outcome.ERROR, Outcome.ABORTED):
            run.record_error(test_id, message, kind, outcome)
        run.test_end(test_id, outcome, message)
        self.current_test = ""
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
        bad = record.outcome in (Outcome.ERROR, Outcome.ABORTED) or (
            record.outcome is Outcome.INCOMPLETE and not self.characterise)
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
        colour = {"green": record.outcome in (Outcome.PASS, Outcome.MARGINAL),
                  "red": record.outcome not in (Outcome.PASS, Outcome.MARGINAL)}
        terminalreporter.write_sep("=", f"harness run {record.run_id}: {record.outcome.value}",
                                   **colour)
        if record.reason:
            terminalreporter.write_line(f"reason: {record.reason}")
        for u in record.unjudged:
            terminalreporter.write_line(f"unjudged {u.limit_id} ({u.measurement}): {u.reason}",
                                        red=True)
        evidence = self.run.evidence if self.run is not None else None
        for failure in getattr(evidence, "output_failures", ()):
            terminalreporter.write_line(f"{failure} (harness records publish --retry)",
                                        yellow=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()

    def close(self) -> None:
        """The one close path (idempotent): the station to its safe state and closed (if the
        session fixture's teardown did not run), the run finished, the watchdog stopped, the
        SIGTERM handler given back."""
        if self.station is not None and self.station.is_open:
            self.safe_report = self.station.close()
        self.finish_run()
        self._stop_watchdog()
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)
            self.previous_sigterm = None

    # -- what the fixtures ask for --------------------------------------------------------

    def station_fixture(self, request: pytest.FixtureRequest) -> Iterator[Station]:
        station = Station(self.station_config, allow_expired_calibration=self.allow_expired)
        self.station = station
        traffic.reset()  # this run's traffic only, from the station's opening on
        station.open()
        try:
            try:
                self.run = self._start_run(station)
            except EvidenceError as exc:
                # no journal, no run: stop at once with one line (the station still goes safe)
                pytest.exit(f"harness: ERROR: the run's evidence cannot be written: {exc}",
                            returncode=pytest.ExitCode.TESTS_FAILED)
            self.run.open_session(station)
            if station.leases is not None and station.leases.resources:
                held = station.leases
                self.run.note(f"leased {len(held.resources)} shared instrument(s) after waiting "
                              f"{held.waited_s:.2f} s for other holders",
                              lease_waited_s=round(held.waited_s, 3),
                              leased=list(held.resources),
                              leases_taken_over=[f"{t.resource} from {t.holder} (pid {t.pid} "
                                                 f"on {t.host})" for t in held.took_over])
            self.watchdog = self._start_watchdog()
            if self.has("camera"):
                serial = station.camera().identity().serial
                try:
                    if self.dut_expected is not None and serial != self.dut_expected:
                        raise ConfigError(f"DUT serial mismatch: --dut {self.dut_expected!r} "
                                          f"but the camera reports {serial!r}", field="--dut")
                    self._confirm_label(serial)
                except ConfigError as exc:
                    self.run.record_error("", str(exc), "station", Outcome.ERROR)
                    raise
            yield station
        finally:
            if self.run is not None and self.run.session is not None:
                with contextlib.suppress(HarnessError):
                    self.run.session.stop()
            self.safe_report = station.close()

    def device(self, role: str) -> Any:
        station = self.station
        assert station is not None
        if role == "camera":
            try:
                return station.camera()
            except KeyError:
                pytest.skip(f"station {station.id} has no camera")
        if not station.has(role):
            pytest.skip(f"station {station.id} has no {role}")
        return station.device(role)

    def dut(self) -> DutInfo:
        ident = self.device("camera").identity()
        return DutInfo(ident.serial, self.dut_expected, self.operator, ident.as_dict())

    def checker(self, item: pytest.Item) -> Checker:
        assert self.run is not None
        checker = self.run.checker(item.nodeid, declared_measurements(item))
        item.stash[_CHECKER] = checker
        return checker

    def test_session(self, item: pytest.Item) -> TestSession:
        assert self.run is not None
        return self.run.view(item.nodeid)

    # -- run start and end ----------------------------------------------------------------

    def _start_run(self, station: Station) -> QualificationRun:
        run = QualificationRun(station.id, self.evidence_dir, self.spec,
                               operator=self.operator or "", records_target=self.records,
                               alluredir=self.alluredir, characterise=self.characterise,
                               plan=self.plan, rejudged_from=self.rejudged_from,
                               signing_key=self.station_config.settings.signing_key,
                               station_study=self.station_study)
        dut: dict[str, Any] = {}
        if self.has("camera"):
            ident = station.camera().identity()
            dut = {"serial": ident.serial, "firmware": ident.firmware, "model": ident.model,
                   "vendor": ident.vendor, "expected_serial": self.dut_expected,
                   "product": self.spec.product if self.spec else ""}
        devices = [{"role": role, **ident.as_dict()}
                   for role, ident in station.identities().items()]
        calibrations = [{"device": role, **cal.model_dump(mode="json")}
                        for role, cal in station.config.calibration.items()]
        run.start(dut=dut, devices=devices, calibrations=calibrations)
        return run

    def finish_run(self) -> None:
        """Record safe-state failures and an interruption, then finish the run (once)."""
        run = self.run
        if run is None or run.journal is None or run.finished:
            return
        for role, message in getattr(self.safe_report, "failed", ()):
            with contextlib.suppress(HarnessError):
                run.record_error("", f"{role}: safe state not reached: {message}", "station",
                                 Outcome.ERROR)
        if self.interrupted and self.current_test:
            with contextlib.suppress(HarnessError):
                run.test_end(self.current_test, Outcome.ABORTED, "interrupted")
        outcome = Outcome.ABORTED if self.interrupted else run.journal.outcome
        self.record = run.finish(outcome, reason="interrupted" if self.interrupted else "")
        self._stop_watchdog()

    def _start_watchdog(self) -> Any:
        """The SIGKILL watchdog (:mod:`harness.run.watchdog`), unless the station's
        ``settings.watchdog`` is false."""
        if not self.station_config.settings.watchdog or self.run is None:
            return None
        from harness.run.watchdog import start_watchdog

        journal = self.run.journal.path if self.run.journal is not None else None
        return start_watchdog(self.station_config.source, journal)

    def _stop_watchdog(self) -> None:
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            watchdog.stop()

    # -- operator -------------------------------------------------------------------------

    def _confirm_label(self, serial: str) -> None:
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


__all__ = ["DutInfo", "HilPlugin", "declared_measurements", "read_label"]
