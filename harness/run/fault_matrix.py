"""The fault matrix: the qualification suite run once per injected station fault.

Each :class:`FaultCase` writes a copy of a simulated station file with one fault scripted in it
(a camera fault in ``camera.faults``, an instrument fault in ``simulators.<name>.faults``, an
unwritable evidence directory or an unreachable records database), runs the part of
``tests_hil`` that uses the faulted device in its own pytest process, and reads back what the
run left behind:

* the outcome, rebuilt from the run's journal (:func:`harness.evidence.journal.rebuild`), or,
  when no journal could be written at all, pytest's own verdict from its JUnit XML;
* the error message, which must name the device and the fault;
* the simulators' final state, written by the hub at close (``HARNESS_SIM_STATE_FILE``,
  :mod:`harness.sim.instruments.hub`): light off, every PSU output off, focus parked, chart on
  its park position;
* events lost: torn or damaged lines, sequence gaps, tests started but never ended, lost-write
  notes, a missing ``run_end``;
* the run's ``instruments.log`` and the ``<device> traffic`` attachments of its Allure results
  (the last exchanges of the device an instrument ERROR names, :mod:`harness.devices.traffic`).

A station fault must end ERROR: never PASS (a fault hidden) and never FAIL (a good module
blamed). Instrument faults arm after the commands the station sends while opening and
identifying its devices (counted on an in-process dry run), so they fire inside a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.evidence.journal import read_journal, rebuild
from harness.measurement import Outcome
from harness.sim.instruments.hub import STATE_FILE_ENV

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATION = ROOT / "stations" / "sim-small.yaml"
DEFAULT_LIMITS = ROOT / "tests_hil" / "limits" / "cm12.yaml"
UNIFORMITY = "tests_hil/test_uniformity.py"
INTERFACE_RATE = "tests_hil/test_interface.py::test_frame_rate_and_dropped_frames"
IDENTITY = "tests_hil/test_interface.py::test_identity"
POWER = "tests_hil/test_power.py"
FOCUS = "tests_hil/test_focus.py::test_best_focus"

#: simulator name -> station role (the name a message must carry)
ROLE_OF = {"light": "light", "psu": "power", "meter": "meter", "focus": "focus", "chart": "chart"}

TIMEOUT_WORDS = ("timeout", "timed out", "no reply", "no answer", "not answer")
GARBAGE_WORDS = ("garbage", "undecodable", "unparsable", "cannot parse", "could not parse",
                 "unexpected", "invalid", "malformed", "not a number", "bad reply")
DROP_WORDS = ("connection", "closed", "dropped", "hung up", "hang", "disconnect", "reset", "eof",
              "i/o", "no reply")
"""pyvisa-py reports a TCP peer that hung up only as a timeout (harness.devices.transport)."""


@dataclass(frozen=True)
class FaultCase:
    """One injected fault and the tests that exercise the faulted device."""

    name: str
    device: str
    fault: str
    tests: tuple[str, ...]
    words: tuple[str, ...]
    simulator: str | None = None
    instrument_fault: dict[str, Any] | None = None
    camera_fault: dict[str, int] | None = None
    evidence_unwritable: bool = False
    records: str | None = None
    reported_by: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Device names the message may carry: the faulted device, or the one that sees the
        fault (a drifting light is seen by the meter's stability check)."""
        return (self.device,) + ((self.reported_by,) if self.reported_by else ())

