"""``harness signoff RUN_ID``: the one-page sign-off summary (HTML, optionally PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console, error_boundary
from harness.cli.records import RecordsOpt, open_existing
from harness.evidence.records import DEFAULT_RECORDS
from harness.evidence.signoff import check_signable, write_signoff
from harness.paths import safe_component


@app.command("signoff")
def signoff_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (see `harness records runs`).")],
    records: RecordsOpt = str(DEFAULT_RECORDS),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output file (default out/signoff/<run id>.html).")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print it to PDF (Chromium).")] =
        False,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="Print the page of a run that is not PASS or MARGINAL "
                                   "(its unjudged limits in red).")] = False,
) -> None:
    """Export the verdict table and the limits/software/frame/record hashes of one run.

    A run that is not PASS or MARGINAL is refused unless --allow-incomplete; a
    characterisation run is always refused."""
    with error_boundary():
        with open_existing(records) as store:
            record = store.get_run(run_id)
            check_signable(record, allow_incomplete=allow_incomplete)
            chain = store.chain_info(run_id)
            verify = store.verify()
        default = Path("out/signoff") / f"{safe_component(run_id, 'RUN_ID')}.html"
        path = write_signoff(record, out or default,
                             chain=chain, verify=verify, pdf=pdf)
        console.print(f"sign-off: {path} (verdict {record.outcome.value}; chain "
                      f"{'intact' if verify.ok else 'BROKEN'})", highlight=False)
