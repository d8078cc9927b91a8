"""The harness's pytest plugin: opt-in, prefixed, no autouse fixtures.

Installed through the ``pytest11`` entry point, it adds options and ``hil_*`` fixtures but
does nothing else unless ``--station`` is given, so it cannot change another project's run
(the plugin-collision lesson in REFERENCE §10). With ``--station``:

* the station file is validated at start-up (a bad file stops pytest with one line);
* ``hil_station`` opens the station once per session (lock, drivers, calibration check) and
  puts every device in its safe state at the end, also after Ctrl-C and SIGTERM (SIGTERM is
  turned into :class:`~harness.errors.Aborted`, which pytest treats like Ctrl-C);
* ``--dut`` is cross-checked against the camera's own serial number;
* ``@pytest.mark.hil_requires("focus", ...)`` skips a test, with a reason, on a station that
  lacks one of the named devices.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness.errors import Aborted, ConfigError, EvidenceError, HarnessError
from harness.evidence.model import Outcome
from harness.limits import LimitSpec, load_limits
from harness.run_context import Checker, QualificationRun
from harness.station.registry import DEVICE_KINDS
from harness.station.schema import StationConfig, load_station_file
from harness.station.station import Station

ROLES = DEVICE_KINDS
_STATE = pytest.StashKey["HilSession"]()
_CHECKER = pytest.StashKey[Checker]()
_STARTED = pytest.StashKey[bool]()


@dataclass(eq=False)
class HilSession:
    """Everything the plugin knows about this run's station (when ``--station`` is given)."""

    config: StationConfig
    dut: str | None
    operator: str | None
    limits: Path | None
    records: str | None
    evidence_dir: Path
    allow_expired_calibration: bool
    label: str | None = None
    limit_spec: LimitSpec | None = None
    alluredir: str | None = None
    station: Station | None = None
    run: QualificationRun | None = None
    interrupted: bool = False
    safe_report: Any = None
    watchdog: Any = None
    record: Any = None
    current_test: str = ""
    previous_sigterm: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    def has(self, role: str) -> bool:
        if role == "camera":
            return any(r == "camera" or r.startswith("camera.") for r in self.config.roles())
        return role in self.config.roles()


@dataclass(frozen=True)
class DutInfo:
    """The device under test as this run knows it."""

    serial: str
    expected_serial: str | None
    operator: str | None
    identity: dict[str, Any]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "camera-module qualification harness (opt-in)")
    group.addoption("--station", default=None, metavar="FILE",
                    help="station file (YAML); enables the harness plugin")
    group.addoption("--dut", default=None, metavar="SERIAL",
                    help="expected DUT serial, cross-checked against the camera's own")
    group.addoption("--operator", default=None, help="operator name or badge id for the record")
    group.addoption("--limits", default=None, metavar="FILE", help="limit spec (YAML)")
    group.addoption("--records", default=None, metavar="URL_OR_FILE",
                    help="records database: an SQLite file or a postgresql:// URL")
    group.addoption("--evidence-dir", default="out/evidence", metavar="DIR",
                    help="where frames, journal and plots go (default out/evidence)")
    group.addoption("--allow-expired-calibration", action="store_true", default=False,
                    help="run even if an instrument's calibration has expired")
    group.addoption("--label", default=None, metavar="SERIAL",
                    help="the DUT label as scanned (otherwise prompted for when the station's "
                         "settings.confirm_label is true)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hil_requires(*devices): skip unless the station has these devices "
        "(camera, light, power, meter, focus, chart)",
    )
    config.addinivalue_line(
        "markers", "hil_family(name): the test family (linearity, defects, ...) for the report")
    config.addinivalue_line(
        "markers", "selftest: a station self-test on a reference module")
    station_file = config.getoption("station", default=None)
    if not station_file:
        return
    try:
        station_config = load_station_file(station_file)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    limits = config.getoption("limits")
    try:
        limit_spec = load_limits(limits) if limits else None
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = HilSession(
        config=station_config,
        dut=config.getoption("dut"),
        operator=config.getoption("operator"),
        limits=Path(limits) if limits else None,
        records=config.getoption("records"),
        evidence_dir=Path(config.getoption("evidence_dir")),
        allow_expired_calibration=bool(config.getoption("allow_expired_calibration")),
        label=config.getoption("label"),
        limit_spec=limit_spec,
        alluredir=config.getoption("allure_report_dir", default=None),
    )
    config.stash[_STATE] = state
    _ACTIVE.append(state)


