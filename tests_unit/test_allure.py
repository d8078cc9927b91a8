"""Allure helpers: thumbnails, CSV/JSON, environment, categories, results from a run record."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.evidence import allure as ev
from harness.evidence.journal import Journal, rebuild
from harness.evidence.model import Artefact
from harness.measurement import Measurement, Outcome

ROOT = Path(__file__).resolve().parents[1]


def test_thumbnail_is_small_8bit_and_stretched() -> None:
    frame = np.zeros((600, 900), np.uint16)
    frame[:, 450:] = 4095  # a 12-bit step edge
    thumb = ev.thumbnail(frame, max_side=300)
    assert thumb.shape == (200, 300) and thumb.dtype == np.uint8
    assert thumb[:, :140].max() == 0 and thumb[:, 160:].min() == 255
    png = ev.thumbnail_png(np.dstack([frame, frame // 2, frame // 4]), max_side=90)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (60, 90, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="2-D"):
        ev.thumbnail(np.zeros(5))


def test_csv_and_json_bytes() -> None:
    assert ev.csv_bytes([{"a": 1, "b": 2}, {"a": 3, "c": 4}]) == b"a,b,c\n1,2,\n3,,4\n"
    assert ev.csv_bytes(np.array([[1.5, 2.0]]), ["x", "y"]) == b"x,y\n1.5,2.0\n"
    with pytest.raises(ValueError, match="header has 1 names for 2 columns"):
        ev.csv_bytes(np.ones((2, 2)), ["x"])
    data = json.loads(ev.json_bytes({"k": np.float32(0.5), "v": np.arange(3),
                                     "o": Outcome.PASS}))
    assert data == {"k": 0.5, "v": [0, 1, 2], "o": "PASS"}
    with pytest.raises(ValueError, match="PNG bytes"):
        ev.png_bytes(b"GIF89a")


def test_environment_properties_escaped(tmp_path: Path) -> None:
    path = ev.write_environment(tmp_path, {"dut serial": "SIM=1", "limits": "a\\b\nc"})
    assert path.read_text() == "dut\\ serial=SIM=1\nlimits=a\\\\b\\nc\n"
    cats = json.loads((tmp_path / "categories.json").read_text())
    assert [c["name"] for c in cats] == [c["name"] for c in ev.CATEGORIES]


def test_categories_match_allurerc() -> None:
    """The Allure 3 categories (allurerc.mjs) and the Allure 2 fallback name the same four."""
    rc = (ROOT / "allurerc.mjs").read_text()
    for cat in ev.CATEGORIES:
        assert f'name: "{cat["name"]}"' in rc
    assert "singleFile: true" in rc


def test_requirement_url_and_family(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ev.requirement_url("EMVA-K-1") == "urn:limit:EMVA-K-1"
    monkeypatch.setenv(ev.REQUIREMENT_URL_ENV, "https://plm.example/req/{limit_id}")
    assert ev.requirement_url("EMVA-K-1") == "https://plm.example/req/EMVA-K-1"
    assert ev.apply_family("sfr").severity == "critical"  # no-op outside an Allure run
    with pytest.raises(ValueError, match="allowed: emva1288, sfr"):
        ev.apply_family("optics")


def test_results_from_a_killed_run(tmp_path: Path) -> None:
    """A journal cut short → Allure results: passed, failed, aborted tests, plot attached."""
    plot = tmp_path / "ptc.png"
    plot.write_bytes(ev.thumbnail_png(np.eye(8) * 100))
    j = Journal(tmp_path / "j.jsonl", "run-7")
    j.run_start(station="sim-1", dut={"serial": "D7", "product": "cam-a"},
                software={"harness": "0.1.0"}, limits_hash="cd" * 32,
                devices=[{"role": "camera", "vendor": "Sim", "model": "SC", "serial": "1"}])
    j.test_start("t.py::test_gain", family="emva1288")
    j.capture("t.py::test_gain", frames=["aa" * 32])
    j.measurement(Measurement.judged("system_gain", 0.1, "DN/e-", low=0.09, high=0.11,
                                     limit_id="EMVA-K-1", test_id="t.py::test_gain"))
    j.artefact("t.py::test_gain", Artefact("bb" * 32, "plot", "photon transfer", str(plot)))
    j.test_end("t.py::test_gain", Outcome.PASS)
    j.test_start("t.py::test_hot", family="defects")
    j.measurement(Measurement.judged("hot_pixels", 20, "px", high=10, limit_id="DEF-1",
                                     test_id="t.py::test_hot"))
    j.test_end("t.py::test_hot", Outcome.FAIL)
    j.test_start("t.py::test_sfr", family="sfr")
    j.close()
    results = tmp_path / "results"
    assert ev.write_results(rebuild(tmp_path / "j.jsonl"), results) == 3
    by_name = {}
    for f in results.glob("*-result.json"):
        r = json.loads(f.read_text())
        by_name[r["name"]] = r
    assert {n: r["status"] for n, r in by_name.items()} == {
        "test_gain": "passed", "test_hot": "failed", "test_sfr": "broken"}
    gain = by_name["test_gain"]
    assert gain["parameters"][0]["value"] == "0.1 DN/e- [0.09..0.11] PASS"
    assert gain["links"][0] == {"type": "requirement", "url": "urn:limit:EMVA-K-1",
                                "name": "EMVA-K-1"}
    assert {"name": "feature", "value": "EMVA 1288 sensor performance"} in gain["labels"]
    names = {a["name"] for a in gain["attachments"]}
    assert names == {"photon transfer", "frames (by hash)"}
    assert by_name["test_hot"]["steps"][0]["status"] == "failed"
    assert by_name["test_sfr"]["statusDetails"]["message"].startswith("Aborted")
    env = (results / "environment.properties").read_text()
    assert "dut.serial=D7" in env and "limits.sha256=" + "cd" * 32 in env
    assert "device.camera=Sim SC s/n 1" in env
