"""The product spec document and the limit file agree: every limit of cm12.yaml names its
section of docs/products/cm12.md (``requirement:``), that section exists, and the golden
module's truth lies inside the spec's ranges for shading (issue: Product, done-when)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app
from harness.limits import load_limits
from tests_unit.test_citations import anchors

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "products" / "cm12.md"


def test_every_limit_names_an_existing_section_of_the_spec() -> None:
    spec = load_limits(ROOT / "tests_hil" / "limits" / "cm12.yaml")
    known = anchors(DOC.read_text())
    for limit in spec:
        page, _, anchor = limit.requirement.partition("#")
        assert page == "docs/products/cm12.md", limit.id
        assert anchor in known, f"{limit.id}: no section #{anchor} in {DOC.name}"
        assert limit.id in DOC.read_text(), f"{limit.id} is not named in {DOC.name}"


def test_golden_truth_is_inside_the_spec_ranges() -> None:
    result = CliRunner().invoke(app, ["sim", "truth", str(ROOT / "fixtures" / "modules" /
                                                          "golden.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    truth = json.loads(result.stdout)
    # the spec: raw corner relative illumination 0.25-0.45, raw colour shading 5-20 %
    assert 0.25 <= truth["relative_illumination_corner"] <= 0.45
    assert 5.0 <= truth["colour_shading_corner_pct"] <= 20.0
    assert truth["saturation_limited_by"] == "full well"
    assert truth["saturation_e"] == 6000.0
