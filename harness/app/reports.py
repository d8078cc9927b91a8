"""The Allure report of a kiosk run, built after its verdict is on screen.

A run from the command line gets its report from ``harness report``; a run from the kiosk gets
the same one: when the run has ended, the station app starts ``python -m harness.app.reports
JOURNAL REPORT_DIR RESULTS_DIR`` per journal (one per slot), a child process at a lower CPU
priority, so neither the verdict nor the next Start waits for it. The folders come from the
server's settings (:class:`~harness.app.config.AppConfig`: ``<reports>/<run id>`` and
``<allure_results>/<run id>``), never from the working directory, and the run id is one
file-name component before it is joined to them. The run is not stored again: the pytest
child already stored it in the records database.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.app.config import AppConfig
from harness.paths import safe_component

#: the report child's niceness increment (the next run's capture comes first)
NICENESS = 10


def report_argv(config: AppConfig, journal: Path, run_id: str) -> list[str]:
    """The argv that builds the report of the journal of run ``run_id`` (a list, no shell)."""
    name = safe_component(run_id, "run_id")
    return [config.python, "-m", "harness.app.reports", str(journal),
            str(config.reports / name), str(config.allure_results / name)]


def report_folder(config: AppConfig, run_id: str) -> Path:
    """Where :func:`report_argv` puts the report of ``run_id`` (its ``index.html``)."""
    return config.reports / safe_component(run_id, "run_id")


def main(argv: list[str] | None = None) -> int:
    """Journal -> Allure results -> single-file report; one line on stdout, exit 0 or 1."""
    from harness.errors import HarnessError
    from harness.evidence.report import rebuild_from_journal

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m harness.app.reports JOURNAL REPORT_DIR RESULTS_DIR")
        return 2
    journal, out, results = (Path(a) for a in args)
    try:
        built = rebuild_from_journal(journal, results_dir=results, out_dir=out)
    except (HarnessError, OSError) as exc:
        print(f"report not built: {exc}", flush=True)
        return 1
    if built.report is None:
        print("report not built: the journal has no test results", flush=True)
        return 1
    print(f"report: {built.report.index}", flush=True)
    return 0


__all__ = ["NICENESS", "main", "report_argv", "report_folder"]

if __name__ == "__main__":
    sys.exit(main())
