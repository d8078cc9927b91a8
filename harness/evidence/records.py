"""Records database (SQLAlchemy Core): runs, tests, measurements, artefacts, devices, calibrations.

One SQLite file by default (``out/records.sqlite``, WAL, busy timeout, ``BEGIN IMMEDIATE``
writers) or a PostgreSQL server by URL (``postgresql://...``, psycopg 3) for a fleet of
stations writing at once. The schema is versioned: :data:`MIGRATIONS` is an ordered list of
steps applied at open, inside one transaction, under a lock.

Tamper evidence: runs of a station form a hash chain. A run's ``record_hash`` is
``sha256(prev_hash + "\\n" + canonical JSON of the run)``, where ``prev_hash`` is the hash of
the station's previous run (64 zeros for the first) and ``chain_seq`` counts 1, 2, 3, ...
:meth:`RecordStore.verify` recomputes every hash, so an edited value, a deleted run or a
re-ordered chain is found. (Deleting the *last* runs is only detectable against an external
copy of the head hash, which the sign-off page prints.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    false,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)

from harness.errors import ConfigError, EvidenceError
from harness.evidence.model import (
    Artefact,
    Measurement,
    Outcome,
    RunRecord,
    TestRecord,
    Unjudged,
)

DEFAULT_RECORDS = Path("out/records.sqlite")
GENESIS_HASH = "0" * 64
_DEVICE_COLUMNS = ("role", "kind", "driver", "vendor", "model", "serial", "firmware")
_CAL_COLUMNS = ("role", "certificate", "calibrated", "due")


def _tables(md: MetaData, version: int) -> dict[str, Table]:
    """The tables as they are at schema ``version`` (chain columns arrive in v2)."""
    chain: list[Column[Any]] = [Column("chain_seq", Integer), Column("prev_hash", String(64)),
             Column("record_hash", String(64))] if version >= 2 else []
    if version >= 4:
        chain.append(Column("characterisation", Boolean, nullable=False,
                            server_default=false()))
    runs = Table(
        "runs", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(128), nullable=False, unique=True),
        Column("station", String(128), nullable=False),
        Column("product", String(128), nullable=False, default=""),
        Column("dut_serial", String(128), nullable=False, default=""),
        Column("dut_firmware", String(128), nullable=False, default=""),
        Column("operator", String(128), nullable=False, default=""),
        Column("started", String(40), nullable=False, default=""),
        Column("ended", String(40), nullable=False, default=""),
        Column("outcome", String(16), nullable=False),
        Column("limits_file", Text, nullable=False, default=""),
        Column("limits_hash", String(64), nullable=False, default=""),
        Column("software", JSON, nullable=False),
        Column("reason", Text, nullable=False, default=""),
        Column("complete", Boolean, nullable=False, default=True),
        *chain,
    )

    def run_pk() -> Column[int]:
        return Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"),
                      nullable=False, index=True)

    tests = Table(
        "tests", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        Column("test_id", Text, nullable=False),
        Column("title", Text, nullable=False, default=""),
        Column("family", String(64), nullable=False, default=""),
        Column("outcome", String(16), nullable=False),
        Column("started", String(40), nullable=False, default=""),
        Column("ended", String(40), nullable=False, default=""),
        Column("message", Text, nullable=False, default=""),
        Column("errors", JSON, nullable=False),
    )
    measurements = Table(
        "measurements", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        Column("test_id", Text, nullable=False),
        Column("name", String(256), nullable=False),
        Column("limit_id", String(128), nullable=False, default=""),
        Column("value", Double),
        Column("unit", String(64), nullable=False, default=""),
        Column("low", Double),
        Column("high", Double),
        Column("marginal_low", Double),
        Column("marginal_high", Double),
        Column("margin", Double),
        Column("outcome", String(16), nullable=False),
        Column("condition", JSON, nullable=False),
        Column("message", Text, nullable=False, default=""),
    )
    artefacts = Table(
        "artefacts", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        Column("sha256", String(64), nullable=False, index=True),
        Column("kind", String(32), nullable=False),
        Column("name", Text, nullable=False, default=""),
        Column("path", Text, nullable=False, default=""),
        Column("test_id", Text, nullable=False, default=""),
    )
    devices = Table(
        "devices", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        *(Column(c, String(256), nullable=False, default="") for c in _DEVICE_COLUMNS),
        Column("extra", JSON, nullable=False),
    )
    calibrations = Table(
        "calibrations", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        *(Column(c, String(256), nullable=False, default="") for c in _CAL_COLUMNS),
        Column("extra", JSON, nullable=False),
    )
    unjudged = Table(
        "unjudged", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        Column("limit_id", String(128), nullable=False),
        Column("measurement", String(256), nullable=False, default=""),
        Column("condition", JSON, nullable=False),
        Column("reason", Text, nullable=False, default=""),
    )
    tables = {"runs": runs, "tests": tests, "measurements": measurements,
              "artefacts": artefacts, "devices": devices, "calibrations": calibrations,
              "unjudged": unjudged}
    if version < 4:
        md.remove(unjudged)
        del tables["unjudged"]
    return tables


metadata = MetaData()
T = _tables(metadata, version=99)
schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", String(40), nullable=False),
    Column("description", Text, nullable=False),
)


# Migrations --------------------------------------------------------------------------------

def _v1_create(conn: Connection) -> None:
    _md = MetaData()
    _tables(_md, version=1)
    _md.create_all(conn)


def _v2_chain(conn: Connection) -> None:
    for column, kind in (("chain_seq", "INTEGER"), ("prev_hash", "VARCHAR(64)"),
                         ("record_hash", "VARCHAR(64)")):
        conn.execute(text(f"ALTER TABLE runs ADD COLUMN {column} {kind}"))
    runs = T["runs"]
    heads: dict[str, tuple[int, str]] = {}
    for pk, station in conn.execute(select(runs.c.id, runs.c.station).order_by(runs.c.id)):
        seq, prev = heads.get(station, (0, GENESIS_HASH))
        digest = run_hash(_read_run(conn, pk, version=2), prev)
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
    T["unjudged"].create(conn)


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
)
SCHEMA_VERSION = MIGRATIONS[-1].version


# Canonical form and hashing -----------------------------------------------------------------

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


def normalise(record: RunRecord) -> RunRecord:
    """The record exactly as the database gives it back (floats, strings, plain JSON)."""
    tests = tuple(TestRecord(
        test_id=t.test_id, outcome=t.outcome, title=t.title, family=t.family,
        started=t.started, ended=t.ended, message=t.message, errors=tuple(t.errors),
        measurements=tuple(Measurement(
            name=m.name, value=_num(m.value), unit=m.unit, outcome=m.outcome,
            limit_id=m.limit_id, low=_num(m.low), high=_num(m.high),
            marginal_low=_num(m.marginal_low), marginal_high=_num(m.marginal_high),
            margin=_num(m.margin), condition=json.loads(json.dumps(dict(m.condition),
                                                                   default=str)),
            test_id=t.test_id, message=m.message) for m in t.measurements))
        for t in record.tests)
    return RunRecord(
        run_id=record.run_id, station=record.station, outcome=record.outcome,
        product=record.product, dut_serial=record.dut_serial,
        dut_firmware=record.dut_firmware, operator=record.operator, started=record.started,
        ended=record.ended, limits_file=record.limits_file, limits_hash=record.limits_hash,
        software={str(k): str(v) for k, v in record.software.items()}, reason=record.reason,
        tests=tests, artefacts=tuple(Artefact(a.sha256, a.kind, a.name, a.path, a.test_id)
                                     for a in record.artefacts),
        devices=tuple(_split(d, _DEVICE_COLUMNS) for d in record.devices),
        calibrations=tuple(_split(c, _CAL_COLUMNS) for c in record.calibrations),
        complete=record.complete,
        unjudged=tuple(Unjudged(u.limit_id, u.measurement, u.reason,
                                json.loads(json.dumps(dict(u.condition), default=str)))
                       for u in record.unjudged),
        characterisation=record.characterisation)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def run_hash(record: RunRecord, prev_hash: str) -> str:
    """``sha256(prev_hash + "\\n" + canonical JSON of the normalised run)``."""
    body = canonical_json(normalise(record).as_dict())
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


# Result types -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredRun:
    run_id: str
    station: str
    chain_seq: int
    prev_hash: str
    record_hash: str


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    station: str
    product: str
    dut_serial: str
    started: str
    outcome: Outcome
    chain_seq: int
    record_hash: str


@dataclass(frozen=True)
class YieldRow:
    """Outcome counts of one limit; yield = (PASS + MARGINAL) / (PASS + MARGINAL + FAIL)."""

    limit_id: str
    name: str
    unit: str
    passed: int
    marginal: int
    failed: int
    error: int

    @property
    def judged(self) -> int:
        return self.passed + self.marginal + self.failed

    @property
    def yield_(self) -> float | None:
        return (self.passed + self.marginal) / self.judged if self.judged else None


@dataclass(frozen=True)
class CpkRow:
    """Process capability of one measurement across DUTs (ISO 22514-2; AIAG SPC manual).

    ``Cp = (USL − LSL) / 6σ`` and ``Cpk = min(USL − μ, μ − LSL) / 3σ`` with μ and σ the mean and
    sample standard deviation (ddof = 1) of the DUTs' values (one DUT's latest run each), so
    strictly the overall-σ index Ppk; with one limit only the one-sided index is given.
    """

    name: str
    limit_id: str
    unit: str
    n: int
    mean: float
    std: float
    low: float | None
    high: float | None
    cp: float | None
    cpk: float | None


@dataclass(frozen=True)
class TrendRow:
    station: str
    day: str
    runs: int
    passed: int
    marginal: int
    failed: int
    error: int
    aborted: int
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    n_values: int = 0

    @property
    def yield_(self) -> float | None:
        judged = self.passed + self.marginal + self.failed
        return (self.passed + self.marginal) / judged if judged else None


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    stations: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def cpk_of(values: np.ndarray, low: float | None, high: float | None
           ) -> tuple[float, float, float | None, float | None]:
    """``(mean, std, Cp, Cpk)`` of ``values`` against ``[low, high]`` (see :class:`CpkRow`)."""
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    if not std > 0:
        return mean, std, None, None
    cp = (high - low) / (6 * std) if low is not None and high is not None else None
    sides = [s for s in ((high - mean) if high is not None else None,
                         (mean - low) if low is not None else None) if s is not None]
    return mean, std, cp, (min(sides) / (3 * std) if sides else None)


# The store ----------------------------------------------------------------------------------

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
    def _read(self) -> Iterator[Connection]:
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
        with self._read() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    # Writing --------------------------------------------------------------------------

    def add_run(self, record: RunRecord, *, attempts: int = 200) -> StoredRun:
        """Store a run and chain it to the station's previous run; EvidenceError on failure."""
        rec = normalise(record)
        runs = T["runs"]
        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(select(runs.c.id).where(runs.c.run_id == rec.run_id)
                                    ).first() is not None:
                        raise EvidenceError(f"records {self.display}: run {rec.run_id} is "
                                            "already stored")
                    head = conn.execute(
                        select(runs.c.chain_seq, runs.c.record_hash)
                        .where(runs.c.station == rec.station)
                        .order_by(runs.c.chain_seq.desc()).limit(1)).first()
                    seq = (head.chain_seq if head else 0) + 1
                    prev = head.record_hash if head else GENESIS_HASH
                    digest = run_hash(rec, prev)
                    _insert_run(conn, rec, chain_seq=seq, prev_hash=prev, record_hash=digest)
                return StoredRun(rec.run_id, rec.station, seq, prev, digest)
            except IntegrityError as exc:  # another writer took this chain_seq: try again
                last_error = exc
                time.sleep(random.uniform(0.001, 0.02) * min(attempt + 1, 10))
            except OperationalError as exc:
                last_error = exc
                time.sleep(random.uniform(0.01, 0.05))
            except SQLAlchemyError as exc:
                raise EvidenceError(f"records {self.display}: cannot store run "
                                    f"{rec.run_id}: {exc}") from exc
        raise EvidenceError(f"records {self.display}: cannot store run {rec.run_id} after "
                            f"{attempts} attempts: {last_error}")

    # Reading --------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        runs = T["runs"]
        with self._read() as conn:
            pk = conn.execute(select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
            if pk is None:
                raise ConfigError(f"no run {run_id!r} in the records", source=self.display)
            return _read_run(conn, pk)

    def chain_info(self, run_id: str) -> StoredRun:
        runs = T["runs"]
        with self._read() as conn:
            row = conn.execute(select(runs.c.run_id, runs.c.station, runs.c.chain_seq,
                                      runs.c.prev_hash, runs.c.record_hash)
                               .where(runs.c.run_id == run_id)).first()
        if row is None:
            raise ConfigError(f"no run {run_id!r} in the records", source=self.display)
        return StoredRun(*row)

    def _filters(self, product: str | None, station: str | None, since: str | None
                 ) -> list[Any]:
        runs = T["runs"]
        where: list[Any] = []
        if product:
            where.append(runs.c.product == product)
        if station:
            where.append(runs.c.station == station)
        if since:
            where.append(runs.c.started >= parse_since(since))
        return where

    def runs(self, *, product: str | None = None, station: str | None = None,
             since: str | None = None, limit: int | None = None) -> list[RunSummary]:
        runs = T["runs"]
        query = (select(runs.c.run_id, runs.c.station, runs.c.product, runs.c.dut_serial,
                        runs.c.started, runs.c.outcome, runs.c.chain_seq, runs.c.record_hash)
                 .where(*self._filters(product, station, since))
                 .order_by(runs.c.started.desc(), runs.c.id.desc()))
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            return [RunSummary(r[0], r[1], r[2], r[3], r[4], Outcome(r[5]), r[6], r[7])
                    for r in conn.execute(query)]

    def yield_by_limit(self, *, product: str | None = None, station: str | None = None,
                       since: str | None = None) -> list[YieldRow]:
        runs, m = T["runs"], T["measurements"]

        def count(outcome: Outcome) -> Any:
            return func.sum(case((m.c.outcome == outcome.value, 1), else_=0))

        query = (select(m.c.limit_id, m.c.name, m.c.unit, count(Outcome.PASS),
                        count(Outcome.MARGINAL), count(Outcome.FAIL), count(Outcome.ERROR))
                 .select_from(m.join(runs, m.c.run_pk == runs.c.id))
                 .where(*self._filters(product, station, since))
                 .group_by(m.c.limit_id, m.c.name, m.c.unit)
                 .order_by(m.c.limit_id, m.c.name))
        with self._read() as conn:
            return [YieldRow(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0), int(r[5] or 0),
                             int(r[6] or 0)) for r in conn.execute(query)]

    def cpk(self, *, product: str | None = None, station: str | None = None,
            since: str | None = None, name: str | None = None) -> list[CpkRow]:
        """Cpk per measurement across DUTs, each DUT counted once (its latest run)."""
        runs, m = T["runs"], T["measurements"]
        where = [*self._filters(product, station, since), m.c.value.is_not(None)]
        if name:
            where.append(m.c.name == name)
        query = (select(m.c.name, m.c.limit_id, m.c.unit, m.c.low, m.c.high, m.c.value,
                        runs.c.dut_serial, runs.c.started, runs.c.id)
                 .select_from(m.join(runs, m.c.run_pk == runs.c.id)).where(*where)
                 .order_by(runs.c.started, runs.c.id, m.c.position))
        latest: dict[tuple[str, str, str], dict[str, tuple[Any, list[float]]]] = \
            defaultdict(dict)
        limits: dict[tuple[str, str, str], tuple[float | None, float | None]] = {}
        with self._read() as conn:
            for name_, limit_id, unit, low, high, value, dut, _started, run_pk in \
                    conn.execute(query):
                key = (name_, limit_id, unit)
                dut_key = dut or f"run-{run_pk}"
                seen = latest[key].get(dut_key)
                if seen is None or seen[0] != run_pk:
                    latest[key][dut_key] = (run_pk, [])
                latest[key][dut_key][1].append(float(value))
                limits[key] = (low, high)
        rows = []
        for key in sorted(latest):
            values = np.array([v for _pk, vals in latest[key].values() for v in vals])
            low, high = limits[key]
            mean, std, cp, cpk = cpk_of(values, low, high)
            rows.append(CpkRow(key[0], key[1], key[2], int(values.size), mean, std, low, high,
                               cp, cpk))
        return rows

    def trend(self, *, product: str | None = None, station: str | None = None,
              since: str | None = None, measurement: str | None = None) -> list[TrendRow]:
        """Per station and UTC day: run outcomes, and a measurement's mean/min/max if named."""
        runs, m = T["runs"], T["measurements"]
        day = func.substr(runs.c.started, 1, 10)

        def count(outcome: Outcome) -> Any:
            return func.sum(case((runs.c.outcome == outcome.value, 1), else_=0))

        query = (select(runs.c.station, day, func.count(), count(Outcome.PASS),
                        count(Outcome.MARGINAL), count(Outcome.FAIL), count(Outcome.ERROR),
                        count(Outcome.ABORTED))
                 .where(*self._filters(product, station, since))
                 .group_by(runs.c.station, day).order_by(runs.c.station, day))
        stats: dict[tuple[str, str], tuple[Any, ...]] = {}
        with self._read() as conn:
            rows = list(conn.execute(query))
            if measurement:
                mq = (select(runs.c.station, day, func.avg(m.c.value), func.min(m.c.value),
                             func.max(m.c.value), func.count(m.c.value))
                      .select_from(m.join(runs, m.c.run_pk == runs.c.id))
                      .where(*self._filters(product, station, since), m.c.name == measurement)
                      .group_by(runs.c.station, day))
                stats = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(mq)}
        out = []
        for r in rows:
            s = stats.get((r[0], r[1]), (None, None, None, 0))
            n = [int(x or 0) for x in r[2:8]]
            out.append(TrendRow(r[0], r[1], n[0], n[1], n[2], n[3], n[4], n[5],
                                mean=None if s[0] is None else float(s[0]),
                                minimum=None if s[1] is None else float(s[1]),
                                maximum=None if s[2] is None else float(s[2]),
                                n_values=int(s[3] or 0)))
        return out

    def verify(self) -> VerifyReport:
        """Recompute every run's hash and check each station's chain links and numbering."""
        runs = T["runs"]
        problems: list[str] = []
        checked = 0
        stations: set[str] = set()
        with self._read() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.run_id, runs.c.station,
                                       runs.c.chain_seq, runs.c.prev_hash, runs.c.record_hash)
                                .order_by(runs.c.station, runs.c.chain_seq)).all()
            expected: dict[str, tuple[int, str]] = {}
            for pk, run_id, station, seq, prev, digest in rows:
                checked += 1
                stations.add(station)
                want_seq, want_prev = expected.get(station, (1, GENESIS_HASH))
                if seq != want_seq:
                    problems.append(f"station {station}: run {run_id} is #{seq} in the chain, "
                                    f"expected #{want_seq} (a run was removed or reordered)")
                if prev != want_prev:
                    problems.append(f"station {station}: run {run_id} does not chain to the "
                                    "previous run's hash")
                actual = run_hash(_read_run(conn, pk), prev or "")
                if actual != digest:
                    problems.append(f"station {station}: run {run_id} was edited (its content "
                                    "no longer matches its hash)")
                expected[station] = ((seq or 0) + 1, digest or "")
        return VerifyReport(checked, len(stations), tuple(problems))


