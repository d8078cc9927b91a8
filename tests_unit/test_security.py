"""Security (issue 10, item 5): one test per rule.

* YAML only through the safe loader: a Python-object payload in every YAML input is refused
  and nothing runs (a marker file proves the payload WOULD run under an unsafe loader).
* No eval/exec/pickle of inputs, no shell: a static scan of ``harness/`` (AST, not grep) with
  an allow-list that states a reason for each real use; the scanner is tested on bad code.
* DUT serials, station ids, run ids and sequence names are sanitised before they become paths.
* SQL is parameterised: injection strings round-trip through the records store unchanged and
  every table survives.
* The report holds no secrets from the environment: a real plugin run with secrets in the
  environment, in the station file and in the ``--records`` URL, then the Allure results, the
  journal and the built single-file report (also base64-decoded) are searched for them.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect
from typer.testing import CliRunner

from harness.errors import ConfigError, HarnessError
from harness.evidence.model import RunRecord, TestRecord
from harness.measurement import Measurement, Outcome

HARNESS = Path(__file__).resolve().parents[1] / "harness"
pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    from harness.cli import app

    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.output


# ---- YAML only through the safe loader -----------------------------------------------------

def payloads(marker: Path) -> list[str]:
    cmd = f"touch {marker}"
    return [
        f"!!python/object/apply:os.system [{json.dumps(cmd)}]",
        f"!!python/object/apply:subprocess.call [[touch, {json.dumps(str(marker))}]]",
        f"!!python/object/new:os.system [{json.dumps(cmd)}]",
        "!!python/name:os.system",
        f"!<tag:yaml.org,2002:python/object/apply:os.system> [{json.dumps(cmd)}]",
    ]


def test_the_payloads_would_run_under_an_unsafe_loader(tmp_path: Path) -> None:
    """Control: the marker mechanism works, so its absence below means something."""
    marker = tmp_path / "ran"
    yaml.unsafe_load(f"x: {payloads(marker)[0]}\n")
    assert marker.exists()


def _documents(payload: str, folder: Path) -> dict[str, tuple[str, Any]]:
    from harness.limits import load_limits
    from harness.sim.module import load_module
    from harness.station.schema import load_station_file
    from harness.yamlio import load_yaml

    (folder / "base.yaml").write_text(
        "name: base\nsensor: {width: 16, height: 16, pixel_pitch_um: 2, full_well_e: 1000, "
        "system_gain_dn_per_e: 0.4, read_noise_e: 2, dark_current_e_per_s: 1}\n")
    return {
        "station value": (f"id: st\ncamera: {{driver: fake, serial: {payload}}}\n",
                          lambda p: load_station_file(p, env={})),
        "station top": (f"id: st\ncamera: {payload}\n", lambda p: load_station_file(p, env={})),
        "station bench": (f"id: st\nbench: {{light: {payload}}}\n",
                          lambda p: load_station_file(p, env={})),
        "limits": (f"product: p\nversion: 1\nlimits:\n  - {{id: A, measurement: m, unit: u, "
                   f"min: {payload}}}\n", load_limits),
        "limits key": (f"product: p\nversion: 1\n? {payload}\n: 1\nlimits: []\n", load_limits),
        "module": (f"name: {payload}\nsensor: {{}}\n", load_module),
        "module extends": (f"extends: base.yaml\noptics: {{sigma_px: {payload}}}\n",
                           load_module),
        "any yaml": (f"- {payload}\n", load_yaml),
    }


@pytest.mark.parametrize("which", range(5))
def test_python_tags_are_refused_in_every_yaml_input(tmp_path: Path, which: int) -> None:
    marker = tmp_path / "ran"
    payload = payloads(marker)[which]
    for name, (text, load) in _documents(payload, tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load(path)
        message = str(info.value)
        assert str(path) in message and len(message.splitlines()) == 1, (name, message)
        assert not marker.exists(), f"{name}: the payload ran"


def test_python_tags_are_refused_by_the_cli(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    station = tmp_path / "station.yaml"
    station.write_text(f"id: st\ncamera: {payloads(marker)[0]}\n")
    module = tmp_path / "module.yaml"
    module.write_text(f"name: {payloads(marker)[1]}\n")
    for argv in (["station", "check", str(station)], ["sim", "truth", str(module)]):
        code, output = cli(*argv)
        assert code == 2 and "could not determine a constructor" in output, output
    assert not marker.exists()


def test_the_yaml_loader_is_a_safe_loader() -> None:
    from harness import yamlio

    assert issubclass(yamlio._SafeLoader, yaml.SafeLoader)
    tags = set(yamlio._SafeLoader.yaml_constructors) | set(
        yamlio._SafeLoader.yaml_multi_constructors)
    assert not [t for t in tags if t and "python" in t], tags


# ---- static scan: no eval/exec/pickle/unsafe YAML/shell ------------------------------------

SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "_SafeLoader"}
PICKLE_LIKE = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
               "jsonpickle", "joblib"}
ALLOW: dict[tuple[str, str], str] = {
    ("evidence/records/schema.py", "sql-from-string"):
        "schema migration v2: ALTER TABLE with column names and types that are constants of "
        "the migration; nothing from input",
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def scan_source(text: str) -> list[tuple[int, str]]:
    """``(line, rule)`` for every dangerous construct in ``text``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            if any(m.split(".")[0] in PICKLE_LIKE for m in mods):
                found.append((node.lineno, "pickle"))
        if isinstance(node, ast.Attribute) and node.attr in (
                "Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader",
                "CUnsafeLoader") and _name(node.value) == "yaml":
            found.append((node.lineno, "unsafe-yaml-loader"))
        if not isinstance(node, ast.Call):
            continue
        func = _name(node.func)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        if func in ("eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"):
            found.append((node.lineno, "eval-exec"))
        elif func in ("os.system", "os.popen") or func.startswith(("os.exec", "os.spawn")):
            found.append((node.lineno, "shell"))
        elif func.startswith("subprocess.") or func.split(".")[-1] in ("Popen", "check_output",
                                                                       "check_call"):
            shell = kwargs.get("shell")
            command = node.args[0] if node.args else kwargs.get("args")
            if shell is not None and (not isinstance(shell, ast.Constant) or shell.value):
                found.append((node.lineno, "shell"))
            elif isinstance(command, ast.Constant | ast.JoinedStr | ast.BinOp):
                found.append((node.lineno, "shell"))  # a command string: split by a shell
        elif func in ("yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load",
                      "yaml.full_load_all"):
            found.append((node.lineno, "unsafe-yaml"))
        elif func in ("yaml.load", "yaml.load_all"):
            loader = kwargs.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _name(loader).split(".")[-1] not in SAFE_LOADERS:
                found.append((node.lineno, "unsafe-yaml"))
        elif (func in ("text", "sqlalchemy.text", "sa.text")
              or func.split(".")[-1] in ("exec_driver_sql", "execute", "executescript")) \
                and node.args and isinstance(node.args[0], ast.JoinedStr | ast.BinOp):
            found.append((node.lineno, "sql-from-string"))
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    bad = textwrap.dedent("""\
        import os, pickle, subprocess, yaml
        from marshal import loads
        eval(x); exec(y); __import__(z)
        os.system("ls " + x); os.popen(x)
        subprocess.run(f"ls {x}"); subprocess.run(["ls"], shell=True); subprocess.Popen("ls")
        yaml.load(t); yaml.load(t, Loader=yaml.Loader); yaml.unsafe_load(t); yaml.full_load(t)
        conn.execute(text(f"DELETE FROM runs WHERE id = {x}"))
        conn.exec_driver_sql("SELECT * FROM t WHERE a = '%s'" % x)
    """)
    rules = [rule for _, rule in scan_source(bad)]
    assert rules.count("pickle") == 2
    assert rules.count("eval-exec") == 3
    assert rules.count("shell") == 5
    assert rules.count("unsafe-yaml") == 4 and rules.count("unsafe-yaml-loader") == 1
    assert rules.count("sql-from-string") == 2
    good = textwrap.dedent("""\
        import json, subprocess, yaml
        subprocess.run(["node", "x"], check=False); re.compile("a"); yaml.load(t, Loader=SafeLoader)
        conn.execute(select(t).where(t.c.a == x)); conn.execute(text("SELECT 1"))
        ax.text(x + 1, y, f"{label}")
    """)
    assert scan_source(good) == []