@dataclass(frozen=True)
class FaultResult:
    """What one faulted run left behind."""

    case: FaultCase
    outcome: Outcome
    message: str
    names_device: bool
    names_fault: bool
    safe_state: bool
    safe_detail: str
    fault_fired: bool
    events_lost: int | None
    journal: str
    seconds: float
    exit_code: int
    output: str = field(default="", repr=False)
    instruments_log: str = ""
    """Where the run's ``instruments.log`` was (empty: none; the matrix's folder is
    temporary, so its text is kept in :attr:`instruments_log_text`)."""
    instruments_log_text: str = field(default="", repr=False)
    traffic: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    """Allure attachments named ``<device> traffic``, by device: their texts."""

    @property
    def ok(self) -> bool:
        """ERROR, named, safe, fired and nothing lost (``events_lost`` None: no journal could
        exist, which is itself the fault)."""
        return (self.outcome is Outcome.ERROR and self.names_device and self.names_fault
                and self.safe_state and self.fault_fired and not self.events_lost)

    def row(self) -> dict[str, Any]:
        return {"fault": self.case.name, "device": self.case.device, "injected": self.case.fault,
                "outcome": self.outcome.value, "message": self.message,
                "safe_state": self.safe_state, "safe_detail": self.safe_detail,
                "fault_fired": self.fault_fired, "events_lost": self.events_lost,
                "seconds": round(self.seconds, 1), "ok": self.ok,
                "instruments_log": self.instruments_log,
                "traffic_attached": sorted(self.traffic)}


def _instrument(sim: str, kind: str, fault: str, words: tuple[str, ...], tests: str,
                **extra: Any) -> FaultCase:
    spec = {"kind": kind, **extra}
    label = "timeout" if kind == "delay" else kind.replace("_", "-")
    return FaultCase(f"{ROLE_OF[sim]}-{label}", ROLE_OF[sim],
                     fault, (tests,), words, simulator=sim, instrument_fault=spec)


def default_cases() -> list[FaultCase]:
    """Every fault the reliability issue names, on the devices of ``stations/sim-small.yaml``."""
    where = {"light": UNIFORMITY, "psu": POWER, "meter": UNIFORMITY, "focus": UNIFORMITY,
             "chart": UNIFORMITY}
    cases = [
        FaultCase("light-drift", "light", "light drift 20 %/s (beyond the stability "
                  "window)", (UNIFORMITY,), ("stable",), simulator="light",
                  instrument_fault={"kind": "drift", "rate_pct_per_s": 20.0},
                  reported_by="meter"),
        FaultCase("camera-timeout", "camera", "no frame after 3 (fetch timeout)",
                  (INTERFACE_RATE,), ("no frame within",), camera_fault={"timeout_after": 3}),
        FaultCase("camera-disconnect", "camera", "disconnect after 6 frames (mid-sequence)",
                  (UNIFORMITY,), ("vanished",), camera_fault={"disconnect_after": 6}),
        FaultCase("camera-drop", "camera", "every 5th frame dropped", (UNIFORMITY,),
                  ("dropped frames",), camera_fault={"drop_every": 5}),
        FaultCase("camera-incomplete", "camera", "every 5th buffer incomplete", (UNIFORMITY,),
                  ("incomplete",), camera_fault={"incomplete_every": 5}),
    ]
    for sim in ("light", "psu", "meter", "focus", "chart"):
        cases += [
            _instrument(sim, "delay", "stops answering (timeout 0.5 s, 2 retries, reconnect)",
                        TIMEOUT_WORDS, where[sim], delay_s=60.0),
            _instrument(sim, "garbage", "garbage reply (3 times)", GARBAGE_WORDS, where[sim],
                        count=3),
            _instrument(sim, "drop", "connection dropped (twice)", DROP_WORDS, where[sim],
                        count=2),
        ]
    cases += [
        _instrument("meter", "over_range", "lux meter over range", ("over range", "over-range",
                                                                    "overrange"), UNIFORMITY),
        _instrument("focus", "stall", "actuator stalls half-way (once)", ("stall", "settle",
                                                                          "stuck"), FOCUS,
                    count=1),
        FaultCase("evidence-unwritable", "evidence", "evidence directory under a regular file",
                  (IDENTITY,), ("not a directory", "cannot", "permission"),
                  evidence_unwritable=True),
        FaultCase("records-unreachable", "records", "records database refuses connections",
                  (IDENTITY,), ("refused", "could not connect", "unreachable", "connect"),
                  records="postgresql://nobody@127.0.0.1:1/none"),
    ]
    return cases


