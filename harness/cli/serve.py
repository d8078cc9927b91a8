"""``harness serve``: the station web app (:mod:`harness.app`).

Validates the station file and the limit spec, refuses to listen beyond loopback without a
token, then serves the kiosk, the fleet pages and the JSON API with uvicorn. FastAPI, uvicorn
and the app are imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console, error_boundary


@app.command("serve")
def serve_cmd(
    station: Annotated[Path, typer.Option("--station", help="Station file (YAML).")],
    limits: Annotated[Path, typer.Option("--limits", help="Limit spec (YAML).")],
    records: Annotated[str | None, typer.Option(
        "--records", envvar="HARNESS_RECORDS",
        help="Records database (SQLite file or postgresql:// URL): runs are stored there and "
             "the fleet pages read it.")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Interface to listen on; anything but loopback needs --token-file.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="File holding the token every Start, Abort and prompt answer "
                             "must carry (Authorization: Bearer).")] = None,
    evidence_dir: Annotated[Path, typer.Option(
        "--evidence-dir", help="Where runs write their evidence (as pytest --evidence-dir).")
    ] = Path("out/evidence"),
    tests: Annotated[list[str] | None, typer.Option(
        "--tests", help="Test files or folders to run (repeatable; default tests_hil).")
    ] = None,
    rootdir: Annotated[Path | None, typer.Option(
        "--rootdir", help="Folder the runs start in (default: the current folder); relative "
                          "paths below are taken from it.")] = None,
    report_dir: Annotated[Path | None, typer.Option(
        "--report-dir", help="Where each run's Allure report goes, <dir>/<run id>/index.html "
                             "(default: report beside the evidence folder).")] = None,
    results_dir: Annotated[Path | None, typer.Option(
        "--results-dir", help="Where each run's Allure results go (default: allure-results "
                              "beside the evidence folder).")] = None,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="Do not build an Allure report after each run.")] = False,
) -> None:
    """Serve the station app: the operator's kiosk, the fleet pages and the JSON API."""
    with error_boundary({"station": "--station", "limits": "--limits"}):
        from harness.app.config import load_config

        config = load_config(station=station, limits=limits, records=records, host=host,
                             port=port, token_file=token_file, evidence_dir=evidence_dir,
                             tests=tuple(tests or ("tests_hil",)), rootdir=rootdir,
                             reports=report_dir, allure_results=results_dir,
                             build_reports=not no_report)
        import uvicorn

        from harness.app.server import create_app

        web = create_app(config)
        where = f"http://{host}:{port}/"
        console.print(f"harness station app for {config.station_id} on {where} "
                      f"(evidence {config.evidence_dir}; "
                      f"reports {config.reports if config.build_reports else 'off'}; "
                      f"{'token required' if config.token else 'loopback only'})",
                      highlight=False, soft_wrap=True)
        uvicorn.run(web, host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=5)


__all__ = ["serve_cmd"]
