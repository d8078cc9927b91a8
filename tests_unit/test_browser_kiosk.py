"""The station app in a real browser (issue 21): ``harness serve`` on 127.0.0.1, real pytest
children on the simulated station, the Debian Chromium driven by Playwright.

(a) a run started from the kiosk (label prompt answered in its dialog) shows PASS; (b) a faulty
module (high supply current), its serial left empty, shows FAIL with its failed limits, their
figures exactly as journaled, and the serial read from the camera; (c) a page reloaded mid-run
shows the run at once, and Abort mid-test shows ABORTED, the journal ends ABORTED with no
safe-state failure and the simulators' final state is safe (light off, supply off, dark chart,
focus parked); (d) the fleet page lists the runs just made and links the PASS run's Allure
report, built after its verdict; (e) a four-slot station (stations/sim-4up.yaml, a stand-in
child writing a journal per slot) shows a lane per slot and its MARGINAL limit apart from the
FAIL one. Screenshots go to ``$HARNESS_SCREENSHOTS`` if set, else into the test's temporary
folder.

Kept fast: three servers (golden with label confirmation; high-current; golden with the
camera's clock slowed so a test lasts long enough to abort) start together, each run is the
power and interface suites on a 640 x 480 module with a spec of exactly the limits they judge.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.evidence.journal import read_journal

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
TESTS = ("tests_hil/test_power.py", "tests_hil/test_interface.py")
LIMIT_IDS = ("PWR-IDLE", "PWR-STREAM", "IF-EXPOSURE-MIN", "IF-EXPOSURE-MAX", "IF-GAIN-MAX",
             "IF-FRAME-RATE", "IF-DROPPED", "IF-INCOMPLETE")
GOLDEN_SERIAL = "SIMVGA-G0001"
FAULTY_SERIAL = "SIM12M-F0007"  # fixtures/modules/high-current.yaml
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


def write_spec(folder: Path) -> Path:
    """The cm12 spec cut to the limits the power and interface suites judge (a PASS needs
    every limit of the spec judged)."""
    full = yaml.safe_load((ROOT / "tests_hil" / "limits" / "cm12.yaml").read_text())
    spec = {"product": full["product"], "version": full["version"],
            "description": "cm12: power and interface limits only (station app tests)",
            "conditions": {k: full["conditions"][k] for k in ("light", "power", "interface")},
            "limits": [lim for lim in full["limits"] if lim["id"] in LIMIT_IDS]}
    assert [lim["id"] for lim in spec["limits"]] == list(LIMIT_IDS)
    path = folder / "cm12-power-interface.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_station(folder: Path, name: str, module: str, base: Path = ROOT / "stations" /
                  "sim-small.yaml", **camera: Any) -> Path:
    """A copy of ``base`` with its own id, lock folder and camera module."""
    data = yaml.safe_load(base.read_text())
    data["id"] = f"kiosk-{name}"
    data["lock_dir"] = str(folder / "locks")
    data["camera"] = {"driver": "sim", "module": str(ROOT / "fixtures" / "modules" / module),
                      "seed": 1, **camera}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cal = base.with_name(base.stem + ".light-cal.json")
    path.with_name(f"{name}.light-cal.json").write_bytes(cal.read_bytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[str]
    evidence: Path
    state_file: Path

    def api(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=10).json()


def start_server(folder: Path, name: str, station: Path, spec: Path, records: Path,
                 tests: tuple[str, ...] = TESTS, extra: tuple[str, ...] = ()) -> Server:
    port = free_port()
    evidence = folder / "evidence"
    state_file = folder / f"{name}-simulators.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["HARNESS_SIM_STATE_FILE"] = str(state_file)
    harness = Path(sys.executable).with_name("harness")
    argv = [str(harness), "serve", f"--station={station}", f"--limits={spec}",
            f"--records={records}", f"--port={port}", f"--evidence-dir={evidence}",
            f"--rootdir={ROOT}", *[f"--tests={t}" for t in tests], *extra]
    log = (folder / f"{name}-server.log").open("w")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while True:
        assert proc.poll() is None, (folder / f"{name}-server.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/api/history", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{name}: harness serve did not come up"
        time.sleep(0.1)
    return Server(name, url, proc, evidence, state_file)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("HARNESS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("kiosk")
    spec = write_spec(folder)
    records = folder / "records.sqlite"
    golden = write_station(folder, "golden", "small.yaml")
    data = yaml.safe_load(golden.read_text())
    data["settings"]["confirm_label"] = True
    data["settings"]["label_timeout_s"] = 120
    golden.write_text(yaml.safe_dump(data, sort_keys=False))
    faulty = write_station(folder, "faulty", "high-current.yaml", sensor_size=[640, 480])
    slow = write_station(folder, "slow", "small.yaml", time_scale=0.2)
    stations = {"golden": golden, "faulty": faulty, "slow": slow}
    for name in stations:
        (folder / name).mkdir()
    with ThreadPoolExecutor(3) as pool:  # only the PASS run builds its Allure report
        started = dict(zip(stations, pool.map(
            lambda kv: start_server(folder / kv[0], kv[0], kv[1], spec, records,
                                    extra=() if kv[0] == "golden" else ("--no-report",)),
            stations.items()), strict=True))
    try:
        yield started
    finally:
        for server in started.values():
            stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()


def start_from_kiosk(page: Any, server: Server, operator: str = "Night Shift") -> None:
    page.goto(server.url + "/")
    page.fill("#operator", operator)
    page.click("#start")


def last_run(server: Server) -> dict[str, Any]:
    current = server.api("/api/runs")["current"]
    assert current is not None
    return server.api(f"/api/runs/{current}")


def test_a_run_from_the_kiosk_passes(servers: dict[str, Server], page: Any, shots: Path
                                     ) -> None:
    server = servers["golden"]
    start_from_kiosk(page, server)
    page.wait_for_selector("dialog#prompt[open]")
    assert int(page.text_content("#prompt-countdown") or "0") > 100
    assert page.text_content(".lane .serial") == ""  # the label is scanned, not copied
    page.screenshot(path=str(shots / "kiosk-prompt.png"))
    page.fill("#prompt-answer", GOLDEN_SERIAL)
    page.press("#prompt-answer", "Enter")
    page.wait_for_selector("#verdict.PASS", state="visible")
    assert page.text_content("#verdict-outcome") == "PASS"
    assert GOLDEN_SERIAL in (page.text_content("#verdict-serial") or "")
    page.screenshot(path=str(shots / "kiosk-pass.png"))
    run = last_run(server)
    assert run["outcome"] == "PASS" and run["failed_limits"] == []
    assert len(run["tests"]) == 4 and all(t["outcome"] == "PASS" for t in run["tests"])
    assert page.locator("#verdict-limits tbody tr").count() == 0
    # the thumbnail of the last captured frame was shown, and the history lists the run
    assert page.locator(".lane .thumb").get_attribute("src").startswith(
        f"/api/runs/{run['run_id']}/thumbnail.png")
    page.wait_for_selector(f"#history td:text('{GOLDEN_SERIAL}')")
    # held until the next scan: a scan (typing + Enter) clears it
    page.fill("#next-serial", "")
    page.press("#next-serial", "Enter")
    assert page.locator("#verdict").is_hidden()


def test_a_faulty_module_fails_with_its_limits(servers: dict[str, Server], page: Any,
                                               shots: Path) -> None:
    server = servers["faulty"]
    start_from_kiosk(page, server)  # the serial left empty: read from the camera
    page.wait_for_selector("#verdict.FAIL", state="visible")
    page.screenshot(path=str(shots / "kiosk-fail.png"))
    run = last_run(server)
    assert run["outcome"] == "FAIL" and run["dut"] is None
    assert run["slots"][0]["serial"] == FAULTY_SERIAL
    assert page.text_content("#verdict-serial") == FAULTY_SERIAL
    assert page.locator("#verdict-marginal").is_hidden() and run["marginal_limits"] == []
    failed = {f["limit_id"]: f for f in run["failed_limits"]}
    assert set(failed) == {"PWR-IDLE", "PWR-STREAM"}
    rows = page.locator("#verdict-limits tbody tr")
    shown = {rows.nth(i).locator("td").nth(0).text_content(): rows.nth(i).inner_text()
             for i in range(rows.count())}
    assert set(shown) == set(failed)
    for limit_id, f in failed.items():  # the figures as the journal has them
        assert f["figure"] in shown[limit_id] and f["value"] in shown[limit_id]
        assert f["limit"] in shown[limit_id] and "FAIL" in shown[limit_id]
    journal = server.evidence / run["record_run_ids"][0] / "journal.jsonl"
    values = {e["measurement"]["limit_id"]: e["measurement"]["value"]
              for e in read_journal(journal).events if e["type"] == "measurement"}
    assert float(failed["PWR-IDLE"]["value"]) == pytest.approx(values["PWR-IDLE"], rel=1e-3)


def test_abort_mid_run_is_aborted_and_leaves_the_station_safe(servers: dict[str, Server],
                                                              page: Any, shots: Path) -> None:
    server = servers["slow"]
    start_from_kiosk(page, server)
    page.wait_for_selector(".lane .step:text('Starting: opening the station')", timeout=5000)
    page.wait_for_selector("li.running[data-test-id*='test_frame_rate']")
    page.reload()  # a reload mid-run shows the run at once (the stream's first event)
    page.wait_for_selector("li.running[data-test-id*='test_frame_rate']", timeout=3000)
    assert page.locator("#abort").is_enabled() and page.locator("#start").is_disabled()
    assert page.locator(".lane li").count() >= 3
    page.click("#abort")
    page.wait_for_selector("#verdict.ABORTED", state="visible")
    page.screenshot(path=str(shots / "kiosk-aborted.png"))
    run = last_run(server)
    assert run["outcome"] == "ABORTED"
    aborted = [t for t in run["tests"] if t["outcome"] == "ABORTED"]
    assert [t["test_id"].rsplit("::", 1)[1] for t in aborted] == \
        ["test_frame_rate_and_dropped_frames"]
    events = read_journal(server.evidence / run["record_run_ids"][0] / "journal.jsonl").events
    assert events[-1]["type"] == "run_end" and events[-1]["outcome"] == "ABORTED"
    assert not [e for e in events if e["type"] == "error" and "safe state" in e["message"]]
    state = json.loads(server.state_file.read_text())  # the simulators' own final state
    assert not state["light"]["on"]
    assert not any(ch["on"] for ch in state["psu"]["channels"])
    assert state["chart"]["current"] == "dark"
    assert abs(state["focus"]["position"]) < 0.5 and not state["focus"]["moving"]


def test_the_fleet_page_lists_the_runs_just_made(servers: dict[str, Server], page: Any,
                                                 shots: Path) -> None:
    made = {name: last_run(s)["record_run_ids"][0] for name, s in servers.items()
            if s.api("/api/runs")["current"] is not None}
    assert set(made) == {"golden", "faulty", "slow"}, "run the kiosk tests first"
    page.goto(servers["golden"].url + "/fleet")
    page.screenshot(path=str(shots / "fleet.png"), full_page=True)
    links = page.locator("a.run-link").all_text_contents()
    for run_id in made.values():
        assert run_id in links
    # the PASS run's Allure report, built after its verdict into the server's report folder
    golden = servers["golden"]
    deadline = time.monotonic() + 60
    while (slot := last_run(golden)["slots"][0])["report"] in ("", "building"):
        assert time.monotonic() < deadline, slot
        time.sleep(0.2)
    assert slot["report"] == "ready", slot
    assert (golden.evidence.parent / "report" / made["golden"] / "index.html").is_file()
    page.goto(f"{golden.url}/fleet/runs/{made['golden']}")
    page.screenshot(path=str(shots / "fleet-run.png"), full_page=True)
    href = page.get_attribute("a#report", "href")
    assert href == f"/fleet/runs/{made['golden']}/report"
    report = httpx.get(golden.url + href, timeout=10)
    assert report.status_code == 200 and "allure" in report.text[:5000].lower()


@pytest.fixture
def four_up(tmp_path: Path) -> Iterator[str]:
    """The app of stations/sim-4up.yaml served in this process (uvicorn in a thread), its
    runs made by the stand-in child (tests_unit/app_fake_child.py, mode slots4)."""
    import threading

    import uvicorn

    from harness.app.config import AppConfig, load_config
    from harness.app.server import create_app

    fake = Path(__file__).with_name("app_fake_child.py")

    def argv(config: AppConfig, dut: str | None, operator: str) -> list[str]:
        return [sys.executable, str(fake), str(config.evidence_dir), config.station_id,
                "slots4", operator, dut or ""]

    config = load_config(station=ROOT / "stations" / "sim-4up.yaml",
                         limits=ROOT / "tests_hil" / "limits" / "cm12.yaml",
                         evidence_dir=tmp_path / "evidence", rootdir=ROOT,
                         port=free_port(), build_reports=False)
    server = uvicorn.Server(uvicorn.Config(create_app(config, argv_builder=argv),
                                           host="127.0.0.1", port=config.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_four_slot_station_shows_a_lane_per_slot(four_up: str, page: Any, shots: Path
                                                   ) -> None:
    page.goto(four_up + "/")
    assert page.locator("#serial").count() == 0  # each slot's serial comes from its camera
    assert [page.get_attribute(f".lane >> nth={i}", "data-slot") for i in range(4)] == \
        ["A", "B", "C", "D"]
    page.fill("#operator", "Night Shift")
    page.click("#start")
    page.wait_for_selector("#verdict.FAIL", state="visible")
    page.screenshot(path=str(shots / "kiosk-4up-verdict.png"))
    failed = page.locator("#verdict-limits tbody tr")
    marginal = page.locator("#verdict-marginal tbody tr")
    assert [failed.nth(i).inner_text().split("\t")[:2] for i in range(failed.count())] == \
        [["D", "PWR-IDLE"]]
    assert [marginal.nth(i).inner_text().split("\t")[:2] for i in range(marginal.count())] \
        == [["C", "PWR-IDLE"]]
    assert "0.22" in marginal.nth(0).inner_text() and "MARGINAL" in marginal.nth(0).inner_text()
    assert page.locator("#verdict-serial .slot-verdict").all_inner_texts() == [
        "A · CAM-0001A · PASS", "B · CAM-0001B · PASS", "C · CAM-0001C · MARGINAL",
        "D · CAM-0001D · FAIL"]  # each DUT's own verdict, to bin it
    page.keyboard.press("Enter")  # Next has the focus (no serial field): the lanes show
    assert page.locator("#verdict").is_hidden()
    outcomes = {page.get_attribute(f".lane >> nth={i}", "data-slot"):
                page.text_content(f".lane >> nth={i} >> .lane-outcome") for i in range(4)}
    assert outcomes == {"A": "PASS", "B": "PASS", "C": "MARGINAL", "D": "FAIL"}
    serials = [page.text_content(f".lane >> nth={i} >> .serial") for i in range(4)]
    assert serials == ["CAM-0001A", "CAM-0001B", "CAM-0001C", "CAM-0001D"]
    for i in range(4):  # each lane's thumbnail of its own last frame
        page.wait_for_selector(f".lane >> nth={i} >> img.thumb:not([hidden])")
        assert f"slot={'ABCD'[i]}" in (page.get_attribute(f".lane >> nth={i} >> img.thumb",
                                                           "src") or "")
    page.screenshot(path=str(shots / "kiosk-4up-lanes.png"), full_page=True)
