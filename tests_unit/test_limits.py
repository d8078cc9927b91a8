"""Limit specs: validation with one-line errors, hashing, judging with a guard band."""

from __future__ import annotations

import hashlib
import math
import textwrap
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.limits import judge, load_limits
from harness.measurement import Outcome

SPEC = """\
product: cm12
version: 2
limits:
  - id: EMVA-K
    measurement: system_gain_dn_per_e
    unit: DN/e-
    min: 0.09
    max: 0.11
    guard: 0.002
  - id: MTF50-CORNER
    measurement: mtf50_cy_per_px
    unit: cy/px
    min: 0.2
    condition: {zone: corner}
  - id: MTF50-CENTRE
    measurement: mtf50_cy_per_px
    unit: cy/px
    min: 0.25
    condition: {zone: centre}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_load_hash_and_find(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC)
    spec = load_limits(path)
    assert spec.product == "cm12" and spec.version == "2"
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [lim.id for lim in spec.find("mtf50_cy_per_px", zone="corner")] == ["MTF50-CORNER"]
    assert spec.find("mtf50_cy_per_px", zone="edge") == []


@pytest.mark.parametrize(
    ("value", "outcome", "margin"),
    [
        (0.100, Outcome.PASS, 0.010),
        (0.0915, Outcome.MARGINAL, 0.0015),   # inside the limit, inside the 0.002 guard band
        (0.1085, Outcome.MARGINAL, 0.0015),
        (0.092, Outcome.PASS, 0.002),         # exactly on the guard edge is still PASS
        (0.089, Outcome.FAIL, -0.001),
        (0.12, Outcome.FAIL, -0.01),
    ],
)
def test_judge_with_guard_band(tmp_path: Path, value: float, outcome: Outcome, margin: float) -> None:
    limit = load_limits(write(tmp_path, SPEC)).by_id("EMVA-K")
    verdict = judge(limit, value)
    assert verdict.outcome is outcome
    assert verdict.margin == pytest.approx(margin, abs=1e-12)
    assert verdict.limit_id == "EMVA-K" and verdict.unit == "DN/e-"


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_no_finite_value_is_an_error_not_a_pass(tmp_path: Path, value: float | None) -> None:
    limit = load_limits(write(tmp_path, SPEC)).by_id("EMVA-K")
    assert judge(limit, value).outcome is Outcome.ERROR


def test_one_sided_limit_and_condition_carried(tmp_path: Path) -> None:
    spec = load_limits(write(tmp_path, SPEC))
    [verdict] = spec.judge("mtf50_cy_per_px", 0.19, zone="corner", field="top_left")
    assert verdict.outcome is Outcome.FAIL
    assert verdict.condition == {"zone": "corner", "field": "top_left"}
    assert verdict.allure_parameter() == "0.19 cy/px [0.2..] FAIL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("product: p\nversion: 1\nlimits: []\n", "limits: List should have at least 1 item"),
        ("product: p\nlimits:\n  - {id: A, measurement: x, unit: u, min: 1}\n", "version: required key is missing"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u}\n", "limits[0]: Value error, give min, max or both"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u, min: 2, max: 1}\n", "min 2.0 is above max 1.0"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u, min: 0, max: 1, guard: 0.5}\n", "leaves no PASS band"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u, min: 0, condition: {zome: c}}\n", "unknown condition key 'zome' (did you mean 'zone'?)"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u, min: 0}\n  - {id: A, measurement: y, unit: u, min: 0}\n", ":5: limits[1].id: duplicate limit id 'A'"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurment: x, unit: u, min: 0}\n", "unknown key 'measurment' (did you mean 'measurement'?)"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: u, min: low}\n", "limits[0].min: Input should be a valid number"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: Bad-Name, unit: u, min: 0}\n", "limits[0].measurement: String should match pattern"),
        ("product: p\nversion: 1\nlimits:\n  - {id: A, measurement: x, unit: '', min: 0}\n", "limits[0].unit: String should have at least 1 character"),
    ],
)
def test_bad_spec_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_limits(path)
    message = str(info.value)
    assert expected in message and message.startswith(str(path)) and "\n" not in message, message


def test_unknown_limit_id(tmp_path: Path) -> None:
    spec = load_limits(write(tmp_path, SPEC))
    with pytest.raises(ConfigError, match="no limit 'EMVA-k' \\(did you mean 'EMVA-K'\\?\\)"):
        spec.by_id("EMVA-k")
