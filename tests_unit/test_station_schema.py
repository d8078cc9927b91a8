"""Station files: good ones load, malformed ones give ONE line naming file, line and field."""

from __future__ import annotations

import datetime as dt
import itertools
import textwrap
from pathlib import Path

import pytest

from harness.errors import CalibrationExpired, ConfigError
from harness.station.schema import load_station_file

GOOD = """\
id: lab-a-01
site: Lab A
power:  {driver: fake, serial: PSU-1}
light:  {driver: fake}
camera: {driver: fake, width: 32, height: 16}
calibration:
  light: {certificate: CAL-1, due: 2099-01-01}
"""


def write(tmp_path: Path, text: str, name: str = "station.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_station_file(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    assert "Traceback" not in message
    return message


def test_good_station_loads_in_dependency_order(tmp_path: Path) -> None:
    config = load_station_file(write(tmp_path, GOOD), env={})
    assert config.id == "lab-a-01"
    assert [d.role for d in config.devices] == ["power", "light", "camera"]
    assert config.device("camera").settings.width == 32  # type: ignore[union-attr]
    assert config.calibration["light"].due == dt.date(2099, 1, 1)


def test_several_cameras(tmp_path: Path) -> None:
    text = "id: multi\ncameras:\n  left: {driver: fake}\n  right: {driver: fake, serial: R}\n"
    config = load_station_file(write(tmp_path, text), env={})
    assert config.roles() == ["camera.left", "camera.right"]


def test_env_substitution_and_default(tmp_path: Path) -> None:
    text = "id: env\ncamera: {driver: fake, serial: '${DUT}'}\nlight: {driver: fake, serial: '${L:-LX}'}\n"
    config = load_station_file(write(tmp_path, text), env={"DUT": "SN-42"})
    assert config.device("camera").settings.serial == "SN-42"  # type: ignore[union-attr]
    assert config.device("light").settings.serial == "LX"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 1 invalid YAML, with the line of the problem
        ("id: a\ncamera: {driver: fake\n", ":3: invalid YAML"),
        # 2 empty file
        ("", ":1: empty station file"),
        # 3 top level is a list
        ("- a\n- b\n", "top level must be a mapping"),
        # 4 unknown top-level key with a close match and the allowed keys
        ("id: a\nligth: {driver: fake}\n", ":2: ligth: unknown key 'ligth' (did you mean 'light'?)"),
        # 5 required id missing
        ("site: x\n", "id: required key is missing"),
        # 6 unknown driver lists the registered ones
        ("id: a\nlight: {driver: nosuch}\n", "light.driver: unknown light driver 'nosuch'"),
        # 7 device section without a driver
        ("id: a\ncamera: {serial: X}\n", "camera: required key 'driver' is missing"),
        # 8 wrong type of a driver setting, with what was found
        ("id: a\ncamera: {driver: fake, width: wide}\n", "camera.width: Input should be a valid integer"),
        # 9 out-of-range driver setting
        ("id: a\ncamera:\n  driver: fake\n  width: 2\n", ":4: camera.width: Input should be greater than or equal to 8"),
        # 10 unknown driver setting with a close match
        ("id: a\ncamera: {driver: fake, widht: 64}\n", "camera.widht: unknown key 'widht' (did you mean 'width'?)"),
        # 11 duplicate key
        ("id: a\nlight: {driver: fake}\nlight: {driver: fake}\n", ":3: light: duplicate key 'light' (first at line 2)"),
        # 12 unset environment variable
        ("id: a\ncamera: {driver: fake, serial: '${NOPE}'}\n", "camera.serial: environment variable NOPE is not set"),
        # 13 calibration of a device the station does not have
        ("id: a\nlight: {driver: fake}\ncalibration:\n  metre: {certificate: C, due: 2099-01-01}\n",
         ":4: calibration.metre: no device 'metre' on this station"),
        # 14 calibration with an invalid date
        ("id: a\nlight: {driver: fake}\ncalibration:\n  light: {certificate: C, due: soon}\n",
         "calibration.light.due: Input should be a valid date"),
        # 15 an id that would escape a path
        ("id: ../../etc\n", "id: String should match pattern"),
        # 16 both camera and cameras
        ("id: a\ncamera: {driver: fake}\ncameras: {b: {driver: fake}}\n", "give either 'camera'"),
        # 17 a Python tag: the safe loader refuses it
        ("id: a\nsite: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
        # 18 a device given as a scalar
        ("id: a\nlight: fake\n", "light: Input should be a valid dictionary"),
        # 19 a wrong enum value shows what is allowed
        ("id: a\ncamera: {driver: fake, cfa: RGBG}\n", "camera.cfa: Input should be 'RGGB', 'GRBG', 'GBRG' or 'BGGR'"),
    ],
)
def test_malformed_station_file_gives_one_line(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert expected in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="station file not found"):
        load_station_file(tmp_path / "none.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_station_file(tmp_path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_station_file(path)


def test_unknown_key_error_lists_allowed_keys(tmp_path: Path) -> None:
    message = load_error(tmp_path, "id: a\ncamera: {driver: fake, zzz: 1}\n")
    assert "allowed:" in message and "width" in message and "driver" in message


def test_expired_calibration_refuses_unless_allowed(tmp_path: Path) -> None:
    text = "id: a\nmeter: {driver: fake}\ncalibration:\n  meter: {certificate: KM-1, due: 2020-01-01}\n"
    config = load_station_file(write(tmp_path, text), env={})
    with pytest.raises(CalibrationExpired) as info:
        config.check_calibration(allow_expired=False)
    assert "meter: calibration KM-1 expired on 2020-01-01" in str(info.value)
    assert "--allow-expired-calibration" in str(info.value)
    config.check_calibration(allow_expired=True)


# ---- settings:, bench: and simulators: are checked at load, like the device sections -------

SECTIONS = """\
id: typo-01
lock_dir: {locks}
light:  {{driver: fake, record_to: {events}}}
camera: {{driver: fake, record_to: {events}}}
settings:
  confirm_label: true
  label_timeout_s: 30
bench:
  chart: flat
  ambient_c: 20
simulators:
  lamp:  {{type: scpi-led, light: {{gamma: 1.0}}}}
  meter: {{type: cs100a, light: lamp, noise_pct: 0}}
"""
SIMULATORS = SECTIONS[SECTIONS.index("simulators:"):].replace("{{", "{").replace("}}", "}")

#: (what is misspelt, the misspelling, its line, the message after "file:line: ")
TYPOS = [
    ("confirm_label: true", "confirm_lable: true", 6,
     "settings.confirm_lable: unknown key 'confirm_lable' (did you mean 'confirm_label'?); "
     "allowed: analysis_workers, camera_link_mbps, confirm_label, label_timeout_s, lease, "
     "light_calibration_max_age_days, light_settle, shared_focus_step_um, signing_key, "
     "watchdog"),
    ("ambient_c: 20", "ambiant_c: 20", 10,
     "bench.ambiant_c: unknown key 'ambiant_c' (did you mean 'ambient_c'?); "
     "allowed: ambient_c, chart, focus_um, light, powered"),
    ("noise_pct: 0", "noise_pc: 0", 13,
     "simulators.meter.noise_pc: unknown key 'noise_pc' (did you mean 'noise_pct'?); "
     "allowed: faults, light, max_cd_m2, noise_pct, reflectance, seed, serial, transport, type"),
]


def sections_file(tmp_path: Path, *typos: tuple[str, str]) -> tuple[Path, Path]:
    """The SECTIONS station with ``(right, wrong)`` replacements; also its events file, which
    exists only if a device was opened."""
    events = tmp_path / "events.txt"
    text = SECTIONS.format(locks=tmp_path / "locks", events=events)
    for right, wrong in typos:
        assert text.count(right) == 1
        text = text.replace(right, wrong)
    return write(tmp_path, text, "typo.yaml"), events


def test_sections_load_typed(tmp_path: Path) -> None:
    from harness.sim.bench import BenchConfig
    from harness.sim.instruments.cs100a import Cs100aSpec

    config = load_station_file(sections_file(tmp_path)[0], env={})
    assert config.settings.confirm_label and config.settings.label_timeout_s == 30.0
    assert config.settings.watchdog and config.settings.signing_key is None
    assert isinstance(config.bench, BenchConfig) and config.bench.ambient_c == 20.0
    assert config.simulators is not None and isinstance(config.simulators["meter"], Cs100aSpec)
    assert config.simulators["meter"].light == "lamp"


@pytest.mark.parametrize(("right", "wrong", "line", "message"), TYPOS,
                         ids=["settings", "bench", "simulators"])
def test_a_typo_in_each_section_is_one_line(tmp_path: Path, right: str, wrong: str, line: int,
                                            message: str) -> None:
    path, _ = sections_file(tmp_path, (right, wrong))
    with pytest.raises(ConfigError) as info:
        load_station_file(path, env={})
    assert str(info.value) == f"{path}:{line}: {message}"


@pytest.mark.parametrize(("right", "wrong", "line", "message"), TYPOS,
                         ids=["settings", "bench", "simulators"])
def test_station_check_stops_at_a_section_typo(tmp_path: Path, right: str, wrong: str,
                                               line: int, message: str) -> None:
    """``harness station check``: a usage error (exit 2), one line, nothing opened."""
    from typer.testing import CliRunner

    from harness.cli import app

    path, events = sections_file(tmp_path, (right, wrong))
    result = CliRunner().invoke(app, ["station", "check", str(path)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [f"error: {path}:{line}: {message}"], result.output
    assert not events.exists()


@pytest.mark.parametrize(("right", "wrong", "line", "message"), TYPOS,
                         ids=["settings", "bench", "simulators"])
def test_pytest_station_stops_at_a_section_typo(tmp_path: Path, right: str, wrong: str,
                                                line: int, message: str) -> None:
    """``pytest --station``: pytest's usage error (exit 4), one line, nothing opened."""
    import os
    import subprocess
    import sys

    path, events = sections_file(tmp_path, (right, wrong))
    (tmp_path / "test_x.py").write_text("def test_a(hil_camera):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--station={path}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        f"ERROR: {path}:{line}: {message}"], proc.stderr
    assert not events.exists() and not (tmp_path / "locks").exists()


def test_typos_in_all_three_sections_stop_at_the_first(tmp_path: Path) -> None:
    path, _ = sections_file(tmp_path, *((right, wrong) for right, wrong, _, _ in TYPOS))
    with pytest.raises(ConfigError) as info:
        load_station_file(path, env={})
    assert str(info.value) == f"{path}:6: {TYPOS[0][3]}"


@pytest.mark.parametrize(
    ("right", "wrong", "expected"),
    [
        ("label_timeout_s: 30", "label_timeout_s: 0",
         ":7: settings.label_timeout_s: Input should be greater than 0, found 0"),
        ("label_timeout_s: 30", "label_timeout_s: .inf",
         ":7: settings.label_timeout_s: Input should be a finite number, found inf"),
        ("confirm_label: true", "confirm_label: maybe",
         ":6: settings.confirm_label: Input should be a valid boolean"),
        ("settings:\n  confirm_label: true\n  label_timeout_s: 30", "settings: [watchdog]",
         ":5: settings: Input should be a valid dictionary"),
        ("chart: flat", "chart: siemens", ":9: bench.chart: Value error, unknown chart"),
        ("ambient_c: 20", "light: {on: true}", ":10: bench.light: YAML reads 'on' as true"),
        ("bench:\n  chart: flat\n  ambient_c: 20", "bench: [flat]",
         ":8: bench: Input should be a valid dictionary"),
        ("type: scpi-led", "type: scpi-ledd",
         ":12: simulators.lamp.type: unknown simulator type 'scpi-ledd' (did you mean "
         "'scpi-led'?); allowed: scpi-led, gardasoft"),
        ("{type: scpi-led, light: {gamma: 1.0}}", "{light: {gamma: 1.0}}",
         ":12: simulators.lamp: required key 'type' is missing; types: scpi-led"),
        ("gamma: 1.0", "gamma: 9", ":12: simulators.lamp.light.gamma: Input should be less"),
        ("light: lamp", "light: lmap", ":13: simulators.meter.light: no light simulator 'lmap' "
                                       "(did you mean 'lamp'?); light simulators: lamp"),
        ("noise_pct: 0", "noise_pct: 0, faults: [{kind: explode}]",
         ":13: simulators.meter.faults[0].kind: Input should be"),
        ("  meter: {type: cs100a", "  wheel: {type: chart-wheel, charts: [dark, siemens]}\n"
                                   "  meter: {type: cs100a",
         ":13: simulators.wheel.charts: chart(s) siemens are not scenes"),
        (SIMULATORS, "simulators: [lamp, meter]\n",
         ":11: simulators: must be a mapping of name -> {type: ..., ...}"),
        ("bench:", "bnech:", ":8: bnech: unknown key 'bnech' (did you mean 'bench'?); allowed: "),
    ],
)
def test_section_values_are_checked_at_load(tmp_path: Path, right: str, wrong: str,
                                            expected: str) -> None:
    path, _ = sections_file(tmp_path, (right, wrong))
    message = load_error(tmp_path, path.read_text())
    assert expected in message, message


def test_chart_wheel_without_a_bench_may_name_any_chart(tmp_path: Path) -> None:
    """Only the bench's camera renders scenes: without a bench a wheel's slots are names."""
    text = "id: w\nsimulators:\n  wheel: {type: chart-wheel, charts: [siemens, dark]}\n"
    config = load_station_file(write(tmp_path, text), env={})
    assert config.bench is None and config.simulators is not None
    assert config.simulators["wheel"].charts == ("siemens", "dark")


def test_signing_key_is_relative_to_the_station_file(tmp_path: Path) -> None:
    text = "id: k\nsettings: {signing_key: keys/k.key}\n"
    config = load_station_file(write(tmp_path, text), env={})
    assert config.settings.signing_key == tmp_path / "keys" / "k.key"
    text = "id: k\nsettings: {signing_key: '${KEY:-}'}\n"
    assert load_station_file(write(tmp_path, text), env={}).settings.signing_key is None
    text = "id: k\nsettings: {signing_key: /etc/harness/k.key}\n"
    assert load_station_file(write(tmp_path, text), env={}).settings.signing_key == Path(
        "/etc/harness/k.key")


def test_a_real_station_does_not_import_the_simulators() -> None:
    """The simulators' schema is imported only for a station file with a ``simulators:``."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import sys; from harness.station.schema import load_station_file; "
            "load_station_file(sys.argv[1]); print('harness.sim.instruments.hub' in sys.modules)")
    for station, imported in (("fake.yaml", "False"), ("sim.yaml", "True")):
        proc = subprocess.run([sys.executable, "-c", code, str(root / "stations" / station)],
                              capture_output=True, text=True, timeout=60, cwd=root)
        assert proc.stdout.strip() == imported, proc.stdout + proc.stderr


def test_a_lower_floor_registers_its_own_section(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel, ConfigDict

    from harness import registry
    from harness.yamlio import LoadedYaml, validate_model

    class Rig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        arm: str = "left"

    def load_rig(doc: LoadedYaml, raw: object) -> Rig:
        return validate_model(doc, Rig, raw, prefix=("rig",))

    monkeypatch.setitem(registry._sections, "rig", load_rig)
    assert "rig" in registry.section_names()
    config = load_station_file(write(tmp_path, "id: r\nrig: {arm: right}\n"), env={})
    assert config.sections["rig"] == Rig(arm="right")
    message = load_error(tmp_path, "id: r\nrig:\n  amr: right\n")
    assert message.endswith(":3: rig.amr: unknown key 'amr' (did you mean 'arm'?); allowed: arm")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_section("rig")(lambda doc, raw: raw)


# ---- settings.light_settle: the settle criterion a capture waits for --------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("{window_s: 0.05}", "settings.light_settle: Value error, window_s 0.05 holds fewer than "
                         "three readings 0.05 s apart; allowed: window_s >= 2 x interval_s"),
    ("{tolerance_pct: 0}", "settings.light_settle.tolerance_pct: Input should be greater than 0"),
    ("{timeout_s: .nan}", "settings.light_settle.timeout_s: Input should be a finite number"),
    ("{windows_s: 1}", "settings.light_settle.windows_s: unknown key 'windows_s' (did you mean "
                       "'window_s'?); allowed: interval_s, timeout_s, tolerance_pct, window_s"),
])
def test_a_bad_light_settle_is_one_line(tmp_path: Path, value: str, expected: str) -> None:
    message = load_error(tmp_path, GOOD + f"settings:\n  light_settle: {value}\n")
    assert f":9: {expected}" in message, message


def test_the_capture_waits_by_the_station_s_light_settle(tmp_path: Path) -> None:
    """A station's ``light_settle`` is the criterion the capture's settle hook judges by (its
    trace says so); a station file without it gets the defaults (0.5 %, 0.5 s)."""
    from types import SimpleNamespace

    from harness.station.stability import station_meter_settle

    class Meter:
        def read(self) -> SimpleNamespace:
            return SimpleNamespace(value=100.0)

    tuned = load_station_file(write(tmp_path, GOOD + "settings:\n  light_settle: "
                                    "{window_s: 0.1, interval_s: 0.02, tolerance_pct: 0.2}\n"),
                              env={})
    trace = station_meter_settle(Meter(), tuned)()["stability"]
    assert (trace["window_s"], trace["tolerance_pct"]) == (0.1, 0.2)
    assert trace["stable"] and 0.1 <= trace["settled_s"] < 0.5
    times = [t for t, _ in trace["samples"]]
    assert all(0.015 <= b - a < 0.2 for a, b in itertools.pairwise(times))
    plain = load_station_file(write(tmp_path, GOOD, "plain.yaml"), env={})
    default = station_meter_settle(Meter(), plain)()["stability"]
    assert (default["window_s"], default["tolerance_pct"]) == (0.5, 0.5)
    assert default["settled_s"] >= 0.5
