"""Which stored runs ``harness rejudge --all`` takes, where their evidence is, and which of them
were already re-judged with the same spec and software (idempotence).

A selection is the filters of ``harness records`` (:func:`~harness.evidence.records.run_filters`)
over the qualification runs: a re-judged run is never re-judged again (its original is), and a
characterisation run judges nothing. A run was already re-judged when a stored run names it
in ``rejudged_from`` and carries the same limit spec sha256 (``limits_hash``) and the same
:func:`software_key`, so running the same selection again with the same spec and code does
nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from harness.evidence.records import RecordStore, T, canonical_json, run_filters
from harness.measurement import Outcome

#: Software entries that name the checkout, not the code: a commit of the README or an
#: uncommitted edit elsewhere does not make a re-judging different.
UNKEYED_SOFTWARE = ("harness.commit", "harness.dirty")
CHUNK = 500


@dataclass(frozen=True)
class Selection:
    """The filters of ``harness rejudge --all`` (as ``harness records``)."""

    product: str | None = None
    station: str | None = None
    since: str | None = None
    until: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class ArchivedRun:
    """One selected run: who it judged, and where its capture sets were stored."""

    run_id: str
    station: str
    product: str
    dut_serial: str
    started: str
    outcome: Outcome
    stored_folder: str
    """The run folder the stored capture sets name ("" when it stored none)."""

    @property
    def unit(self) -> str:
        """The unit as reports show it: the DUT serial, or ``run <id>`` without one."""
        return self.dut_serial or f"run {self.run_id}"


def software_key(software: Mapping[str, str]) -> str:
    """sha256 of a run's ``software`` entries (package versions and the code's sha256, which
    covers the suites and the limit spec) without :data:`UNKEYED_SOFTWARE`."""
    kept = {k: v for k, v in software.items() if k not in UNKEYED_SOFTWARE}
    return hashlib.sha256(canonical_json(kept).encode()).hexdigest()


def select_runs(store: RecordStore, selection: Selection) -> list[ArchivedRun]:
    """The selected qualification runs in the order they were stored."""
    runs, artefacts = T["runs"], T["artefacts"]
    where = run_filters(selection.product, selection.station, selection.since,
                        until=selection.until, outcome=selection.outcome)
    where += [runs.c.rejudged_from == "", runs.c.characterisation.is_(False)]
    folder = (select(artefacts.c.run_pk, func.min(artefacts.c.path).label("path"))
              .where(artefacts.c.kind == "frame").group_by(artefacts.c.run_pk).subquery())
    query = (select(runs.c.run_id, runs.c.station, runs.c.product, runs.c.dut_serial,
                    runs.c.started, runs.c.outcome, folder.c.path)
             .select_from(runs.outerjoin(folder, folder.c.run_pk == runs.c.id))
             .where(*where).order_by(runs.c.id))
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [ArchivedRun(r[0], r[1], r[2], r[3], r[4], Outcome(r[5]),
                        str(Path(r[6]).parent.parent) if r[6] else "") for r in rows]


def already_rejudged(store: RecordStore, run_ids: Sequence[str], limits_hash: str,
                     key: str) -> set[str]:
    """The runs among ``run_ids`` that a stored run re-judged with the spec ``limits_hash``
    and software :func:`software_key` ``key``."""
    runs = T["runs"]
    done: set[str] = set()
    with store.reading() as conn:
        for chunk in _chunks(run_ids):
            rows = conn.execute(select(runs.c.rejudged_from, runs.c.software).where(
                runs.c.rejudged_from.in_(chunk), runs.c.limits_hash == limits_hash))
            done.update(source for source, software in rows
                        if software_key(dict(software or {})) == key)
    return done


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i:i + CHUNK])


__all__ = ["UNKEYED_SOFTWARE", "ArchivedRun", "Selection", "already_rejudged", "select_runs",
           "software_key"]
