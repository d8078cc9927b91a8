"""``harness analyze emva1288 | defects | uniformity`` end to end, good and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.capture.writer import CaptureSetWriter
from harness.cli import app
from harness.cli.analyze_sensor import EMVA1288_JSON_KEYS, split_args
from harness.errors import ConfigError
from tests_unit.emva_synth import Sensor, write_descriptor_set

runner = CliRunner()


@pytest.fixture(scope="module")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sensor = Sensor(height=48, width=64, seed=91)
    return write_descriptor_set(tmp_path_factory.mktemp("emva"), sensor, steps=16,
                                spatial_frames=4)


def test_split_args_handles_optional_json_target() -> None:
    assert split_args(["p"], ("PATH",)) == (["p"], None)
    assert split_args(["p", "--json"], ("PATH",)) == (["p"], "-")
    assert split_args(["p", "--json", "o.json"], ("PATH",)) == (["p"], "o.json")
    assert split_args(["--json", "o.json", "p"], ("PATH",)) == (["p"], "o.json")
    assert split_args(["--json", "p"], ("PATH",)) == (["p"], "-")
    assert split_args(["a", "b", "--json=x"], ("A", "B")) == (["a", "b"], "x")
    with pytest.raises(ConfigError, match="unknown option"):
        split_args(["p", "--jsn"], ("PATH",))
    with pytest.raises(ConfigError, match="expected 2 argument"):
        split_args(["p"], ("DARK", "FLAT"))


def test_emva1288_json_to_stdout_has_exactly_the_keys(descriptor: Path) -> None:
    result = runner.invoke(app, ["analyze", "emva1288", str(descriptor), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert tuple(payload) == EMVA1288_JSON_KEYS
    assert payload["system_gain_dn_per_e"] == pytest.approx(0.25, rel=0.05)
    assert len(payload["points"]) == 16
    assert set(payload["points"][0]) == {"exposure_ns", "photons", "mean_dn", "mean_dark_dn",
                                          "var_dn2", "var_dark_dn2"}


def test_emva1288_json_file_plots_and_summary(descriptor: Path, tmp_path: Path) -> None:
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    result = runner.invoke(app, ["analyze", "emva1288", str(descriptor), "--json", str(out),
                                 "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    assert "system gain K" in result.stdout
    assert json.loads(out.read_text())["quantum_efficiency_pct"] == pytest.approx(50, rel=0.05)
    assert {p.name for p in plots.iterdir()} == {"photon_transfer.png", "linearity.png"}


def test_emva1288_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "d.txt"
    bad.write_text("n 12 4 4\nb 1 x\n")
    for args in (["analyze", "emva1288", str(bad)],
                 ["analyze", "emva1288", str(tmp_path / "none.txt")],
                 ["analyze", "emva1288"],
                 ["analyze", "emva1288", str(bad), "--bogus"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and "error:" in result.stderr


def _stack_tiff(path: Path, frames: list[np.ndarray]) -> Path:
    tifffile.imwrite(path, np.stack(frames), photometric="minisblack")
    return path


def test_defects_on_bare_tiffs_with_bayer(tmp_path: Path) -> None:
    sensor = Sensor(height=64, width=80, seed=92, plane_gain=(0.5, 1.0, 1.0, 0.7),
                    hot={(10, 12): 400.0}, gain={(40, 41): 0.4})
    dark = _stack_tiff(tmp_path / "dark.tif", sensor.stack(8))
    flat = _stack_tiff(tmp_path / "flat.tif", sensor.stack(8, 12000.0))
    result = runner.invoke(app, ["analyze", "defects", str(dark), str(flat), "--bayer", "RGGB",
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["cfa"] == "RGGB"
    assert payload["pixels"]["hot"] == [[10, 12]] and payload["pixels"]["dead"] == [[40, 41]]
    assert payload["total"] == 2
    bad = runner.invoke(app, ["analyze", "defects", str(dark), str(flat), "--bayer", "XYZW"])
    assert bad.exit_code == 2 and "allowed: RGGB" in bad.stderr
    strict = runner.invoke(app, ["analyze", "defects", str(dark), str(flat), "--bayer", "RGGB",
                                 "--hot-dn", "500", "--threshold", "median_size=3", "--json"])
    assert strict.exit_code == 0, strict.output
    assert json.loads(strict.stdout)["pixels"]["hot"] == []
    for item in ("median_size=7", "nonsense=1", "line_sigma=abc", "hot_dn=4"):
        bad = runner.invoke(app, ["analyze", "defects", str(dark), str(flat), "--threshold",
                                  item])
        assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, (item, bad.stderr)


def test_defects_and_uniformity_from_a_capture_set(tmp_path: Path) -> None:
    sensor = Sensor(height=64, width=80, seed=93, hot={(20, 30): 400.0})
    with CaptureSetWriter(tmp_path / "cs", sequence="defects", cfa=None) as w:
        for frame in sensor.stack(6):
            w.add(frame, role="dark", group="spatial", exposure_us=10000.0, gain_db=0.0,
                  temperature_c=35.0)
        for frame in sensor.stack(6, 12000.0):
            w.add(frame, role="flat", group="spatial", exposure_us=10000.0)
    out = tmp_path / "d.json"
    cs = str(tmp_path / "cs")
    result = runner.invoke(app, ["analyze", "defects", cs, cs, "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["pixels"]["hot"] == [[20, 30]]
    assert payload["conditions"]["temperature_c"] == 35.0
    result = runner.invoke(app, ["analyze", "uniformity", cs, "--json"])
    assert result.exit_code == 0, result.output
    uni = json.loads(result.stdout)
    assert uni["relative_illumination_min"] == pytest.approx(1.0, abs=0.02)  # no vignetting


def test_uniformity_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "uniformity", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_emva1288_on_a_colour_capture_set(tmp_path: Path) -> None:
    from tests_unit.test_stack_input import write_emva_capture_set

    sensor = Sensor(height=48, width=64, seed=94, plane_gain=(0.5, 1.0, 1.0, 0.7))
    path = write_emva_capture_set(tmp_path / "cs", sensor, cfa="RGGB", steps=12,
                                  spatial_frames=4)
    result = runner.invoke(app, ["analyze", "emva1288", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert tuple(payload) == EMVA1288_JSON_KEYS
    # per-plane PRNU: the model's 1 %, not the colour filters' spread (tolerance: 48x64 px)
    assert payload["prnu_pct"] == pytest.approx(sensor.true_prnu_pct(), rel=0.15)


def test_uniformity_on_bare_tiffs_with_a_dark_stack(tmp_path: Path) -> None:
    sensor = Sensor(height=64, width=96, seed=95, plane_gain=(0.5, 1.0, 1.0, 0.7))
    dark = _stack_tiff(tmp_path / "dark.tif", sensor.stack(4))
    flat = _stack_tiff(tmp_path / "flat.tif", sensor.stack(4, 12000.0))
    result = runner.invoke(app, ["analyze", "uniformity", str(flat), "--dark", str(dark),
                                 "--bayer", "GBRG", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["channels"]) == {"R", "G", "B"}
    assert payload["relative_illumination_min"] == pytest.approx(1.0, abs=0.03)


def test_emva1288_notes_questionable_data(tmp_path: Path) -> None:
    # the sweep stops at 60 % of the full well: saturation is not reached, and the spatial
    # stacks (placed at the 40 % step by hand) are far from 50 % of the measured maximum
    sensor = Sensor(height=48, width=64, seed=96)
    path = write_descriptor_set(tmp_path, sensor, steps=12, max_electrons=0.6 * 12000.0,
                                spatial_frames=4, spatial_step=1)
    result = runner.invoke(app, ["analyze", "emva1288", str(path)])
    assert result.exit_code == 0, result.output
    assert "does not reach saturation" in result.stderr
    assert "spatial stacks sit at" in result.stderr


def _no_nan(name: str) -> None:
    raise ValueError(f"{name} in the JSON")


def test_emva1288_flagged_figure_is_an_object_in_json_and_red_in_the_table(
        tmp_path: Path) -> None:
    from tests_unit.test_emva1288 import DriftingSensor

    # the dark level falls 3.2 DN over the sweep: the dark-current fit gives a negative slope
    sensor = DriftingSensor(height=48, width=64, seed=97, offset_dn=60.0, drift_dn=0.05)
    path = write_descriptor_set(tmp_path / "set", sensor, steps=16, spatial_frames=4)
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["analyze", "emva1288", str(path), "--json", str(out)])
    assert result.exit_code == 0, result.output  # the analysis ran
    payload = json.loads(out.read_text(), parse_constant=_no_nan)
    assert tuple(payload) == EMVA1288_JSON_KEYS
    flagged = payload["dark_current_e_per_s"]
    assert set(flagged) == {"value", "flagged"}
    assert isinstance(flagged["value"], float) and flagged["value"] < 0
    assert flagged["flagged"].startswith("negative dark current")
    assert payload["flags"] == {"dark_current_e_per_s": flagged["flagged"]}
    assert isinstance(payload["system_gain_dn_per_e"], float)  # unflagged: a plain number
    line = next(ln for ln in result.stdout.splitlines() if "dark current:" in ln)
    assert line.split(": ", 1)[1].startswith(f"{flagged['value']:.4g} e-/s  FLAGGED: negative "
                                             "dark current")
    assert result.stdout.splitlines()[-1].startswith("1 figure flagged")
    assert sum("FLAGGED" in ln for ln in result.stdout.splitlines()) == 1
    # JSON on stdout stays pure JSON; the count goes to stderr
    piped = runner.invoke(app, ["analyze", "emva1288", str(path), "--json"])
    assert piped.exit_code == 0
    assert json.loads(piped.stdout, parse_constant=_no_nan)["flags"] == payload["flags"]
    assert "1 figure flagged" in piped.stderr


def test_emva1288_healthy_data_have_no_flags(descriptor: Path) -> None:
    result = runner.invoke(app, ["analyze", "emva1288", str(descriptor)])
    assert result.exit_code == 0, result.output
    assert "FLAGGED" not in result.stdout
    assert result.stdout.splitlines()[-1] == "no figure flagged"
    piped = runner.invoke(app, ["analyze", "emva1288", str(descriptor), "--json"])
    payload = json.loads(piped.stdout, parse_constant=_no_nan)
    assert payload["flags"] == {}
    assert not any(isinstance(v, dict) for k, v in payload.items() if k != "flags")
