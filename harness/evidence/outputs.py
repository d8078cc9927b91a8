"""Output plugins: send each stored run somewhere else (an MES, a data lake, a dashboard).

An output is an object with a ``name`` and ``__call__(record)`` (after OpenHTF's output
callbacks), registered under the ``harness.outputs`` entry-point group, e.g. in a plugin's
``pyproject.toml``::

    [project.entry-points."harness.outputs"]
    mes = "acme_mes:MesOutput"        # a class (called with no arguments) or an instance

:func:`publish` runs after a run is stored. It calls each output that has not yet taken the
run (its row in the records' ``outputs`` table is not ``done``), records ``done`` or
``failed`` with the error, and returns the failures instead of raising: a failed output never
changes the DUT's verdict, and the caller prints and journals what it returns, so it is never
silent either. ``harness records publish --retry`` (:func:`retry`) calls the outputs again
for every run whose outputs failed or never ran; ``harness records runs`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from harness.errors import HarnessError, one_line
from harness.evidence.model import RunRecord
from harness.evidence.records import RecordStore

ENTRY_POINT_GROUP = "harness.outputs"


@runtime_checkable
class Output(Protocol):
    """Takes a stored run; any exception it raises is a failure of this output only."""

    @property
    def name(self) -> str:
        """Unique among the outputs; at most 128 characters (the records keep it)."""

    def __call__(self, record: RunRecord) -> None: ...


@dataclass(frozen=True)
class OutputFailure:
    """One output that did not take one run, and why (one line)."""

    run_id: str
    output: str
    error: str

    def __str__(self) -> str:
        return f"output {self.output} did not take run {self.run_id}: {self.error}"


@dataclass(frozen=True)
class Installed:
    """The outputs the entry points give, and those that could not be loaded."""

    outputs: tuple[Output, ...]
    broken: tuple[tuple[str, str], ...] = ()
    """``(entry point name, error)`` of each output that could not be loaded."""

    @property
    def names(self) -> tuple[str, ...]:
        return (*(o.name for o in self.outputs), *(name for name, _ in self.broken))


def _error(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")[:2000]


def load_outputs(group: str = ENTRY_POINT_GROUP) -> Installed:
    """The outputs registered under ``group``; one that fails to load or is not an output is
    listed in ``broken`` (never raised: a bad plugin must not stop a run being stored)."""
    outputs: list[Output] = []
    broken: list[tuple[str, str]] = []
    seen: set[str] = set()
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        try:
            obj: Any = ep.load()
            if isinstance(obj, type):
                obj = obj()
            name = getattr(obj, "name", None) or ep.name
            if not callable(obj) or not isinstance(name, str) or len(name) > 128:
                raise TypeError(f"{ep.value} is not an output (needs name: str of at most "
                                "128 characters and __call__(record))")
            if name in seen:
                raise ValueError(f"a second output is named {name!r}")
        except Exception as exc:  # a plugin's own fault, whatever it is
            broken.append((ep.name, _error(exc)))
            continue
        seen.add(name)
        outputs.append(_Named(name, obj) if getattr(obj, "name", None) != name else obj)
    return Installed(tuple(outputs), tuple(broken))


@dataclass(frozen=True)
class _Named:
    """An output object without a ``name`` of its own, named after its entry point."""

    name: str
    call: Any

    def __call__(self, record: RunRecord) -> None:
        self.call(record)


def publish(store: RecordStore, record: RunRecord,
            outputs: Installed | Sequence[Output] | None = None) -> list[OutputFailure]:
    """Give the stored run ``record`` to every output that has not taken it yet.

    ``outputs`` defaults to the installed ones (:func:`load_outputs`). Each call is recorded
    in the store (``done``, or ``failed`` with the error); an output already ``done`` for this
    run id is not called again. Never raises (except KeyboardInterrupt/SystemExit): returns
    the failures, an output that could not be loaded and a store that cannot be read or
    written included, for the caller to print and journal.
    """
    installed = outputs if isinstance(outputs, Installed) else \
        load_outputs() if outputs is None else Installed(tuple(outputs))
    run_id = record.run_id
    failures = [OutputFailure(run_id, name, f"cannot load: {error}")
                for name, error in installed.broken]
    for name, error in installed.broken:
        failures.extend(_mark(store, run_id, name, "failed", f"cannot load: {error}"))
    if not installed.outputs:
        return failures
    try:
        store.chain_info(run_id)  # only a stored run is published
        states = store.output_states([run_id]).get(run_id, {})
    except (HarnessError, OSError) as exc:
        return [*failures, *(OutputFailure(run_id, o.name, f"records: {_error(exc)}")
                             for o in installed.outputs)]
    for output in installed.outputs:
        state = states.get(output.name)
        if state is not None and state.done:
            continue
        try:
            output(record)
        except Exception as exc:  # the output's fault; never the DUT's verdict
            error = _error(exc)
            failures.append(OutputFailure(run_id, output.name, error))
            failures.extend(_mark(store, run_id, output.name, "failed", error))
            continue
        failures.extend(_mark(store, run_id, output.name, "done"))
    return failures


def _mark(store: RecordStore, run_id: str, name: str, status: str, error: str = ""
          ) -> list[OutputFailure]:
    try:
        store.mark_output(run_id, name, status, error)
    except (HarnessError, OSError) as exc:
        return [OutputFailure(run_id, name, f"records: cannot record {status}: {_error(exc)}")]
    return []


def pending(store: RecordStore, run_ids: Iterable[str], names: Iterable[str]
            ) -> dict[str, list[str]]:
    """``{run_id: [output names]}``: the outputs (``names``, plus any recorded as failed) that
    have not taken each run; runs every output took are left out."""
    wanted = list(run_ids)
    states = store.output_states(wanted)
    names = list(names)
    out: dict[str, list[str]] = {}
    for run_id in wanted:
        recorded = states.get(run_id, {})
        todo = sorted({*(n for n in names if not (n in recorded and recorded[n].done)),
                       *(n for n, s in recorded.items() if not s.done)})
        if todo:
            out[run_id] = todo
    return out


def retry(store: RecordStore, outputs: Installed | None = None, *,
          product: str | None = None, station: str | None = None, since: str | None = None,
          run_ids: Sequence[str] = ()) -> tuple[int, list[OutputFailure]]:
    """Publish again every selected run (or only ``run_ids``) whose outputs failed or never
    ran, oldest first: ``(runs published, failures)``. A failed output that is no longer
    installed cannot be retried and is reported as such."""
    installed = outputs or load_outputs()
    stored = [r.run_id for r in store.runs(product=product, station=station, since=since)]
    selected = [r for r in reversed(stored) if not run_ids or r in run_ids]
    failures = [OutputFailure(r, "-", "no such run in the records (or not selected)")
                for r in sorted(set(run_ids) - set(selected))]
    todo = pending(store, selected, installed.names)
    for run_id in selected:
        if run_id not in todo:
            continue
        failures.extend(OutputFailure(run_id, name, "output not installed; cannot retry")
                        for name in todo[run_id] if name not in installed.names)
        try:
            record = store.get_run(run_id)
        except HarnessError as exc:
            failures.append(OutputFailure(run_id, "-", f"records: {_error(exc)}"))
            continue
        failures.extend(publish(store, record, installed))
    return len(todo), failures


__all__ = ["ENTRY_POINT_GROUP", "Installed", "Output", "OutputFailure", "load_outputs",
           "pending", "publish", "retry"]
