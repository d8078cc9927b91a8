"""The sign-off page of one DUT's run: the document a customer accepts (HTML, one-page PDF).

Only an earned verdict is signed: :func:`check_signable` refuses a run that is not PASS or
MARGINAL (a FAIL, ERROR, ABORTED or INCOMPLETE run) unless the reviewer allows it
explicitly, and then the page lists the limits the run left unjudged in red; a
characterisation run (no limits) is never signed.

The page holds, in this order: a header (product, limit spec version and sha256, DUT, lot,
station, operator, dates), the verdict, one table per test family with each limit once
(:func:`limit_rows`), the figures recorded without a limit (INFO) apart, the unjudged limits
if any, the software identity (:mod:`harness.evidence.software`), the evidence hashes (frames
digest, the run's record hash and chain link, the station's chain head, the key that signed
the record and whether its signature checks out) and a signature block (prepared by,
approved by, date). HTML with print CSS (A4, one page); PDF via headless Chromium.

**Margin** is the distance from the value to the nearest limit (positive inside), shown as a
percentage of the tolerance so that rows in different units compare: for a two-sided limit
the tolerance is ``high − low``; a one-sided limit has no width, so its margin is a
percentage of the limit's magnitude ``|limit|`` (a maximum of 4.0 e- met with 3.0 e- is
25 %); a one-sided limit at 0 (a defect count that must be 0) has no scale at all, and its
margin is shown in the figure's unit instead.

A **value** the analysis stated a standard uncertainty for is shown as ``value ± u`` (k = 1);
a limit judged by guarded acceptance says so beside its limits (``guarded, k = 2``), its band
being k·u (docs/standards.md#decision-rules).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, EvidenceError
from harness.evidence.model import RunRecord, TestRecord
from harness.evidence.records import RecordStore, StoredRun, VerifyReport, canonical_json
from harness.measurement import Measurement, Outcome, worst

OTHER_FAMILY = "Other tests"
#: print scales tried in turn until the page fits on one A4 sheet
ZOOMS = (1.0, 0.9, 0.8, 0.72, 0.65)
_COLOUR = {Outcome.PASS: "#1b7f3b", Outcome.MARGINAL: "#b7791f", Outcome.FAIL: "#c53030",
           Outcome.ERROR: "#6b46c1", Outcome.ABORTED: "#6b46c1", Outcome.SKIPPED: "#718096",
           Outcome.INFO: "#4a5568", Outcome.INCOMPLETE: "#c05621"}
#: software entries shown in the identity block; the other versions go in small print
_IDENTITY_KEYS = ("harness", "harness.commit", "harness.dirty", "harness.sha256",
                  "harness.files")


class NotSignable(ConfigError):
    """The run's verdict was not earned (or not allowed to be signed here)."""


def check_signable(record: RunRecord, *, allow_incomplete: bool = False) -> None:
    """Refuse a run that cannot carry a signature (see the module docstring)."""
    if record.characterisation:
        raise NotSignable(f"run {record.run_id} is a characterisation run (no limits were "
                          "judged): it cannot be signed off")
    if record.outcome.ok or allow_incomplete:
        return
    unjudged = ", ".join(u.limit_id for u in record.unjudged)
    detail = f"; unjudged limits: {unjudged}" if unjudged else ""
    raise NotSignable(f"run {record.run_id} is {record.outcome.value}, not PASS or MARGINAL"
                      f"{detail}: sign-off refused (--allow-incomplete prints the page with "
                      "the verdict and the unjudged limits)")


# What the page says -------------------------------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """The key that signed the run's record (its fingerprint, ``""`` if unsigned) and, once
    checked against the station's public key, what was wrong with it (``""``: valid)."""

    fingerprint: str = ""
    checked: bool = False
    problem: str = ""

    @property
    def status(self) -> str:
        if not self.checked:
            return "not checked (give --keys)"
        return self.problem or "valid"


@dataclass(frozen=True)
class PageFacts:
    """What the page shows beyond the record: from the command line, the spec file and the
    records database."""

    lot: str = ""
    prepared_by: str = ""
    spec_version: str = ""
    spec_note: str = ""
    chain: StoredRun | None = None
    head: StoredRun | None = None
    verify: VerifyReport | None = None
    signature: Signature = field(default_factory=Signature)
    generated: str = ""


