"""Crash-safe run journal: append-only JSON Lines, one ``fsync`` per event.

Each event is one line ``{"seq", "time", "type", "run_id", ...}`` written with a single
``write`` on an ``O_APPEND`` descriptor and made durable with ``fsync`` before the call returns
(HardPy's lesson: a record written per update survives SIGKILL; OpenHTF's sinks, run at the
end, do not). After a kill the journal holds every event whose call returned; at worst the
last line is torn, and the reader ignores it and says so.

A write that fails raises :class:`~harness.errors.EvidenceError` and marks the journal failed:
the run's outcome can then only be ERROR (OpenHTF shows PASS when a sink fails; we must not).
:func:`rebuild` turns a journal back into a :class:`~harness.evidence.model.RunRecord`; a run
with no ``run_end`` is ABORTED, a test with no ``test_end`` is ABORTED (or ERROR if the run
did end), never PASS.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError, EvidenceError
from harness.evidence.interrupts import held
from harness.evidence.model import Artefact, RunRecord, TestRecord, Unjudged
from harness.measurement import Measurement, Outcome, worst
from harness.paths import safe_component

EventType = Literal["run_start", "test_start", "capture", "artefact", "measurement", "error",
                    "sequence", "note", "reading", "unjudged", "test_end", "run_end"]
EVENT_TYPES: tuple[str, ...] = ("run_start", "test_start", "capture", "artefact",
                                "measurement", "error", "sequence", "note", "reading",
                                "unjudged", "test_end", "run_end")
#: Outcome of a run whose journal ends without ``run_end`` (killed: nobody could say why).
INCOMPLETE_OUTCOME = Outcome.ABORTED


def now_iso() -> str:
    """UTC time, fixed-width ISO 8601 with microseconds (sorts as text)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def new_run_id() -> str:
    """A unique, time-ordered run id such as ``20261125T203036Z-1a2b3c4d``."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """Append-only writer of one run's journal.

    Use :meth:`create` for a new run; every method writes and fsyncs one event or raises
    :class:`EvidenceError`. Thread-safe (one lock around each append).
    """

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.failed = False
        self._lost = 0
        self._seq = 0
        self._derived: list[Outcome] = []
        self._lock = threading.Lock()
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            self.failed = True
            raise EvidenceError(f"journal {self.path}: cannot open: {exc.strerror}") from exc

    @classmethod
    def create(cls, directory: str | Path, run_id: str | None = None) -> Journal:
        """A new journal ``<directory>/<run_id>.jsonl`` (the run id is made if not given)."""
        run_id = safe_component(run_id, "run_id") if run_id else new_run_id()
        return cls(Path(directory) / f"{run_id}.jsonl", run_id)

    @property
    def outcome(self) -> Outcome:
        """The run's outcome so far: the worst event seen, ERROR once a write has failed."""
        derived = worst(self._derived)
        return worst([derived, Outcome.ERROR]) if self.failed else derived

    def _write_line(self, line: bytes) -> None:
        """Write ``line`` and fsync it. The sequence number is taken once the first byte is
        out, and the signals of :mod:`harness.evidence.interrupts` (Ctrl-C, SIGTERM as Aborted
        in a run) are held back until the line is written and counted: one landing between
        the two made the next event reuse the number."""
        assert self._fd is not None
        view = memoryview(line)
        taken = False
        with held():  # a signal between the write and the count waits for both
            while view:
                n = os.write(self._fd, view)
                if not taken:
                    self._seq += 1
                    taken = True
                view = view[n:]
            os.fsync(self._fd)

    def append(self, type_: EventType, **payload: Any) -> dict[str, Any]:
        """Write one event and fsync it; raise :class:`EvidenceError` if that fails."""
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown journal event {type_!r}; allowed: {', '.join(EVENT_TYPES)}")
        with self._lock:
            if self._fd is None:
                raise EvidenceError(f"journal {self.path}: already closed")
            try:
                if self.failed:
                    # Close a torn fragment and say that events are missing, then go on.
                    note = {"seq": self._seq + 1, "time": now_iso(), "type": "error",
                            "run_id": self.run_id, "test_id": "", "kind": "evidence",
                            "outcome": Outcome.ERROR.value,
                            "message": f"{self._lost} journal event(s) lost to write errors"}
                    self._write_line(b"\n" + _dumps(note))
                    self.failed = False
                    self._lost = 0
                event = {"seq": self._seq + 1, "time": now_iso(), "type": type_,
                         "run_id": self.run_id, **payload}
                self._write_line(_dumps(event))
            except OSError as exc:
                self.failed = True
                self._lost += 1
                self._derived.append(Outcome.ERROR)
                raise EvidenceError(f"journal {self.path}: write failed: "
                                    f"{exc.strerror or exc}") from exc
            except (TypeError, ValueError) as exc:
                raise EvidenceError(f"journal {self.path}: event {type_} is not JSON: {exc}"
                                    ) from exc
            return event

    # Typed events -----------------------------------------------------------------------

    def run_start(self, *, station: str, dut: Mapping[str, Any], operator: str = "",
                  software: Mapping[str, str] | None = None, limits_file: str = "",
                  limits_hash: str = "", devices: Sequence[Mapping[str, Any]] = (),
                  calibrations: Sequence[Mapping[str, Any]] = (),
                  characterisation: bool = False, rejudged_from: str = "") -> dict[str, Any]:
        """The run's header; a ``characterisation`` run (no limits) is at best INCOMPLETE;
        ``rejudged_from`` names the run whose recorded frames this run re-judges."""
        if characterisation:
            self._derived.append(Outcome.INCOMPLETE)
        extra: dict[str, Any] = {"characterisation": True} if characterisation else {}
        if rejudged_from:
            extra["rejudged_from"] = rejudged_from
        return self.append("run_start", station=station, dut=dict(dut), operator=operator,
                           software=dict(software or {}), limits_file=limits_file,
                           limits_hash=limits_hash, devices=[dict(d) for d in devices],
                           calibrations=[dict(c) for c in calibrations], **extra)

    def test_start(self, test_id: str, *, title: str = "", family: str = "") -> dict[str, Any]:
        return self.append("test_start", test_id=test_id, title=title, family=family)

    def capture(self, test_id: str, *, frames: Iterable[str], capture_set: str = "",
                sequence: str = "") -> dict[str, Any]:
        """Frames (by sha256) written to a capture set, journalled before they are analysed."""
        return self.append("capture", test_id=test_id, frames=list(frames),
                           capture_set=capture_set, sequence=sequence)

    def artefact(self, test_id: str, artefact: Artefact) -> dict[str, Any]:
        payload = artefact.as_dict()
        payload["test_id"] = test_id or artefact.test_id
        return self.append("artefact", **payload)

    def measurement(self, measurement: Measurement, test_id: str = "") -> dict[str, Any]:
        """A judged measurement (``test_id`` fills in the measurement's if it has none)."""
        self._derived.append(measurement.outcome)
        data = measurement.as_dict()
        if test_id and not data["test_id"]:
            data["test_id"] = test_id
        return self.append("measurement", measurement=data)

    def sequence(self, test_id: str, event: str, **payload: Any) -> dict[str, Any]:
        """What a capture sequence did (start, end, a settle skipped, a closed loop's
        result), so the journal tells the whole story of every capture set."""
        return self.append("sequence", test_id=test_id, event=event, data=dict(payload))

    def note(self, message: str, *, test_id: str = "", **facts: Any) -> dict[str, Any]:
        """A recorded fact that qualifies the figures (e.g. the camera has no Gain feature,
        so the photon transfer is at its fixed gain); it does not change the outcome."""
        return self.append("note", test_id=test_id, message=message, facts=dict(facts))

    def reading(self, test_id: str, role: str, method: str, value: Mapping[str, Any]
                ) -> dict[str, Any]:
        """An instrument reading a test used outside a capture set (a supply's current), so
        a replay of the run can serve it again."""
        return self.append("reading", test_id=test_id, role=role, method=method,
                           value=dict(value))

    def unjudged(self, limits: Iterable[Unjudged]) -> dict[str, Any]:
        """The limits of the spec that got no verdict (written once, before ``run_end``);
        any makes the run INCOMPLETE."""
        listed = [u.as_dict() for u in limits]
        if listed:
            self._derived.append(Outcome.INCOMPLETE)
        return self.append("unjudged", limits=listed)

    def error(self, message: str, *, test_id: str = "", kind: str = "station",
              outcome: Outcome = Outcome.ERROR) -> dict[str, Any]:
        """A fault (``kind`` station, instrument, evidence, ...) with the outcome it forces."""
        self._derived.append(outcome)
        return self.append("error", test_id=test_id, kind=kind, outcome=outcome.value,
                           message=message)

    def test_end(self, test_id: str, outcome: Outcome, *, message: str = "") -> dict[str, Any]:
        self._derived.append(outcome)
        return self.append("test_end", test_id=test_id, outcome=outcome.value, message=message)

    def run_end(self, outcome: Outcome, *, reason: str = "") -> Outcome:
        """Close the run; the outcome written is never better than what the journal saw."""
        final = worst([outcome, self.outcome])
        self.append("run_end", outcome=final.value, reason=reason)
        return final

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dumps(event: Mapping[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            + "\n").encode()


@dataclass(frozen=True)
class JournalContents:
    """The events of a journal and what was wrong with the file."""

    path: Path
    events: tuple[dict[str, Any], ...]
    torn_tail: bool
    damaged_lines: tuple[int, ...]


def read_journal(path: str | Path) -> JournalContents:
    """Read a journal, ignoring a torn last line (left by a kill) and noting damaged lines."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such journal file", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read journal: {exc.strerror}", source=str(path)) from None
    *body, tail = raw.split(b"\n")
    events: list[dict[str, Any]] = []
    damaged: list[int] = []
    for number, line in enumerate(body, start=1):
        if not line.strip():
            continue
        event = _parse(line)
        if event is None:
            damaged.append(number)
        else:
            events.append(event)
    torn = False
    if tail.strip():  # text after the last newline: a write cut short by a kill
        event = _parse(tail)
        if event is None:
            torn = True
        else:
            events.append(event)
    return JournalContents(path, tuple(events), torn, tuple(damaged))


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) \
            or event["type"] not in EVENT_TYPES:
        return None
    return event


def _seq(value: Any) -> int | None:
    """An event's sequence number, None if it is not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_start(start: Mapping[str, Any], source: str) -> None:
    """The run_start event names the run: its shape must be right or nothing is rebuilt.

    The run id becomes a folder and file name (Allure results, sign-off page), so it must be
    one safe file-name component.
    """
    safe_component(str(start.get("run_id", "")), "run_id")
    for key, kind in (("dut", dict), ("software", dict), ("devices", list),
                      ("calibrations", list)):
        value = start.get(key)
        if value is not None and not isinstance(value, kind):
            raise ConfigError(f"run_start {key} must be a {'mapping' if kind is dict else 'list'}"
                              f", found {type(value).__name__}", source=source, field=key)
        if kind is list and value and not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"run_start {key} must be a list of mappings", source=source,
                              field=key)


