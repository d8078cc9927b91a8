"""The ``outputs`` table: which output took which stored run, and which failed and why.

One row per run and output name, status ``done`` or ``failed`` with the number of attempts,
the last error and when it changed. An output with no row for a run has not taken it yet.
It is the journal :func:`harness.evidence.outputs.publish` works from: a run is published to
an output until its row says ``done``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from harness.errors import ConfigError
from harness.evidence.records.tables import OUTPUT_STATUSES, T


@dataclass(frozen=True)
class OutputState:
    """What one output did with one run."""

    run_id: str
    name: str
    status: str
    attempts: int
    last_error: str
    updated: str

    @property
    def done(self) -> bool:
        return self.status == "done"


def output_states(conn: Connection, run_ids: Iterable[str] | None = None
                  ) -> dict[str, dict[str, OutputState]]:
    """``{run_id: {output name: state}}`` for the given runs (all runs if None)."""
    runs, outputs = T["runs"], T["outputs"]
    query = (select(runs.c.run_id, outputs.c.name, outputs.c.status, outputs.c.attempts,
                    outputs.c.last_error, outputs.c.updated)
             .select_from(outputs.join(runs, outputs.c.run_pk == runs.c.id))
             .order_by(runs.c.id, outputs.c.name))
    found: dict[str, dict[str, OutputState]] = defaultdict(dict)
    wanted = None if run_ids is None else list(dict.fromkeys(run_ids))
    chunks = [None] if wanted is None else [wanted[i:i + 500]
                                            for i in range(0, len(wanted), 500)]
    for chunk in chunks:
        q = query if chunk is None else query.where(runs.c.run_id.in_(chunk))
        for row in conn.execute(q):
            found[row[0]][row[1]] = OutputState(*row)
    return dict(found)


def mark_output(conn: Connection, run_id: str, name: str, status: str, error: str = ""
                ) -> OutputState:
    """Record one attempt of output ``name`` on run ``run_id`` (``done`` clears the error)."""
    if status not in OUTPUT_STATUSES:
        raise ConfigError(f"{status!r} is not an output status; allowed: "
                          f"{', '.join(OUTPUT_STATUSES)}", field="status")
    runs, outputs = T["runs"], T["outputs"]
    pk = conn.execute(select(runs.c.id).where(runs.c.run_id == run_id)).scalar()
    if pk is None:
        raise ConfigError(f"no run {run_id!r} in the records", field="run_id")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    last_error = "" if status == "done" else error
    where = (outputs.c.run_pk == pk, outputs.c.name == name)
    before = conn.execute(select(outputs.c.attempts).where(*where)).scalar()
    if before is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(outputs).values(run_pk=pk, name=name, status=status,
                                                    attempts=1, last_error=last_error,
                                                    updated=now))
            return OutputState(run_id, name, status, 1, last_error, now)
        except IntegrityError:  # another publisher recorded it first
            before = conn.execute(select(outputs.c.attempts).where(*where)).scalar() or 0
    attempts = int(before) + 1
    conn.execute(outputs.update().where(*where).values(
        status=status, attempts=attempts, last_error=last_error, updated=now))
    return OutputState(run_id, name, status, attempts, last_error, now)


__all__ = ["OutputState", "mark_output", "output_states"]
