"""The harness's pytest plugin: a thin, opt-in entry (after pytest-xdist's ``plugin.py``).

Installed through the ``pytest11`` entry point, this module imports nothing but pytest: it adds
the options, the markers and the ``hil_*`` fixtures, and does nothing else unless
``--station`` is given, so it cannot change another project's run or slow its start-up. With
``--station`` it validates the station file and the limit spec at start-up (a bad file stops
pytest with one line), then imports the machinery and registers one
:class:`~harness.pytestplugin.plugin.HilPlugin` object whose hooks are methods.

A qualification needs limits: ``--station`` without ``--limits`` (or ``limits:`` in the
station file) stops pytest with one line. ``--characterise`` records figures without limits
(every figure INFO; the run INCOMPLETE, which sign-off refuses).

Fixtures (all prefixed ``hil_``): ``hil_station``, ``hil_camera``, ``hil_light``,
``hil_power``, ``hil_meter``, ``hil_focus``, ``hil_chart``, ``hil_dut``, ``hil_check`` (judge
figures), ``hil_limits`` (the spec), ``hil_session`` (the run's captures for this test).
Without ``--station`` each of them skips the test with a reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.limits import LimitSpec
    from harness.pytestplugin.plugin import DutInfo, HilPlugin
    from harness.run.checker import Checker
    from harness.run.qualification import TestSession
    from harness.station.station import Station

PLUGIN_KEY = pytest.StashKey["HilPlugin"]()
DEVICE_ROLES = ("power", "light", "meter", "radiometer", "focus", "chart", "camera")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "camera-module qualification harness (opt-in)")
    group.addoption("--station", default=None, metavar="FILE",
                    help="station file (YAML); enables the harness plugin")
    group.addoption("--limits", default=None, metavar="FILE",
                    help="limit spec (YAML); required with --station unless the station file "
                         "names one (limits:) or --characterise is given")
    group.addoption("--characterise", "--characterize", action="store_true", default=False,
                    dest="characterise",
                    help="record figures without judging them (INFO); the run is INCOMPLETE "
                         "and cannot be signed off")
    group.addoption("--dut", default=None, metavar="SERIAL",
                    help="expected DUT serial, cross-checked against the camera's own")
    group.addoption("--operator", default=None, help="operator name or badge id for the record")
    group.addoption("--records", default=None, metavar="URL_OR_FILE",
                    help="records database: an SQLite file or a postgresql:// URL")
    group.addoption("--evidence-dir", default="out/evidence", metavar="DIR",
                    help="where frames, journal and plots go (default out/evidence)")
    group.addoption("--allow-expired-calibration", action="store_true", default=False,
                    help="run even if an instrument's calibration has expired")
    group.addoption("--rejudged-from", default=None, metavar="RUN_ID",
                    help="this run replays run RUN_ID's recorded frames (set by harness "
                         "rejudge; the record links the two)")
    group.addoption("--label", default=None, metavar="SERIAL",
                    help="the DUT label as scanned (otherwise prompted for when the station's "
                         "settings.confirm_label is true)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hil_requires(*devices): skip unless the station has these devices "
        "(camera, light, power, meter, focus, chart)")
    config.addinivalue_line(
        "markers", "hil_measures(*measurements): the figures a test judges (the run lists the "
                   "limits of skipped or deselected tests as unjudged)")
    config.addinivalue_line(
        "markers", "hil_family(name): the test family (linearity, defects, ...) for the report")
    config.addinivalue_line("markers", "selftest: a station self-test on a reference module")
    if not config.getoption("station", default=None):
        return
    from harness.pytestplugin.plugin import HilPlugin

    plugin = HilPlugin.from_config(config)  # raises pytest.UsageError with one line
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "harness-hil")


def active_plugin(config: pytest.Config) -> HilPlugin | None:
    """The registered :class:`HilPlugin`, or None when the plugin is off (no ``--station``)."""
    return config.stash.get(PLUGIN_KEY, None)


def _plugin(request: pytest.FixtureRequest) -> HilPlugin:
    plugin = active_plugin(request.config)
    if plugin is None:
        pytest.skip("the harness plugin is off: give --station FILE")
    return plugin


@pytest.fixture(scope="session")
def hil_station(request: pytest.FixtureRequest) -> Iterator[Station]:
    """The open station (lock held, devices open, run journal started); safe state and close
    at session end."""
    yield from _plugin(request).station_fixture(request)


@pytest.fixture
def hil_slot(request: pytest.FixtureRequest) -> str | None:
    """The slot this test runs for on a multi-up station (``slots:``; every test that uses a
    slot's devices runs once per slot), else None. Groups the Allure results by slot."""
    slot = getattr(request, "param", None)
    if slot is not None:
        import allure

        allure.dynamic.parent_suite(f"slot {slot}")
        allure.dynamic.tag(f"slot:{slot}")
    return slot


@pytest.fixture
def hil_camera(request: pytest.FixtureRequest, hil_station: Station,
               hil_slot: str | None) -> Any:
    """The camera of this test's DUT (a :class:`~harness.devices.protocols.Camera`)."""
    return _plugin(request).device("camera", hil_slot)


@pytest.fixture(scope="session")
def hil_light(request: pytest.FixtureRequest, hil_station: Station) -> Any:
    """The station's light source (:class:`~harness.devices.protocols.LightSource`)."""
    return _plugin(request).device("light")


@pytest.fixture
def hil_power(request: pytest.FixtureRequest, hil_station: Station,
              hil_slot: str | None) -> Any:
    """The DUT's power supply (:class:`~harness.devices.protocols.PowerSupply`): its slot's
    own channel on a multi-up station that has one, else the station's."""
    return _plugin(request).device("power", hil_slot)


@pytest.fixture(scope="session")
def hil_meter(request: pytest.FixtureRequest, hil_station: Station) -> Any:
    """The station's lux/luminance meter (:class:`~harness.devices.protocols.LuxMeter`)."""
    return _plugin(request).device("meter")


@pytest.fixture
def hil_focus(request: pytest.FixtureRequest, hil_station: Station,
              hil_slot: str | None) -> Any:
    """The focus actuator (:class:`~harness.devices.protocols.FocusActuator`): the slot's own
    on a multi-up station that has one, else the station's."""
    return _plugin(request).device("focus", hil_slot)


@pytest.fixture(scope="session")
def hil_chart(request: pytest.FixtureRequest, hil_station: Station) -> Any:
    """The station's chart changer (:class:`~harness.devices.protocols.ChartChanger`)."""
    return _plugin(request).device("chart")


@pytest.fixture
def hil_dut(request: pytest.FixtureRequest, hil_station: Station,
            hil_slot: str | None) -> DutInfo:
    """The DUT: its serial (from the camera), the expected one, the operator."""
    return _plugin(request).dut(hil_slot)


@pytest.fixture
def hil_check(request: pytest.FixtureRequest, hil_station: Station,
              hil_slot: str | None) -> Checker:
    """Judge figures against the limit spec: ``hil_check("name", value, "unit", zone=...)``.

    Every figure is journaled and reported; a figure the test does not declare with
    ``hil_measures`` is an ERROR; FAIL verdicts fail the test when its body ends.
    """
    return _plugin(request).checker(request.node)


@pytest.fixture
def hil_limits(request: pytest.FixtureRequest) -> LimitSpec:
    """The run's limit spec (skips the test in a characterisation run without one)."""
    spec = _plugin(request).spec
    if spec is None:
        pytest.skip("no limit spec (characterisation run)")
    return spec


@pytest.fixture
def hil_session(request: pytest.FixtureRequest, hil_station: Station,
                hil_slot: str | None) -> TestSession:
    """This test's view of the run's captures: ``hil_session.sequence("flat_stack")``,
    conditions, the measured black level, shared analysis results and attachments."""
    return _plugin(request).test_session(request.node)


__all__ = ["DEVICE_ROLES", "PLUGIN_KEY", "active_plugin", "hil_camera", "hil_chart", "hil_check",
           "hil_dut", "hil_focus", "hil_light", "hil_limits", "hil_meter", "hil_power",
           "hil_session", "hil_slot", "hil_station", "pytest_addoption", "pytest_configure"]
