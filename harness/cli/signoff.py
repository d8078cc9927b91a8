"""``harness signoff RUN_ID``: the sign-off page of one DUT's run (HTML, optionally PDF).

The records database and the page writer are imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console, error_boundary
from harness.cli.records import RecordsOpt, open_existing
from harness.paths import DEFAULT_RECORDS, safe_component


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
    lot: Annotated[str, typer.Option("--lot", help="Production lot of the DUT (header).")] =
        "",
    prepared_by: Annotated[str, typer.Option(
        "--prepared-by", help="Name printed in the 'prepared by' box.")] = "",
    limits: Annotated[Path | None, typer.Option(
        "--limits", help="The limit spec, if not at the path the record names (its sha256 "
                         "must be the record's; the page prints its version).")] = None,
    keys: Annotated[Path | None, typer.Option(
        "--keys", help="Folder of <station id>.pub: check the run's signature and every "
                       "chain's.")] = None,
) -> None:
    """Write the sign-off page: header, verdict, a table per test family (each limit once,
    with its margin), INFO figures, unjudged limits, software identity, key fingerprint and
    chain head, and a signature block.

    A run that is not PASS or MARGINAL is refused unless --allow-incomplete; a
    characterisation run is always refused."""
    from harness.evidence.records.signing import (
        load_public_keys,
        signature_check,
        signature_problem,
    )
    from harness.evidence.signoff import (
        PageFacts,
        Signature,
        chain_head,
        check_signable,
        spec_version,
        today,
        write_signoff,
    )

    with error_boundary():
        public = load_public_keys(keys) if keys is not None else None
        with open_existing(records) as store:
            record = store.get_run(run_id)
            check_signable(record, allow_incomplete=allow_incomplete)
            chain = store.chain_info(run_id)
            head = chain_head(store, record.station)
            verify = store.verify(checks=[signature_check(public)] if public else [])
        signature = Signature(chain.signing_key, public is not None,
                              signature_problem(chain, public) if public is not None else "")
        version, note = spec_version(record, limits)
        facts = PageFacts(lot=lot, prepared_by=prepared_by, spec_version=version,
                          spec_note=note, chain=chain, head=head, verify=verify,
                          signature=signature, generated=today())
        default = Path("out/signoff") / f"{safe_component(run_id, 'RUN_ID')}.html"
        path = write_signoff(record, out or default, facts, pdf=pdf)
        console.print(f"sign-off: {path} (verdict {record.outcome.value}; chain "
                      f"{'intact' if verify.ok else 'BROKEN'}; signature {signature.status})",
                      highlight=False)


__all__ = ["signoff_cmd"]
