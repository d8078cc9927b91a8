"""A :class:`~harness.evidence.model.RunRecord` to table rows and back.

:func:`read_run` takes the schema version the database is at, so that a migration can read
runs before the later columns and tables exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import Connection, MetaData, Table, insert, select

from harness.evidence.model import Artefact, RunRecord, TestRecord, Unjudged
from harness.evidence.records.tables import CAL_COLUMNS, DEVICE_COLUMNS, T, tables
from harness.measurement import Measurement, Outcome

NEWEST = 99


def insert_run(conn: Connection, rec: RunRecord, **columns: Any) -> int:
    """Insert a (normalised) run and its children; ``columns`` are the store's own (chain
    link, attempt, signature). Returns the run's primary key."""
    runs = T["runs"]
    result = conn.execute(insert(runs).values(
        run_id=rec.run_id, station=rec.station, product=rec.product,
        dut_serial=rec.dut_serial, dut_firmware=rec.dut_firmware, operator=rec.operator,
        started=rec.started, ended=rec.ended, outcome=rec.outcome.value,
        limits_file=rec.limits_file, limits_hash=rec.limits_hash, software=dict(rec.software),
        reason=rec.reason, complete=rec.complete, characterisation=rec.characterisation,
        rejudged_from=rec.rejudged_from, **columns))
    assert result.inserted_primary_key is not None
    pk = int(result.inserted_primary_key[0])
    _insert_many(conn, T["tests"], pk, (
        {"test_id": t.test_id, "title": t.title, "family": t.family,
         "outcome": t.outcome.value, "started": t.started, "ended": t.ended,
         "message": t.message, "errors": list(t.errors)} for t in rec.tests))
    _insert_many(conn, T["measurements"], pk, (
        {**{k: v for k, v in m.as_dict().items() if k != "condition"},
         "condition": dict(m.condition)} for m in rec.measurements))
    _insert_many(conn, T["artefacts"], pk, (a.as_dict() for a in rec.artefacts))
    _insert_many(conn, T["devices"], pk, (dict(d) for d in rec.devices))
    _insert_many(conn, T["calibrations"], pk, (dict(c) for c in rec.calibrations))
    _insert_many(conn, T["unjudged"], pk, (u.as_dict() for u in rec.unjudged))
    return pk


def _insert_many(conn: Connection, table: Table, run_pk: int,
                 rows: Iterable[dict[str, Any]]) -> None:
    values = [{**row, "run_pk": run_pk, "position": i} for i, row in enumerate(rows)]
    if values:
        conn.execute(insert(table), values)


@cache
def _columns(table: str, version: int) -> frozenset[str]:
    return frozenset(c.name for c in tables(MetaData(), version)[table].c)


def read_run(conn: Connection, pk: int, version: int = NEWEST) -> RunRecord:
    """The stored run with primary key ``pk``, reading only what exists at ``version``."""
    runs = T["runs"]
    present = _columns("runs", version)
    columns = [c for c in runs.c if c.name in present]
    r = conn.execute(select(*columns).where(runs.c.id == pk)).mappings().one()

    def children(name: str) -> list[Any]:
        table = T[name]
        known = _columns(name, version)
        return list(conn.execute(select(*(c for c in table.c if c.name in known))
                                 .where(table.c.run_pk == pk)
                                 .order_by(table.c.position)).mappings())

    by_test: dict[str, list[Measurement]] = defaultdict(list)
    for m in children("measurements"):
        by_test[m["test_id"]].append(Measurement(
            name=m["name"], value=m["value"], unit=m["unit"], outcome=Outcome(m["outcome"]),
            limit_id=m["limit_id"], low=m["low"], high=m["high"],
            marginal_low=m["marginal_low"], marginal_high=m["marginal_high"],
            margin=m["margin"], condition=dict(m["condition"] or {}), test_id=m["test_id"],
            message=m["message"], uncertainty=m.get("uncertainty"),
            decision=m.get("decision") or "", coverage_k=m.get("coverage_k")))
    tests = tuple(TestRecord(
        test_id=t["test_id"], outcome=Outcome(t["outcome"]), title=t["title"],
        family=t["family"], started=t["started"], ended=t["ended"], message=t["message"],
        errors=tuple(t["errors"] or ()), measurements=tuple(by_test.get(t["test_id"], ())))
        for t in children("tests"))

    def rest(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
        return {**{c: row[c] for c in columns}, "extra": dict(row["extra"] or {})}

    return RunRecord(
        run_id=r["run_id"], station=r["station"], outcome=Outcome(r["outcome"]),
        product=r["product"], dut_serial=r["dut_serial"], dut_firmware=r["dut_firmware"],
        operator=r["operator"], started=r["started"], ended=r["ended"],
        limits_file=r["limits_file"], limits_hash=r["limits_hash"],
        software=dict(r["software"] or {}), reason=r["reason"], tests=tests,
        artefacts=tuple(Artefact(a["sha256"], a["kind"], a["name"], a["path"], a["test_id"])
                        for a in children("artefacts")),
        devices=tuple(rest(d, DEVICE_COLUMNS) for d in children("devices")),
        calibrations=tuple(rest(c, CAL_COLUMNS) for c in children("calibrations")),
        complete=bool(r["complete"]),
        unjudged=tuple(Unjudged(u["limit_id"], u["measurement"], u["reason"],
                                dict(u["condition"] or {}))
                       for u in (children("unjudged") if version >= 4 else ())),
        characterisation=bool(r.get("characterisation", False)),
        rejudged_from=str(r.get("rejudged_from", "") or ""))


__all__ = ["NEWEST", "insert_run", "read_run"]