def parse_since(since: str) -> str:
    """``--since`` as a fixed-width ISO UTC string (a date, a datetime, or ``7d``/``12h``)."""
    s = since.strip()
    try:
        if s[-1:] in ("d", "h") and s[:-1].isdigit():
            delta = dt.timedelta(days=int(s[:-1])) if s[-1] == "d" else \
                dt.timedelta(hours=int(s[:-1]))
            moment = dt.datetime.now(dt.UTC) - delta
        else:
            moment = dt.datetime.fromisoformat(s)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ConfigError(f"{since!r} is not a date; allowed: YYYY-MM-DD, an ISO date-time, "
                          "or Nd / Nh (days / hours ago)", field="--since") from None
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _insert_run(conn: Connection, rec: RunRecord, **chain: Any) -> int:
    runs = T["runs"]
    result = conn.execute(insert(runs).values(
        run_id=rec.run_id, station=rec.station, product=rec.product,
        dut_serial=rec.dut_serial, dut_firmware=rec.dut_firmware, operator=rec.operator,
        started=rec.started, ended=rec.ended, outcome=rec.outcome.value,
        limits_file=rec.limits_file, limits_hash=rec.limits_hash, software=dict(rec.software),
        reason=rec.reason, complete=rec.complete, characterisation=rec.characterisation,
        **chain))
    assert result.inserted_primary_key is not None
    pk = result.inserted_primary_key[0]
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
    return int(pk)


