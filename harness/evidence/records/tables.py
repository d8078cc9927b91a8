"""The records tables as SQLAlchemy Core objects, at any schema version.

:func:`tables` builds the tables as they are at a given version, so that a migration (and
:func:`~harness.evidence.records.rows.read_run` during one) sees only the columns that exist
then; :data:`T` is the newest layout, used by every query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

DEVICE_COLUMNS = ("role", "kind", "driver", "vendor", "model", "serial", "firmware")
CAL_COLUMNS = ("role", "certificate", "calibrated", "due")
OUTPUT_STATUSES = ("done", "failed")


def tables(md: MetaData, version: int) -> dict[str, Table]:
    """The tables as they are at schema ``version`` (chain columns arrive in v2,
    characterisation and ``unjudged`` in v4, attempts, signatures and ``outputs`` in v5, a
    measurement's uncertainty and decision rule in v6)."""
    extra: list[Column[Any]] = [Column("chain_seq", Integer), Column("prev_hash", String(64)),
                                Column("record_hash", String(64))] if version >= 2 else []
    if version >= 4:
        extra.append(Column("characterisation", Boolean, nullable=False,
                            server_default=false()))
    if version >= 5:
        extra += [Column("attempt", Integer, nullable=False, server_default="1"),
                  Column("rejudged_from", String(128), nullable=False, server_default=""),
                  Column("signature", Text, nullable=False, server_default=""),
                  Column("signing_key", String(128), nullable=False, server_default="")]
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
        *extra,
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
        *([Column("uncertainty", Double),
           Column("decision", String(32), nullable=False, server_default=""),
           Column("coverage_k", Double)] if version >= 6 else []),
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
        *(Column(c, String(256), nullable=False, default="") for c in DEVICE_COLUMNS),
        Column("extra", JSON, nullable=False),
    )
    calibrations = Table(
        "calibrations", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        run_pk(),
        Column("position", Integer, nullable=False),
        *(Column(c, String(256), nullable=False, default="") for c in CAL_COLUMNS),
        Column("extra", JSON, nullable=False),
    )
    found = {"runs": runs, "tests": tests, "measurements": measurements,
             "artefacts": artefacts, "devices": devices, "calibrations": calibrations}
    if version >= 4:
        found["unjudged"] = Table(
            "unjudged", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            run_pk(),
            Column("position", Integer, nullable=False),
            Column("limit_id", String(128), nullable=False),
            Column("measurement", String(256), nullable=False, default=""),
            Column("condition", JSON, nullable=False),
            Column("reason", Text, nullable=False, default=""),
        )
    if version >= 5:
        found["outputs"] = Table(
            "outputs", md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            run_pk(),
            Column("name", String(128), nullable=False),
            Column("status", String(16), nullable=False),
            Column("attempts", Integer, nullable=False, default=0),
            Column("last_error", Text, nullable=False, default=""),
            Column("updated", String(40), nullable=False, default=""),
            UniqueConstraint("run_pk", "name", name="ux_outputs_run_name"),
        )
    return found


metadata = MetaData()
T = tables(metadata, version=99)
schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", String(40), nullable=False),
    Column("description", Text, nullable=False),
)

__all__ = ["CAL_COLUMNS", "DEVICE_COLUMNS", "OUTPUT_STATUSES", "T", "metadata",
           "schema_version", "tables"]
