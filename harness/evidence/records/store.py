"""The records store: open (and migrate) a database, add a run, read runs and query them.

One SQLite file by default (``out/records.sqlite``, WAL, busy timeout, ``BEGIN IMMEDIATE``
writers) or a PostgreSQL server by URL (``postgresql://...``, psycopg 3) for a fleet of
stations writing at once. Opening applies the pending :data:`~.schema.MIGRATIONS` inside one
transaction, under a lock. :meth:`RecordStore.add_run` chains each run to its station's
previous run (:mod:`.chain`), numbers it as an attempt of its unit (:mod:`.attempts`) and keeps
the station's signature if a signer is given.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)

from harness.errors import ConfigError, EvidenceError
from harness.evidence.model import RunRecord
from harness.evidence.records import output_log, stats
from harness.evidence.records.attempts import RunKey, number_attempts
from harness.evidence.records.chain import (
    GENESIS_HASH,
    RunCheck,
    Signer,
    StoredRun,
    VerifyReport,
    normalise,
    run_hash,
    verify_chain,
)
from harness.evidence.records.filters import run_filters
from harness.evidence.records.output_log import OutputState
from harness.evidence.records.rows import insert_run, read_run
from harness.evidence.records.schema import MIGRATIONS, SCHEMA_VERSION
from harness.evidence.records.tables import T, schema_version
from harness.evidence.records.units import Pick
from harness.measurement import Outcome
from harness.paths import DEFAULT_RECORDS


@dataclass(frozen=True)
class RunSummary:
    """One stored run as ``harness records runs`` lists it."""

    run_id: str
    station: str
    product: str
    dut_serial: str
    started: str
    outcome: Outcome
    chain_seq: int
    record_hash: str
    attempt: int = 1
    rejudged_from: str = ""
    signature: str = ""
    signing_key: str = ""


def resolve_url(target: str | Path | None) -> str:
    """A SQLAlchemy URL for a path (SQLite) or a ``sqlite:``/``postgresql:`` URL."""
    if target is None or str(target) == "":
        target = DEFAULT_RECORDS
    text_ = str(target)
    if "://" not in text_:
        path = Path(text_).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    try:
        url = make_url(text_)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text_)  # never echo a password
        raise ConfigError(f"not a database URL: {shown!r}", field="--records") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    if backend == "sqlite":
        if url.database:
            Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        return text_
    raise ConfigError(f"unsupported database {backend!r}; allowed: a SQLite path or "
                      "sqlite:///PATH, postgresql://USER@HOST:PORT/DB", field="--records")


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60.0})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (no upgrade deadlock); readers never block.
        reading = conn.get_execution_options().get("harness_read", False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


class RecordStore:
    """The records database; opening it applies any pending migrations."""

    def __init__(self, target: str | Path | None = None, *,
                 upto: int = SCHEMA_VERSION) -> None:
        self.url = resolve_url(target)
        shown = make_url(self.url).render_as_string(hide_password=True)
        self.display = shown
        try:
            if self.url.startswith("sqlite"):
                self.engine = _sqlite_engine(self.url)
            else:
                self.engine = create_engine(self.url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"the {exc.name} driver is not installed; install it with "
                              "pip install 'camera-qual-harness[postgres]'",
                              field="--records") from None
        self.is_postgres = self.engine.dialect.name == "postgresql"
        try:
            self._migrate(upto)
        except OperationalError as exc:
            self.engine.dispose()
            raise EvidenceError(f"records database {shown}: "
                                f"{str(exc.orig).strip().splitlines()[0]}") from None
        except DatabaseError as exc:  # e.g. "file is not a database": bad input, not a fault
            self.engine.dispose()
            raise ConfigError(f"not a usable records database: "
                              f"{str(exc.orig).strip().splitlines()[0]}", source=shown) from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection that only reads: on SQLite it never takes the write lock, so readers
        (the fleet pages, an archive selection) never wait for, nor hold up, a writer."""
        with self.engine.connect() as conn:
            yield conn.execution_options(harness_read=True)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Schema ---------------------------------------------------------------------------

    def _migrate(self, upto: int) -> None:
        with self.engine.begin() as conn:
            if self.is_postgres:  # one migrator at a time across the fleet
                conn.execute(text("SELECT pg_advisory_xact_lock(1288001)"))
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise ConfigError(f"schema v{current} is newer than this harness knows "
                                  f"(v{SCHEMA_VERSION}); upgrade the harness",
                                  source=self.display)
            for step in MIGRATIONS:
                if current < step.version <= upto:
                    step.apply(conn)
                    conn.execute(insert(schema_version).values(
                        version=step.version, applied=_now(), description=step.description))

    def version(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    # Writing --------------------------------------------------------------------------

    def add_run(self, record: RunRecord, *, signer: Signer | None = None,
                attempts: int = 200) -> StoredRun:
        """Store a run, chain it to its station's previous run and number it as an attempt of
        its unit; with ``signer``, sign its ``record_hash`` (see :mod:`.chain`).
        EvidenceError on failure (a signer that fails included)."""
        rec = normalise(record)
        runs = T["runs"]
        last_error: Exception | None = None
        for tries in range(attempts):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(select(runs.c.id).where(runs.c.run_id == rec.run_id)
                                    ).first() is not None:
                        raise EvidenceError(f"records {self.display}: run {rec.run_id} is "
                                            "already stored")
                    number = self._attempt_of(conn, rec)
                    head = conn.execute(
                        select(runs.c.chain_seq, runs.c.record_hash)
                        .where(runs.c.station == rec.station)
                        .order_by(runs.c.chain_seq.desc()).limit(1)).first()
                    seq = (head.chain_seq if head else 0) + 1
                    prev = head.record_hash if head else GENESIS_HASH
                    digest = run_hash(rec, prev)
                    signature, key = self._sign(signer, digest, rec.run_id)
                    insert_run(conn, rec, chain_seq=seq, prev_hash=prev, record_hash=digest,
                               attempt=number, signature=signature, signing_key=key)
                return StoredRun(rec.run_id, rec.station, seq, prev, digest, number,
                                 signature, key)
            except IntegrityError as exc:  # another writer took this chain_seq: try again
                last_error = exc
                time.sleep(random.uniform(0.001, 0.02) * min(tries + 1, 10))
            except OperationalError as exc:
                last_error = exc
                time.sleep(random.uniform(0.01, 0.05))
            except SQLAlchemyError as exc:
                raise EvidenceError(f"records {self.display}: cannot store run "
                                    f"{rec.run_id}: {exc}") from exc
        raise EvidenceError(f"records {self.display}: cannot store run {rec.run_id} after "
                            f"{attempts} attempts: {last_error}")

    def _attempt_of(self, conn: Connection, rec: RunRecord) -> int:
        """The run's attempt number (rules in :mod:`.attempts`), counted under a per-unit
        lock on PostgreSQL (SQLite writers are serialised by ``BEGIN IMMEDIATE``)."""
        runs = T["runs"]
        if rec.rejudged_from:
            source = conn.execute(select(runs.c.attempt)
                                  .where(runs.c.run_id == rec.rejudged_from)).scalar()
            return int(source) if source is not None else 0
        if rec.characterisation:
            return 0
        if not rec.dut_serial:
            return 1
        if self.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(1288002, hashtext(:unit))"),
                         {"unit": f"{rec.product}\n{rec.dut_serial}"})
        earlier = conn.execute(select(func.count()).select_from(runs).where(
            runs.c.product == rec.product, runs.c.dut_serial == rec.dut_serial,
            runs.c.rejudged_from == "", runs.c.characterisation.is_(False))).scalar()
        return int(earlier or 0) + 1

    def _sign(self, signer: Signer | None, digest: str, run_id: str) -> tuple[str, str]:
        if signer is None:
            return "", ""
        try:
            signature = base64.b64encode(signer.sign(digest.encode("ascii"))).decode("ascii")
            return signature, str(signer.fingerprint)
        except Exception as exc:  # any signer fault is lost evidence, never a stored run
            raise EvidenceError(f"records {self.display}: cannot sign run {run_id}: "
                                f"{type(exc).__name__}: {exc}") from exc

    # Reading --------------------------------------------------------------------------

    def _pk(self, conn: Connection, run_id: str) -> int:
        runs = T["runs"]
        pk = conn.execute(select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
        if pk is None:
            raise ConfigError(f"no run {run_id!r} in the records", source=self.display)
        return int(pk)

    def get_run(self, run_id: str) -> RunRecord:
        with self.reading() as conn:
            return read_run(conn, self._pk(conn, run_id))

    def chain_info(self, run_id: str) -> StoredRun:
        with self.reading() as conn:
            row = conn.execute(_link_query().where(T["runs"].c.run_id == run_id)).first()
        if row is None:
            raise ConfigError(f"no run {run_id!r} in the records", source=self.display)
        return StoredRun(*row[1:])

    def count_runs(self, *, product: str | None = None, station: str | None = None,
                   since: str | None = None) -> int:
        """How many runs :meth:`runs` would list without a ``limit``."""
        query = (select(func.count()).select_from(T["runs"])
                 .where(*run_filters(product, station, since)))
        with self.reading() as conn:
            return int(conn.execute(query).scalar_one())

    def runs(self, *, product: str | None = None, station: str | None = None,
             since: str | None = None, limit: int | None = None, offset: int = 0
             ) -> list[RunSummary]:
        """The selected runs, newest first; ``limit`` of them after skipping ``offset``."""
        runs = T["runs"]
        query = (select(runs.c.run_id, runs.c.station, runs.c.product, runs.c.dut_serial,
                        runs.c.started, runs.c.outcome, runs.c.chain_seq, runs.c.record_hash,
                        runs.c.attempt, runs.c.rejudged_from, runs.c.signature,
                        runs.c.signing_key)
                 .where(*run_filters(product, station, since))
                 .order_by(runs.c.started.desc(), runs.c.id.desc()))
        if limit:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.reading() as conn:
            return [RunSummary(r[0], r[1], r[2], r[3], r[4], Outcome(r[5]), r[6], r[7],
                               int(r[8]), r[9], r[10], r[11]) for r in conn.execute(query)]

    def unit_yield(self, *, product: str | None = None, station: str | None = None,
                   since: str | None = None, rejudged: bool = False) -> stats.YieldReport:
        """Units tested, first-pass and final yield per product and station, and per limit the
        units failing it (:func:`.stats.unit_yield`)."""
        with self.reading() as conn:
            return stats.unit_yield(conn, run_filters(product, station, since),
                                    rejudged=rejudged)

    def yield_by_limit(self, *, product: str | None = None, station: str | None = None,
                       since: str | None = None) -> list[stats.LimitYield]:
        """Per limit, the units failing it at their first and latest attempt."""
        return list(self.unit_yield(product=product, station=station, since=since).limits)

    def cpk(self, *, product: str | None = None, station: str | None = None,
            since: str | None = None, name: str | None = None, limit_id: str | None = None,
            attempt: Pick | str = Pick.LATEST, limits_hash: str | None = None,
            rejudged: bool = False) -> list[stats.CpkRow]:
        """Cpk per limit, condition and limit version, one value per unit
        (:func:`.stats.cpk`); ``limits_hash`` may be a prefix of the limits' sha256."""
        where = run_filters(product, station, since)
        if limits_hash is not None:
            where.append(T["runs"].c.limits_hash.startswith(_hex_prefix(limits_hash),
                                                            autoescape=True))
        with self.reading() as conn:
            return stats.cpk(conn, where, name=name, limit_id=limit_id,
                             attempt=Pick.parse(attempt), rejudged=rejudged)

    def trend(self, *, product: str | None = None, station: str | None = None,
              since: str | None = None, measurement: str | None = None
              ) -> list[stats.TrendRow]:
        """Per station and UTC day: run outcomes, and a measurement's mean/min/max if named."""
        with self.reading() as conn:
            return stats.trend(conn, run_filters(product, station, since), measurement)

    def records(self, *, product: str | None = None, station: str | None = None,
                since: str | None = None) -> Iterator[tuple[RunSummary, RunRecord]]:
        """Every selected run with its summary (attempt, chain link, signature), in the order
        the runs were stored; read lazily on one connection."""
        runs = T["runs"]
        query = (select(runs.c.id, runs.c.run_id, runs.c.station, runs.c.product,
                        runs.c.dut_serial, runs.c.started, runs.c.outcome, runs.c.chain_seq,
                        runs.c.record_hash, runs.c.attempt, runs.c.rejudged_from,
                        runs.c.signature, runs.c.signing_key)
                 .where(*run_filters(product, station, since)).order_by(runs.c.id))
        with self.reading() as conn:
            for r in conn.execute(query).all():
                summary = RunSummary(r[1], r[2], r[3], r[4], r[5], Outcome(r[6]), r[7], r[8],
                                     int(r[9]), r[10], r[11], r[12])
                yield summary, read_run(conn, int(r[0]))

    def output_states(self, run_ids: Iterable[str] | None = None
                      ) -> dict[str, dict[str, OutputState]]:
        """Which outputs took which runs: ``{run_id: {output name: state}}``."""
        with self.reading() as conn:
            return output_log.output_states(conn, run_ids)

    def mark_output(self, run_id: str, name: str, status: str, error: str = ""
                    ) -> OutputState:
        """Record that output ``name`` took run ``run_id`` (``done``) or failed with
        ``error``; EvidenceError if the database cannot be written."""
        try:
            with self.engine.begin() as conn:
                return output_log.mark_output(conn, run_id, name, status, error)
        except SQLAlchemyError as exc:
            raise EvidenceError(f"records {self.display}: cannot record output {name} of run "
                                f"{run_id}: {exc}") from exc

    def verify(self, *, checks: Sequence[RunCheck] = ()) -> VerifyReport:
        """Recompute every run's hash, check each station's chain links and numbering and
        every run's attempt number, then run ``checks`` (e.g. signatures) on each run."""
        runs = T["runs"]
        with self.reading() as conn:
            rows = conn.execute(_link_query().order_by(runs.c.station, runs.c.chain_seq)).all()
            pks = {row[1]: int(row[0]) for row in rows}
            keys = conn.execute(select(runs.c.id, runs.c.run_id, runs.c.product,
                                       runs.c.dut_serial, runs.c.rejudged_from,
                                       runs.c.characterisation)
                                .order_by(runs.c.id))
            expected = number_attempts(RunKey(*k) for k in keys)

            def attempt_check(link: StoredRun, record: RunRecord) -> list[str]:
                want = expected[pks[link.run_id]]
                if link.attempt == want:
                    return []
                return [f"station {link.station}: run {link.run_id} is stored as attempt "
                        f"{link.attempt} of DUT {record.dut_serial}, but is attempt {want} "
                        "in the order runs were stored"]

            return verify_chain((StoredRun(*row[1:]) for row in rows),
                                lambda link: read_run(conn, pks[link.run_id]),
                                (attempt_check, *checks))


def _link_query() -> Any:
    runs = T["runs"]
    return select(runs.c.id, runs.c.run_id, runs.c.station, runs.c.chain_seq,
                  runs.c.prev_hash, runs.c.record_hash, runs.c.attempt, runs.c.signature,
                  runs.c.signing_key)


def _hex_prefix(text_: str) -> str:
    value = text_.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{1,64}", value):
        raise ConfigError(f"{text_!r} is not a limits hash; allowed: 1 to 64 hex digits "
                          "(a prefix of the limit spec's sha256)", field="--limits-hash")
    return value


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


__all__ = ["RecordStore", "RunSummary", "resolve_url"]