def test_harness_has_no_eval_exec_pickle_shell_or_unsafe_yaml() -> None:
    findings = []
    used = set()
    for path in sorted(HARNESS.rglob("*.py")):
        rel = path.relative_to(HARNESS).as_posix()
        for line, rule in scan_source(path.read_text(encoding="utf-8")):
            if (rel, rule) in ALLOW:
                used.add((rel, rule))
                continue
            findings.append(f"harness/{rel}:{line}: {rule}")
    assert findings == [], "\n".join(findings)
    assert used == set(ALLOW), f"stale allow-list entries: {set(ALLOW) - used}"


# ---- names that become paths ---------------------------------------------------------------

TRAVERSAL = ["../../etc/x", "/etc/x", "a/b", "a\\b", "..", ".", ".hidden", "-rf", "a\x00b",
             "x" * 200, "", "C:evil", "\u202e..\u202d"]


@pytest.mark.parametrize("name", ["SIM-0001", "20261125T203036Z-1a2b3c4d", "lab_a.st3", "A"])
def test_safe_component_keeps_good_names(name: str) -> None:
    from harness.paths import safe_component

    assert safe_component(name, "serial") == name


@pytest.mark.parametrize("name", TRAVERSAL, ids=range(len(TRAVERSAL)))
def test_safe_component_refuses_traversal(name: str) -> None:
    from harness.paths import safe_component

    with pytest.raises(ConfigError) as info:
        safe_component(name, "DUT serial")
    assert str(info.value).startswith("DUT serial: ") and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/../../b", "C:\\x", "\\\\host\\share",
                                  "a\x00", "", "x" * 2000])
