"""The station app's run manager: one qualification at a time, as a child ``pytest`` process.

A run from the kiosk is the run the command line makes: :func:`pytest_argv` builds the same
``python -m pytest <tests> --station ... --limits ...`` argv (a list, never a shell line), run
with ``cwd`` = the root folder. The child's journals (``<evidence-dir>/<run-id>/journal.jsonl``;
one per slot on a multi-up station) are found as the new folders of the evidence directory whose
``run_start`` names this station, tailed (:class:`~harness.app.events.JournalTail`) and turned
into app events (:func:`journal_events`) and the run's live state (:class:`SlotView`). At the
end each journal is rebuilt (:func:`~harness.evidence.journal.rebuild`): the outcome the kiosk
shows is the record's.

Abort sends SIGTERM (the plugin puts the station in its safe state and journals ABORTED);
if the child is still alive after ``abort_timeout_s`` it is killed, and the SIGKILL watchdog
the plugin started makes the station safe and closes the journal. A label prompt (the plugin
journals a ``note`` with ``facts.prompt == "label"`` before it reads standard input) is shown
by the page; the answer is written to the child's standard input.

The history (``/api/history``) is rebuilt from the evidence folder's journals at start, so a
restart of the app does not lose the shift's last results.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.app.config import AppConfig
from harness.app.events import EventBus, JournalTail
from harness.errors import ConfigError
from harness.evidence.journal import read_journal, rebuild
from harness.evidence.model import RunRecord
from harness.measurement import Measurement, Outcome, worst

ArgvBuilder = Callable[[AppConfig, str | None, str], list[str]]
"""``(config, dut serial or None, operator) -> argv`` of the child process."""

SHA256 = re.compile(r"^[0-9a-f]{64}$")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
POLL_S = 0.1
NOT_OK = (Outcome.FAIL, Outcome.MARGINAL, Outcome.ERROR)
FAILED = (Outcome.FAIL, Outcome.ERROR)
"""Limits the verdict screen lists as failed; MARGINAL ones (held, inside the guard band) are
listed apart."""
RECENT_FRAMES = 8
"""Captures whose last frame the thumbnail may fall back to: a capture is journaled as soon
as its frames are hashed, and its files reach disk a moment later (the set's writer thread)."""


class RunBusy(Exception):
    """A run is going: a second start is refused (409)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} is running: wait for it to end or abort it")
        self.run_id = run_id


class RunNotFound(Exception):
    """No run by that id (404)."""


class RunNotRunning(Exception):
    """The run has ended: it cannot be aborted or answered (409)."""


def pytest_argv(config: AppConfig, dut: str | None, operator: str) -> list[str]:
    """The argv of a qualification run, exactly as the command line would run it."""
    argv = [config.python, "-m", "pytest", *config.tests, "-q", "-p", "no:cacheprovider",
            f"--rootdir={config.rootdir}", f"--station={config.station}",
            f"--limits={config.limits}", f"--evidence-dir={config.evidence_dir}",
            f"--operator={operator}"]
    if dut:
        argv.append(f"--dut={dut}")
    if config.records:
        argv.append(f"--records={config.records}")
    return argv


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours without pytest's own variables (a server started from a
    test must not pass ``PYTEST_CURRENT_TEST`` or ``PYTEST_ADDOPTS`` on), unbuffered output."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _limit_row(m: Measurement, slot: str) -> dict[str, Any]:
    return {"slot": slot, "test_id": m.test_id, "limit_id": m.limit_id, "figure": m.name,
            "value": m.value_text(), "unit": m.unit, "limit": m.limits_text(),
            "outcome": m.outcome.value, "message": m.message}


def _step_text(event: str, data: Mapping[str, Any]) -> str:
    sequence = str(data.get("sequence", "") or "")
    if event == "sequence_start":
        return f"capturing {sequence}"
    if event == "sequence_end":
        return f"{sequence} captured"
    if event == "light_settled":
        return "light settled"
    if event == "settle_skipped":
        return "light still settled"
    return f"{event} {sequence}".strip()


@dataclass
class SlotView:
    """What one journal has said so far (one slot of a run, or the run of a one-DUT station)."""

    slot: str
    journal: Path
    tail: JournalTail
    record_run_id: str = ""
    serial: str = ""
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_test: str = ""
    step: str = ""
    captures: int = 0
    frames: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_FRAMES))
    """The last frame file of each of the latest ``capture`` events, oldest first."""
    not_ok: list[dict[str, Any]] = field(default_factory=list)
    prompt: dict[str, Any] | None = None
    ended: bool = False
    outcome: Outcome | None = None
    reason: str = ""
    unjudged: list[dict[str, str]] = field(default_factory=list)
    report: str = ""
    """The Allure report: "" (none asked), "building", "ready" or "not built: why"."""

    def apply(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Take one journal event in; return the app events it makes."""
        kind = str(event.get("type", ""))
        test_id = str(event.get("test_id", "") or "")
        base = {"slot": self.slot, "record_run_id": self.record_run_id}
        out: list[dict[str, Any]] = []
        if self.prompt is not None and not (kind == "note" and _prompt_facts(event)):
            self.prompt = None
            out.append({"type": "prompt_closed", **base})
        if kind == "run_start":
            self.record_run_id = str(event.get("run_id", ""))
            dut = event.get("dut") or {}
            self.serial = str(dut.get("serial", "")) if isinstance(dut, dict) else ""
            out.append({"type": "slot_started", "slot": self.slot,
                        "record_run_id": self.record_run_id, "serial": self.serial})
        elif kind == "test_start":
            self.tests[test_id] = {"test_id": test_id, "title": str(event.get("title", "")),
                                   "family": str(event.get("family", "")), "outcome": None,
                                   "slot": self.slot}
            self.current_test, self.step = test_id, ""
            out.append({"type": "test_started", **base, "test_id": test_id,
                        "title": self.tests[test_id]["title"]})
        elif kind == "test_end":
            outcome = str(event.get("outcome", ""))
            self.tests.setdefault(test_id, {"test_id": test_id, "title": "", "family": "",
                                            "slot": self.slot})["outcome"] = outcome
            if self.current_test == test_id:
                self.current_test, self.step = "", ""
            out.append({"type": "test_ended", **base, "test_id": test_id, "outcome": outcome})
        elif kind == "sequence":
            data = event.get("data") or {}
            self.step = _step_text(str(event.get("event", "")),
                                   data if isinstance(data, dict) else {})
            out.append({"type": "step", **base, "test_id": test_id, "step": self.step})
        elif kind == "capture":
            frames = [f for f in event.get("frames") or [] if isinstance(f, str)]
            self.captures += 1
            if frames and SHA256.match(frames[-1]):
                self.frames.append(str(Path(str(event.get("capture_set", ""))) / "frames"
                                       / f"{frames[-1]}.tiff"))
            self.step = f"captured {len(frames)} frame(s) {event.get('sequence', '')}".strip()
            out.append({"type": "capture", **base, "test_id": test_id, "frames": len(frames),
                        "captures": self.captures, "step": self.step})
        elif kind == "measurement":
            try:
                m = Measurement.from_dict(event["measurement"])
            except (KeyError, TypeError, ValueError):
                return out
            row = _limit_row(m, self.slot)
            if m.outcome in NOT_OK:
                self.not_ok.append(row)
            out.append({"type": "measurement", **base, **row})
        elif kind == "note" and (facts := _prompt_facts(event)):
            timeout = float(facts.get("timeout_s", 0) or 0)
            self.prompt = {"slot": self.slot, "kind": "label", "timeout_s": timeout,
                           "deadline": time.time() + timeout,
                           "message": "Scan the DUT label"}
            out.append({"type": "prompt", **base, "kind": "label", "timeout_s": timeout})
        elif kind == "error":
            out.append({"type": "error", **base, "test_id": test_id,
                        "message": str(event.get("message", ""))[:300]})
        elif kind == "run_end":
            self.ended = True
            out.append({"type": "slot_ended", **base,
                        "outcome": str(event.get("outcome", ""))})
        return out

    def finish(self) -> None:
        """The record's verdict (the journal rebuilt), its failed limits and reason."""
        try:
            record = rebuild(read_journal(self.journal))
        except ConfigError as exc:
            self.outcome, self.reason = Outcome.ERROR, str(exc)
            return
        self.apply_record(record)

    def apply_record(self, record: RunRecord) -> None:
        self.outcome, self.reason = record.outcome, record.reason
        self.not_ok = [_limit_row(m, self.slot) for t in record.tests for m in t.measurements
                       if m.outcome in NOT_OK]
        self.unjudged = [{"limit_id": u.limit_id, "figure": u.measurement, "reason": u.reason}
                         for u in record.unjudged]
        for t in record.tests:
            self.tests.setdefault(t.test_id, {"test_id": t.test_id, "title": t.title,
                                              "family": t.family, "slot": self.slot})
            self.tests[t.test_id]["outcome"] = t.outcome.value
        self.prompt = None

    def snapshot(self) -> dict[str, Any]:
        prompt = None
        if self.prompt is not None:
            prompt = {k: v for k, v in self.prompt.items() if k != "deadline"}
            prompt["remaining_s"] = round(max(0.0, self.prompt["deadline"] - time.time()), 1)
        return {"slot": self.slot, "record_run_id": self.record_run_id, "serial": self.serial,
                "outcome": self.outcome.value if self.outcome else None,
                "current_test": self.current_test, "step": self.step,
                "captures": self.captures, "reason": self.reason, "prompt": prompt,
                "report": self.report,
                "report_url": (f"/reports/{self.record_run_id}"
                               if self.report == "ready" else ""),
                "tests": list(self.tests.values())}

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The FAIL and ERROR limits (see :data:`FAILED`)."""
        return [r for r in self.not_ok if r["outcome"] in {o.value for o in FAILED}]

    @property
    def marginal(self) -> list[dict[str, Any]]:
        """The MARGINAL limits: held, but inside the guard band."""
        return [r for r in self.not_ok if r["outcome"] == Outcome.MARGINAL.value]


def _prompt_facts(event: Mapping[str, Any]) -> dict[str, Any] | None:
    facts = event.get("facts")
    if isinstance(facts, dict) and facts.get("prompt") == "label":
        return facts
    return None


@dataclass
class AppRun:
    """One run started by the app: the child, its journals' views and the verdict."""

    run_id: str
    dut: str | None
    operator: str
    started: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    views: dict[str, SlotView] = field(default_factory=dict)
    state: str = "running"
    outcome: Outcome | None = None
    reason: str = ""
    ended: str = ""
    aborting: bool = False
    exit_code: int | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            views = sorted(self.views.values(), key=lambda v: v.slot)
            slots = [v.snapshot() for v in views]
            prompts = [s["prompt"] for s in slots if s["prompt"] is not None]
            phase = self.state
            if self.state == "running":
                phase = ("aborting" if self.aborting else
                         "testing" if any(v.record_run_id for v in views) else "starting")
            return {
                "run_id": self.run_id, "state": self.state, "phase": phase,
                "outcome": self.outcome.value if self.outcome else None,
                "dut": self.dut, "operator": self.operator, "started": self.started,
                "ended": self.ended, "aborting": self.aborting, "reason": self.reason,
                "tests": [t for s in slots for t in s["tests"]],
                "failed_limits": [r for v in views for r in v.failed],
                "marginal_limits": [r for v in views for r in v.marginal],
                "unjudged": [{"slot": v.slot, **u} for v in views for u in v.unjudged],
                "slots": [{k: v for k, v in s.items() if k != "tests"} for s in slots],
                "record_run_ids": [v.record_run_id for v in views if v.record_run_id],
                "prompt": prompts[-1] if prompts else None,
                "exit_code": self.exit_code,
            }


@dataclass(frozen=True)
class HistoryRow:
    """One DUT's result in the shift's history (one journal)."""

    run_id: str
    slot: str
    serial: str
    operator: str
    started: str
    ended: str
    outcome: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"run_id": self.run_id, "slot": self.slot, "serial": self.serial,
                "operator": self.operator, "started": self.started, "ended": self.ended,
                "outcome": self.outcome, "reason": self.reason}


