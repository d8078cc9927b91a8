"""The fleet pages (/fleet, the control chart, run detail, report, sign-off) and their JSON
twins, over a records database filled here: the figures shown are checked against yields,
Cpk and chart limits computed in the test from the values inserted; bad query values, an
empty database and a server without --records; and the same page over a real PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from harness.app.fleet import fleet_router
from harness.evidence.model import Artefact
from harness.evidence.records import RecordStore
from harness.measurement import Measurement
from tests_unit.pg_server import create_database, postgres_server
from tests_unit.test_records import make_run

STATIC = Path(__file__).resolve().parents[1] / "harness" / "app" / "static"
GAIN = {"gain_db": 0, "wavelength_nm": 525}
# (run id, DUT, gain, station, started): U1 fails then passes, U4 fails once; two days
RUNS = [("r1", "U1", 0.080, "sim-1", "2026-11-20T10:01:00.000000+00:00"),
        ("r2", "U2", 0.102, "sim-1", "2026-11-20T10:02:00.000000+00:00"),
        ("r3", "U3", 0.098, "sim-2", "2026-11-20T10:03:00.000000+00:00"),
        ("r4", "U1", 0.100, "sim-2", "2026-11-21T09:00:00.000000+00:00"),
        ("r5", "U4", 0.115, "sim-1", "2026-11-21T09:05:00.000000+00:00"),
        ("r6", "U5", 0.101, "sim-1", "2026-11-21T09:10:00.000000+00:00")]


def fill(target: str) -> None:
    with RecordStore(target) as store:
        for run_id, dut, value, station, started in RUNS:
            run = make_run(run_id, dut=dut, gain=value, station=station, started=started)
            tests = (replace(run.tests[0], measurements=(
                *run.tests[0].measurements,
                Measurement.judged("read_noise", 2.1, "e-", high=4.0, limit_id="EMVA-RN-1",
                                   uncertainty=0.05))), run.tests[1])
            store.add_run(replace(run, tests=tests, artefacts=(
                Artefact("11" * 32, "frame", path=f"out/evidence/{run_id}/cs-flat",
                         test_id=run.tests[0].test_id),
                Artefact("22" * 32, "frame", path=f"out/evidence/{run_id}/cs-flat",
                         test_id=run.tests[0].test_id),
                Artefact("33" * 32, "frame", path=f"out/evidence/{run_id}/cs-dark"))))


def client(records: str | None, tmp_path: Path) -> TestClient:
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(fleet_router(records, reports=tmp_path / "report",
                                    allure_results=tmp_path / "allure-results"))
    return TestClient(app)


@pytest.fixture
def db(tmp_path: Path) -> str:
    target = str(tmp_path / "records.sqlite")
    fill(target)
    return target


def row(page: str, *cells: str) -> list[str]:
    """The cells (text) of the table row holding each of ``cells`` as a whole cell."""
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        texts = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        if all(c in texts for c in cells):
            return texts
    raise AssertionError(f"no row with {cells}")


def section(page: str, ident: str) -> str:
    match = re.search(rf'<section id="{ident}">(.*?)</section>', page, re.S)
    assert match, ident
    return match.group(1)


@dataclass(frozen=True)
class Hand:
    units: int
    first: int
    final: int
    n: int
    mean: float
    sd: float
    cpk: float


def hand_figures() -> Hand:
    """Yields and the gain's Cpk from RUNS, by hand: a unit passes a run within 0.09..0.11."""
    units: dict[str, list[bool]] = {}
    for _, dut, value, _, _ in RUNS:
        units.setdefault(dut, []).append(0.09 <= value <= 0.11)
    latest = {dut: [v for _, d, v, _, _ in RUNS if d == dut][-1] for dut in units}
    values = np.array(list(latest.values()))
    mean, sd = values.mean(), values.std(ddof=1)
    return Hand(len(units), sum(p[0] for p in units.values()),
                sum(p[-1] for p in units.values()), values.size, float(mean), float(sd),
                float(min(0.11 - mean, mean - 0.09) / (3 * sd)))


