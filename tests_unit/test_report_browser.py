"""End to end: a real allure-pytest run → `harness report` → the single-file report opened in
headless Chromium (Debian's chromium, driven over the DevTools protocol on a pipe: no
Selenium, no websocket). Checks test names, verdicts, categories and rendered images in the
DOM, and saves a screenshot in the test's temporary folder."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evidence.allure import write_results
from harness.evidence.journal import Journal, rebuild

ROOT = Path(__file__).resolve().parents[1]

SUITE = textwrap.dedent('''
    import numpy as np
    from harness.errors import InstrumentError
    from harness.evidence import plots
    from harness.evidence.allure import (apply_family, attach_json, attach_png,
                                         attach_thumbnail, report_measurement)
    from harness.measurement import Measurement

    def test_gain_pass():
        apply_family("emva1288")
        report_measurement(Measurement.judged("system_gain", 0.1002, "DN/e-", low=0.09,
                                              high=0.11, limit_id="EMVA-K-1"))
        mu = np.linspace(0, 3000, 12)
        attach_png(plots.photon_transfer(mu, 0.1 * mu + 4, gain=0.1, intercept=4.0),
                   "photon transfer curve")
        frame = np.random.default_rng(0).integers(0, 4095, (240, 320)).astype(np.uint16)
        attach_thumbnail(frame, "dark frame thumbnail")
        attach_json({"K": 0.1002}, "figures")

    def test_dsnu_marginal():
        apply_family("emva1288")
        m = Measurement.judged("dsnu", 1.9, "DN", high=2.0, marginal_high=1.8,
                               limit_id="EMVA-DSNU-1")
        report_measurement(m)
        assert m.outcome.ok

    def test_hot_pixels_out_of_spec():
        apply_family("defects")
        m = Measurement.judged("hot_pixels", 14, "px", high=10, limit_id="DEF-HOT-1")
        report_measurement(m)
        assert m.outcome.ok, f"out of spec: {m.name} = {m.allure_parameter()}"

    def test_light_source_broken():
        apply_family("station")
        raise InstrumentError("no answer to *IDN? within 2 s", device="light")
''')
EXPECTED = {"test_gain_pass": "passed", "test_dsnu_marginal": "passed",
            "test_hot_pixels_out_of_spec": "failed", "test_light_source_broken": "broken"}
SHOWN = {**EXPECTED, "test_sfr_killed": "broken"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Allure results of a real pytest run of SUITE."""
    work = tmp_path_factory.mktemp("suite")
    (work / "test_sample.py").write_text(SUITE)
    out = work / "allure-results"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--alluredir", str(out), "test_sample.py"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "2 failed, 2 passed" in proc.stdout, proc.stdout + proc.stderr
    return out


def test_results_carry_verdicts_parameters_and_links(results: Path) -> None:
    by_name = {r["name"]: r for r in (json.loads(f.read_text())
                                      for f in results.glob("*-result.json"))}
    assert {n: r["status"] for n, r in by_name.items()} == EXPECTED
    hot = by_name["test_hot_pixels_out_of_spec"]
    assert hot["steps"][0]["name"] == "hot_pixels = 14 px [..10] FAIL (DEF-HOT-1)"
    assert hot["steps"][0]["status"] == "failed"
    assert hot["parameters"] == [{"name": "hot_pixels", "value": "14 px [..10] FAIL",
                                  "excluded": True}]
    assert {"type": "requirement", "url": "urn:limit:DEF-HOT-1",
            "name": "DEF-HOT-1"} in hot["links"]
    assert {"name": "severity", "value": "critical"} in hot["labels"]
    assert {"name": "outcome", "value": "MARGINAL"} in by_name["test_dsnu_marginal"]["labels"]
    gain = by_name["test_gain_pass"]
    assert [a["type"] for a in gain["attachments"]] == ["image/png", "image/png",
                                                        "application/json"]


