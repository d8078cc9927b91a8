"""What the fleet's run detail shows beyond the record itself: the capture sets a run took,
where its Allure report is, and its sign-off page (generated on request).

Paths here come from the server's own settings and from validated run ids, never from the page
as given: a run id is one file-name component (:func:`harness.paths.safe_component`) before it
is joined to anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.evidence.model import Artefact, RunRecord
from harness.evidence.records import RecordStore
from harness.paths import safe_component

ENVIRONMENT = "environment.properties"


@dataclass(frozen=True)
class CaptureSet:
    """The frames a run recorded from one capture set (its folder, as the journal names it)."""

    path: str
    frames: int
    tests: tuple[str, ...]


def capture_sets(artefacts: Iterable[Artefact]) -> tuple[CaptureSet, ...]:
    """Artefacts of kind ``frame`` grouped by capture set, in the order first recorded."""
    sets: dict[str, tuple[set[str], list[str]]] = {}
    for a in artefacts:
        if a.kind != "frame":
            continue
        hashes, tests = sets.setdefault(a.path, (set(), []))
        hashes.add(a.sha256)
        if a.test_id and a.test_id not in tests:
            tests.append(a.test_id)
    return tuple(CaptureSet(path, len(h), tuple(t)) for path, (h, t) in sets.items())


def _environment_run(results: Path) -> str:
    """The ``run=`` entry of an Allure results folder's environment file, ``""`` if none."""
    try:
        lines = (results / ENVIRONMENT).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return next((line.partition("=")[2].strip() for line in lines
                 if line.partition("=")[0].strip() == "run"), "")


def find_report(run_id: str, reports: Path | None, results: Path | None) -> Path | None:
    """The run's single-file Allure report, if one exists: ``<reports>/<run id>/index.html``
    (``harness report --from-journal ... --out <reports>/<run id>``), else
    ``<reports>/index.html`` when the Allure results it was built from (``make qualify``:
    ``<results>/environment.properties``) name this run."""
    if reports is None:
        return None
    own = reports / safe_component(run_id, "run_id") / "index.html"
    if own.is_file():
        return own
    shared = reports / "index.html"
    if results is not None and shared.is_file() and _environment_run(results) == run_id:
        return shared
    return None


def signoff_page(store: RecordStore, record: RunRecord, *, allow_incomplete: bool) -> str:
    """The run's sign-off page (HTML), as ``harness signoff RUN_ID`` writes it without
    ``--keys`` (the signature is not checked), generated in a temporary folder.
    :class:`~harness.evidence.signoff.NotSignable` when the verdict was not earned."""
    from harness.evidence.signoff import (
        PageFacts,
        chain_head,
        check_signable,
        spec_version,
        today,
        write_signoff,
    )

    check_signable(record, allow_incomplete=allow_incomplete)
    version, note = spec_version(record)
    facts = PageFacts(spec_version=version, spec_note=note,
                      chain=store.chain_info(record.run_id),
                      head=chain_head(store, record.station), verify=store.verify(),
                      generated=today())
    with tempfile.TemporaryDirectory(prefix="harness-signoff-") as tmp:
        path = write_signoff(record, Path(tmp) / f"{safe_component(record.run_id, 'run_id')}"
                             ".html", facts)
        return path.read_text(encoding="utf-8")


__all__ = ["ENVIRONMENT", "CaptureSet", "capture_sets", "find_report",
           "signoff_page"]