def test_fleet_page_shows_yield_days_and_cpk(db: str, tmp_path: Path) -> None:
    page = client(db, tmp_path).get("/fleet").text
    want = hand_figures()
    fpy, fy = want.first / want.units, want.final / want.units
    assert (want.units, want.first, want.final) == (5, 3, 4)  # U1, U4 fail first
    total = row(section(page, "yield"), "all stations")
    assert total == ["cam-a", "all stations", "5", "3", f"{100 * fpy:.1f} %", "4",
                     f"{100 * fy:.1f} %"]
    # sim-1: U1 (FAIL), U2, U4 (FAIL), U5; sim-2: U3, U1 (its first run there passes)
    assert row(section(page, "yield"), "sim-1")[2:] == ["4", "2", "50.0 %", "2", "50.0 %"]
    assert row(section(page, "yield"), "sim-2")[2:] == ["2", "2", "100.0 %", "2", "100.0 %"]
    days = section(page, "days")
    # day 20: U1 (fails), U2, U3 all new; day 21: U1 (attempt 2), U4 new (fails), U5 new
    assert row(days, "2026-11-20", "all stations")[3:] == ["3", "2", "66.7 %", "3", "2",
                                                          "66.7 %"]
    assert row(days, "2026-11-21", "all stations")[3:] == ["3", "2", "66.7 %", "2", "1",
                                                          "50.0 %"]
    assert row(section(page, "trend"), "sim-1", "2026-11-21")[2:6] == ["2", "1", "0", "1"]
    cpk = row(section(page, "cpk"), "EMVA-K-1")
    assert cpk[7:12] == [str(want.n), f"{want.mean:.4g}", f"{want.sd:.4g}", cpk[10],
                         f"{want.cpk:.3g}"]
    assert cpk[3] == "gain_db=0, wavelength_nm=525"
    runs = section(page, "runs")
    assert [m for m in re.findall(r'class="run-link" href="/fleet/runs/(\w+)"', runs)] == \
        ["r6", "r5", "r4", "r3", "r2", "r1"]
    assert row(runs, "r5")[-1] == "FAIL"


def test_json_twins_give_the_same_figures(db: str, tmp_path: Path) -> None:
    c = client(db, tmp_path)
    want = hand_figures()
    stations = c.get("/api/fleet/yield").json()["stations"]
    total = next(s for s in stations if s["station"] is None)
    assert (total["units"], total["first_pass"], total["final_pass"]) == (5, 3, 4)
    assert total["first_pass_yield"] == pytest.approx(3 / 5)
    rows = c.get("/api/fleet/cpk", params={"product": "cam-a"}).json()
    gain = next(r for r in rows["rows"] if r["limit_id"] == "EMVA-K-1")
    assert gain["n"] == want.n and gain["cpk"] == pytest.approx(want.cpk, rel=1e-12)
    assert gain["mean"] == pytest.approx(want.mean, rel=1e-12)
    assert rows["chart_links"][rows["rows"].index(gain)].startswith(
        "/fleet/chart?product=cam-a&name=system_gain&condition=")
    detail = c.get("/api/fleet/runs/r4").json()
    assert (detail["run_id"], detail["attempt"], detail["outcome"]) == ("r4", 2, "PASS")
    assert [s["frames"] for s in detail["capture_sets"]] == [2, 1]
    assert detail["signoff"] == "/fleet/runs/r4/signoff" and detail["report"] == ""


def test_control_chart_page_and_api(db: str, tmp_path: Path) -> None:
    c = client(db, tmp_path)
    x = np.array([r[2] for r in RUNS])  # RUNS are in run order; one point per run
    mr = np.abs(np.diff(x))
    centre, mr_bar = x.mean(), mr.mean()
    params = {"name": "system_gain", "condition": '{"gain_db":0,"wavelength_nm":525}'}
    page = c.get("/fleet/chart", params=params).text
    figures = {k: html.unescape(v) for k, v in re.findall(
        r'<td class="([\w-]+)">([^<]*)</td>', page)}
    assert figures["n"] == "6"
    assert figures["centre"] == f"{centre:.6g}" and figures["mr-bar"] == f"{mr_bar:.6g}"
    assert figures["unpl"] == f"{centre + 2.660 * mr_bar:.6g}"
    assert figures["lnpl"] == f"{centre - 2.660 * mr_bar:.6g}"
    assert figures["mr-ucl"] == f"{3.267 * mr_bar:.6g}"
    assert (figures["lsl"], figures["usl"]) == ("0.09", "0.11")
    beyond = [i for i, v in enumerate(x) if abs(v - centre) > 2.660 * mr_bar]
    assert figures["flagged"] == str(len(beyond))
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg is not None
    for label in ("Individuals: system_gain", "Moving range", f"UNPL {centre + 2.660 * mr_bar:.4g}",
                  f"UCL {3.267 * mr_bar:.4g}", "USL 0.11", "LSL 0.09"):
        assert label in svg.group(0), label
    assert len(re.findall(r'<tr class="[^"]*"><td>\d+</td>', page)) == 6
    data = c.get("/api/fleet/control", params=params).json()
    assert data["state"] == "ok" and data["n"] == 6
    assert data["moving_ranges"] == pytest.approx(mr.tolist(), rel=1e-12)
    assert data["unpl"] == pytest.approx(centre + 2.660 * mr_bar, rel=1e-12)
    # no condition given: system_gain has one here, so it is chosen
    assert c.get("/api/fleet/control", params={"name": "system_gain"}).json()["n"] == 6
    one = c.get("/fleet/chart", params={**params, "since": "2026-11-21T09:10:00+00:00"})
    assert one.status_code == 200
    assert "No chart: one point: no moving range, so no limits" in one.text
    assert "<svg" not in one.text