def history_row(record: RunRecord, slot: str = "") -> HistoryRow:
    return HistoryRow(record.run_id, slot, record.dut_serial, record.operator, record.started,
                      record.ended, record.outcome.value, record.reason[:300])


def _start_of(path: Path) -> dict[str, Any] | None:
    """A journal's ``run_start`` event (its first, complete line), or None."""
    try:
        with path.open("rb") as fh:
            first = fh.readline()
    except OSError:
        return None
    if not first.endswith(b"\n"):
        return None
    try:
        event = json.loads(first)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("type") == "run_start" else None


def load_history(evidence_dir: Path, station_id: str, size: int,
                 scan: int = 400) -> list[HistoryRow]:
    """The station's last ``size`` runs from the evidence folder's journals, newest first
    (the folders are run ids, which sort by time; at most ``scan`` are opened)."""
    try:
        names = sorted((p.name for p in evidence_dir.iterdir() if p.is_dir()), reverse=True)
    except OSError:
        return []
    rows: list[HistoryRow] = []
    for name in names[:scan]:
        path = evidence_dir / name / "journal.jsonl"
        start = _start_of(path)
        if start is None or start.get("station") != station_id:
            continue
        try:
            record = rebuild(read_journal(path))
        except ConfigError:
            continue
        dut = start.get("dut") or {}
        rows.append(history_row(record, str(dut.get("slot", "") if isinstance(dut, dict)
                                            else "")))
        if len(rows) >= size:
            break
    rows.sort(key=lambda r: r.started, reverse=True)
    return rows