@dataclass(frozen=True)
class LimitRow:
    """One limit (under one set of conditions) as judged in the run; ``times`` > 1 when the
    run judged it more than once (the worst judgement is shown)."""

    limit_id: str
    name: str
    condition: str
    value: float | None
    unit: str
    limits: str
    margin: str
    outcome: Outcome
    message: str = ""
    times: int = 1
    uncertainty: float | None = None
    decision: str = ""
    coverage_k: float | None = None

    @property
    def rule_text(self) -> str:
        """``guarded, k = 2`` for a guarded limit; ``""`` for the others (their band, if
        any, is in the limits)."""
        if self.decision == "guarded" and self.coverage_k is not None:
            return f"guarded, k = {self.coverage_k:g}"
        if self.decision == "guarded-msa" and self.coverage_k is not None:
            return f"guarded by the station's repeatability, k = {self.coverage_k:g}"
        return ""


@dataclass(frozen=True)
class TestNote:
    """A test whose outcome its limit rows do not explain (an error, a skip, an abort)."""

    __test__ = False  # not a pytest test class

    title: str
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class FamilyTable:
    """The limits of one test family, each once, and the notes of its tests."""

    title: str
    rows: tuple[LimitRow, ...]
    notes: tuple[TestNote, ...] = ()

    @property
    def outcome(self) -> Outcome:
        return worst([*(r.outcome for r in self.rows), *(n.outcome for n in self.notes)])


def condition_text(condition: Mapping[str, Any]) -> str:
    """``zone=centre, channel=G``: the conditions that tell rows of one limit apart."""
    return ", ".join(f"{k}={v}" for k, v in sorted(condition.items()))


def margin_text(m: Measurement) -> str:
    """The margin as a percentage of the tolerance (see the module docstring), ``""`` when
    there is none (no value, no limit)."""
    if m.margin is None or m.value is None or not m.limited:
        return ""
    if m.low is not None and m.high is not None and m.high > m.low:
        return f"{100 * m.margin / (m.high - m.low):.1f} %"
    limit = m.low if m.low is not None else m.high
    if limit:
        return f"{100 * m.margin / abs(limit):.1f} %"
    return f"{m.margin:.4g} {m.unit}".strip()


def _worse(a: Measurement, b: Measurement) -> bool:
    """True when ``a`` is a worse judgement than ``b`` (outcome, then smaller margin)."""
    if a.outcome.rank != b.outcome.rank:
        return a.outcome.rank > b.outcome.rank
    return (a.margin if a.margin is not None else float("inf")) < \
        (b.margin if b.margin is not None else float("inf"))


def _distinguishing(group: list[Measurement]) -> list[dict[str, Any]]:
    """The conditions of one limit's rows without the keys every row shares (the limit's own
    condition, e.g. ``zone=corner`` of a corner limit); a single row keeps them all."""
    if len(group) < 2:
        return [dict(m.condition) for m in group]
    shared = {k for k, v in group[0].condition.items()
              if all(m.condition.get(k, object()) == v for m in group[1:])}
    return [{k: v for k, v in m.condition.items() if k not in shared} for m in group]


def limit_rows(measurements: Iterable[Measurement]) -> tuple[LimitRow, ...]:
    """Each limit once per set of conditions, the rows of one limit together, limits in the
    order first judged; conditions shown only as far as they tell a limit's rows apart. INFO
    figures are left out (they go in their own table)."""
    chosen: dict[tuple[str, str, str], tuple[Measurement, int]] = {}
    for m in measurements:
        if m.outcome is Outcome.INFO:
            continue
        key = (m.limit_id, m.name, condition_text(m.condition))
        seen = chosen.get(key)
        if seen is None:
            chosen[key] = (m, 1)
        else:
            chosen[key] = (m if _worse(m, seen[0]) else seen[0], seen[1] + 1)
    groups: dict[tuple[str, str], list[tuple[Measurement, int]]] = {}
    for (limit_id, name, _cond), judged in chosen.items():
        groups.setdefault((limit_id, name), []).append(judged)
    rows = []
    for group in groups.values():
        shown = _distinguishing([m for m, _times in group])
        rows += [LimitRow(m.limit_id, m.name, condition_text(cond), m.value, m.unit,
                          m.limits_text(), margin_text(m), m.outcome, m.message, times,
                          m.uncertainty, m.decision, m.coverage_k)
                 for (m, times), cond in zip(group, shown, strict=True)]
    return tuple(rows)


