"""The station app: FastAPI routes for the kiosk page, the JSON API and the event stream.

:func:`create_app` builds the application from an :class:`~harness.app.config.AppConfig`:
the kiosk (``/``), the fleet pages (``/fleet``, :mod:`harness.app.fleet`), the static files
and the API:

* ``POST /api/runs`` ``{"dut", "operator"}`` -> 202 ``{"run_id"}``; 409 naming the running
  run; 422 for a bad serial or operator;
* ``GET /api/runs`` (current run and this session's runs), ``GET /api/runs/{id}`` (state,
  outcome, tests, failed limits, slots, prompt; also a past run by its record's run id);
* ``POST /api/runs/{id}/abort``, ``POST /api/runs/{id}/prompt`` ``{"answer"}``;
* ``GET /api/events`` (server-sent events; the first one, ``state``, is the current run as
  ``GET /api/runs/{id}`` gives it, so a page that (re)connects mid-run shows it at once),
  ``GET /api/history``, ``GET /api/runs/{id}/thumbnail.png``;
* ``GET /reports/{run id}``: a run's Allure report, built after its verdict
  (:mod:`harness.app.reports`).

Every POST goes through :func:`~harness.app.security.check_post` (token, JSON, origin). On
loopback the server answers only requests addressed to a loopback name (``Host``), so a page
of another site cannot reach it by re-pointing its own name at 127.0.0.1 (DNS rebinding).
The handlers only read the run manager's state (a lock held for microseconds): the journal
tailing, the child process and the thumbnails run off the event loop, so a status request
answers at once while a 12 MP run captures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from harness.app.config import AppConfig, is_loopback
from harness.app.events import EventBus, sse_stream
from harness.app.runs import (
    ArgvBuilder,
    RunBusy,
    RunManager,
    RunNotFound,
    RunNotRunning,
    describe,
    pytest_argv,
)
from harness.app.security import PromptAnswer, StartRequest, check_post

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: The Host names a loopback server answers ("testserver": Starlette's test client).
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "testserver"]


def create_app(config: AppConfig, *, argv_builder: ArgvBuilder = pytest_argv,
               env: dict[str, str] | None = None) -> FastAPI:
    """The station app for ``config`` (``argv_builder``/``env``: how the child is run)."""
    from harness.app.fleet import fleet_router

    bus = EventBus()
    manager = RunManager(config, bus, argv_builder, env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        bus.close()
        import anyio

        await anyio.to_thread.run_sync(manager.shutdown)

    app = FastAPI(title=f"harness station app · {config.station_id}", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.manager = manager
    app.state.bus = bus
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app.state.templates = templates
    if is_loopback(config.host):
        # a page of another site whose name was re-pointed at 127.0.0.1 (DNS rebinding)
        # reaches a loopback server under its own Host name: only loopback names are served
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(fleet_router(config.records, reports=config.reports,
                                    allure_results=config.allure_results))

    def guard(request: Request) -> None:
        check_post(request, config.token)

    safe = [Depends(guard)]  # before the body is parsed: 401/403/415 come first

    @app.get("/", response_class=HTMLResponse)
    def kiosk(request: Request) -> Response:
        return templates.TemplateResponse(request, "kiosk.html", {
            "station_id": config.station_id, "slots": list(config.slots) or [""],
            "multi": bool(config.slots), "needs_token": config.token is not None,
            "label_timeout_s": config.label_timeout_s})

    @app.post("/api/runs", status_code=202, response_model=None, dependencies=safe)
    def start_run(body: StartRequest) -> dict[str, str] | JSONResponse:
        if body.dut and config.slots:
            raise HTTPException(422, f"station {config.station_id} has {len(config.slots)} "
                                     "slots: each slot's serial is read from its camera; "
                                     "leave the serial empty")
        try:
            run = manager.start(body.dut, body.operator)
        except RunBusy as exc:
            return JSONResponse({"detail": str(exc), "running": exc.run_id}, status_code=409)
        return {"run_id": run.run_id}

    @app.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        current = manager.current
        return {"station_id": config.station_id, "slots": list(config.slots),
                "current": current.run_id if current is not None else None,
                "runs": describe(list(manager.runs.values()))}

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> dict[str, Any]:
        try:
            return manager.get(run_id)
        except RunNotFound:
            raise HTTPException(404, f"no run {run_id[:80]!r}") from None

    @app.post("/api/runs/{run_id}/abort", status_code=202, dependencies=safe)
    def abort_run(run_id: str) -> dict[str, str]:
        try:
            manager.abort(run_id)
        except RunNotFound:
            raise HTTPException(404, f"no run {run_id[:80]!r}") from None
        except RunNotRunning as exc:
            raise HTTPException(409, str(exc)) from None
        return {"run_id": run_id, "state": "aborting"}

    @app.post("/api/runs/{run_id}/prompt", status_code=202, dependencies=safe)
    def answer_prompt(run_id: str, body: PromptAnswer) -> dict[str, str]:
        try:
            manager.answer(run_id, body.answer)
        except RunNotFound:
            raise HTTPException(404, f"no run {run_id[:80]!r}") from None
        except RunNotRunning as exc:
            raise HTTPException(409, str(exc)) from None
        return {"run_id": run_id, "state": "answered"}

    @app.get("/api/runs/{run_id}/thumbnail.png")
    def thumbnail(run_id: str, slot: str = "") -> Response:
        from harness.app.thumbnail import thumbnail_png

        try:
            path = manager.frame_path(run_id, slot)
        except RunNotFound:
            raise HTTPException(404, f"no run {run_id[:80]!r}") from None
        if path is None or not path.is_file():
            raise HTTPException(404, "no frame captured yet")
        try:
            png = thumbnail_png(path)
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"the frame cannot be read: {exc}") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/reports/{run_id}", response_model=None)
    def report(run_id: str) -> Response:
        from fastapi.responses import FileResponse

        from harness.app.reports import report_folder
        from harness.errors import ConfigError

        try:
            index = report_folder(config, run_id) / "index.html"
        except ConfigError:
            raise HTTPException(404, f"no run {run_id[:80]!r}") from None
        if not index.is_file():
            raise HTTPException(404, f"no Allure report for run {run_id} (yet)")
        return FileResponse(index, media_type="text/html")

    @app.get("/api/history")
    def history() -> dict[str, Any]:
        return {"station_id": config.station_id, "runs": manager.history_rows()}

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        def state() -> dict[str, Any]:
            current = manager.current
            return {"type": "state", "station_id": config.station_id,
                    "current": current.run_id if current is not None else None,
                    "run": current.snapshot() if current is not None else None}

        return StreamingResponse(
            sse_stream(bus, config.keepalive_s, request.is_disconnected, state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


__all__ = ["HERE", "LOOPBACK_HOSTS", "STATIC", "TEMPLATES", "create_app"]
