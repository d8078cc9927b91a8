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
from harness.evidence.model import Artefact, RunRecord, TestRecord
from harness.evidence.records import RecordStore
from harness.limits import load_limits
from harness.measurement import Measurement, Outcome
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
    assert re.search(r"<td>EMVA-K-1</td><td class=wrap>system_gain <span class=note>\(gain_db=0, "
                     r"wavelength_nm=525\)</span></td><td class=num>0.2</td><td>DN/e-</td>"
                     r"<td>\[0.09..0.11\]</td><td class=num>-450.0 %</td><td><span[^>]*>FAIL",
                     page)
    assert re.search(r"DEF-HOT-1</td><td class=wrap>hot_pixels</td><td class=num>3</td>.*?70.0 %.*?PASS",
                     page)
    software = json.dumps({"harness": "0.1.0", "numpy": "2.1"}, sort_keys=True,
                          separators=(",", ":"))
    assert hashlib.sha256(software.encode()).hexdigest()[:12] in page
    digest = hashlib.sha256("\n".join(sorted(FRAMES)).encode()).hexdigest()
    assert f"frames (20) digest</th><td>{digest}" in page
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

    from harness.evidence.model import TestRecord, Unjudged
    from harness.measurement import Measurement, Outcome

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

    from harness.measurement import Outcome

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


# One document per DUT ---------------------------------------------------------------------

CM12 = Path(__file__).parent.parent / "tests_hil" / "limits" / "cm12.yaml"
FAMILY_OF = {"EMVA": "emva1288", "DEF": "defects", "UNIF": "uniformity", "FOCUS": "focus",
             "MTF50": "sfr", "MTF": "sfr", "COLOUR": "colour", "PWR": "power",
             "IF": "interface", "BLEM": "geometry", "GEOM": "geometry", "DIST": "geometry",
             "LCA": "focus"}


def full_run(run_id: str = "full", *, spec: Path = CM12, operator: str = "ana",
             frames: int = 190, fields: int = 1, info: int = 2) -> RunRecord:
    """A PASS run judging every limit of the cm12 spec, each test with a long title, ``info``
    INFO figures and ``frames`` frames; ``fields`` > 1 judges each MTF limit in that many
    chart fields (a real qualification judges the corner limits in 8)."""

    loaded = load_limits(spec)
    by_family: dict[str, list[Measurement]] = {}
    for lim in loaded.limits:
        if lim.min is not None and lim.max is not None:
            value = (lim.min + lim.max) / 2
        elif lim.min is not None:
            value = lim.min + abs(lim.min) * 0.2 + 1
        else:
            value = (lim.max or 0) * 0.5
        family = FAMILY_OF[lim.id.split("-")[0]]
        many = lim.id.startswith("MTF") and "RATIO" not in lim.id and fields > 1
        by_family.setdefault(family, []).extend(
            lim.judge(value, condition={"field": f"field_{i}_horizontal"} if many else None,
                      uncertainty=abs(value) * 0.002 if lim.guarded else None)
            for i in range(fields if many else 1))
    for i in range(info):
        family = ("emva1288", "defects")[i % 2]
        by_family[family].append(Measurement.judged(f"info_figure_{i}", 61.2 + i, "%",
                                                    condition={"channel": "G"}))
    tests = tuple(TestRecord(f"tests_hil/test_{f}.py::test_{f}", Outcome.PASS, family=f,
                             title=f"The {f} figures of the module, judged against the spec "
                                   "(a long docstring that must not repeat on every row)",
                             measurements=tuple(ms)) for f, ms in by_family.items())
    return RunRecord(
        run_id=run_id, station="sim-1", outcome=Outcome.PASS, product="cm12",
        dut_serial="SN-0042", dut_firmware="1.2.3", operator=operator,
        started="2026-11-20T10:00:00.000000+00:00", ended="2026-11-20T10:01:07.000000+00:00",
        limits_file=str(spec), limits_hash=hashlib.sha256(spec.read_bytes()).hexdigest(),
        software={"python": "3.11.7", "numpy": "2.1", "harness": "0.1.0",
                  "harness.sha256": "5a" * 32, "harness.commit": "c0ffee" * 6 + "abcd",
                  "harness.dirty": "true", "harness.files": "131"},
        tests=tests,
        artefacts=tuple(Artefact(hashlib.sha256(b"f%d" % i).hexdigest(), "frame")
                        for i in range(frames)))