def _family_title(family: str) -> str:
    from harness.evidence.allure import FAMILIES

    known = FAMILIES.get(family)
    return known.feature if known else (family or OTHER_FAMILY)


def _note(test: TestRecord) -> TestNote | None:
    """A note when the test's outcome is worse than its limit rows say (or it has none)."""
    judged = [m.outcome for m in test.measurements if m.outcome is not Outcome.INFO]
    if test.outcome in (Outcome.PASS, Outcome.INFO) or \
            (judged and max(o.rank for o in judged) >= test.outcome.rank):
        return None
    title = test.title or test.test_id.split("::")[-1]
    return TestNote(title, test.outcome, test.message or "; ".join(test.errors))


def family_tables(record: RunRecord) -> tuple[FamilyTable, ...]:
    """One table per test family (tests of families with the same title share one), in the
    order the families first ran."""
    tests: dict[str, list[TestRecord]] = {}
    for t in record.tests:
        tests.setdefault(_family_title(t.family), []).append(t)
    out = []
    for title, members in tests.items():
        rows = limit_rows(m for t in members for m in t.measurements)
        notes = tuple(n for n in map(_note, members) if n is not None)
        if rows or notes:
            out.append(FamilyTable(title, rows, notes))
    return tuple(out)


def info_figures(record: RunRecord) -> tuple[Measurement, ...]:
    return tuple(m for m in record.measurements if m.outcome is Outcome.INFO)


def software_hash(record: RunRecord) -> str:
    """sha256 of the canonical JSON of the software versions."""
    return hashlib.sha256(canonical_json(dict(record.software)).encode()).hexdigest()


def frames_digest(record: RunRecord) -> tuple[int, str]:
    """(number of frames, sha256 over their sorted sha256 hex digests, one per line)."""
    hashes = sorted({a.sha256 for a in record.artefacts if a.kind == "frame"})
    return len(hashes), hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def spec_version(record: RunRecord, spec_file: str | Path | None = None) -> tuple[str, str]:
    """``(version, note)`` of the limit spec the run was judged against, read from
    ``spec_file`` (default: the file the record names) only when its sha256 is the record's;
    otherwise no version and a note saying why."""
    from harness.limits import load_limits

    path = Path(spec_file) if spec_file else Path(record.limits_file) \
        if record.limits_file else None
    if path is None:
        return "", "the record names no limit spec"
    if not path.is_file():
        return "", f"{path} not found (give --limits)"
    if hashlib.sha256(path.read_bytes()).hexdigest() != record.limits_hash:
        return "", f"{path} is not the file the run was judged against (sha256 differs)"
    return load_limits(path).version, ""


# HTML ---------------------------------------------------------------------------------------

_e = html.escape


def _badge(outcome: Outcome) -> str:
    return (f'<span class="badge" style="background:{_COLOUR[outcome]}">'
            f"{outcome.value}</span>")


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _value(x: float | None, u: float | None) -> str:
    """The value, with ``± u`` (its standard uncertainty) when the analysis stated one."""
    return _num(x) if x is None or u is None else f"{x:.4g} ± {u:.2g}"


def _or_missing(text: str, what: str = "not recorded") -> str:
    return _e(text) if text else f"<span class=bad>{what}</span>"