def _load(station: Path) -> dict[str, Any]:
    data = yaml.safe_load(station.read_text())
    if not isinstance(data, dict) or "simulators" not in data or "camera" not in data:
        raise ConfigError("the fault matrix needs a simulated station (simulators: and a sim "
                          "camera)", source=str(station))
    return data


def write_station(base: Path, case: FaultCase | None, folder: Path,
                  after: dict[str, int] | None = None) -> Path:
    """A copy of station ``base`` in ``folder`` with ``case``'s fault scripted in it."""
    data = _load(base)
    name = case.name if case is not None else "baseline"
    data["id"] = f"fault-{name}"
    data["lock_dir"] = str(folder)
    camera = dict(data["camera"])
    module = Path(camera["module"])
    camera["module"] = str(module if module.is_absolute() else (base.parent / module).resolve())
    if case is not None and case.camera_fault is not None:
        camera["faults"] = dict(case.camera_fault)
    data["camera"] = camera
    if case is not None and case.simulator is not None and case.instrument_fault is not None:
        sims = dict(data["simulators"])
        spec = dict(sims[case.simulator])
        fault = {"after": (after or {}).get(case.simulator, 0), **case.instrument_fault}
        spec["faults"] = [fault]
        sims[case.simulator] = spec
        data["simulators"] = sims
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cal = base.with_name(base.stem + ".light-cal.json")
    if cal.exists():
        path.with_name(f"{name}.light-cal.json").write_bytes(cal.read_bytes())
    return path


def commands_at_open(base: Path, folder: Path) -> dict[str, int]:
    """Commands each simulator answers while a run opens the station and identifies every
    device (what the plugin does before the first test): the faults arm after these."""
    from harness.station.station import Station

    path = write_station(base, None, folder)
    station = Station.load(path)
    station.open()
    try:
        station.identities()
        hub = station.simulators
        return {name: len(hub.simulator(name).log) for name in hub.names()}
    finally:
        station.close()


def _safe_state(states: dict[str, Any] | None, station: dict[str, Any], silent: str | None = None,
                reported: str = "") -> tuple[bool, str]:
    """Every simulated instrument in its safe state. An instrument scripted to stop answering
    (``silent``) cannot be reached by anyone: it passes only if the run journaled that its
    safe state was not reached (``reported``: the journal's error messages)."""
    if states is None:
        return False, "no simulator state written"
    bad: list[str] = []
    notes: list[str] = []
    for name, state in states.items():
        if name == silent and state.get("type") == "cs100a":
            notes.append("meter silent: a meter has no safe state")
            continue
        if name == silent:
            role = ROLE_OF.get(name, name)
            if f"{role}: safe state not reached" in reported:
                notes.append(f"{role} silent: its unreached safe state is journaled")
            else:
                bad.append(f"{role} silent and no 'safe state not reached' in the journal")
            continue
        kind = state.get("type")
        if kind in ("scpi-led", "gardasoft") and state.get("on"):
            bad.append(f"{name} on")
        elif kind == "scpi-psu" and any(c.get("on") for c in state.get("channels", [])):
            bad.append(f"{name} output on")
        elif kind == "focus-stage":
            home = float((station.get("focus") or {}).get("park") or 0.0)
            if state.get("moving") or state.get("stalled") or \
                    abs(float(state.get("position", 1e9)) - home) > 0.5:
                bad.append(f"{name} not parked at {home:g} ({state.get('position')})")
        elif kind == "chart-wheel":
            park = (station.get("chart") or {}).get("park") or "dark"
            if state.get("current") != park:
                bad.append(f"{name} on {state.get('current')!r}, not {park!r}")
    if bad:
        return False, "; ".join(bad)
    return True, "; ".join(["light off, outputs off, focus and chart parked", *notes])


