"""`harness signoff RUN_ID`: verdict table and hashes on one page (HTML, and PDF via Chromium)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from harness.cli import app
from harness.evidence.model import Artefact
from harness.evidence.records import RecordStore
from tests_unit.test_records import make_run

runner = CliRunner()
FRAMES = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20)]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "records.sqlite"
    with RecordStore(path) as store:
        store.add_run(make_run("r0"))
        run = make_run("r1", gain=0.2)  # system gain out of spec → FAIL
        run = type(run)(**{**run.__dict__, "artefacts": tuple(
            Artefact(h, "frame", path="out/cs") for h in FRAMES)})
        store.add_run(run)
    return str(path)


def test_signoff_page_has_verdicts_and_hashes(db: str, tmp_path: Path) -> None:
    out = tmp_path / "so.html"
    result = runner.invoke(app, ["signoff", "r1", "--records", db, "--out", str(out),
                                 "--allow-incomplete"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert re.search(r"Verdict: <span[^>]*>FAIL</span>", page)
    assert re.search(r"system_gain.*?<td class=num>0.2</td><td>DN/e-</td><td>\[0.09..0.11\]"
                     r"</td><td>EMVA-K-1</td><td><span[^>]*>FAIL", page)
    assert re.search(r"hot_pixels.*?<td class=num>3</td>.*?PASS", page)
    software = json.dumps({"harness": "0.1.0", "numpy": "2.1"}, sort_keys=True,
                          separators=(",", ":"))
    assert hashlib.sha256(software.encode()).hexdigest() in page
    digest = hashlib.sha256("\n".join(sorted(FRAMES)).encode()).hexdigest()
    assert f"frames (20) digest</th><td>{digest}" in page
    assert "… and 8 more" in page and sorted(FRAMES)[0] in page
    assert "ab" * 32 in page  # limits sha256
    with RecordStore(db) as store:
        chain = store.chain_info("r1")
        assert chain.record_hash in page and chain.prev_hash in page
        assert chain.prev_hash == store.chain_info("r0").record_hash
    assert "intact (2 runs" in page


def test_signoff_shows_a_broken_chain(db: str, tmp_path: Path) -> None:
    with RecordStore(db) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET operator = 'mallory' WHERE run_id = 'r0'"))
    result = runner.invoke(app, ["signoff", "r0", "--records", db, "--out",
                                 str(tmp_path / "so.html")])
    assert result.exit_code == 0 and "BROKEN" in result.stdout
    assert "BROKEN: station sim-1: run r0 was edited" in (tmp_path / "so.html").read_text()


def test_only_an_earned_verdict_is_signed(db: str, tmp_path: Path) -> None:
    """A FAIL run is refused without --allow-incomplete; PASS is signed."""
    refused = runner.invoke(app, ["signoff", "r1", "--records", db, "--out",
                                  str(tmp_path / "r1.html")])
    assert refused.exit_code == 2 and not (tmp_path / "r1.html").exists()
    assert "run r1 is FAIL, not PASS or MARGINAL: sign-off refused" in refused.output
    signed = runner.invoke(app, ["signoff", "r0", "--records", db, "--out",
                                 str(tmp_path / "r0.html")])
    assert signed.exit_code == 0, signed.output


def test_an_incomplete_run_prints_its_unjudged_limits_in_red(tmp_path: Path) -> None:
    from dataclasses import replace

    from harness.evidence.model import Measurement, Outcome, TestRecord, Unjudged

    run = make_run("inc")
    info = Measurement.judged("prnu_pct", 7.8, "%")  # no limit: INFO
    tests = (*run.tests, TestRecord("t::info", Outcome.PASS, measurements=(info,)))
    run = replace(run, outcome=Outcome.INCOMPLETE, tests=tests, unjudged=(
        Unjudged("COLOUR-DE-MEAN", "delta_e_2000_mean", "deselected: test_colour_accuracy"),))
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(run)
        assert store.get_run("inc").unjudged == run.unjudged  # stored and read back
    refused = runner.invoke(app, ["signoff", "inc", "--records", str(db)])
    assert refused.exit_code == 2
    assert "run inc is INCOMPLETE, not PASS or MARGINAL; unjudged limits: COLOUR-DE-MEAN" \
        in refused.output
    out = tmp_path / "inc.html"
    result = runner.invoke(app, ["signoff", "inc", "--records", str(db), "--out", str(out),
                                 "--allow-incomplete"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert re.search(r"<h2 class=bad>Limits not judged in this run</h2><table class=bad>.*"
                     r"COLOUR-DE-MEAN</td><td>delta_e_2000_mean</td><td>deselected: "
                     r"test_colour_accuracy", page, re.S)
    # an INFO figure is apart from the verdicts, never with a PASS badge
    assert re.search(r"without a limit \(INFO\).*prnu_pct.*7\.8", page, re.S)
    assert not re.search(r"prnu_pct.*?PASS", page.split("without a limit")[0], re.S)


def test_a_characterisation_run_is_never_signed(tmp_path: Path) -> None:
    from dataclasses import replace

    from harness.evidence.model import Outcome

    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(replace(make_run("char"), outcome=Outcome.INCOMPLETE,
                              characterisation=True))
    result = runner.invoke(app, ["signoff", "char", "--records", str(db),
                                 "--allow-incomplete"])
    assert result.exit_code == 2
    assert "run char is a characterisation run (no limits were judged): it cannot be signed" \
        in result.output


def test_unknown_run_is_a_one_line_error(db: str) -> None:
    result = runner.invoke(app, ["signoff", "nope", "--records", db])
    assert result.exit_code == 2 and "no run 'nope' in the records" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="PDF needs Debian's chromium")
def test_signoff_pdf_is_one_page(db: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["signoff", "r0", "--records", db, "--pdf", "--out",
                                 str(tmp_path / "so.html")])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "so.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
