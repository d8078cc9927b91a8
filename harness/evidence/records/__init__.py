"""Records database (SQLAlchemy Core): runs, tests, measurements, artefacts, devices,
calibrations, unjudged limits and the outputs that took each run.

One module per job:

* :mod:`.tables` — the tables at any schema version; :mod:`.schema` — the migrations;
* :mod:`.chain` — canonical JSON, the run hash, the per-station hash chain and its check;
* :mod:`.attempts` — attempt numbers of a unit's runs;
* :mod:`.output_log` — which output took which run (the ``outputs`` table);
* :mod:`.rows` — a run record to rows and back; :mod:`.filters` — product/station/since;
* :mod:`.store` — :class:`RecordStore`: open, migrate, add a run, read and query;
* :mod:`.units` — which run stands for which attempt of which unit;
* :mod:`.stats` — yield and Cpk per unit, trend per station;
* :mod:`.daily` — yield and first-pass yield per product, station and day;
* :mod:`.control` — the individuals and moving-range control chart of one measurement.

Every public name is importable from here (``from harness.evidence.records import ...``).
"""

from harness.evidence.records.attempts import RunKey, number_attempts
from harness.evidence.records.chain import (
    GENESIS_HASH,
    RunCheck,
    Signer,
    StoredRun,
    VerifyReport,
    canonical_json,
    normalise,
    run_hash,
    verify_chain,
)
from harness.evidence.records.control import (
    D2,
    D4,
    E2,
    ChartPoint,
    ControlChart,
    control_chart,
    individuals_limits,
)
from harness.evidence.records.daily import DayYield, daily_yield
from harness.evidence.records.filters import parse_since, run_filters
from harness.evidence.records.output_log import OutputState
from harness.evidence.records.schema import MIGRATIONS, SCHEMA_VERSION, Migration
from harness.evidence.records.stats import (
    CpkRow,
    LimitYield,
    StationYield,
    TrendRow,
    YieldReport,
    cpk_of,
)
from harness.evidence.records.store import RecordStore, RunSummary, resolve_url
from harness.evidence.records.tables import OUTPUT_STATUSES, T, metadata, schema_version
from harness.evidence.records.units import Pick, UnitRun, unit_runs

__all__ = ["D2", "D4", "E2", "GENESIS_HASH", "MIGRATIONS", "OUTPUT_STATUSES", "SCHEMA_VERSION",
           "ChartPoint", "ControlChart", "CpkRow", "DayYield", "LimitYield", "Migration",
           "OutputState", "Pick", "RecordStore", "RunCheck", "RunKey", "RunSummary", "Signer",
           "StationYield", "StoredRun", "T", "TrendRow", "UnitRun", "VerifyReport", "YieldReport",
           "canonical_json", "control_chart", "cpk_of", "daily_yield", "individuals_limits",
           "metadata", "normalise", "number_attempts", "parse_since", "resolve_url",
           "run_filters", "run_hash", "schema_version", "unit_runs", "verify_chain"]