def test_run_detail_report_and_signoff(db: str, tmp_path: Path) -> None:
    c = client(db, tmp_path)
    page = c.get("/fleet/runs/r5").text
    assert re.search(r'id="outcome">FAIL<', page)
    facts = dict(re.findall(r"<th>(\w+)</th><td>([^<]*)", page))
    assert (facts["Station"], facts["Product"], facts["Operator"], facts["Attempt"]) == \
        ("sim-1", "cam-a", "ana", "1")
    assert facts["DUT"].startswith("U4") and facts["Started"] == RUNS[4][4]
    measurements = re.search(r'<table id="measurements">(.*?)</table>', page, re.S)
    assert measurements is not None
    gain = row(measurements.group(1), "system_gain")
    assert gain[1:] == ["system_gain", "gain_db=0, wavelength_nm=525", "0.115", "DN/e-",
                        "EMVA-K-1", "0.09", "0.11", "FAIL", gain[-1]]
    noise = row(measurements.group(1), "read_noise")
    assert noise[3:9] == ["2.1 ± 0.05", "e-", "EMVA-RN-1", "—", "4", "PASS"]
    assert row(measurements.group(1), "hot_pixels")[8] == "PASS"
    assert row(page, "out/evidence/r5/cs-flat")[1] == "2"
    assert row(page, "out/evidence/r5/cs-dark")[1] == "1"
    assert 'id="no-report"' in page
    assert c.get("/fleet/runs/r5/report").status_code == 404
    report = tmp_path / "report" / "r5" / "index.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>allure r5</html>")
    assert 'id="report" href="/fleet/runs/r5/report"' in c.get("/fleet/runs/r5").text
    assert c.get("/fleet/runs/r5/report").text == "<html>allure r5</html>"
    # the make-qualify layout: one report, its results naming the run
    (tmp_path / "report" / "index.html").write_text("<html>allure last</html>")
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "environment.properties").write_text("station=sim-1\nrun=r6\n")
    assert c.get("/fleet/runs/r6/report").text == "<html>allure last</html>"
    assert c.get("/fleet/runs/r4/report").status_code == 404

    signoff = c.get("/fleet/runs/r6/signoff")
    assert signoff.status_code == 200
    assert "<title>Sign-off cam-a U5 (r6)</title>" in signoff.text
    refused = c.get("/fleet/runs/r5/signoff")
    assert refused.status_code == 409 and "r5 is FAIL, not PASS or MARGINAL" in refused.text
    shown = c.get("/fleet/runs/r5/signoff", params={"allow_incomplete": "true"})
    assert shown.status_code == 200 and "(r5)</title>" in shown.text
    assert c.get("/fleet/runs/nope/signoff").status_code == 404


@pytest.mark.parametrize(("url", "status", "text"), [
    ("/fleet?since=yesterday", 422, "<b>since</b>: &#39;yesterday&#39; is not a date; allowed: "
                                    "YYYY-MM-DD"),
    ("/fleet/chart?name=system_gain&condition=gain", 422, "<b>condition</b>: &#39;gain&#39; "
                                                          "is not a condition"),
    ("/fleet/chart?condition=%7B%7D", 422, "<b>name</b>: missing"),
    ("/fleet/runs/.hidden", 422, "<b>run_id</b>: &#39;.hidden&#39; cannot be used"),
    ("/fleet/runs/r%20x", 422, "<b>run_id</b>:"),
    ("/fleet/runs/nope", 404, "no run &#39;nope&#39; in the records"),
    ("/fleet?product=" + "x" * 200, 422, "<b>product</b>:"),
])
def test_bad_query_values_name_the_field(db: str, tmp_path: Path, url: str, status: int,
                                         text: str) -> None:
    r = client(db, tmp_path).get(url)
    assert r.status_code == status and text in r.text