def test_safe_relative_refuses_escapes(name: str) -> None:
    from harness.paths import safe_relative

    with pytest.raises(ConfigError):
        safe_relative(name, "file")
    assert safe_relative("frames/ab12.tiff", "file") == "frames/ab12.tiff"


def test_atomic_open_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    """The one atomic writer (capture sets, evidence and record exports go through it): the
    old content stays until the block ends, a block that raises leaves the old file and no
    temporary, text mode writes UTF-8 with the newline asked for."""
    from harness.paths import atomic_open, atomic_write_bytes

    target = tmp_path / "deep" / "out.csv"
    atomic_write_bytes(target, [b"old", memoryview(b"\n")])
    with atomic_open(target, "w", newline="") as fh:
        fh.write("ΔE,1\r\n")
        assert target.read_bytes() == b"old\n"  # not yet replaced
    assert target.read_bytes() == "ΔE,1\r\n".encode()
    with pytest.raises(RuntimeError), atomic_open(target, "wb") as fh:
        fh.write(b"half")
        raise RuntimeError("disk gone")
    assert target.read_bytes() == "ΔE,1\r\n".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]
    with pytest.raises(ValueError, match="mode"), atomic_open(target, "a"):
        pass


@pytest.mark.parametrize("station_id", TRAVERSAL[:10], ids=range(10))
def test_station_id_cannot_leave_the_lock_dir(tmp_path: Path, station_id: str) -> None:
    """The station id becomes ``<lock_dir>/<id>.lock``: refused by the station file's schema
    and again by the lock itself (for configs built in code)."""
    from harness.station.lock import StationLock
    from harness.station.schema import load_station_file

    path = tmp_path / "station.yaml"
    path.write_text(f"id: {json.dumps(station_id)}\ncamera: {{driver: fake}}\n")
    with pytest.raises(ConfigError, match=r"station\.yaml:1: id: "):
        load_station_file(path, env={})
    locks = tmp_path / "a" / "b" / "locks"
    with pytest.raises(ConfigError, match="station id"):
        StationLock(station_id, locks).acquire()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["station.yaml"]