def events_lost(journal: Path) -> tuple[int, list[str]]:
    """Events a journal is missing: torn/damaged lines, sequence gaps, tests never ended,
    lost-write notes, no ``run_end``."""
    contents = read_journal(journal)
    lost = len(contents.damaged_lines) + int(contents.torn_tail)
    notes: list[str] = []
    expected = 1
    started: set[str] = set()
    ended = False
    for event in contents.events:
        seq = event.get("seq")
        if isinstance(seq, int) and seq != expected:
            lost += max(1, seq - expected)
            notes.append(f"seq {expected} -> {seq}")
        expected = (seq if isinstance(seq, int) else expected) + 1
        kind = event.get("type")
        if kind == "test_start":
            started.add(str(event.get("test_id")))
        elif kind == "test_end":
            started.discard(str(event.get("test_id")))
        elif kind == "run_end":
            ended = True
        elif kind == "error" and "lost to write errors" in str(event.get("message", "")):
            lost += int(str(event["message"]).split()[0])
    lost += len(started) + (0 if ended else 1)
    if started:
        notes.append(f"not ended: {sorted(started)}")
    if not ended:
        notes.append("no run_end")
    return lost, notes


def _pytest_verdict(junit: Path, code: int, output: str) -> tuple[Outcome, str]:
    """pytest's own verdict when the run left no journal: the harness's one-line message
    (``harness: ...``) or the first JUnit error, ERROR for any non-zero exit status."""
    lines = [ln.strip(" !") for ln in output.splitlines() if "harness: " in ln]
    message = lines[0][lines[0].index("harness: "):] if lines else ""
    try:
        root = ET.parse(junit).getroot()
        errors = [e.get("message", "") for e in root.iter("error")]
        failures = [e.get("message", "") for e in root.iter("failure")]
    except (OSError, ET.ParseError):
        errors, failures = [], []
    if errors or (code != 0 and not failures):
        return Outcome.ERROR, message or (errors[0] if errors else f"pytest exit status {code}")
    if failures:
        return Outcome.FAIL, message or failures[0]
    return Outcome.PASS, message