def _insert_many(conn: Connection, table: Table, run_pk: int,
                 rows: Iterable[dict[str, Any]]) -> None:
    values = [{**row, "run_pk": run_pk, "position": i} for i, row in enumerate(rows)]
    if values:
        conn.execute(insert(table), values)


def _read_run(conn: Connection, pk: int, version: int = SCHEMA_VERSION) -> RunRecord:
    """A stored run; ``version`` is the schema the database is at (a migration reads runs
    before the later columns and tables exist)."""
    runs = T["runs"]
    columns = [c for c in runs.c if version >= 4 or c.name != "characterisation"]
    r = conn.execute(select(*columns).where(runs.c.id == pk)).mappings().one()

    def children(name: str) -> list[Any]:
        table = T[name]
        return list(conn.execute(select(table).where(table.c.run_pk == pk)
                                 .order_by(table.c.position)).mappings())

    by_test: dict[str, list[Measurement]] = defaultdict(list)
    for m in children("measurements"):
        by_test[m["test_id"]].append(Measurement(
            name=m["name"], value=m["value"], unit=m["unit"], outcome=Outcome(m["outcome"]),
            limit_id=m["limit_id"], low=m["low"], high=m["high"],
            marginal_low=m["marginal_low"], marginal_high=m["marginal_high"],
            margin=m["margin"], condition=dict(m["condition"] or {}), test_id=m["test_id"],
            message=m["message"]))
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
        devices=tuple(rest(d, _DEVICE_COLUMNS) for d in children("devices")),
        calibrations=tuple(rest(c, _CAL_COLUMNS) for c in children("calibrations")),
        complete=bool(r["complete"]),
        unjudged=tuple(Unjudged(u["limit_id"], u["measurement"], u["reason"],
                                dict(u["condition"] or {}))
                       for u in (children("unjudged") if version >= 4 else ())),
        characterisation=bool(r["characterisation"]) if version >= 4 else False)


__all__ = ["DEFAULT_RECORDS", "GENESIS_HASH", "MIGRATIONS", "SCHEMA_VERSION", "CpkRow",
           "Migration", "RecordStore", "RunSummary", "StoredRun", "TrendRow", "VerifyReport",
           "YieldRow", "canonical_json", "cpk_of", "normalise", "parse_since", "resolve_url",
           "run_hash"]