def _family_html(table: FamilyTable) -> str:
    rows = []
    for r in table.rows:
        cond = f" <span class=note>({_e(r.condition)})</span>" if r.condition else ""
        times = f" <span class=note>(judged {r.times}×, worst shown)</span>" \
            if r.times > 1 else ""
        why = f" <span class=note>{_e(r.message)}</span>" if r.message and \
            r.outcome not in (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL) else ""
        rows.append(f"<tr><td>{_e(r.limit_id) or '—'}</td>"
                    f"<td class=wrap>{_e(r.name)}{cond}{times}{why}</td>"
                    f"<td class=num>{_e(_value(r.value, r.uncertainty))}</td>"
                    f"<td>{_e(r.unit)}</td><td>{_e(r.limits)}"
                    + (f" <span class=note>{_e(r.rule_text)}</span>" if r.rule_text else "")
                    + f"</td><td class=num>{_e(r.margin)}</td>"
                    f"<td>{_badge(r.outcome)}</td></tr>")
    rows += [f"<tr><td colspan=6 class='note wrap'>{_e(n.title)}: "
             f"{_e(n.message) or 'no figure'}</td><td>{_badge(n.outcome)}</td></tr>"
             for n in table.notes]
    return (f"<table class=limits>{_LIMIT_COLUMNS}<tr class=family><th colspan=2>"
            f"{_e(table.title)} {_badge(table.outcome)}</th><th class=num>value</th>"
            "<th>unit</th><th>limits</th><th class=num>margin</th><th>outcome</th></tr>"
            f"{''.join(rows)}</table>")


def _info_html(figures: tuple[Measurement, ...]) -> str:
    if not figures:
        return ""
    items = " · ".join(
        f"{_e(m.name)}"
        + (f" <span class=note>({_e(condition_text(m.condition))})</span>" if m.condition
           else "")
        + f" <b>{_e(_value(m.value, m.uncertainty))}</b> {_e(m.unit)}" for m in figures)
    return ("<div><h2>Figures recorded without a limit (INFO)</h2>"
            f"<p class=info>{items}</p></div>")


def _unjudged_html(record: RunRecord) -> str:
    if not record.unjudged:
        return ""
    items = "".join(f"<tr><td>{_e(u.limit_id)}</td><td>{_e(u.measurement)}</td>"
                    f"<td>{_e(u.reason)}</td></tr>" for u in record.unjudged)
    return ("<div><h2 class=bad>Limits not judged in this run</h2><table class=bad>"
            f"<tr><th>limit id</th><th>measurement</th><th>why</th></tr>{items}</table></div>")


def _software_html(record: RunRecord) -> str:
    sw = record.software
    commit = sw.get("harness.commit", "")
    if commit:
        state = "uncommitted changes" if sw.get("harness.dirty") == "true" else "clean"
        commit = f"git commit {_e(commit)} ({state})"
    else:
        commit = "not run from a git checkout"
    others = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(sw.items())
                       if k not in _IDENTITY_KEYS)
    files = f" ({_e(sw['harness.files'])} files)" if sw.get("harness.files") else ""
    return (f"<tr><th>harness</th><td>{_or_missing(sw.get('harness', ''))}, {commit}</td></tr>"
            f"<tr><th>code sha256{files}</th><td>"
            f"{_or_missing(sw.get('harness.sha256', ''))}</td></tr>"
            f"<tr><th>versions (sha256 {software_hash(record)[:12]}…)</th>"
            f"<td class=small>{others}</td></tr>")


def _evidence_html(record: RunRecord, facts: PageFacts) -> str:
    n_frames, digest = frames_digest(record)
    rows = [f"<tr><th>frames ({n_frames}) digest</th><td>{digest}</td></tr>"]
    chain = facts.chain
    if chain is not None:
        prev = (f"previous run (#{chain.chain_seq - 1})" if chain.chain_seq > 1
                else "previous run (none: the first)")
        rows += [f"<tr><th>record sha256 (#{chain.chain_seq} of {_e(chain.station)})</th>"
                 f"<td>{_e(chain.record_hash)}</td></tr>",
                 f"<tr><th>{prev}</th><td>{_e(chain.prev_hash)}</td></tr>"]
    if facts.head is not None:
        rows.append(f"<tr><th>chain head (#{facts.head.chain_seq}, {_e(facts.generated)})"
                    f"</th><td>{_e(facts.head.record_hash)}</td></tr>")
    if facts.verify is not None:
        v = facts.verify
        state = ("intact" if v.ok else
                 "<b class=bad>BROKEN: " + _e("; ".join(v.problems)) + "</b>")
        rows.append(f"<tr><th>chain check</th><td>{state} ({v.checked} runs, {v.stations} "
                    "stations)</td></tr>")
    sig = facts.signature
    status = f"<b class=bad>{_e(sig.status)}</b>" if sig.problem else _e(sig.status)
    rows.append("<tr><th>signing key (Ed25519, sha256)</th>"
                f"<td>{_or_missing(sig.fingerprint, 'none: the record is not signed')}; "
                f"signature: {status}</td></tr>")
    return "".join(rows)


