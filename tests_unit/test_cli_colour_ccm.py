"""``harness analyze colour`` figures: in-sample, leave-one-out and a fixed ``--ccm`` (JSON or
YAML), on a ColorChecker rendered through a known camera matrix and written as 16-bit TIFF."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.cli import app
from tests_unit.optics_synth import CAMERA_MATRIX, render_colour_checker

GAINS = (0.6, 1.0, 0.8)
runner = CliRunner()


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img, _ = render_colour_checker((420, 640), gains=GAINS, black=0.02, exposure=0.7)
    path = tmp_path_factory.mktemp("cc") / "cc.tif"
    tifffile.imwrite(path, np.round(img * 65535).astype(np.uint16), photometric="rgb")
    return path


def run(chart: Path, out: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    res = runner.invoke(app, ["analyze", "colour", str(chart), "--black-level",
                              str(0.02 * 65535), "--json", str(out), *extra])
    data = json.loads(out.read_text()) if res.exit_code == 0 else {}
    return res.exit_code, res.output, data


def test_fitted_figures_without_ccm(chart: Path, tmp_path: Path) -> None:
    code, out, data = run(chart, tmp_path / "c.json")
    assert code == 0, out
    assert "leave-one-out" in out and "production" not in out
    assert data["delta_e_2000_max_loo"] < 0.5  # 16-bit quantisation only
    assert data["delta_e_2000_mean_in_sample"] <= data["delta_e_2000_mean_loo"]
    assert data["delta_e_2000_mean"] == data["delta_e_2000_mean_in_sample"]  # legacy key
    assert data["delta_e_2000_mean_production"] is None and data["ccm_production"] is None
    assert {"delta_e_2000_loo", "lab_loo", "delta_e_2000_production"} <= set(data["patches"][0])


def test_production_ccm_from_json_and_yaml(chart: Path, tmp_path: Path) -> None:
    inverse = np.linalg.inv(CAMERA_MATRIX).tolist()
    (tmp_path / "good.json").write_text(json.dumps({"ccm": inverse,
                                                    "wb_gains": [1 / g for g in GAINS]}))
    code, out, data = run(chart, tmp_path / "g.json", "--ccm", str(tmp_path / "good.json"))
    assert code == 0, out
    assert "production CCM" in out and "(fitted)" not in out
    assert data["delta_e_2000_max_production"] < 0.5  # the true inverse: quantisation only
    assert data["wb_gains_production"] == pytest.approx([1 / g for g in GAINS])
    # a bare 3x3 in YAML, gains fitted on the neutral patches: identity is far off
    (tmp_path / "eye.yaml").write_text("- [1, 0, 0]\n- [0, 1, 0]\n- [0, 0, 1]\n")
    code, out, data = run(chart, tmp_path / "e.json", "--ccm", str(tmp_path / "eye.yaml"))
    assert code == 0, out
    assert "(fitted)" in out
    assert data["delta_e_2000_mean_production"] > 3
    assert data["ccm_production"] == np.eye(3).tolist()


@pytest.mark.parametrize(("text", "message"), [
    ("[[1, 0, 0], [0, 1, 0]]", r"bad\.yaml: ccm: must be a 3x3 matrix of finite numbers, got "
                               r"shape \(2, 3\)"),
    ("{ccm: [[1,0,0],[0,1,0],[0,0,1]], wb_gains: [1, 1]}", r"bad\.yaml: wb_gains: must be 3 "
                                                           r"positive finite numbers"),
    ("{matrix: [[1,0,0],[0,1,0],[0,0,1]]}", r"bad\.yaml: expected keys ccm and optionally "
                                            r"wb_gains, found matrix"),
    ("[[1, 0, 0", r"bad\.yaml: --ccm: not valid YAML"),
])
def test_bad_ccm_file_is_one_line(chart: Path, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    code, out, _ = run(chart, tmp_path / "x.json", "--ccm", str(tmp_path / "bad.yaml"))
    assert code != 0
    assert len(out.strip().splitlines()) == 1
    assert re.search(message, out), out
