"""The one-page sign-off summary of a run: verdict table and the hashes that pin the evidence.

Only an earned verdict is signed: :func:`check_signable` refuses a run that is not PASS or
MARGINAL (a FAIL, ERROR, ABORTED or INCOMPLETE run) unless the reviewer allows it
explicitly, and then the page lists the limits the run left unjudged in red; a
characterisation run (no limits) is never signed. INFO figures (no limit) are shown apart.

The page shows the run's verdict, every measurement with its limits and outcome, and the
hashes a reviewer needs to tie the decision to its inputs: the limits file's sha256, a sha256
over the software versions, a digest over the frames' sha256 (plus the first frames), and the
run's own record hash with its link to the station's previous run (the hash chain that
``harness records verify`` checks). HTML with print CSS (A4, one page); PDF via headless
Chromium when asked.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import ConfigError, EvidenceError
from harness.evidence.model import Measurement, Outcome, RunRecord
from harness.evidence.records import StoredRun, VerifyReport, canonical_json

MAX_FRAMES_LISTED = 12
_COLOUR = {Outcome.PASS: "#1b7f3b", Outcome.MARGINAL: "#b7791f", Outcome.FAIL: "#c53030",
           Outcome.ERROR: "#6b46c1", Outcome.ABORTED: "#6b46c1", Outcome.SKIPPED: "#718096",
           Outcome.INFO: "#4a5568", Outcome.INCOMPLETE: "#c05621"}


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


def software_hash(record: RunRecord) -> str:
    """sha256 of the canonical JSON of the software versions."""
    return hashlib.sha256(canonical_json(dict(record.software)).encode()).hexdigest()


def frames_digest(record: RunRecord) -> tuple[int, str]:
    """(number of frames, sha256 over their sorted sha256 hex digests, one per line)."""
    hashes = sorted({a.sha256 for a in record.artefacts if a.kind == "frame"})
    return len(hashes), hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def _badge(outcome: Outcome) -> str:
    return (f'<span class="badge" style="background:{_COLOUR[outcome]}">'
            f"{outcome.value}</span>")


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def signoff_html(record: RunRecord, chain: StoredRun | None = None,
                 verify: VerifyReport | None = None) -> str:
    """The sign-off page as a self-contained HTML document."""
    e = html.escape
    rows: list[str] = []
    info: list[tuple[str, Measurement]] = []
    for t in record.tests:
        name = e(t.title or t.test_id.split("::")[-1])
        if not t.measurements:
            note = e(t.message or "; ".join(t.errors))
            rows.append(f"<tr><td>{name}</td><td colspan=4 class=note>{note}</td>"
                        f"<td></td><td>{_badge(t.outcome)}</td></tr>")
        for m in t.measurements:
            if m.outcome is Outcome.INFO:
                info.append((name, m))
                continue
            cond = ", ".join(f"{k}={v}" for k, v in m.condition.items())
            label = e(m.name) + (f" <span class=note>({e(cond)})</span>" if cond else "")
            rows.append(f"<tr><td>{name}</td><td>{label}</td><td class=num>{_num(m.value)}</td>"
                        f"<td>{e(m.unit)}</td><td>{e(m.limits_text())}</td>"
                        f"<td>{e(m.limit_id)}</td><td>{_badge(m.outcome)}</td></tr>")
    info_rows = "".join(
        f"<tr><td>{name}</td><td>{e(m.name)}"
        + (f" <span class=note>({e(', '.join(f'{k}={v}' for k, v in m.condition.items()))})"
           "</span>" if m.condition else "")
        + f"</td><td class=num>{_num(m.value)}</td><td>{e(m.unit)}</td></tr>"
        for name, m in info)
    info_table = ("<h2>Figures recorded without a limit (INFO)</h2><table><tr><th>test</th>"
                  "<th>figure</th><th>value</th><th>unit</th></tr>" + info_rows + "</table>"
                  ) if info else ""
    unjudged_table = ""
    if record.unjudged:
        items = "".join(f"<tr><td>{e(u.limit_id)}</td><td>{e(u.measurement)}</td>"
                        f"<td>{e(u.reason)}</td></tr>" for u in record.unjudged)
        unjudged_table = ("<h2 class=bad>Limits not judged in this run</h2><table class=bad>"
                          "<tr><th>limit id</th><th>measurement</th><th>why</th></tr>"
                          f"{items}</table>")
    counts = {o: sum(t.outcome is o for t in record.tests) for o in Outcome}
    tally = ", ".join(f"{n} {o.value}" for o, n in counts.items() if n)
    n_frames, digest = frames_digest(record)
    frames = sorted({a.sha256 for a in record.artefacts if a.kind == "frame"})
    listed = "".join(f"<li>{e(h)}</li>" for h in frames[:MAX_FRAMES_LISTED])
    more = (f"<li>… and {len(frames) - MAX_FRAMES_LISTED} more (all in the records "
            "database)</li>") if len(frames) > MAX_FRAMES_LISTED else ""
    software = ", ".join(f"{e(k)} {e(v)}" for k, v in sorted(record.software.items()))
    chain_rows = ""
    if chain is not None:
        prev_label = (f"previous run (#{chain.chain_seq - 1} of {e(chain.station)})"
                      if chain.chain_seq > 1 else "previous run (none: first of the station)")
        chain_rows = (f"<tr><th>record sha256</th><td>{e(chain.record_hash)}</td></tr>"
                      f"<tr><th>{prev_label}</th>"
                      f"<td>{e(chain.prev_hash)}</td></tr>")
    if verify is not None:
        state = ("intact" if verify.ok else
                 "<b style='color:#c53030'>BROKEN: " + e("; ".join(verify.problems)) + "</b>")
        chain_rows += (f"<tr><th>chain check</th><td>{state} ({verify.checked} runs, "
                       f"{verify.stations} stations)</td></tr>")
    reason = (f"<p class=note>{e(record.reason)}</p>" if record.reason else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Sign-off {e(record.run_id)}</title>
<style>
@page {{ size: A4; margin: 12mm; }}
body {{ font: 10pt/1.35 "DejaVu Sans", Arial, sans-serif; margin: 0 auto; max-width: 190mm; }}
h1 {{ font-size: 15pt; margin: 0 0 4px; }}
table {{ border-collapse: collapse; width: 100%; margin: 6px 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 2px 4px; text-align: left;
          vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.meta th {{ width: 30%; color: #444; font-weight: normal; }}
.badge {{ color: #fff; border-radius: 3px; padding: 0 5px; font-weight: bold;
          font-size: 8.5pt; }}
.verdict .badge {{ font-size: 14pt; padding: 2px 10px; }}
.hash td, .hash li {{ font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt;
                      word-break: break-all; }}
.note {{ color: #555; font-size: 8.5pt; }}
h2 {{ font-size: 11pt; margin: 8px 0 2px; }}
.bad, .bad td, .bad th {{ color: #c53030; }}
ul {{ margin: 2px 0; padding-left: 16px; columns: 2; }}
.sign {{ margin-top: 14px; display: flex; gap: 30px; }}
.sign div {{ flex: 1; border-top: 1px solid #000; padding-top: 2px; }}
</style></head><body>
<h1>Qualification sign-off — {e(record.product or "product")} {e(record.dut_serial)}</h1>
<p class="verdict">Verdict: {_badge(record.outcome)} <span class=note>({e(tally)}
{"" if record.complete else "; the run did not complete"})</span></p>{reason}
<table class="meta">
<tr><th>run</th><td>{e(record.run_id)}</td></tr>
<tr><th>DUT</th><td>{e(record.product)} s/n {e(record.dut_serial)} fw
{e(record.dut_firmware)}</td></tr>
<tr><th>station / operator</th><td>{e(record.station)} / {e(record.operator)}</td></tr>
<tr><th>started – ended (UTC)</th><td>{e(record.started[:19])} – {e(record.ended[:19])}</td></tr>
<tr><th>software</th><td>{software}</td></tr>
</table>
<table><tr><th>test</th><th>measurement</th><th>value</th><th>unit</th><th>limits</th>
<th>limit id</th><th>outcome</th></tr>
{"".join(rows)}
</table>
{unjudged_table}
{info_table}
<table class="meta hash">
<tr><th>limits file</th><td>{e(record.limits_file)}</td></tr>
<tr><th>limits sha256</th><td>{e(record.limits_hash)}</td></tr>
<tr><th>software sha256</th><td>{software_hash(record)}</td></tr>
<tr><th>frames ({n_frames}) digest</th><td>{digest}</td></tr>
{chain_rows}
</table>
<div class="hash"><ul>{listed}{more}</ul></div>
<div class="sign"><div>Reviewed by (name, signature)</div><div>Date</div>
<div>Decision: release / reject</div></div>
</body></html>
"""


def write_signoff(record: RunRecord, out: Path, *, chain: StoredRun | None = None,
                  verify: VerifyReport | None = None, pdf: bool = False) -> Path:
    """Write the HTML page (and, with ``pdf``, print it to PDF with headless Chromium)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    page = signoff_html(record, chain, verify)
    html_path = out.with_suffix(".html")
    html_path.write_text(page, encoding="utf-8")
    if not pdf:
        return html_path
    return print_pdf(html_path, out.with_suffix(".pdf"))


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


__all__ = ["NotSignable", "check_signable", "frames_digest", "print_pdf", "signoff_html",
           "software_hash", "write_signoff"]