def journal_snapshot(evidence_dir: Path, run_id: str, reports: Path | None = None
                     ) -> dict[str, Any] | None:
    """A past run (by the record's run id) as ``GET /api/runs/{id}`` shows it, from its
    journal (and its report in ``reports``, if built); None if there is none. The id must be
    one file-name component."""
    if not RUN_ID.match(run_id) or ".." in run_id:
        return None
    path = evidence_dir / run_id / "journal.jsonl"
    if not path.is_file():
        return None
    view = SlotView(slot="", journal=path, tail=JournalTail(path))
    if reports is not None and (reports / run_id / "index.html").is_file():
        view.report = "ready"
    for event in view.tail.read():
        view.apply(event)
    dut = {}
    with contextlib.suppress(ConfigError):
        record = rebuild(read_journal(path))
        view.apply_record(record)
        dut = {"serial": record.dut_serial, "operator": record.operator,
               "started": record.started, "ended": record.ended}
    snap = view.snapshot()
    state = "done" if view.ended else "interrupted"
    return {"run_id": run_id, "state": state, "phase": state,
            "outcome": snap["outcome"], "dut": dut.get("serial"),
            "operator": dut.get("operator", ""), "started": dut.get("started", ""),
            "ended": dut.get("ended", ""), "aborting": False, "reason": view.reason,
            "tests": snap["tests"], "failed_limits": view.failed,
            "marginal_limits": view.marginal,
            "unjudged": [{"slot": "", **u} for u in view.unjudged],
            "slots": [{k: v for k, v in snap.items() if k != "tests"}],
            "record_run_ids": [run_id], "prompt": None, "exit_code": None}