class DevTools:
    """Chrome DevTools protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def plumb() -> None:
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=plumb)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.session = ""

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(raw))

    def call(self, method: str, session: bool = True, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", session=False, url="about:blank")
        self.session = self.call("Target.attachToTarget", session=False,
                                 targetId=target["targetId"], flatten=True)["sessionId"]
        self.call("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                          awaitPromise=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"JS error: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError as exc:  # e.g. no document.body yet while loading
                value, last = None, str(exc)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression} {last}")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def browser() -> Iterator[DevTools]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (apt-get install chromium)", pytrace=False)
        pytest.skip("chromium is not installed (Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        tools = DevTools(binary, profile)
        try:
            yield tools
        finally:
            tools.close()


def test_report_opens_in_chromium(results: Path, tmp_path: Path, browser: DevTools) -> None:
    if not (ROOT / "node_modules" / ".bin" / "allure").exists():
        message = "Allure 3 is not installed: run `npm ci` in the repository"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # Plus a test cut short by a kill, rebuilt from its journal: the "Aborted" category.
    mixed = tmp_path / "results"
    shutil.copytree(results, mixed)
    journal = Journal(tmp_path / "j.jsonl", "run-k")
    journal.run_start(station="sim-1", dut={"serial": "SIM-0001"})
    journal.test_start("t.py::test_sfr_killed", family="sfr")
    journal.close()
    assert write_results(rebuild(tmp_path / "j.jsonl"), mixed) == 1
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["report", str(mixed), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "5 tests: 2 passed, 1 failed, 2 broken" in " ".join(run.output.split())
    assert [p.name for p in out.iterdir() if p.suffix == ".html"] == ["index.html"]
    ids = json.loads((out / "test-results.json").read_text())["byId"]
    url = (out / "index.html").as_uri()

    browser.open(url)
    browser.wait_for("document.body.innerText.includes('Total')")
    text = browser.js("document.body.innerText")
    assert "Camera-module qualification" in text
    for failing in ("test_hot_pixels_out_of_spec", "test_light_source_broken",
                    "test_sfr_killed"):
        assert failing in text  # failed and broken groups are expanded on the front page
    assert browser.js("document.querySelectorAll('[data-testid=tree-leaf-status-failed]')"
                      ".length") == 1
    assert browser.js("document.querySelectorAll('[data-testid=tree-leaf-status-broken]')"
                      ".length") == 2

    browser.js("document.querySelector('[data-testid=nav-tab-categories]').click()")
    cats = browser.wait_for("document.body.innerText.includes('Out of spec') && "
                            "document.body.innerText")
    # One test in each: the killed test is Aborted, not a station error; the marginal one
    # (passed, label outcome=MARGINAL) has its own category.
    for name in ("Aborted", "Out of spec (DUT failed)", "Station / instrument error",
                 "Marginal (inside the guard band)"):
        assert f"\n{name}\n1\n" in cats, name

    for tid, entry in ids.items():  # every test page: its name and its verdict
        browser.js(f"location.hash = '#{tid}'")
        page = browser.wait_for(f"document.body.innerText.includes('{entry['name']}') && "
                                "document.body.innerText.includes('Overview') && "
                                "document.body.innerText")
        assert SHOWN[entry["name"]].capitalize() in page
        if entry["name"] == "test_hot_pixels_out_of_spec":
            assert "14 px [..10] FAIL" in page and "DEF-HOT-1" in page

    gain = next(t for t, e in ids.items() if e["name"] == "test_gain_pass")
    browser.js(f"location.hash = '#{gain}/attachments'")
    browser.wait_for("document.querySelectorAll("
                     "'[data-testid=test-result-attachment-header] > button').length >= 3")
    browser.js("document.querySelectorAll('[data-testid=test-result-attachment-header] "
               "> button').forEach(b => b.click())")
    sizes = browser.wait_for(
        "(() => { const s = [...document.querySelectorAll('img')]"
        ".filter(i => i.complete && i.naturalWidth > 100).map(i => [i.naturalWidth, "
        "i.naturalHeight]); return s.length >= 2 && s; })()")
    assert [640, 420] in sizes  # the photon-transfer plot (6.4 × 4.2 in at 100 dpi)
    assert [320, 240] in sizes  # the thumbnail (a 320 × 240 frame is already small)
    browser.js("document.querySelector('img').scrollIntoView()")
    png = browser.screenshot()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    (tmp_path / "report-browser.png").write_bytes(png)
