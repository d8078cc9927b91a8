"""The diff report of ``harness rejudge --all --report DIR``: ``index.html`` (one self-contained
page: inline style, no script, every value escaped), ``changes.csv`` (one row per figure of a
unit whose verdict changes, then the figures that moved without one) and ``errors.csv``."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from harness.fleet.summary import FleetSummary, UnitChange
from harness.paths import atomic_write_bytes

CHANGE_COLUMNS = ("limit_id", "measurement", "condition", "product", "unit", "run_id",
                  "new_run_id", "old_outcome", "new_outcome", "old_value", "new_value",
                  "verdict_changed")
ERROR_COLUMNS = ("run_id", "unit", "error", "worker")
STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left}"
         ".FAIL{color:#b00}.PASS{color:#070}.MARGINAL{color:#a60}.ERROR{color:#808}")


def _number(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def _row(c: UnitChange) -> list[str]:
    return [c.limit_id, c.name, c.condition, c.product, c.unit, c.run_id, c.new_run_id,
            c.old_outcome, c.new_outcome, _number(c.old_value), _number(c.new_value),
            "yes" if c.verdict_changed else "no"]


def changes_csv(summary: FleetSummary) -> str:
    """:data:`CHANGE_COLUMNS` rows: the verdict changes per limit and unit, then the figures
    that moved (values as ``repr``: every digit kept)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CHANGE_COLUMNS)
    for limit in summary.limits:
        writer.writerows(_row(c) for c in limit.changes)
    writer.writerows(_row(c) for c in summary.moved)
    return out.getvalue()


def errors_csv(summary: FleetSummary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ERROR_COLUMNS)
    writer.writerows([e.run_id, e.unit, e.error, e.worker] for e in summary.errors)
    return out.getvalue()


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _value(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def _table(head: tuple[str, ...], rows: list[list[str]]) -> str:
    """A table of already-escaped cells."""
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _verdict(outcome: str) -> str:
    return f'<span class="{_e(outcome)}">{_e(outcome)}</span>'


def index_html(summary: FleetSummary, title: str = "Re-judged archive") -> str:
    """The report page (see the module docstring)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
             f"<p>{summary.selected} run(s) selected, {summary.skipped} already re-judged with "
             f"this spec and software (skipped), {summary.rejudged} re-judged and stored, "
             f"{len(summary.errors)} could not be re-analysed.</p>",
             "<h2>Verdict changes per limit</h2>"]
    if not summary.limits:
        parts.append("<p>No verdict changes.</p>")
    parts.append(_table(("limit", "measurement", "units changing verdict"),
                        [[_e(lim.limit_id or "—"), _e(lim.name), str(lim.units)]
                         for lim in summary.limits]))
    for lim in summary.limits:
        parts.append(f"<h3>{_e(lim.limit_id or lim.name)}: {lim.units} unit(s)</h3>")
        parts.append(_table(("unit", "product", "condition", "run", "re-judged as", "was",
                             "now", "value was", "value now"),
                            [[_e(c.unit), _e(c.product), _e(c.condition), _e(c.run_id),
                              _e(c.new_run_id), _verdict(c.old_outcome),
                              _verdict(c.new_outcome), _e(_value(c.old_value)),
                              _e(_value(c.new_value))] for c in lim.changes]))
    parts.append("<h2>Runs whose verdict changes</h2>")
    parts.append(_table(("unit", "run", "re-judged as", "was", "now"),
                        [[_e(r.unit), _e(r.run_id), _e(r.new_run_id),
                          _verdict(r.old_outcome), _verdict(r.new_outcome)]
                         for r in summary.runs_changed]))
    parts.append(f"<h2>Errors ({len(summary.errors)})</h2>")
    parts.append(_table(("run", "unit", "error", "worker"),
                        [[_e(e.run_id), _e(e.unit), _e(e.error), _e(e.worker)]
                         for e in summary.errors]))
    if summary.moved:
        parts.append(f"<h2>Figures that moved, same verdict ({len(summary.moved)})</h2>")
        parts.append(_table(("limit", "measurement", "unit", "condition", "run", "verdict",
                             "value was", "value now"),
                            [[_e(c.limit_id), _e(c.name), _e(c.unit), _e(c.condition),
                              _e(c.run_id), _verdict(c.new_outcome), _e(_value(c.old_value)),
                              _e(_value(c.new_value))] for c in summary.moved]))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(folder: Path, summary: FleetSummary, title: str = "Re-judged archive"
                 ) -> list[Path]:
    """Write ``index.html``, ``changes.csv`` and ``errors.csv`` into ``folder`` (each whole
    or not at all); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("index.html", index_html(summary, title)),
                       ("changes.csv", changes_csv(summary)),
                       ("errors.csv", errors_csv(summary))):
        path = folder / name
        atomic_write_bytes(path, text.encode("utf-8"))
        written.append(path)
    return written


__all__ = ["CHANGE_COLUMNS", "ERROR_COLUMNS", "changes_csv", "errors_csv", "index_html",
           "write_report"]