class RunManager:
    """Starts, watches, aborts and answers the station's runs (one at a time)."""

    def __init__(self, config: AppConfig, bus: EventBus,
                 argv_builder: ArgvBuilder = pytest_argv,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.bus = bus
        self.argv_builder = argv_builder
        self.env = child_env(env)
        self.runs: dict[str, AppRun] = {}
        self.current: AppRun | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._reporting: subprocess.Popen[bytes] | None = None
        self._closing = False
        config.evidence_dir.mkdir(parents=True, exist_ok=True)
        self.history: list[HistoryRow] = load_history(config.evidence_dir, config.station_id,
                                                      config.history_size)

    # -- commands ---------------------------------------------------------------------------

    def start(self, dut: str | None, operator: str) -> AppRun:
        """Start a run; :class:`RunBusy` if one is going."""
        with self._lock:
            if self.current is not None and self.current.state == "running":
                raise RunBusy(self.current.run_id)
            run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-app-{uuid.uuid4().hex[:6]}"
            run = AppRun(run_id=run_id, dut=dut or None, operator=operator,
                         started=now_iso(), argv=self.argv_builder(self.config, dut, operator))
            known = self._folders()
            try:
                run.proc = subprocess.Popen(  # an argv list, never a shell
                    run.argv, cwd=self.config.rootdir, env=self.env, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                run.state, run.outcome = "done", Outcome.ERROR
                run.reason, run.ended = f"the run could not be started: {exc}", now_iso()
                self.runs[run_id] = run
                self.bus.publish({"type": "run_ended", "run_id": run_id,
                                  "outcome": run.outcome.value, "reason": run.reason})
                return run
            self.runs[run_id] = run
            self.current = run
        self.bus.publish({"type": "run_started", "run_id": run_id, "dut": run.dut,
                          "operator": operator})
        assert run.proc.stdout is not None
        self._spawn(self._drain, run, run.proc.stdout)
        self._spawn(self._watch, run, known)
        return run

    def get(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is not None:
            return run.snapshot()
        for candidate in list(self.runs.values()):
            if run_id in (v.record_run_id for v in list(candidate.views.values())):
                return candidate.snapshot()
        past = journal_snapshot(self.config.evidence_dir, run_id, self.config.reports)
        if past is None:
            raise RunNotFound(run_id)
        return past

    def abort(self, run_id: str) -> AppRun:
        """SIGTERM the run's child; SIGKILL it after ``abort_timeout_s`` if still alive."""
        run = self._running(run_id)
        with run.lock:
            first = not run.aborting
            run.aborting = True
        if first:
            self.bus.publish({"type": "aborting", "run_id": run.run_id})
            assert run.proc is not None
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGTERM)
            self._spawn(self._escalate, run)
        return run

    def answer(self, run_id: str, answer: str) -> None:
        """Write the label to the child's standard input (the plugin is reading it)."""
        run = self._running(run_id)
        assert run.proc is not None and run.proc.stdin is not None
        try:
            run.proc.stdin.write(answer.encode() + b"\n")
            run.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise RunNotRunning(f"run {run_id} no longer reads its input: {exc}") from None
        with run.lock:
            for view in run.views.values():
                view.prompt = None
        self.bus.publish({"type": "prompt_closed", "run_id": run_id, "slot": ""})

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Abort a running run and wait for it (server shutdown), then stop the threads; a
        report being built is stopped (``harness report --from-journal`` rebuilds it)."""
        self._closing = True
        reporting = self._reporting
        if reporting is not None:
            with contextlib.suppress(ProcessLookupError):
                reporting.terminate()
        run = self.current
        if run is not None and run.state == "running":
            with contextlib.suppress(RunNotRunning):
                self.abort(run.run_id)
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else
                                       self.config.abort_timeout_s + self.config.settle_s + 5)
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def history_rows(self) -> list[dict[str, str]]:
        with self._lock:
            return [r.as_dict() for r in self.history]

    def frame_path(self, run_id: str, slot: str = "") -> Path | None:
        """The last captured frame of a run (a slot's), resolved inside the evidence folder."""
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        with run.lock:
            views = [v for v in run.views.values() if not slot or v.slot == slot]
            frames = [f for v in views for f in reversed(v.frames)]
        evidence = self.config.evidence_dir.resolve()
        for frame in frames:  # the newest frame already on disk
            path = Path(frame)
            if not path.is_absolute():
                path = self.config.rootdir / path
            resolved = path.resolve()
            if resolved.is_relative_to(evidence) and resolved.is_file():
                return resolved
        return None

    # -- threads ----------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"app-{target.__name__}")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _running(self, run_id: str) -> AppRun:
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.state != "running" or run.proc is None:
            raise RunNotRunning(f"run {run_id} has ended ({run.outcome})")
        return run

    def _folders(self) -> set[str]:
        try:
            return {p.name for p in self.config.evidence_dir.iterdir()}
        except OSError:
            return set()

    @staticmethod
    def _drain(run: AppRun, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            run.output.append(raw.decode(errors="replace").rstrip())
        stream.close()

    def _escalate(self, run: AppRun) -> None:
        assert run.proc is not None
        try:
            run.proc.wait(self.config.abort_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                run.proc.kill()
            self.bus.publish({"type": "killed", "run_id": run.run_id,
                              "message": f"no end {self.config.abort_timeout_s:g} s after "
                                         "SIGTERM: killed (the watchdog makes the station safe)"})

    def _discover(self, run: AppRun, known: set[str]) -> None:
        expected = max(1, len(self.config.slots))
        if len(run.views) >= expected:
            return
        for name in sorted(self._folders() - known):
            path = self.config.evidence_dir / name / "journal.jsonl"
            start = _start_of(path)
            if start is None:
                continue  # not yet written (or not a journal): look again next time
            known.add(name)
            if start.get("station") != self.config.station_id:
                continue
            dut = start.get("dut") or {}
            slot = str(dut.get("slot", "")) if isinstance(dut, dict) else ""
            with run.lock:
                run.views[slot] = SlotView(slot=slot, journal=path, tail=JournalTail(path))

    def _pump(self, run: AppRun) -> None:
        for view in list(run.views.values()):
            events = view.tail.read()
            if not events:
                continue
            made: list[dict[str, Any]] = []
            with run.lock:
                for event in events:
                    made.extend(view.apply(event))
            for app_event in made:
                self.bus.publish({"run_id": run.run_id, **app_event})

    def _watch(self, run: AppRun, known: set[str]) -> None:
        assert run.proc is not None
        exited_at: float | None = None
        while True:
            self._discover(run, known)
            self._pump(run)
            if exited_at is None and run.proc.poll() is not None:
                exited_at = time.monotonic()
                self._discover(run, known)
                self._pump(run)
            if exited_at is not None:
                ended = bool(run.views) and all(v.ended for v in run.views.values())
                if ended or not run.views or time.monotonic() - exited_at > self.config.settle_s:
                    break
            time.sleep(POLL_S)
        self._finish(run)

    def _finish(self, run: AppRun) -> None:
        assert run.proc is not None
        with run.lock:
            for view in run.views.values():
                view.finish()
            outcomes = [v.outcome for v in run.views.values() if v.outcome is not None]
            run.exit_code = run.proc.returncode
            if outcomes:
                run.outcome = worst(outcomes)
                reasons = [f"{f'slot {v.slot}: ' if v.slot else ''}{v.reason}"
                           for v in sorted(run.views.values(), key=lambda v: v.slot) if v.reason]
                run.reason = "; ".join(reasons)
            else:
                run.outcome = Outcome.ABORTED if run.aborting else Outcome.ERROR
                last = next((line for line in reversed(run.output) if line.strip()), "")
                run.reason = (f"the run did not start (exit code {run.exit_code}): "
                              f"{last}")[:500]
            run.state, run.ended = "done", now_iso()
            rows = [HistoryRow(v.record_run_id, v.slot, v.serial, run.operator, run.started,
                               run.ended, (v.outcome or Outcome.ERROR).value, v.reason[:300])
                    for v in sorted(run.views.values(), key=lambda v: v.slot)]
        if run.proc.stdin is not None:
            with contextlib.suppress(OSError):
                run.proc.stdin.close()
        with self._lock:
            self.history = (rows + self.history)[: max(self.config.history_size, len(rows))]
        self.bus.publish({"type": "run_ended", "run_id": run.run_id,
                          "outcome": run.outcome.value, "reason": run.reason})
        if self.config.build_reports:
            self._reports(run)

    def _reports(self, run: AppRun) -> None:
        """Build each journal's Allure report (after the verdict; a child at low priority)."""
        from harness.app.reports import NICENESS, report_argv

        for view in sorted(run.views.values(), key=lambda v: v.slot):
            if self._closing or not view.record_run_id:
                continue
            with run.lock:
                view.report = "building"
            try:
                proc = subprocess.Popen(  # an argv list, never a shell
                    report_argv(self.config, view.journal, view.record_run_id),
                    cwd=self.config.rootdir, env=self.env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            except (OSError, ConfigError) as exc:
                state = f"not built: {exc}"
            else:
                self._reporting = proc
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, proc.pid, NICENESS)
                output, _ = proc.communicate()
                self._reporting = None
                lines = output.decode(errors="replace").strip().splitlines()
                state = ("ready" if proc.returncode == 0 else
                         (lines[-1] if lines else f"not built (exit {proc.returncode})")[:300])
            with run.lock:
                view.report = state
            self.bus.publish({"type": "report", "run_id": run.run_id, "slot": view.slot,
                              "record_run_id": view.record_run_id, "report": state})


def describe(runs: Sequence[AppRun]) -> list[dict[str, Any]]:
    """Short rows of the app's runs of this session (newest first)."""
    return [{"run_id": r.run_id, "state": r.state, "dut": r.dut, "operator": r.operator,
             "started": r.started, "outcome": r.outcome.value if r.outcome else None}
            for r in sorted(runs, key=lambda r: r.started, reverse=True)]


__all__ = ["FAILED", "NOT_OK", "POLL_S", "RECENT_FRAMES", "RUN_ID", "SHA256", "AppRun",
           "ArgvBuilder", "HistoryRow", "RunBusy", "RunManager", "RunNotFound", "RunNotRunning",
           "SlotView", "child_env", "describe", "history_row", "journal_snapshot", "load_history",
           "now_iso", "pytest_argv"]
