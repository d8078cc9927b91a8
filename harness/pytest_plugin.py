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

import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness.errors import Aborted, ConfigError, HarnessError
from harness.station.registry import DEVICE_KINDS
from harness.station.schema import StationConfig, load_station_file
from harness.station.station import Station

ROLES = DEVICE_KINDS
_STATE = pytest.StashKey["HilSession"]()


@dataclass
class HilSession:
    """Everything the plugin knows about this run's station (when ``--station`` is given)."""

    config: StationConfig
    dut: str | None
    operator: str | None
    limits: Path | None
    records: str | None
    evidence_dir: Path
    allow_expired_calibration: bool
    station: Station | None = None
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hil_requires(*devices): skip unless the station has these devices "
        "(camera, light, power, meter, focus, chart)",
    )
    station_file = config.getoption("station", default=None)
    if not station_file:
        return
    try:
        station_config = load_station_file(station_file)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    limits = config.getoption("limits")
    if limits and not Path(limits).is_file():
        raise pytest.UsageError(f"{limits}: limit spec not found (--limits)")
    state = HilSession(
        config=station_config,
        dut=config.getoption("dut"),
        operator=config.getoption("operator"),
        limits=Path(limits) if limits else None,
        records=config.getoption("records"),
        evidence_dir=Path(config.getoption("evidence_dir")),
        allow_expired_calibration=bool(config.getoption("allow_expired_calibration")),
    )
    config.stash[_STATE] = state


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
    if state.station is not None and state.station.is_open:
        state.station.close()
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
        if state.dut is not None and any(r.startswith("camera") for r in station.devices):
            serial = station.camera().identity().serial
            if serial != state.dut:
                raise ConfigError(f"DUT serial mismatch: --dut {state.dut!r} but the camera "
                                  f"reports {serial!r}", field="--dut")
        yield station
    finally:
        station.close()


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


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Keep a harness error's message to its one line in the report's short summary."""
    if call.excinfo is not None and isinstance(call.excinfo.value, HarnessError):
        item.user_properties.append(("harness_error", str(call.excinfo.value)))