def _raise_aborted(signum: int, frame: FrameType | None) -> None:
    raise Aborted(f"received {signal.Signals(signum).name}")


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.previous_sigterm = signal.signal(signal.SIGTERM, _raise_aborted)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if state in _ACTIVE:
        _ACTIVE.remove(state)
    if state.station is not None and state.station.is_open:
        state.safe_report = state.station.close()
    _finish_run(state, state.safe_report)
    _stop_watchdog(state)
    if state.previous_sigterm is not None:
        signal.signal(signal.SIGTERM, state.previous_sigterm)


def hil_session_state(config: pytest.Config) -> HilSession | None:
    """The plugin's state, or None when the plugin is off (no ``--station``)."""
    return config.stash.get(_STATE, None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("hil_requires")
    if marker is None:
        return
    state = item.config.stash.get(_STATE, None)
    if state is None:
        pytest.skip("hil_requires: no --station given")
    unknown = [d for d in marker.args if d not in ROLES]
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: hil_requires names unknown device(s) "
                                f"{unknown}; allowed: {', '.join(ROLES)}")
    missing = [d for d in marker.args if not state.has(d)]
    if missing:
        pytest.skip(f"station {state.config.id} has no {', '.join(missing)} (hil_requires)")


def _state_or_skip(request: pytest.FixtureRequest) -> HilSession:
    state = request.config.stash.get(_STATE, None)
    if state is None:
        pytest.skip("the harness plugin is off: give --station FILE")
    return state


@pytest.fixture(scope="session")
def hil_station(request: pytest.FixtureRequest) -> Iterator[Station]:
    """The open station (lock held, devices open); safe state and close at session end."""
    state = _state_or_skip(request)
    station = Station(state.config, allow_expired_calibration=state.allow_expired_calibration)
    state.station = station
    station.open()
    try:
        try:
            state.run = _start_run(state, station)
        except EvidenceError as exc:
            # No journal, no run: stop at once with one line (the station still goes safe).
            pytest.exit(f"harness: ERROR: the run's evidence cannot be written: {exc}",
                        returncode=pytest.ExitCode.TESTS_FAILED)
        state.watchdog = _start_watchdog(state)
        if any(r.startswith("camera") for r in station.devices):
            serial = station.camera().identity().serial
            try:
                if state.dut is not None and serial != state.dut:
                    raise ConfigError(f"DUT serial mismatch: --dut {state.dut!r} but the "
                                      f"camera reports {serial!r}", field="--dut")
                confirm_label(request.config, state, serial)
            except ConfigError as exc:
                state.run.record_error("", str(exc), "station", Outcome.ERROR)
                raise
        yield station
    finally:
        state.safe_report = station.close()


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


def confirm_label(config: pytest.Config, state: HilSession, serial: str) -> None:
    """When the station asks for it (``settings.confirm_label``), the scanned DUT label must
    match the camera's serial; no label within ``settings.label_timeout_s`` or a mismatch is an
    ERROR (the wrong unit must never be qualified under another's serial)."""
    settings = state.config.settings
    if not settings.get("confirm_label", False) and state.label is None:
        return
    label = state.label
    if label is None:
        timeout = float(settings.get("label_timeout_s", 60.0))
        capture = config.pluginmanager.getplugin("capturemanager")
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