def _test(tests: dict[str, dict[str, Any]], test_id: str) -> dict[str, Any]:
    if test_id not in tests:
        tests[test_id] = {"title": "", "family": "", "started": "", "ended": "",
                          "declared": None, "message": "", "measurements": [], "errors": [],
                          "forced": []}
    return tests[test_id]


def rebuild(journal: str | Path | JournalContents) -> RunRecord:
    """Rebuild the run record from a journal (complete or cut short by a crash)."""
    contents = journal if isinstance(journal, JournalContents) else read_journal(journal)
    source = str(contents.path)
    if not contents.events or contents.events[0].get("type") != "run_start":
        raise ConfigError("the journal does not begin with a run_start event", source=source)
    start = contents.events[0]
    try:
        _check_start(start, source)
    except ConfigError as exc:
        raise ConfigError(exc.detail, source=source, field=exc.field) from None
    tests: dict[str, dict[str, Any]] = {}
    artefacts: list[Artefact] = []
    unjudged: list[Unjudged] = []
    run_errors: list[Outcome] = []
    reasons: list[str] = []
    end: dict[str, Any] | None = None
    last_time = start.get("time", "")
    expected_seq = _seq(start.get("seq", 1)) or 1
    for event in contents.events:
        seq = _seq(event.get("seq"))
        if seq != expected_seq:
            reasons.append(f"journal sequence jumps from {expected_seq - 1} to {event.get('seq')}")
            run_errors.append(Outcome.ERROR)
        expected_seq = (seq if seq is not None else expected_seq) + 1
        last_time = event.get("time", last_time)
        kind = str(event["type"])
        test_id = str(event.get("test_id", ""))
        try:
            if kind == "test_start":
                t = _test(tests, test_id)
                t.update(title=event.get("title", ""), family=event.get("family", ""),
                         started=event.get("time", ""))
            elif kind == "measurement":
                m = Measurement.from_dict(event["measurement"])
                _test(tests, m.test_id)["measurements"].append(m)
            elif kind == "capture":
                for sha in event.get("frames", []):
                    artefacts.append(Artefact(sha256=sha, kind="frame",
                                              path=event.get("capture_set", ""), test_id=test_id))
            elif kind == "artefact":
                artefacts.append(Artefact(sha256=event["sha256"], kind=event.get("kind", ""),
                                          name=event.get("name", ""), path=event.get("path", ""),
                                          test_id=test_id))
            elif kind == "error":
                outcome = Outcome.parse(event.get("outcome", "ERROR"))
                message = f"{event.get('kind', 'error')}: {event.get('message', '')}"
                if test_id:
                    t = _test(tests, test_id)
                    t["errors"].append(message)
                    t["forced"].append(outcome)
                else:
                    run_errors.append(outcome)
                    reasons.append(message)
            elif kind == "test_end":
                t = _test(tests, test_id)
                t.update(declared=Outcome.parse(event["outcome"]), ended=event.get("time", ""),
                         message=event.get("message", ""))
            elif kind == "unjudged":
                unjudged.extend(Unjudged.from_dict(u) for u in event["limits"])
            elif kind == "run_end":
                end = event
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            reasons.append(f"journal event #{event.get('seq')} ({kind}) is malformed: {exc}")
            run_errors.append(Outcome.ERROR)
    records: list[TestRecord] = []
    for test_id, t in tests.items():
        derived = [m.outcome for m in t["measurements"]] + t["forced"]
        message = t["message"]
        if t["declared"] is None:
            missing = Outcome.ERROR if end is not None else Outcome.ABORTED
            derived.append(missing)
            message = ("the run ended without ending this test" if end is not None else
                       "interrupted: the journal ends inside this test")
        else:
            derived.append(t["declared"])
        records.append(TestRecord(test_id=test_id, outcome=worst(derived), title=t["title"],
                                  family=t["family"], started=t["started"], ended=t["ended"],
                                  message=message, measurements=tuple(t["measurements"]),
                                  errors=tuple(t["errors"])))
    outcomes = [r.outcome for r in records] + run_errors
    characterisation = start.get("characterisation") is True
    if characterisation:
        outcomes.append(Outcome.INCOMPLETE)
        reasons.insert(0, "characterisation run (no limits judged)")
    if unjudged:
        outcomes.append(Outcome.INCOMPLETE)
        reasons.append(f"{len(unjudged)} limit(s) of the spec not judged: "
                       + ", ".join(u.limit_id for u in unjudged))
    if contents.damaged_lines:
        outcomes.append(Outcome.ERROR)
        reasons.append(f"journal lines {list(contents.damaged_lines)} are damaged")
    if end is None:
        outcomes.append(INCOMPLETE_OUTCOME)
        reasons.append(f"the journal ends without run_end after {last_time} (process killed?)")
        ended = last_time
    else:
        try:
            outcomes.append(Outcome.parse(str(end["outcome"])))
        except (KeyError, ValueError) as exc:
            outcomes.append(Outcome.ERROR)
            reasons.append(f"journal event #{end.get('seq')!r} (run_end) is malformed: {exc}")
        if end.get("reason") and str(end["reason"]) not in reasons:
            reasons.insert(0, str(end["reason"]))
        ended = end.get("time", "")
    dut = start.get("dut") or {}
    return RunRecord(
        run_id=str(start.get("run_id", "")), station=str(start.get("station", "")),
        outcome=worst(outcomes), product=str(dut.get("product", "")),
        dut_serial=str(dut.get("serial", "")), dut_firmware=str(dut.get("firmware", "")),
        operator=str(start.get("operator", "")), started=str(start.get("time", "")),
        ended=ended, limits_file=str(start.get("limits_file", "")),
        limits_hash=str(start.get("limits_hash", "")),
        software={str(k): str(v) for k, v in (start.get("software") or {}).items()},
        reason="; ".join(reasons), tests=tuple(records), artefacts=tuple(artefacts),
        devices=tuple(start.get("devices") or ()),
        calibrations=tuple(start.get("calibrations") or ()), complete=end is not None,
        unjudged=tuple(unjudged), characterisation=characterisation,
        rejudged_from=str(start.get("rejudged_from") or ""))


__all__ = ["EVENT_TYPES", "INCOMPLETE_OUTCOME", "Journal", "JournalContents", "new_run_id",
           "now_iso", "read_journal", "rebuild"]