_CSS = """
@page { size: A4; margin: 8mm 10mm; }
body { font: 7.5pt/1.1 "DejaVu Sans", Arial, sans-serif; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 12pt; margin: 0 0 2px; }
h2 { font-size: 8.5pt; margin: 4px 0 0; }
table { border-collapse: collapse; width: 100%; margin: 1px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0 3px; text-align: left;
         vertical-align: top; }
th { font-weight: 600; }
table.limits { table-layout: fixed; margin-top: 4px; }
tr.family th { font-size: 8.5pt; border-bottom: 1px solid #888; }
table.limits td { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
table.limits td.wrap { white-space: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.head { display: flex; gap: 10px; }
.meta th { width: 28%; color: #444; font-weight: normal; }
.badge { color: #fff; border-radius: 2px; padding: 0 3px; font-weight: bold; font-size: 6.5pt; }
.verdict { font-size: 10pt; margin: 3px 0; }
.verdict .badge { font-size: 12pt; padding: 1px 10px; }
.hash td { font-family: "DejaVu Sans Mono", monospace; font-size: 6.5pt;
           word-break: break-all; }
.note, .small { color: #555; font-size: 6.5pt; }
p.info { margin: 1px 0; }
.bad, .bad td, .bad th { color: #c53030; }
.apart { display: flex; gap: 10px; }
.apart > div { flex: 1; }
.sign { margin-top: 6px; display: flex; gap: 12px; }
.sign div { flex: 1; border: 1px solid #999; padding: 2px 4px; min-height: 40px; }
.sign b { display: block; }
"""
_LIMIT_COLUMNS = ("<colgroup><col style='width:18%'><col style='width:38%'>"
                  "<col style='width:9%'><col style='width:7%'><col style='width:11%'>"
                  "<col style='width:8%'><col style='width:9%'></colgroup>")


def signoff_html(record: RunRecord, facts: PageFacts | None = None) -> str:
    """The sign-off page as a self-contained HTML document."""
    facts = facts or PageFacts()
    counts = {o: sum(t.outcome is o for t in record.tests) for o in Outcome}
    tally = ", ".join(f"{n} {o.value}" for o, n in counts.items() if n) or "no tests"
    incomplete = "" if record.complete else "; the run did not complete"
    reason = f"<p class=note>{_e(record.reason)}</p>" if record.reason else ""
    spec = (f"{_e(facts.spec_version)}" if facts.spec_version else
            f"<span class=bad>version unknown: {_e(facts.spec_note)}</span>")
    families = "".join(_family_html(t) for t in family_tables(record))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Sign-off {_e(record.product)} {_e(record.dut_serial)} ({_e(record.run_id)})</title>