def _device(station: Station, role: str) -> Any:
    if role == "camera":
        try:
            return station.camera()
        except KeyError:
            pytest.skip(f"station {station.id} has no camera")
    if not station.has(role):
        pytest.skip(f"station {station.id} has no {role}")
    return station.device(role)


@pytest.fixture(scope="session")
def hil_camera(hil_station: Station) -> Any:
    """The station's camera (a :class:`~harness.devices.protocols.Camera`)."""
    return _device(hil_station, "camera")


@pytest.fixture(scope="session")
def hil_light(hil_station: Station) -> Any:
    """The station's light source (:class:`~harness.devices.protocols.LightSource`)."""
    return _device(hil_station, "light")


@pytest.fixture(scope="session")
def hil_power(hil_station: Station) -> Any:
    """The station's power supply (:class:`~harness.devices.protocols.PowerSupply`)."""
    return _device(hil_station, "power")


@pytest.fixture(scope="session")
def hil_meter(hil_station: Station) -> Any:
    """The station's lux/luminance meter (:class:`~harness.devices.protocols.LuxMeter`)."""
    return _device(hil_station, "meter")


@pytest.fixture(scope="session")
def hil_focus(hil_station: Station) -> Any:
    """The station's focus actuator (:class:`~harness.devices.protocols.FocusActuator`)."""
    return _device(hil_station, "focus")


@pytest.fixture(scope="session")
def hil_chart(hil_station: Station) -> Any:
    """The station's chart changer (:class:`~harness.devices.protocols.ChartChanger`)."""
    return _device(hil_station, "chart")


@pytest.fixture(scope="session")
def hil_dut(request: pytest.FixtureRequest, hil_station: Station) -> DutInfo:
    """The DUT: its serial (from the camera), the expected one, the operator."""
    state = _state_or_skip(request)
    ident = hil_station.camera().identity()
    return DutInfo(ident.serial, state.dut, state.operator, ident.as_dict())




def _start_run(state: HilSession, station: Station) -> QualificationRun:
    run = QualificationRun(station.id, state.evidence_dir, state.limit_spec,
                           operator=state.operator or "", records_target=state.records,
                           alluredir=state.alluredir)
    dut: dict[str, Any] = {}
    try:
        ident = station.camera().identity()
        dut = {"serial": ident.serial, "firmware": ident.firmware, "model": ident.model,
               "vendor": ident.vendor, "expected_serial": state.dut,
               "product": state.limit_spec.product if state.limit_spec else ""}
    except KeyError:
        pass
    devices = [{"role": role, **ident.as_dict()} for role, ident in station.identities().items()]
    calibrations = [{"device": role, **cal.model_dump(mode="json")}
                    for role, cal in station.config.calibration.items()]
    run.start(dut=dut, devices=devices, calibrations=calibrations)
    return run


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """End the run's evidence after every test and the station's teardown (safe state)."""
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    _finish_run(state, state.safe_report)
    record = state.record
    if record is not None and record.outcome is Outcome.ERROR and session.exitstatus == 0:
        # Every test passed but the run's evidence failed (records, Allure environment):
        # the run is ERROR, and so is pytest's exit status.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"harness: run {record.run_id} is ERROR: {record.reason}",
                                red=True)


def _start_watchdog(state: HilSession) -> Any:
    """The SIGKILL watchdog (:mod:`harness.station.watchdog`), unless the station's
    ``settings.watchdog`` is false."""
    if not state.config.settings.get("watchdog", True) or state.run is None:
        return None
    from harness.station.watchdog import start_watchdog

    journal = state.run.journal.path if state.run.journal is not None else None
    return start_watchdog(state.config.source, journal)


def _stop_watchdog(state: HilSession) -> None:
    watchdog, state.watchdog = state.watchdog, None
    if watchdog is not None:
        watchdog.stop()


