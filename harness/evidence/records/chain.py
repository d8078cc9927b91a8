"""Tamper evidence: the canonical form of a run, its hash, and the check of a station's chain.

Runs of a station form a hash chain. A run's ``record_hash`` is
``sha256(prev_hash + "\\n" + canonical JSON of the normalised run)``, where ``prev_hash`` is
the hash of the station's previous run (64 zeros for the first) and ``chain_seq`` counts
1, 2, 3, ... :func:`verify_chain` recomputes every hash, so an edited value, a deleted run or a
re-ordered chain is found. (Deleting the *last* runs is only detectable against an external
copy of the head hash, which the sign-off page prints.)

A station may sign each run: a :class:`Signer` signs the ASCII bytes of the run's
``record_hash`` (its 64 hex digits); the store keeps the base64 signature and the key's
fingerprint. Checking signatures is a :data:`RunCheck` given to :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.evidence.model import Artefact, RunRecord, TestRecord, Unjudged
from harness.evidence.records.tables import CAL_COLUMNS, DEVICE_COLUMNS
from harness.measurement import Measurement

GENESIS_HASH = "0" * 64


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _split(d: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    extra = dict(d.get("extra") or {})
    extra.update({k: v for k, v in d.items() if k not in columns and k != "extra"})
    out: dict[str, Any] = {c: str(d.get(c, "") or "") for c in columns}
    out["extra"] = json.loads(json.dumps(extra, default=str))
    return out


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(dict(data), default=str)))


def normalise(record: RunRecord) -> RunRecord:
    """The record exactly as the database gives it back (floats, strings, plain JSON)."""
    tests = tuple(TestRecord(
        test_id=t.test_id, outcome=t.outcome, title=t.title, family=t.family,
        started=t.started, ended=t.ended, message=t.message, errors=tuple(t.errors),
        measurements=tuple(Measurement(
            name=m.name, value=_num(m.value), unit=m.unit, outcome=m.outcome,
            limit_id=m.limit_id, low=_num(m.low), high=_num(m.high),
            marginal_low=_num(m.marginal_low), marginal_high=_num(m.marginal_high),
            margin=_num(m.margin), condition=_plain(m.condition),
            test_id=t.test_id, message=m.message, uncertainty=_num(m.uncertainty),
            decision=m.decision, coverage_k=_num(m.coverage_k)) for m in t.measurements))
        for t in record.tests)
    return RunRecord(
        run_id=record.run_id, station=record.station, outcome=record.outcome,
        product=record.product, dut_serial=record.dut_serial,
        dut_firmware=record.dut_firmware, operator=record.operator, started=record.started,
        ended=record.ended, limits_file=record.limits_file, limits_hash=record.limits_hash,
        software={str(k): str(v) for k, v in record.software.items()}, reason=record.reason,
        tests=tests, artefacts=tuple(Artefact(a.sha256, a.kind, a.name, a.path, a.test_id)
                                     for a in record.artefacts),
        devices=tuple(_split(d, DEVICE_COLUMNS) for d in record.devices),
        calibrations=tuple(_split(c, CAL_COLUMNS) for c in record.calibrations),
        complete=record.complete,
        unjudged=tuple(Unjudged(u.limit_id, u.measurement, u.reason, _plain(u.condition))
                       for u in record.unjudged),
        characterisation=record.characterisation, rejudged_from=record.rejudged_from)


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, UTF-8, no NaN: the one text a value hashes as."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


#: Measurement fields added in schema v6; left out of the hashed form while at their defaults,
#: so a run stored before them keeps its hash.
_LATER_FIELDS = {"uncertainty": None, "decision": "", "coverage_k": None}


def hashed_form(record: RunRecord) -> dict[str, Any]:
    """The normalised run as the dictionary its hash is computed over."""
    data = normalise(record).as_dict()
    for test in data["tests"]:
        for m in test["measurements"]:
            for key, default in _LATER_FIELDS.items():
                if m.get(key, default) == default:
                    m.pop(key, None)
    return data


def run_hash(record: RunRecord, prev_hash: str) -> str:
    """``sha256(prev_hash + "\\n" + canonical JSON of the normalised run)``."""
    body = canonical_json(hashed_form(record))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


class Signer(Protocol):
    """A station's signing key: ``sign`` gets the ASCII bytes of a run's ``record_hash``."""

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class StoredRun:
    """A run's place in its station's chain, its attempt number and its signature."""

    run_id: str
    station: str
    chain_seq: int
    prev_hash: str
    record_hash: str
    attempt: int = 1
    signature: str = ""
    """base64 of the signer's signature over the ASCII ``record_hash``; ``""`` if unsigned."""
    signing_key: str = ""
    """The signing key's fingerprint; ``""`` if unsigned."""


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    stations: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


RunCheck = Callable[[StoredRun, RunRecord], Iterable[str]]
"""An extra check of one stored run during verification (e.g. its signature against the
station keys); it returns the problems it found, each one line naming the run."""


def verify_chain(links: Iterable[StoredRun], read: Callable[[StoredRun], RunRecord],
                 checks: Sequence[RunCheck] = ()) -> VerifyReport:
    """Check each station's chain: numbering, links and every run's hash, then ``checks``.

    ``links`` must come ordered by station and ``chain_seq``; ``read`` gives a link's run.
    """
    problems: list[str] = []
    checked = 0
    stations: set[str] = set()
    expected: dict[str, tuple[int, str]] = {}
    for link in links:
        checked += 1
        station, run_id = link.station, link.run_id
        stations.add(station)
        want_seq, want_prev = expected.get(station, (1, GENESIS_HASH))
        if link.chain_seq != want_seq:
            problems.append(f"station {station}: run {run_id} is #{link.chain_seq} in the "
                            f"chain, expected #{want_seq} (a run was removed or reordered)")
        if link.prev_hash != want_prev:
            problems.append(f"station {station}: run {run_id} does not chain to the "
                            "previous run's hash")
        record = read(link)
        if run_hash(record, link.prev_hash or "") != link.record_hash:
            problems.append(f"station {station}: run {run_id} was edited (its content "
                            "no longer matches its hash)")
        for check in checks:
            problems.extend(check(link, record))
        expected[station] = ((link.chain_seq or 0) + 1, link.record_hash or "")
    return VerifyReport(checked, len(stations), tuple(problems))


__all__ = ["GENESIS_HASH", "RunCheck", "Signer", "StoredRun", "VerifyReport", "canonical_json",
           "hashed_form", "normalise", "run_hash", "verify_chain"]
