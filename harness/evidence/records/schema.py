"""Schema versions: :data:`MIGRATIONS` is the ordered list of steps a database is brought
through at open (inside one transaction, under a lock; see
:meth:`~harness.evidence.records.store.RecordStore`).

Each step adds what its version needs (``ALTER TABLE`` for new columns, new tables and
indexes) and fills the new columns of runs already stored, reading them with
:func:`~harness.evidence.records.rows.read_run` at that version. The tables themselves, at
any version, are in :mod:`harness.evidence.records.tables`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Index, MetaData, select, text

from harness.evidence.records.attempts import RunKey, number_attempts
from harness.evidence.records.chain import GENESIS_HASH, run_hash
from harness.evidence.records.rows import read_run
from harness.evidence.records.tables import T, tables


def _v1_create(conn: Connection) -> None:
    md = MetaData()
    tables(md, version=1)
    md.create_all(conn)


def _v2_chain(conn: Connection) -> None:
    for column, kind in (("chain_seq", "INTEGER"), ("prev_hash", "VARCHAR(64)"),
                         ("record_hash", "VARCHAR(64)")):
        conn.execute(text(f"ALTER TABLE runs ADD COLUMN {column} {kind}"))
    runs = T["runs"]
    heads: dict[str, tuple[int, str]] = {}
    for pk, station in conn.execute(select(runs.c.id, runs.c.station).order_by(runs.c.id)):
        seq, prev = heads.get(station, (0, GENESIS_HASH))
        digest = run_hash(read_run(conn, pk, version=2), prev)
        conn.execute(runs.update().where(runs.c.id == pk).values(
            chain_seq=seq + 1, prev_hash=prev, record_hash=digest))
        heads[station] = (seq + 1, digest)
    Index("ux_runs_station_seq", runs.c.station, runs.c.chain_seq, unique=True).create(conn)


def _v3_query_indexes(conn: Connection) -> None:
    Index("ix_runs_product_started", T["runs"].c.product, T["runs"].c.started).create(conn)
    Index("ix_measurements_name", T["measurements"].c.name).create(conn)


def _v4_unjudged(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN characterisation BOOLEAN NOT NULL "
                      "DEFAULT FALSE"))
    md = MetaData()
    tables(md, version=4)["unjudged"].create(conn)


def _v5_attempts_signatures_outputs(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN rejudged_from VARCHAR(128) NOT NULL "
                      "DEFAULT ''"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN signature TEXT NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN signing_key VARCHAR(128) NOT NULL "
                      "DEFAULT ''"))
    runs = T["runs"]
    stored = conn.execute(select(runs.c.id, runs.c.run_id, runs.c.product, runs.c.dut_serial,
                                 runs.c.characterisation).order_by(runs.c.id))
    numbers = number_attempts(RunKey(pk, run_id, product, serial, "", bool(char))
                              for pk, run_id, product, serial, char in stored)
    for pk, attempt in numbers.items():
        if attempt != 1:
            conn.execute(runs.update().where(runs.c.id == pk).values(attempt=attempt))
    Index("ix_runs_unit", runs.c.product, runs.c.dut_serial, runs.c.id).create(conn)
    md = MetaData()
    tables(md, version=5)["outputs"].create(conn)


def _v6_uncertainty(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE measurements ADD COLUMN uncertainty DOUBLE PRECISION"))
    conn.execute(text("ALTER TABLE measurements ADD COLUMN decision VARCHAR(32) NOT NULL "
                      "DEFAULT ''"))
    conn.execute(text("ALTER TABLE measurements ADD COLUMN coverage_k DOUBLE PRECISION"))


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, tests, measurements, artefacts, devices, calibrations", _v1_create),
    Migration(2, "per-station hash chain (chain_seq, prev_hash, record_hash)", _v2_chain),
    Migration(3, "query indexes (runs by product/time, measurements by name)",
              _v3_query_indexes),
    Migration(4, "limits a run left unjudged; characterisation runs", _v4_unjudged),
    Migration(5, "attempts per unit, re-judged runs, station signatures; outputs per run",
              _v5_attempts_signatures_outputs),
    Migration(6, "a measurement's standard uncertainty and decision rule (simple, "
                 "fixed-guard, guarded with k)", _v6_uncertainty),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]
