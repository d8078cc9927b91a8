"""Station files: good ones load, malformed ones give ONE line naming file, line and field."""

from __future__ import annotations

import datetime as dt
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