def test_runs_are_paged_newest_first(db: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run can be reached: RUNS_SHOWN a page (here 4 of the 6), newest first, with links
    to the older and newer pages that keep the selection; the JSON twin lists the same."""
    import harness.app.fleet as fleet

    monkeypatch.setattr(fleet, "RUNS_SHOWN", 4)
    c = client(db, tmp_path)
    newest = sorted(RUNS, key=lambda r: r[4], reverse=True)
    first = c.get("/fleet").text
    links = re.findall(r'class="run-link" href="/fleet/runs/(\w+)"', first)
    assert links == [r[0] for r in newest[:4]]
    assert "1–4 of 6 (page 1 of 2)" in first and 'id="runs-newer"' not in first
    older = re.search(r'id="runs-older" href="([^"]+)"', first)
    assert older and html.unescape(older.group(1)) == "/fleet?page=2#runs"
    second = c.get("/fleet", params={"page": "2"}).text
    assert re.findall(r'class="run-link" href="/fleet/runs/(\w+)"', second) == \
        [r[0] for r in newest[4:]]
    assert "5–6 of 6 (page 2 of 2)" in second and 'id="runs-older"' not in second
    assert 'id="runs-newer" href="/fleet?page=1#runs"' in second
    one = c.get("/fleet", params={"station": "sim-2"}).text  # 2 runs: one page, no links
    assert "1–2 of 2<" in one and "runs-older" not in one and "runs-newer" not in one
    sel = c.get("/fleet", params={"station": "sim-1", "page": "2"}).text  # 4 runs, 1 page
    assert "page 2 is past the last one (1); allowed: 1 to 1" in html.unescape(sel)
    api = c.get("/api/fleet/runs", params={"page": "2"}).json()
    assert [r["run_id"] for r in api["runs"]] == [r[0] for r in newest[4:]]
    assert (api["runs_total"], api["page"], api["pages"], api["older"]) == (6, 2, 2, "")
    for bad in ("0", "two", "-1", "1.5"):
        r = c.get("/api/fleet/runs", params={"page": bad})
        assert r.status_code == 422 and r.json()["field"] == "page", bad
        assert "allowed: a whole number from 1" in r.json()["error"]
    assert c.get("/fleet", params={"page": "3"}).status_code == 422


def test_bad_values_in_the_api(db: str, tmp_path: Path) -> None:
    c = client(db, tmp_path)
    r = c.get("/api/fleet/yield", params={"since": "soon"})
    assert r.status_code == 422 and r.json()["field"] == "since"
    assert "allowed: YYYY-MM-DD" in r.json()["error"]
    r = c.get("/api/fleet/control", params={"name": "system_gain", "condition": "[1]"})
    assert r.status_code == 422 and r.json()["field"] == "condition"
    assert c.get("/api/fleet/runs/nope").status_code == 404


def test_empty_missing_and_no_records(tmp_path: Path) -> None:
    missing = client(str(tmp_path / "none.sqlite"), tmp_path).get("/fleet")
    assert missing.status_code == 200 and 'id="empty"' in missing.text
    assert "does not exist yet" in missing.text
    assert not (tmp_path / "none.sqlite").exists()  # the page never creates a database
    RecordStore(tmp_path / "empty.sqlite").close()
    c = client(str(tmp_path / "empty.sqlite"), tmp_path)
    empty = c.get("/fleet")
    assert empty.status_code == 200 and "No runs to show: no runs in the records." in empty.text
    assert c.get("/api/fleet/yield").json() == {"empty": True,
                                                "note": "no runs in the records"}
    chart = c.get("/fleet/chart", params={"name": "system_gain"})
    assert chart.status_code == 200 and "No chart: no points" in chart.text
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    junk = client(str(tmp_path / "junk.sqlite"), tmp_path).get("/fleet")
    assert junk.status_code == 503 and "not a usable records database" in junk.text
    none = client(None, tmp_path)
    for url in ("/fleet", "/fleet/runs/r1", "/api/fleet/cpk"):
        r = none.get(url)
        assert r.status_code == 503 and "started without --records" in r.text


@pytest.fixture(scope="module")
def pg_base() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def test_the_same_page_over_postgresql(pg_base: str, tmp_path: Path) -> None:
    url = create_database(pg_base)
    fill(url)
    c = client(url, tmp_path)
    page = c.get("/fleet").text
    want = hand_figures()
    assert row(section(page, "yield"), "all stations")[2:] == ["5", "3", "60.0 %", "4",
                                                               "80.0 %"]
    cpk = row(section(page, "cpk"), "EMVA-K-1")
    assert cpk[7] == str(want.n) and cpk[11] == f"{want.cpk:.3g}"
    chart = c.get(re.findall(r'class="chart-link" href="([^"]+)"', page)[
        [r[1] for r in re.findall(r"<tr><td>(cam-a)</td><td>([\w-]+)</td>",
                                  section(page, "cpk"))].index("EMVA-K-1")].replace("&amp;", "&"))
    assert chart.status_code == 200 and "<svg" in chart.text
    assert re.search(r'<td class="n">6</td>', chart.text)
    assert c.get("/fleet/runs/r4").status_code == 200