def _finish_run(state: HilSession, safe: Any) -> None:
    run = state.run
    if run is None or run.journal is None or run.finished:
        return
    for role, message in getattr(safe, "failed", ()):
        with contextlib.suppress(HarnessError):
            run.record_error("", f"{role}: safe state not reached: {message}", "station",
                             Outcome.ERROR)
    if state.interrupted and state.current_test:
        with contextlib.suppress(HarnessError):
            run.test_end(state.current_test, Outcome.ABORTED, "interrupted")
    outcome = Outcome.ABORTED if state.interrupted else run.journal.outcome
    state.record = run.finish(outcome, reason="interrupted" if state.interrupted else "")
    _stop_watchdog(state)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Soft assertions: after the test body, every FAIL verdict becomes one AssertionError."""
    result = yield
    checker = item.stash.get(_CHECKER, None)
    if checker is not None:
        checker.raise_if_failed()
    return result


@pytest.fixture
def hil_check(request: pytest.FixtureRequest, hil_station: Station) -> Checker:
    """Judge measurements against the limit spec: ``hil_check("name", value, "unit", zone=...)``.

    Every figure is journaled and reported; FAIL verdicts fail the test when its body ends.
    """
    state = _state_or_skip(request)
    checker = Checker(request.node.nodeid, state.run, state.limit_spec)
    request.node.stash[_CHECKER] = checker
    return checker


@pytest.fixture
def hil_limits(request: pytest.FixtureRequest) -> LimitSpec:
    """The limit spec given with ``--limits`` (skips the test when none was given)."""
    state = _state_or_skip(request)
    if state.limit_spec is None:
        pytest.skip("no --limits given")
    return state.limit_spec


def _family(item: pytest.Item) -> str:
    marker = item.get_closest_marker("hil_family")
    if marker and marker.args:
        return str(marker.args[0])
    module = getattr(item, "module", None)
    name = getattr(module, "__name__", "") or ""
    return name.rsplit(".", 1)[-1].removeprefix("test_")


def outcome_of(report: pytest.TestReport, call: pytest.CallInfo[None]) -> Outcome:
    """PASS/FAIL/ERROR/ABORTED/SKIPPED from a pytest report, keeping their meaning."""
    if report.skipped:
        return Outcome.SKIPPED
    if report.passed:
        return Outcome.PASS
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, KeyboardInterrupt):
        return Outcome.ABORTED
    if isinstance(exc, AssertionError) and report.when == "call":
        return Outcome.FAIL
    return Outcome.ERROR


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    state = item.config.stash.get(_STATE, None)
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError):
        item.user_properties.append(("harness_error", str(call.excinfo.value)))
    if (state is None or state.run is None or state.run.finished
            or "hil_station" not in getattr(item, "fixturenames", ())):
        return report
    run = state.run
    test_id = item.nodeid
    if not item.stash.get(_STARTED, False):
        item.stash[_STARTED] = True
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        run.test_start(test_id, doc.strip().splitlines()[0] if doc.strip() else item.name,
                       _family(item))
        state.current_test = test_id
    ends_here = report.when == "call" or (report.when == "setup" and not report.passed)
    if not ends_here:
        return report
    outcome = outcome_of(report, call)
    checker = item.stash.get(_CHECKER, None)
    if outcome is Outcome.PASS and checker is not None and checker.outcome is Outcome.MARGINAL:
        outcome = Outcome.MARGINAL
    message = ""
    if call.excinfo is not None:
        message = f"{call.excinfo.typename}: {call.excinfo.value}".splitlines()[0]
        if outcome in (Outcome.ERROR, Outcome.ABORTED):
            kind = "instrument" if "Instrument" in call.excinfo.typename else "station"
            run.record_error(test_id, message, kind, outcome)
    run.test_end(test_id, outcome, message)
    state.current_test = ""
    return report


_ACTIVE: list[HilSession] = []


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    for state in _ACTIVE:
        state.interrupted = True
