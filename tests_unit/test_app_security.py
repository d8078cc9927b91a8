"""The station app's safety: bad inputs 422, missing token 401, JSON only, foreign Origin 403,
loopback unless a token is given (harness serve refuses to start otherwise, exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from harness.app.config import is_loopback, load_config
from harness.app.server import create_app
from harness.cli import app as cli
from harness.errors import ConfigError
from tests_unit.test_app_api import fake, make_config, wait_done

ROOT = Path(__file__).resolve().parents[1]
STATION = ROOT / "stations" / "sim-small.yaml"
LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"
TOKEN = "s3cret-token-of-the-line-7"


@pytest.fixture
def client(tmp_path: Path):
    with TestClient(create_app(make_config(tmp_path), argv_builder=fake("pass"))) as c:
        yield c


@pytest.fixture
def guarded(tmp_path: Path):
    config = make_config(tmp_path, token=TOKEN)
    with TestClient(create_app(config, argv_builder=fake("pass"))) as c:
        yield c


@pytest.mark.parametrize("serial", ["../etc", "a/b", "a\\b", "x;rm", "$(id)", "`id`", "a b",
                                    "-rf", ".hidden", "a..b", "", "x" * 65, "é1", "a\nb"])
def test_a_serial_with_path_or_shell_characters_is_422(client, serial: str) -> None:
    res = client.post("/api/runs", json={"dut": serial, "operator": "Ana"})
    assert res.status_code == 422, serial
    assert client.app.state.manager.runs == {}  # nothing was started


@pytest.mark.parametrize("body", [{"operator": ""}, {"operator": "Ana;id"},
                                  {"operator": "<script>"}, {"dut": "SN1"},
                                  {"operator": "Ana", "extra": 1}, {"operator": "a" * 65}])
def test_a_bad_operator_or_body_is_422(client, body: dict) -> None:
    assert client.post("/api/runs", json=body).status_code == 422


def test_good_serials_and_names_are_accepted(client) -> None:
    res = client.post("/api/runs", json={"dut": "SIM_VGA-G0001.a", "operator": "Ana O'Neil-Silva"})
    assert res.status_code == 202
    wait_done(client, res.json()["run_id"])


def test_posts_must_be_json(client) -> None:
    res = client.post("/api/runs", content=b"dut=SN1&operator=Ana",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert res.status_code == 415
    res = client.post("/api/runs/x/abort", content=b"",
                      headers={"Content-Type": "text/plain"})
    assert res.status_code == 415


def test_a_foreign_origin_is_refused(client) -> None:
    for origin in ("http://evil.example", "null", "http://testserver.evil.example"):
        res = client.post("/api/runs", json={"operator": "Ana"}, headers={"Origin": origin})
        assert res.status_code == 403, origin
    assert client.app.state.manager.runs == {}
    res = client.post("/api/runs", json={"operator": "Ana"},
                      headers={"Origin": "http://testserver"})
    assert res.status_code == 202
    wait_done(client, res.json()["run_id"])


def test_with_a_token_every_post_needs_it(guarded) -> None:
    for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        res = guarded.post("/api/runs", json={"operator": "Ana"}, headers=header)
        assert res.status_code == 401, header
        bad = guarded.post("/api/runs", json={"dut": "../x", "operator": "Ana"}, headers=header)
        assert bad.status_code == 401  # the token is checked before the body
        assert guarded.post("/api/runs/x/abort", json={}, headers=header).status_code == 401
        assert guarded.post("/api/runs/x/prompt", json={"answer": "A1"},
                            headers=header).status_code == 401
    assert guarded.app.state.manager.runs == {}
    assert guarded.get("/api/history").status_code == 200  # reading needs no token
    res = guarded.post("/api/runs", json={"operator": "Ana"},
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 202
    wait_done(guarded, res.json()["run_id"])


def test_nothing_reaches_a_shell(tmp_path: Path) -> None:
    from harness.app.runs import pytest_argv

    config = make_config(tmp_path, records="out/records.sqlite")
    argv = pytest_argv(config, "SN-1", "Ana Silva")
    assert argv[:3] == [sys.executable, "-m", "pytest"]
    assert "--dut=SN-1" in argv and "--operator=Ana Silva" in argv  # one argv item each
    assert f"--evidence-dir={config.evidence_dir}" in argv
    assert "--records=out/records.sqlite" in argv


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.com"))


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--token-file"):
        load_config(station=STATION, limits=LIMITS, host="0.0.0.0", rootdir=ROOT)
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_config(station=STATION, limits=LIMITS, host="0.0.0.0", token_file=empty,
                    rootdir=ROOT)
    with pytest.raises(ConfigError, match="no such token file"):
        load_config(station=STATION, limits=LIMITS, host="0.0.0.0",
                    token_file=tmp_path / "missing", rootdir=ROOT)
    good = tmp_path / "good"
    good.write_text(TOKEN + "\n")
    config = load_config(station=STATION, limits=LIMITS, host="0.0.0.0", token_file=good,
                         rootdir=ROOT, evidence_dir=tmp_path / "ev")
    assert config.token == TOKEN and config.station_id == "sim-small-01"
    assert config.tests == (str(ROOT / "tests_hil"),)


@pytest.mark.parametrize(("args", "needle"), [
    (["--host", "0.0.0.0"], "--token-file"),
    (["--station", "nope.yaml"], "nope.yaml"),
    (["--limits", "stations/sim-small.yaml"], "limit"),
    (["--tests", "tests_hil/test_missing.py"], "--tests"),
    (["--port", "70000"], "--port"),
])
def test_serve_refuses_bad_input_with_one_line_and_exit_2(args: list[str], needle: str,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.chdir(ROOT)
    base = {"--station": str(STATION), "--limits": str(LIMITS),
            "--evidence-dir": str(tmp_path / "ev")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["serve", *[x for kv in base.items() for x in kv]]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and needle in lines[0], result.output


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "192.168.1.20"])
def test_a_loopback_server_refuses_requests_addressed_to_another_name(client, host: str
                                                                      ) -> None:
    """DNS rebinding: a page of evil.example re-points its name at 127.0.0.1; the browser then
    sends same-origin requests with ``Host: evil.example``, which a loopback server refuses."""
    assert client.get("/api/runs", headers={"host": host}).status_code == 400
    res = client.post("/api/runs", json={"operator": "Ana"},
                      headers={"host": host, "origin": f"http://{host}"})
    assert res.status_code == 400 and client.app.state.manager.runs == {}
    assert client.get("/api/runs", headers={"host": "127.0.0.1:8080"}).status_code == 200
    assert client.get("/api/runs", headers={"host": "localhost:8080"}).status_code == 200