def signoff_page(db: Path, run_id: str, tmp_path: Path, *args: str) -> tuple[str, str]:
    out = tmp_path / f"{run_id}.html"
    result = runner.invoke(app, ["signoff", run_id, "--records", str(db), "--out", str(out),
                                 *args])
    assert result.exit_code == 0, result.output
    return out.read_text(), " ".join(result.output.split())


def test_the_page_is_one_document_per_dut(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(full_run())
    page, _ = signoff_page(db, "full", tmp_path, "--lot", "LOT-7", "--prepared-by", "B. Eng")
    header = page.split('class="verdict"')[0]
    for fact in ("cm12", "SN-0042", "1.2.3", "LOT-7", "sim-1", "ana",
                 f"version {load_limits(CM12).version}",
                 hashlib.sha256(CM12.read_bytes()).hexdigest(), "2026-11-20T10:00:00",
                 "2026-11-20T10:01:07"):
        assert fact in header, fact
    # one table per family, each limit once, the test's title nowhere in the rows
    for title in ("EMVA 1288 sensor performance", "Defect pixels", "Shading and uniformity",
                  "Focus", "ISO 12233 resolution (MTF)", "Colour accuracy", "Module power",
                  "Camera interface"):
        assert page.count(f"<tr class=family><th colspan=2>{title} ") == 1, title
    assert "long docstring" not in page

    for lim in load_limits(CM12).limits:
        assert page.count(f"<td>{lim.id}</td>") == 1, lim.id
    assert re.search(r"DEF-CENTRE</td><td class=wrap>defect_count <span class=note>\(zone=centre\)", page)
    assert re.search(r"DEF-EDGE</td><td class=wrap>defect_count <span class=note>\(zone=edge\)", page)
    # INFO apart, software identity, signature block
    info = page.split("without a limit (INFO)")[1]
    assert "info_figure_0 <span class=note>(channel=G)</span> <b>61.2</b> %" in info
    assert "info_figure_1" in info
    assert "c0ffee" * 6 + "abcd (uncommitted changes)" in page and "5a" * 32 in page
    assert "(131 files)" in page
    assert re.search(r"<b>Prepared by</b>B\. Eng.*<b>Approved by</b>.*<b>Date</b>", page, re.S)


@pytest.mark.parametrize("low, high, value, expected", [
    (0.38, 0.46, 0.44, "25.0 %"),     # two-sided: margin / (high - low)
    (0.38, 0.46, 0.47, "-12.5 %"),
    (None, 4.0, 3.0, "25.0 %"),       # one-sided: margin / |limit|
    (-0.5, None, -0.1, "80.0 %"),
    (None, 0, 0, "0 clusters"),       # one-sided at 0: in the unit
    (None, 0, 2, "-2 clusters"),
])
def test_margin_is_a_percentage_of_the_tolerance(low: float | None, high: float | None,
                                                 value: float, expected: str) -> None:
    from harness.evidence.signoff import margin_text

    m = Measurement.judged("x", value, "clusters", low=low, high=high, limit_id="L")
    assert margin_text(m) == expected
    assert margin_text(Measurement.judged("x", 1.0, "%")) == ""  # INFO: no margin


def test_each_limit_once_the_worst_judgement_shown() -> None:
    from harness.evidence.signoff import limit_rows

    judged = [Measurement.judged("mtf50", v, "cy/px", low=0.25, limit_id="MTF50",
                                 condition={"zone": z}) for v, z in
              ((0.31, "centre"), (0.24, "centre"), (0.30, "corner"))]
    rows = limit_rows(judged)
    assert [(r.condition, r.value, r.outcome, r.times) for r in rows] == [
        ("zone=centre", 0.24, Outcome.FAIL, 2), ("zone=corner", 0.30, Outcome.PASS, 1)]


def test_an_error_or_skip_without_figures_is_a_note_of_its_family(tmp_path: Path) -> None:
    from dataclasses import replace

    run = full_run("err")
    broken = TestRecord("tests_hil/test_focus.py::test_tilt", Outcome.ERROR, family="focus",
                        title="Tilt", message="focus stage did not answer")
    run = replace(run, outcome=Outcome.ERROR, tests=(*run.tests, broken))
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(run)
    page, _ = signoff_page(db, "err", tmp_path, "--allow-incomplete")
    focus = page.split("<th colspan=2>Focus ")[1].split("</table>")[0]
    assert re.search(r"Tilt: focus stage did not answer</td><td><span[^>]*>ERROR", focus)


def test_missing_operator_lot_and_spec_are_shown_not_left_blank(tmp_path: Path) -> None:
    spec = tmp_path / "cm12.yaml"
    spec.write_bytes(CM12.read_bytes())
    run = full_run("blank", spec=spec, operator="")
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(run)
    spec.write_bytes(CM12.read_bytes() + b"\n# edited after the run\n")
    page, _ = signoff_page(db, "blank", tmp_path)
    assert "<th>operator</th><td><span class=bad>not recorded</span>" in page
    assert "<th>lot</th><td><span class=bad>not given</span>" in page
    assert "version unknown" in page and "sha256 differs" in page
    page, _ = signoff_page(db, "blank", tmp_path, "--limits", str(CM12))
    assert f"version {load_limits(CM12).version}" in page and "version unknown" not in page


def test_key_fingerprint_chain_head_and_signature(tmp_path: Path) -> None:
    from harness.evidence.records.signing import generate_keys, load_signer

    pair = generate_keys("sim-1", tmp_path / "keys")
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(full_run("a"), signer=load_signer(pair.private))
        store.add_run(full_run("b"))  # unsigned, and the station's newest run
        head = store.chain_info("b")
    page, said = signoff_page(db, "a", tmp_path, "--keys", str(tmp_path / "keys"))
    assert pair.fingerprint in page and "signature: valid</td>" in page
    assert "chain head (#2" in page and head.record_hash in page
    assert "signature valid" in said
    page, said = signoff_page(db, "b", tmp_path, "--keys", str(tmp_path / "keys"))
    assert "none: the record is not signed" in page
    assert "signature: <b class=bad>unsigned (stored without the station&#x27;s key)</b>" \
        in page
    assert "signature unsigned" in said
    page, _ = signoff_page(db, "a", tmp_path)
    assert pair.fingerprint in page and "not checked (give --keys)" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="PDF needs Debian's chromium")
def test_a_full_qualification_fits_one_pdf_page(tmp_path: Path) -> None:
    """The cm12 spec with the corner MTF limits judged in 8 fields each, 12 INFO figures and
    two unjudged limits: more than an A4 page at full size, so the print is scaled down."""
    from dataclasses import replace

    from harness.evidence.model import Unjudged
    from harness.evidence.signoff import pdf_pages

    run = replace(full_run("big", fields=8, info=12), outcome=Outcome.INCOMPLETE, unjudged=(
        Unjudged("COLOUR-DE-MAX", "delta_e_2000_max", "deselected: test_colour_accuracy"),
        Unjudged("PWR-IDLE", "module_current_idle_a", "skipped: no power supply")))
    db = tmp_path / "records.sqlite"
    with RecordStore(db) as store:
        store.add_run(run)
    result = runner.invoke(app, ["signoff", "big", "--records", str(db), "--pdf",
                                 "--allow-incomplete", "--lot", "LOT-7", "--out",
                                 str(tmp_path / "big.html")])
    assert result.exit_code == 0, result.output
    assert pdf_pages((tmp_path / "big.pdf").read_bytes()) == 1
    assert "zoom" not in (tmp_path / "big.html").read_text()  # the HTML stays full size