def traffic_attachments(alluredir: Path) -> dict[str, tuple[str, ...]]:
    """The ``<device> traffic`` attachments of every test result in ``alluredir`` (steps
    included), by device."""
    found: dict[str, list[str]] = {}

    def walk(node: dict[str, Any]) -> None:
        for attachment in node.get("attachments") or ():
            name = str(attachment.get("name", ""))
            source = alluredir / str(attachment.get("source", ""))
            if name.endswith(" traffic") and source.is_file():
                found.setdefault(name.removesuffix(" traffic"), []).append(
                    source.read_text(encoding="utf-8", errors="replace"))
        for step in node.get("steps") or ():
            walk(step)

    for path in sorted(alluredir.glob("*-result.json")) if alluredir.is_dir() else ():
        try:
            walk(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return {device: tuple(texts) for device, texts in found.items()}


def _errors(journal: Path) -> list[str]:
    return [str(e.get("message", "")) for e in read_journal(journal).events
            if e.get("type") == "error"]


def run_case(case: FaultCase, base: Path, folder: Path, after: dict[str, int],
             limits: Path = DEFAULT_LIMITS, timeout_s: float = 180.0) -> FaultResult:
    """Run ``case`` in its own pytest process and judge what it left behind."""
    work = folder / case.name
    work.mkdir(parents=True, exist_ok=True)
    station = write_station(base, case, work, after)
    evidence = work / "evidence"
    if case.evidence_unwritable:
        blocker = work / "evidence.txt"
        blocker.write_text("a file, so nothing can be created under it\n")
        evidence = blocker / "sub"
    state_file = work / "simulators.json"
    junit = work / "junit.xml"
    allure_dir = work / "allure-results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[STATE_FILE_ENV] = str(state_file)
    args = [sys.executable, "-m", "pytest", *[str(ROOT / t) for t in case.tests], "-q", "-x",
            "-p", "no:cacheprovider", f"--station={station}", f"--limits={limits}",
            f"--evidence-dir={evidence}", f"--rootdir={ROOT}", f"--junitxml={junit}",
            f"--alluredir={allure_dir}"]
    if case.records:
        args.append(f"--records={case.records}")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                              env=env)
        code, output = proc.returncode, proc.stdout[-4000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired as exc:
        code, output = -1, f"timed out after {timeout_s:g} s: {exc.stdout!r}"
    seconds = time.perf_counter() - t0
    journals = sorted(evidence.glob("*/journal.jsonl")) if evidence.is_dir() else []
    lost: int | None = None
    if journals:
        record = rebuild(journals[0])
        outcome = record.outcome
        errors = _errors(journals[0])
        message = errors[0] if errors else ""
        lost, _ = events_lost(journals[0])
        if outcome is Outcome.PASS and code != 0:
            outcome = Outcome.ERROR  # never call a run that pytest failed a PASS
    else:
        outcome, message = _pytest_verdict(junit, code, output)
        errors = [message]
    message = " ".join(message.split())
    states = json.loads(state_file.read_text()) if state_file.exists() else None
    silent = case.simulator if (case.instrument_fault or {}).get("kind") == "delay" \
        and (case.instrument_fault or {}).get("count") is None else None
    safe, detail = _safe_state(states, _load(station), silent, "\n".join(errors))
    if case.simulator is not None:
        fired = bool(states and states.get(case.simulator, {}).get("faults_fired"))
    else:
        fired = True  # camera/evidence/records faults: the message shows they acted
    low = message.lower()
    log = journals[0].parent / "instruments.log" if journals else None
    log_text = log.read_text(encoding="ascii") if log is not None and log.is_file() else ""
    return FaultResult(case, outcome, message, any(d in low for d in case.names),
                       any(w in low for w in case.words), safe, detail, fired, lost,
                       str(journals[0]) if journals else "", seconds, code, output,
                       str(log) if log_text else "", log_text,
                       traffic_attachments(allure_dir))


def run_fault_matrix(station: str | Path = DEFAULT_STATION, *, cases: Iterable[FaultCase] | None
                     = None, limits: str | Path = DEFAULT_LIMITS, workers: int = 2,
                     folder: str | Path | None = None,
                     progress: Callable[[FaultResult], None] | None = None
                     ) -> list[FaultResult]:
    """Run every case (``workers`` pytest processes at a time), in the order given."""
    base = Path(station).resolve()
    if not base.is_file():
        raise ConfigError("no such station file", source=str(station))
    chosen = list(default_cases() if cases is None else cases)
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        work = Path(folder) if folder is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "dry").mkdir(exist_ok=True)
        after = commands_at_open(base, work / "dry")

        def one(case: FaultCase) -> FaultResult:
            result = run_case(case, base, work, after, Path(limits))
            if progress is not None:
                progress(result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, chosen))


def table(results: Sequence[FaultResult]) -> str:
    """The matrix as a Markdown table (the README's reliability section)."""
    lines = ["| fault injected | device | outcome | safe state | events lost | message |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lost = "no journal" if r.events_lost is None else str(r.events_lost)
        msg = r.message if len(r.message) <= 90 else r.message[:87] + "..."
        safe = "yes" if r.safe_state else "NO: " + r.safe_detail
        notes = [n for n in r.safe_detail.split("; ") if "silent" in n]
        if r.safe_state and notes:
            safe += f" ({'; '.join(notes)})"
        lines.append(f"| {r.case.name}: {r.case.fault} | {r.case.device} | {r.outcome.value} | "
                     f"{safe} | {lost} | {msg.replace('|', '/')} |")
    return "\n".join(lines)


__all__ = ["DEFAULT_STATION", "FaultCase", "FaultResult", "commands_at_open", "default_cases",
           "events_lost", "run_case", "run_fault_matrix", "table", "traffic_attachments",
           "write_station"]