<style>{_CSS}</style></head><body>
<h1>Qualification sign-off — {_e(record.product or "product")} s/n
{_or_missing(record.dut_serial, "no serial")}</h1>
<div class="head"><table class="meta">
<tr><th>product</th><td>{_or_missing(record.product)}</td></tr>
<tr><th>DUT</th><td>s/n {_or_missing(record.dut_serial)}, firmware
{_or_missing(record.dut_firmware)}</td></tr>
<tr><th>lot</th><td>{_or_missing(facts.lot, "not given")}</td></tr>
<tr><th>limit spec</th><td>{_e(record.limits_file)} version {spec}</td></tr>
</table><table class="meta">
<tr><th>station</th><td>{_e(record.station)}</td></tr>
<tr><th>operator</th><td>{_or_missing(record.operator)}</td></tr>
<tr><th>tested (UTC)</th><td>{_e(record.started[:19])} – {_e(record.ended[:19])}</td></tr>
<tr><th>run / page</th><td>{_e(record.run_id)} / {_e(facts.generated)}</td></tr>
</table></div>
<table class="meta hash"><tr><th>limit spec sha256</th><td>{_e(record.limits_hash)}</td></tr>
</table>
<p class="verdict">Verdict: {_badge(record.outcome)} <span class=note>({_e(tally)}
{incomplete})</span></p>{reason}
{families}
<div class="apart">{_unjudged_html(record)}{_info_html(info_figures(record))}</div>
<p class=note>margin: distance to the nearest limit, as % of the tolerance (high − low) of a
two-sided limit, as % of |limit| of a one-sided one, in the unit for a one-sided limit at 0.</p>
<h2>Software and evidence</h2>
<table class="meta hash">{_software_html(record)}{_evidence_html(record, facts)}</table>
<div class="sign">
<div><b>Prepared by</b>{_e(facts.prepared_by)}<br><span class=note>name, signature</span></div>
<div><b>Approved by</b><br><span class=note>name, signature</span></div>
<div><b>Date</b><br><span class=note>release / reject</span></div>
</div>
</body></html>
"""


def write_signoff(record: RunRecord, out: Path, facts: PageFacts | None = None, *,
                  pdf: bool = False) -> Path:
    """Write the HTML page (and, with ``pdf``, print it to a one-page PDF with headless
    Chromium, see :func:`print_one_page`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    html_path = out.with_suffix(".html")
    page = signoff_html(record, facts)
    html_path.write_text(page, encoding="utf-8")
    if not pdf:
        return html_path
    return print_one_page(page, out.with_suffix(".pdf"))


def pdf_pages(data: bytes) -> int:
    """The number of pages of a PDF Chromium wrote (its page objects)."""
    return len(re.findall(rb"/Type\s*/Page\b", data))


def print_one_page(page: str, pdf_path: Path) -> Path:
    """Print ``page`` to ``pdf_path`` at full size; when that takes more than one A4 page (a
    spec with many limits or conditions), print it again smaller (CSS zoom, down to
    :data:`ZOOMS`' last step), and keep the first print that fits on one page."""
    with tempfile.TemporaryDirectory(prefix="harness-signoff-") as tmp:
        for zoom in ZOOMS:
            source = Path(tmp) / f"signoff-{zoom:g}.html"
            source.write_text(page.replace(
                "</style>", f"body {{ zoom: {zoom:g}; max-width: calc(190mm / {zoom:g}); }}"
                            "</style>", 1), encoding="utf-8")
            print_pdf(source, pdf_path)
            if pdf_pages(pdf_path.read_bytes()) <= 1:
                break
    return pdf_path


def chain_head(store: RecordStore, station: str) -> StoredRun | None:
    """The station's newest run in its chain (what deleting the latest runs would change):
    the page prints it so that a later truncation of the chain shows."""
    newest = max(store.runs(station=station), key=lambda r: r.chain_seq or 0, default=None)
    return store.chain_info(newest.run_id) if newest is not None else None


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError("PDF needs Chromium: install the Debian package chromium (or drop --pdf)",
                      field="--pdf")


def print_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 60.0) -> Path:
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--disable-background-networking", "--disable-sync",
               "--disable-component-update", f"--user-data-dir={profile}",
               "--no-pdf-header-footer", f"--print-to-pdf={pdf_path.resolve()}",
               html_path.resolve().as_uri()]
        try:
            subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise EvidenceError(f"printing {html_path} to PDF took over {timeout_s:g} s"
                                ) from None
    if not pdf_path.is_file() or not pdf_path.read_bytes()[:5] == b"%PDF-":
        raise EvidenceError(f"Chromium did not write {pdf_path}")
    return pdf_path


__all__ = ["FamilyTable", "LimitRow", "NotSignable", "PageFacts", "Signature", "TestNote",
           "chain_head", "check_signable", "chromium_binary", "condition_text", "family_tables",
           "frames_digest", "info_figures", "limit_rows", "margin_text", "pdf_pages",
           "print_one_page", "print_pdf", "signoff_html", "software_hash", "spec_version", "today",
           "write_signoff"]