def test_run_ids_cannot_leave_the_evidence_dir(tmp_path: Path) -> None:
    from harness.evidence.journal import Journal
    from harness.evidence.run import RunEvidence

    evidence = tmp_path / "a" / "ev"
    for bad in ("../../escape", "/tmp/escape", "a\x00b"):
        with pytest.raises(ConfigError, match="run_id"):
            RunEvidence(evidence, station="st", dut={}, run_id=bad, software={})
        with pytest.raises(ConfigError, match="run_id"):
            Journal.create(evidence, bad)
    assert list(tmp_path.rglob("*")) == []


def _journal_with_run_id(path: Path, run_id: str) -> None:
    events = [{"seq": 1, "time": "2026-11-25T20:00:00Z", "type": "run_start", "run_id": run_id,
               "station": "st", "dut": {"serial": "SN"}, "software": {}},
              {"seq": 2, "time": "2026-11-25T20:00:01Z", "type": "test_start", "run_id": run_id,
               "test_id": "t::a"},
              {"seq": 3, "time": "2026-11-25T20:00:02Z", "type": "test_end", "run_id": run_id,
               "test_id": "t::a", "outcome": "PASS"},
              {"seq": 4, "time": "2026-11-25T20:00:03Z", "type": "run_end", "run_id": run_id,
               "outcome": "PASS"}]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_journal_cannot_name_a_run_outside_the_results(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``report --from-journal`` writes ``out/allure-results/<run id>``: a journal from
    elsewhere must not choose a folder outside it."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    _journal_with_run_id(work / "good.jsonl", "R-good")
    code, output = cli("report", "--from-journal", "good.jsonl", "--no-records", "--no-html")
    assert code == 0 and (work / "out" / "allure-results" / "R-good").is_dir(), output
    _journal_with_run_id(work / "evil.jsonl", "../../../../escape")
    code, output = cli("report", "--from-journal", "evil.jsonl", "--no-records", "--no-html")
    assert code == 2 and "run_id" in output and "evil.jsonl" in output, output
    assert not [p for p in tmp_path.rglob("*escape*")]


def test_signoff_output_name_is_sanitised(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run id stored in the database (by any writer) becomes ``out/signoff/<id>.html``."""
    from harness.evidence.records import RecordStore

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    with RecordStore(work / "rec.sqlite") as store:
        for run_id in ("R-1", "../../escape"):
            store.add_run(RunRecord(run_id=run_id, station="st", outcome=Outcome.PASS))
    code, output = cli("signoff", "R-1", "--records", "rec.sqlite")
    assert code == 0 and (work / "out" / "signoff" / "R-1.html").is_file(), output
    code, output = cli("signoff", "../../escape", "--records", "rec.sqlite")
    assert code == 2 and "RUN_ID" in output, output
    assert not [p for p in tmp_path.rglob("*escape*")]


def test_a_manifest_cannot_read_files_outside_its_capture_set(tmp_path: Path) -> None:
    import numpy as np

    from harness.capture.writer import CaptureSetWriter
    from harness.inputs.captureset import CaptureSet

    root = tmp_path / "set"
    with CaptureSetWriter(root) as writer:
        record = writer.add(np.zeros((8, 8), np.uint16), role="dark")
    secret = tmp_path / "secret.tiff"
    secret.write_bytes((root / record.file).read_bytes())
    manifest = json.loads((root / "manifest.json").read_text())
    for outside in ("../secret.tiff", str(secret)):
        manifest["frames"][0]["file"] = outside
        (root / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ConfigError, match=r"frames\.0\.file"):
            CaptureSet.open(root)


class _Camera:
    def snapshot(self) -> dict[str, Any]:
        return {}

    def identity(self) -> Any:
        from harness.devices.base import DeviceIdentity

        return DeviceIdentity("camera", "stub", "v", "m", "s", "f")

    def feature_info(self, name: str) -> Any:
        raise KeyError(name)


def test_sequence_name_cannot_leave_the_capture_dir(tmp_path: Path) -> None:
    """A capture set goes to ``<out_dir>/<nn>-<sequence>``; the name comes from code today."""
    from harness.capture.sequences import CaptureContext

    ctx = CaptureContext(camera=_Camera(), out_dir=tmp_path / "a" / "b" / "captures")
    with pytest.raises(ConfigError):
        ctx.new_set("../../../escape")
    assert not [p for p in tmp_path.rglob("*escape*")]


# ---- SQL is parameterised ------------------------------------------------------------------

INJECT = ["x'); DROP TABLE runs; --", "'; DELETE FROM measurements; --", "p' OR '1'='1",
          'L"; DROP TABLE tests; --', "\\'; --", "Robert'); DROP TABLE devices;--"]


def _hostile_run(i: int) -> RunRecord:
    m = Measurement.judged(INJECT[(i + 1) % 6], 1.0, "u'--", low=0.0, high=2.0,
                           limit_id=INJECT[(i + 3) % 6], test_id=INJECT[i % 6],
                           condition={"zone": INJECT[(i + 4) % 6]})
    return RunRecord(run_id=f"run-{i}-{INJECT[i]}", station=INJECT[0], product=INJECT[2],
                     dut_serial=INJECT[1], dut_firmware=INJECT[3], operator=INJECT[5],
                     outcome=Outcome.PASS, started="2026-11-25T20:00:00+00:00",
                     limits_file=INJECT[4], reason=INJECT[i],
                     tests=(TestRecord(test_id=INJECT[i % 6], outcome=Outcome.PASS,
                                       title=INJECT[1], measurements=(m,)),),
                     devices=({"role": "camera", "serial": INJECT[0], "vendor": INJECT[3]},))


def test_injection_strings_round_trip_and_tables_survive(tmp_path: Path) -> None:
    from harness.evidence.records import RecordStore

    path = tmp_path / "rec.sqlite"
    with RecordStore(path) as store:
        tables_before = set(inspect(store.engine).get_table_names())
        runs = [_hostile_run(i) for i in range(3)]
        for run in runs:
            store.add_run(run)
        for run in runs:
            back = store.get_run(run.run_id)
            assert (back.station, back.dut_serial, back.product, back.operator) == \
                (run.station, run.dut_serial, run.product, run.operator)
            assert back.tests[0].test_id == run.tests[0].test_id
            got, want = back.measurements[0], run.measurements[0]
            assert (got.name, got.limit_id, got.unit, dict(got.condition)) == \
                (want.name, want.limit_id, want.unit, dict(want.condition))
            assert back.devices[0]["serial"] == INJECT[0]
        assert len(store.runs(product=INJECT[2], station=INJECT[0])) == 3
        assert store.runs(product="nothing' OR '1'='1") == []
        assert store.runs(station="x' OR 1=1 --") == []
        assert store.yield_by_limit(product="x' OR '1'='1") == []
        assert store.cpk(product=INJECT[2], name="k' OR '1'='1") == []
        assert store.trend(station="x' OR '1'='1", measurement="'; DROP TABLE runs; --") == []
        with pytest.raises(ConfigError):
            store.runs(since="2026-01-01' OR '1'='1")
        assert store.verify().ok
        assert set(inspect(store.engine).get_table_names()) == tables_before
    code, output = cli("records", "runs", "--records", str(path), "--json",
                       "--station", "x' OR '1'='1")
    assert code == 0 and json.loads(output) == [], output
    code, output = cli("records", "runs", "--records", str(path), "--json",
                       "--station", INJECT[0])
    assert code == 0 and len(json.loads(output)) == 3, output


# ---- no secrets from the environment in the report -----------------------------------------

SECRETS = {"HARNESS_TEST_SECRET": "s3cr3t-token-4f9a1c", "DATABASE_PASSWORD": "db-pa55-7e21b0",
           "PG_PASSWORD_IN_URL": "pg-pw-c0ffee-91"}

SUITE = """\
import os
import pytest

@pytest.mark.hil_measures("mean_dn")
def test_measures(hil_camera, hil_check):
    hil_check("mean_dn", float(hil_camera.grab(2).frames.mean()), "DN", frame="live")

@pytest.mark.hil_measures("mean_dn")
def test_out_of_spec(hil_check, hil_station):
    hil_check("mean_dn", 5000.0, "DN", frame="given")

def test_station_fault(hil_light):
    raise RuntimeError("light controller timed out")
"""


def _b64_needles(secret: bytes) -> list[bytes]:
    """Substrings that the base64 text of any data containing ``secret`` must contain."""
    needles = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret)
        start = -(-offset * 4 // 3)  # characters touched by the prefix
        needles.append(encoded[start:len(encoded) - 4])
    return needles


def test_b64_needles_find_embedded_secrets() -> None:
    secret = SECRETS["HARNESS_TEST_SECRET"].encode()
    for prefix in (b"", b"a", b"ab", b"abc"):
        blob = base64.b64encode(prefix + b"{'token': '" + secret + b"'}")
        assert any(n in blob for n in _b64_needles(secret))


def test_no_secret_reaches_the_report(tmp_path: Path) -> None:
    """A real run of the plugin with secrets in the environment, in device settings of the
    station file (through ``${VAR}``: a driver's credential, the fake's ``password``) and as the
    password of the ``--records`` URL; the DUT serial is a traversal string. Nothing of either
    may surface: not in the Allure results, the journal, the console, nor the built
    single-file report (searched raw and inside its base64)."""
    work = tmp_path / "w" / "x" / "y"
    work.mkdir(parents=True)
    (work / "station.yaml").write_text(
        f"id: sec-01\nlock_dir: {tmp_path / 'locks'}\n"
        "light: {driver: fake, password: '${HARNESS_TEST_SECRET}'}\n"
        "camera: {driver: fake, serial: '../../../../escape-serial', width: 16, height: 8,\n"
        "         password: '${DATABASE_PASSWORD}'}\n")
    (work / "limits.yaml").write_text(
        "product: sec\nversion: 1\nlimits:\n"
        "  - {id: MEAN, measurement: mean_dn, unit: DN, min: 0, max: 1000}\n")
    (work / "test_suite.py").write_text(SUITE)
    pg_url = f"postgresql://harness:{SECRETS['PG_PASSWORD_IN_URL']}@127.0.0.1:1/records"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(SECRETS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--station=station.yaml", "--limits=limits.yaml", "--evidence-dir=ev",
         f"--records={pg_url}", "--alluredir=results", "--dut=../../../../escape-serial",
         "test_suite.py"],
        cwd=work, capture_output=True, text=True, timeout=120, env=env)
    console = proc.stdout + proc.stderr
    assert "2 failed, 1 passed" in console, console
    results = work / "results"
    assert (results / "environment.properties").is_file()
    assert list((work / "ev").glob("*/journal.jsonl")), console
    journal = next((work / "ev").glob("*/journal.jsonl")).read_text()
    assert "records" in journal and "***" in journal  # the records error is journaled, masked

    report = work / "report"
    try:
        from harness.evidence.report import build_report

        build_report(results, report)
    except HarnessError as exc:  # Allure 3 (npm) not installed here: results are still checked
        print(f"report not built: {exc}")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in tmp_path.rglob("*escape-serial*")], "a serial became a path"
    for name, secret in SECRETS.items():
        raw = secret.encode()
        assert secret not in console, f"{name} in the console output"
        for path in files:
            data = path.read_bytes()
            assert raw not in data, f"{name} in {path.relative_to(tmp_path)}"
            if path.suffix in (".html", ".js", ".json"):
                assert not any(n in data for n in _b64_needles(raw)), \
                    f"{name} base64-encoded in {path.relative_to(tmp_path)}"


def test_records_url_password_is_never_shown(tmp_path: Path) -> None:
    from harness.evidence.records import RecordStore

    secret = SECRETS["PG_PASSWORD_IN_URL"]
    for url in (f"postgresql://u:{secret}@127.0.0.1:1/db",
                f"postgresql://u:{secret}@host:notaport/db"):
        with pytest.raises(HarnessError) as info:
            RecordStore(url)
        assert secret not in str(info.value) and "***" in str(info.value)
        code, output = cli("records", "runs", "--records", url)
        assert code in (2, 3) and secret not in output and "Traceback" not in output, output
