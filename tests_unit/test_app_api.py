"""The station app's JSON API over a fake child (tests_unit/app_fake_child.py) that writes a
journal the way the plugin does: start -> 202, 409 while running, the run's state and
verdict from its journal, abort, the label prompt, history rebuilt after a restart, the
thumbnail, the event stream."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harness.app.config import AppConfig
from harness.app.events import EventBus, sse_stream
from harness.app.server import create_app

FAKE = Path(__file__).with_name("app_fake_child.py")
JSON = {"Content-Type": "application/json"}


def make_config(tmp_path: Path, slots: tuple[str, ...] = (), **kw: Any) -> AppConfig:
    return AppConfig(station=tmp_path / "station.yaml", limits=tmp_path / "limits.yaml",
                     station_id="fake-st", slots=slots, evidence_dir=tmp_path / "evidence",
                     rootdir=tmp_path, abort_timeout_s=kw.pop("abort_timeout_s", 5.0),
                     settle_s=2.0, keepalive_s=0.2, reports=tmp_path / "report",
                     allure_results=tmp_path / "allure-results",
                     build_reports=kw.pop("build_reports", False), **kw)


def fake(mode: str) -> Callable[[AppConfig, str | None, str], list[str]]:
    def argv(config: AppConfig, dut: str | None, operator: str) -> list[str]:
        return [sys.executable, str(FAKE), str(config.evidence_dir), config.station_id, mode,
                operator, dut or ""]
    return argv


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    made: list[TestClient] = []

    def build(mode: str, slots: tuple[str, ...] = (), **kw: Any) -> TestClient:
        app = create_app(make_config(tmp_path, slots, **kw), argv_builder=fake(mode))
        client = TestClient(app)
        client.__enter__()
        made.append(client)
        return client

    yield build
    for client in made:
        client.__exit__(None, None, None)


def wait_done(client: TestClient, run_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/runs/{run_id}").json()
        if body["state"] == "done":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def wait_for(client: TestClient, run_id: str, predicate: Callable[[dict[str, Any]], bool],
             timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/runs/{run_id}").json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_passing_run_reports_its_tests_and_pass(client_for) -> None:
    client = client_for("pass")
    res = client.post("/api/runs", json={"dut": "CAM-0001", "operator": "Ana"})
    assert res.status_code == 202
    run_id = res.json()["run_id"]
    body = wait_done(client, run_id)
    assert body["outcome"] == "PASS" and body["state"] == "done"
    assert [t["test_id"] for t in body["tests"]] == ["tests_hil/test_fake.py::test_current"]
    assert body["tests"][0]["outcome"] == "PASS"
    assert body["failed_limits"] == []
    assert body["slots"][0]["serial"] == "CAM-0001"
    record_id = body["record_run_ids"][0]
    assert (client.app.state.config.evidence_dir / record_id / "journal.jsonl").is_file()
    # the same run by its record's id, and in the history
    assert client.get(f"/api/runs/{record_id}").json()["run_id"] == run_id
    history = client.get("/api/history").json()["runs"]
    assert history[0]["run_id"] == record_id and history[0]["outcome"] == "PASS"
    assert history[0]["operator"] == "Ana"


def test_a_failing_run_lists_the_failed_limit(client_for) -> None:
    client = client_for("fail")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    body = wait_done(client, run_id)
    assert body["outcome"] == "FAIL"
    (limit,) = body["failed_limits"]
    assert limit["limit_id"] == "PWR-IDLE" and limit["figure"] == "module_current_idle_a"
    assert limit["value"] == "0.4" and limit["limit"] == "[..0.25]" and limit["unit"] == "A"
    assert limit["outcome"] == "FAIL"


def test_second_start_while_running_is_409_naming_the_run(client_for) -> None:
    client = client_for("hang")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    res = client.post("/api/runs", json={"operator": "Bob"})
    assert res.status_code == 409
    assert res.json()["running"] == run_id and run_id in res.json()["detail"]
    wait_for(client, run_id, lambda b: bool(b["tests"]))
    assert client.post(f"/api/runs/{run_id}/abort", json={}).status_code == 202
    body = wait_done(client, run_id)
    assert body["outcome"] == "ABORTED"
    assert body["tests"][0]["outcome"] == "ABORTED"
    # ended: neither abort nor a prompt answer is accepted any more
    assert client.post(f"/api/runs/{run_id}/abort", json={}).status_code == 409
    assert client.post("/api/runs/nope/abort", json={}).status_code == 404


def test_abort_escalates_to_sigkill(client_for, tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "print('ignoring SIGTERM', flush=True)\ntime.sleep(60)\n")
    app = create_app(make_config(tmp_path, abort_timeout_s=0.5),
                     argv_builder=lambda c, d, o: [sys.executable, str(script)])
    with TestClient(app) as client:
        run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
        time.sleep(0.5)  # let it install its handler
        client.post(f"/api/runs/{run_id}/abort", json={})
        body = wait_done(client, run_id)
    assert body["exit_code"] == -9
    assert body["outcome"] == "ABORTED" and "did not start" in body["reason"]


def test_a_child_that_fails_before_its_journal_is_an_error_with_its_last_line(client_for
                                                                              ) -> None:
    client = client_for("crash")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    body = wait_done(client, run_id)
    assert body["outcome"] == "ERROR" and body["exit_code"] == 3
    assert "the station cannot be opened (fake)" in body["reason"]


def test_the_label_prompt_is_shown_and_answered(client_for) -> None:
    client = client_for("prompt")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    body = wait_for(client, run_id, lambda b: b["prompt"] is not None)
    assert body["prompt"]["kind"] == "label" and body["prompt"]["timeout_s"] == 30.0
    assert 0 < body["prompt"]["remaining_s"] <= 30.0
    bad = client.post(f"/api/runs/{run_id}/prompt", json={"answer": "x; rm -rf /"})
    assert bad.status_code == 422
    assert client.post(f"/api/runs/{run_id}/prompt",
                       json={"answer": "CAM-0001"}).status_code == 202
    body = wait_done(client, run_id)
    assert body["outcome"] == "PASS" and body["prompt"] is None


def test_a_wrong_label_is_an_error(client_for) -> None:
    client = client_for("prompt")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    wait_for(client, run_id, lambda b: b["prompt"] is not None)
    client.post(f"/api/runs/{run_id}/prompt", json={"answer": "CAM-9999"})
    body = wait_done(client, run_id)
    assert body["outcome"] == "ERROR" and "label mismatch" in body["reason"]


def test_slots_each_get_a_lane_and_the_worst_outcome_wins(client_for) -> None:
    client = client_for("slots", slots=("A", "B"))
    assert client.post("/api/runs", json={"dut": "X1", "operator": "Ana"}).status_code == 422
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    body = wait_done(client, run_id)
    assert [(s["slot"], s["outcome"]) for s in body["slots"]] == [("A", "PASS"), ("B", "FAIL")]
    assert body["outcome"] == "FAIL"
    assert [(f["slot"], f["limit_id"]) for f in body["failed_limits"]] == [("B", "PWR-IDLE")]
    page = client.get("/").text
    assert 'data-slot="A"' in page and 'data-slot="B"' in page
    png = client.get(f"/api/runs/{run_id}/thumbnail.png", params={"slot": "B"})
    assert png.status_code == 200


def test_history_survives_a_restart_and_lists_only_this_station(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with TestClient(create_app(config, argv_builder=fake("fail"))) as client:
        run_id = client.post("/api/runs", json={"dut": "SN-1", "operator": "Ana"}).json()["run_id"]
        first = wait_done(client, run_id)
    other = make_config(tmp_path)
    other = AppConfig(**{**other.__dict__, "station_id": "another-st"})
    with TestClient(create_app(other, argv_builder=fake("pass"))) as client:
        wait_done(client, client.post("/api/runs", json={"operator": "Bob"}).json()["run_id"])
    with TestClient(create_app(config, argv_builder=fake("pass"))) as client:  # restarted
        rows = client.get("/api/history").json()["runs"]
        assert [(r["run_id"], r["serial"], r["outcome"]) for r in rows] == \
            [(first["record_run_ids"][0], "SN-1", "FAIL")]
        past = client.get(f"/api/runs/{rows[0]['run_id']}").json()
        assert past["outcome"] == "FAIL" and past["failed_limits"][0]["limit_id"] == "PWR-IDLE"
        assert client.get("/api/runs/..%2F..%2Fetc").status_code == 404
        assert client.get("/api/runs/nope").status_code == 404


def test_thumbnail_is_a_small_8_bit_png_of_the_last_frame(client_for) -> None:
    import cv2
    import numpy as np

    client = client_for("pass")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    wait_done(client, run_id)
    res = client.get(f"/api/runs/{run_id}/thumbnail.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.shape == (240, 320)
    assert image.min() < 20 and image.max() > 235  # stretched to 8 bits


def test_a_frame_path_outside_the_evidence_folder_is_not_served(client_for) -> None:
    client = client_for("pass")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    wait_done(client, run_id)
    manager = client.app.state.manager
    view = next(iter(manager.runs[run_id].views.values()))
    (real,) = view.frames
    view.frames.clear()
    view.frames.append(str(Path("/etc/passwd")))
    assert client.get(f"/api/runs/{run_id}/thumbnail.png").status_code == 404
    view.frames[0] = str(manager.config.evidence_dir / ".." / "station.yaml")
    assert client.get(f"/api/runs/{run_id}/thumbnail.png").status_code == 404
    # a newer capture whose file is not on disk yet: the last frame that is stays shown
    view.frames[0] = real
    view.frames.append(str(Path(real).with_name("f" * 64 + ".tiff")))
    assert client.get(f"/api/runs/{run_id}/thumbnail.png").status_code == 200


def test_the_event_stream_carries_the_run_and_keep_alives(tmp_path: Path) -> None:
    bus = EventBus()

    async def collect() -> list[str]:
        chunks: list[str] = []
        stream = sse_stream(bus, 0.05, first=lambda: {"type": "state", "n": bus.subscribers})
        chunks.append(await anext(stream))
        chunks.append(await anext(stream))
        while bus.subscribers == 0:
            await asyncio.sleep(0.01)
        chunks.append(await anext(stream))  # nothing published yet: a keep-alive
        bus.publish({"type": "test_started", "run_id": "r1", "test_id": "t"})
        chunks.append(await anext(stream))
        bus.close()
        chunks.extend([c async for c in stream])
        return chunks

    chunks = asyncio.run(collect())
    assert chunks[0] == "retry: 2000\n\n"
    assert chunks[1] == 'id: \ndata: {"type":"state","n":1}\n\n'  # made once subscribed
    assert chunks[2] == ": keep-alive\n\n"
    assert chunks[3] == 'id: 1\ndata: {"seq":1,"type":"test_started","run_id":"r1","test_id":"t"}\n\n'
    assert len(chunks) == 4 and bus.subscribers == 0


def test_the_kiosk_page_and_its_assets_are_served(client_for) -> None:
    client = client_for("pass")
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="serial"' in page.text and "autofocus" in page.text
    assert 'id="start"' in page.text and 'id="abort"' in page.text
    assert "kiosk.js" in page.text and "kiosk.css" in page.text
    assert client.get("/static/kiosk.js").status_code == 200
    assert "EventSource" in client.get("/static/kiosk.js").text
    assert client.get("/api/runs").json() == {"station_id": "fake-st", "slots": [],
                                              "current": None, "runs": []}


def test_a_page_that_connects_mid_run_gets_the_run_at_once(client_for) -> None:
    """The first event of ``/api/events`` is the current run's state (a reload mid-run shows
    its progress without waiting for the next journal event)."""
    import json

    client = client_for("hang")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    wait_for(client, run_id, lambda b: bool(b["tests"]) and b["slots"][0]["captures"] == 1)
    with client.stream("GET", "/api/events") as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        data = next(line for line in res.iter_lines() if line.startswith("data: "))
    first = json.loads(data.removeprefix("data: "))
    assert first["type"] == "state" and first["current"] == run_id
    run = first["run"]
    assert run["run_id"] == run_id and run["state"] == "running" and run["phase"] == "testing"
    assert [t["test_id"] for t in run["tests"]] == ["tests_hil/test_fake.py::test_current"]
    assert run["slots"][0]["captures"] == 1 and run["slots"][0]["serial"] == "CAM-0001"
    client.post(f"/api/runs/{run_id}/abort", json={})
    wait_done(client, run_id)


def test_marginal_limits_are_listed_apart_from_failed_ones(client_for) -> None:
    client = client_for("marginal")
    run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
    body = wait_done(client, run_id)
    assert body["outcome"] == "FAIL"
    assert [(f["limit_id"], f["value"], f["outcome"]) for f in body["failed_limits"]] == \
        [("PWR-STREAM", "0.9", "FAIL")]
    assert [(f["limit_id"], f["value"], f["outcome"]) for f in body["marginal_limits"]] == \
        [("PWR-IDLE", "0.22", "MARGINAL")]
    past = client.get(f"/api/runs/{body['record_run_ids'][0]}").json()  # from the journal
    assert past["failed_limits"] == body["failed_limits"]
    assert past["marginal_limits"] == body["marginal_limits"]


def test_the_four_up_station_has_a_lane_per_slot(tmp_path: Path) -> None:
    """stations/sim-4up.yaml as ``harness serve`` loads it: four lanes, one journal each."""
    from harness.app.config import load_config

    root = Path(__file__).resolve().parents[1]
    loaded = load_config(station=root / "stations" / "sim-4up.yaml",
                         limits=root / "tests_hil" / "limits" / "cm12.yaml",
                         evidence_dir=tmp_path / "evidence", rootdir=root,
                         build_reports=False)
    assert loaded.slots == ("A", "B", "C", "D")
    config = AppConfig(**{**loaded.__dict__, "settle_s": 2.0})
    with TestClient(create_app(config, argv_builder=fake("slots4"))) as client:
        page = client.get("/").text
        assert [f'data-slot="{s}"' in page for s in "ABCD"] == [True] * 4
        assert 'id="serial"' not in page  # each slot's serial is read from its camera
        run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
        body = wait_done(client, run_id)
        assert [(s["slot"], s["serial"], s["outcome"]) for s in body["slots"]] == [
            ("A", "CAM-0001A", "PASS"), ("B", "CAM-0001B", "PASS"),
            ("C", "CAM-0001C", "MARGINAL"), ("D", "CAM-0001D", "FAIL")]
        assert body["outcome"] == "FAIL" and len(body["record_run_ids"]) == 4
        assert [(f["slot"], f["limit_id"]) for f in body["failed_limits"]] == [("D", "PWR-IDLE")]
        assert [(f["slot"], f["limit_id"]) for f in body["marginal_limits"]] == \
            [("C", "PWR-IDLE")]
        for slot in "ABCD":
            png = client.get(f"/api/runs/{run_id}/thumbnail.png", params={"slot": slot})
            assert png.status_code == 200
        history = client.get("/api/history").json()["runs"]
        assert sorted((r["slot"], r["outcome"]) for r in history) == [
            ("A", "PASS"), ("B", "PASS"), ("C", "MARGINAL"), ("D", "FAIL")]


def test_each_run_gets_its_allure_report_in_the_servers_folders(tmp_path: Path) -> None:
    """After the verdict the run's report is built (a stand-in for Allure's ``generate``
    writes the page) into ``<reports>/<run id>``, results into ``<allure_results>/<run id>``,
    served at ``/reports/<run id>``; nothing lands in the working folder's out/."""
    import json
    import os

    allure = tmp_path / "fake_allure.py"  # not allure.py: the cwd shadows the package
    allure.write_text(
        "import json, pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "results, out = pathlib.Path(args[1]), pathlib.Path(args[args.index('--output') + 1])\n"
        "out.mkdir(parents=True)\n"
        "n = len(list(results.glob('*-result.json')))\n"
        "(out / 'index.html').write_text(f'<html>fake allure: {n} results</html>')\n"
        "(out / 'summary.json').write_text(json.dumps({'stats': {'total': n}}))\n")
    env = {**os.environ, "HARNESS_ALLURE": f"{sys.executable} {allure}"}
    config = make_config(tmp_path, build_reports=True)
    before = set(Path.cwd().glob("out/report/*"))
    with TestClient(create_app(config, argv_builder=fake("pass"), env=env)) as client:
        run_id = client.post("/api/runs", json={"operator": "Ana"}).json()["run_id"]
        wait_done(client, run_id)
        body = wait_for(client, run_id, lambda b: b["slots"][0]["report"] not in
                        ("", "building"), timeout_s=30)
        record_id = body["record_run_ids"][0]
        assert body["slots"][0]["report"] == "ready", body["slots"][0]
        assert body["slots"][0]["report_url"] == f"/reports/{record_id}"
        page = client.get(f"/reports/{record_id}")
        assert page.status_code == 200 and page.text == "<html>fake allure: 1 results</html>"
        assert client.get("/reports/..%2Fevidence").status_code == 404
        assert client.get("/reports/nope").status_code == 404
        past = client.get(f"/api/runs/{record_id}").json()
        assert past["slots"][0]["report_url"] == f"/reports/{record_id}"
    results = list((tmp_path / "allure-results" / record_id).glob("*-result.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["status"] == "passed"
    assert (tmp_path / "report" / record_id / "index.html").is_file()
    assert set(Path.cwd().glob("out/report/*")) == before
