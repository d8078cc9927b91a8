"""The engineer's fleet pages (``/fleet``) and their JSON twins (``/api/fleet/...``), read from
the records database (a SQLite file or a PostgreSQL URL; :class:`RecordStore`).

* ``/fleet?product=&station=&since=&page=``: yield and first-pass yield per product and
  station, per day, the runs per station and day, Cpk per limit (each linking to its control
  chart), the runs newest first, :data:`RUNS_SHOWN` a page (``/api/fleet/runs`` lists them);
* ``/fleet/chart?name=&condition=``: the individuals and moving-range chart of one
  measurement (:mod:`harness.evidence.records.control`), inline SVG;
* ``/fleet/runs/{run_id}``: a run with every measurement, its limit and outcome, its capture
  sets, its Allure report (``/report``) and its sign-off page (``/signoff``).

Every figure shown is computed by :mod:`harness.evidence.records`; bad query values give a
422 page (or JSON) naming the field and what is allowed; a server started without
``--records`` says so (503).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from harness.app.fleet_runs import capture_sets, find_report, signoff_page
from harness.errors import ConfigError, EvidenceError, HarnessError
from harness.evidence.records import RecordStore, canonical_json, run_filters
from harness.evidence.records.control import ControlChart, control_chart
from harness.evidence.records.daily import daily_yield
from harness.evidence.signoff import NotSignable, condition_text
from harness.jsonsafe import json_safe
from harness.paths import safe_component

TEMPLATES = Path(__file__).resolve().parent / "templates"
DAYS_SHOWN = 31
RUNS_SHOWN = 50
MAX_TEXT = 256
FAILURES = (HarnessError, OSError, SQLAlchemyError)
"""What a request may fail with and is answered with a page (or JSON) saying why."""


class FleetProblem(HarnessError):
    """A request the fleet pages answer with an explanation and an HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def make_templates() -> Jinja2Templates:
    """The app's templates with the fleet pages' number filters."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters.update(num=_num, pct=_pct, condition=condition_text)
    return templates


@dataclass(frozen=True)
class Selection:
    """The runs a page is about (validated query values)."""

    product: str = ""
    station: str = ""
    since: str = ""

    @classmethod
    def parse(cls, product: str | None, station: str | None, since: str | None
              ) -> Selection:
        sel = cls(_text(product, "product", 128), _text(station, "station", 128),
                  _text(since, "since", 64))
        sel.where()  # a bad since fails here, naming the field
        return sel

    def where(self) -> list[Any]:
        try:
            return run_filters(self.product or None, self.station or None, self.since or None)
        except ConfigError as exc:
            raise ConfigError(exc.detail, field="since") from None

    def query(self, **extra: str) -> str:
        """This selection (and ``extra``) as a URL query string, without empty values."""
        values = {**dataclasses.asdict(self), **extra}
        return urlencode({k: v for k, v in values.items() if v})


def _text(value: str | None, field: str, longest: int) -> str:
    text = (value or "").strip()
    if len(text) > longest or any(ord(c) < 32 for c in text):
        raise ConfigError(f"{text[:40]!r}... is not allowed; allowed: up to {longest} "
                          "printable characters", field=field)
    return text


def parse_condition(text: str | None) -> dict[str, Any] | None:
    """The ``condition`` query value: a JSON object (as the Cpk table links it) or none."""
    if not text:
        return None
    try:
        value = json.loads(_text(text, "condition", 1024))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f"{text[:60]!r} is not a condition; allowed: a JSON object, e.g. "
                          '{"gain_db": 0}', field="condition")
    return value


def plain(data: Any) -> Any:
    """``data`` as JSON values: dataclasses as dicts with their yield figures and chart state,
    and NaN or infinity as null (:func:`harness.jsonsafe.json_safe`)."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        out = {f.name: plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
        for name in ("first_pass_yield", "final_yield", "yield_", "state", "n"):
            if hasattr(data, name):
                out[name.rstrip("_")] = plain(getattr(data, name))
        return out
    if isinstance(data, Mapping):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [plain(v) for v in data]
    return json_safe(data)


class Records:
    """The records database behind the pages, opened at the first request that needs it (a
    SQLite file that does not exist yet is an empty fleet, not a new database)."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self._store: RecordStore | None = None
        self._lock = threading.Lock()

    def store(self) -> RecordStore | None:
        """The open store; None while a SQLite file does not exist yet."""
        if self.target is None:
            raise FleetProblem("this server was started without --records: there is no "
                               "records database to show (restart it with --records PATH "
                               "or URL)", 503)
        with self._lock:
            if self._store is None:
                if "://" not in self.target and not Path(self.target).is_file():
                    return None
                try:
                    self._store = RecordStore(self.target)
                except (EvidenceError, ConfigError) as exc:
                    raise FleetProblem(str(exc), 503) from None
            return self._store

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        store = self.store()
        if store is None:
            raise FleetProblem("no runs recorded yet", 404)
        with store.reading() as conn:
            yield conn

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def parse_page(value: str | None) -> int:
    """The ``page`` query value: 1 (the newest runs) when absent."""
    text = _text(value, "page", 12)
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{text!r} is not a page; allowed: a whole number from 1",
                          field="page")
    return int(text)


def runs_page(store: RecordStore, sel: Selection, page: int) -> dict[str, Any]:
    """Page ``page`` of the selected runs, newest first, :data:`RUNS_SHOWN` a page, with the
    links to the newer and older pages ("" where there is none)."""
    filters = {"product": sel.product or None, "station": sel.station or None,
               "since": sel.since or None}
    total = store.count_runs(**filters)
    pages = max(1, -(-total // RUNS_SHOWN))
    if page > pages:
        raise ConfigError(f"page {page} is past the last one ({pages}); allowed: 1 to {pages}",
                          field="page")
    first = (page - 1) * RUNS_SHOWN
    runs = store.runs(**filters, limit=RUNS_SHOWN, offset=first)

    def link(n: int) -> str:
        return f"/fleet?{sel.query(page=str(n))}#runs" if 1 <= n <= pages else ""

    return {"runs": runs, "runs_total": total, "page": page, "pages": pages,
            "first": first + 1, "last": first + len(runs),
            "newer": link(page - 1), "older": link(page + 1)}


def overview(records: Records, sel: Selection, page: int = 1) -> dict[str, Any]:
    """What ``/fleet`` shows: yields, days, runs per station and day, Cpk, and page ``page``
    of the runs (:func:`runs_page`)."""
    store = records.store()
    if store is None:
        return {"empty": True, "note": f"{records.target} does not exist yet (the first "
                                       "stored run creates it)"}
    where = sel.where()
    listed = runs_page(store, sel, page)
    if not listed["runs"]:
        return {"empty": True, "note": "no runs in the records" +
                (" for this selection" if sel.query() else "")}
    report = store.unit_yield(product=sel.product or None, station=sel.station or None,
                              since=sel.since or None)
    with records.reading() as conn:
        days = daily_yield(conn, where)
    shown_days = sorted({d.day for d in days}, reverse=True)[:DAYS_SHOWN]
    cpk = store.cpk(product=sel.product or None, station=sel.station or None,
                    since=sel.since or None)
    return {"empty": False, "stations": report.stations, "limits": report.limits,
            "days": [d for d in days if d.day in shown_days],
            "days_shown": len(shown_days),
            "more_days": len({d.day for d in days}) - len(shown_days),
            "trend": store.trend(product=sel.product or None, station=sel.station or None,
                                 since=sel.since or None),
            "cpk": cpk, **listed,
            "chart_links": [chart_link(Selection(r.product, sel.station, sel.since), r.name,
                                       r.condition) for r in cpk]}


def chart_link(sel: Selection, name: str, condition: Mapping[str, Any]) -> str:
    """The control chart page of ``name`` at ``condition`` over ``sel``."""
    return f"/fleet/chart?{sel.query(name=name, condition=canonical_json(dict(condition)))}"


def chart_of(records: Records, sel: Selection, name: str | None, condition: str | None
             ) -> ControlChart:
    """The control chart the query asks for (``name`` required)."""
    chosen = _text(name, "name", MAX_TEXT)
    if not chosen:
        raise ConfigError("missing; allowed: a measurement name (see the Cpk table on /fleet)",
                          field="name")
    wanted = parse_condition(condition)
    if records.store() is None:
        return ControlChart(chosen, wanted or {})
    with records.reading() as conn:
        return control_chart(conn, sel.where(), chosen, wanted)


def run_detail(records: Records, run_id: str, reports: Path | None, results: Path | None
               ) -> dict[str, Any]:
    """A run with its attempt, measurements, capture sets and the links to its report and
    sign-off."""
    safe_component(run_id, "run_id")
    store = records.store()
    if store is None:
        raise FleetProblem(f"no run {run_id!r}: no runs recorded yet", 404)
    try:
        record = store.get_run(run_id)
    except ConfigError:
        raise FleetProblem(f"no run {run_id!r} in the records", 404) from None
    report = find_report(run_id, reports, results)
    return {"record": record, "attempt": store.chain_info(run_id).attempt,
            "capture_sets": capture_sets(record.artefacts),
            "other_artefacts": [a for a in record.artefacts if a.kind != "frame"],
            "report": f"/fleet/runs/{run_id}/report" if report else "",
            "signoff": f"/fleet/runs/{run_id}/signoff"}


def _status(exc: Exception) -> tuple[int, str, str]:
    """HTTP status, message and field of a failed request: 422 bad input, 503 database."""
    if isinstance(exc, FleetProblem):
        return exc.status, str(exc), ""
    if isinstance(exc, ConfigError):
        return 422, exc.detail if exc.field else str(exc), exc.field or ""
    if isinstance(exc, SQLAlchemyError):
        cause = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
        return 503, f"the records database did not answer: {cause[0] if cause else ''}", ""
    return 503, str(exc), ""


def fleet_router(records: str | None, *, reports: Path | None = Path("out/report"),
                 allure_results: Path | None = Path("out/allure-results")) -> APIRouter:
    """The fleet pages and their JSON twins over ``records`` (None: the pages say the server
    was started without ``--records``); ``reports``/``allure_results``: where Allure reports
    are looked for (:func:`harness.app.fleet_runs.find_report`)."""
    router = APIRouter()
    db = Records(records)
    templates = make_templates()

    def problem(request: Request, exc: Exception) -> Response:
        status, message, field = _status(exc)
        return templates.TemplateResponse(request, "fleet_message.html", {
            "title": "Fleet", "message": message, "field": field}, status_code=status)

    def page(request: Request, template: str, build: Callable[[], Mapping[str, Any]]
             ) -> Response:
        try:
            context = build()
        except FAILURES as exc:
            return problem(request, exc)
        return templates.TemplateResponse(request, template, dict(context))

    def api(build: Callable[[], Any]) -> Response:
        try:
            return JSONResponse(plain(build()))
        except FAILURES as exc:
            status, message, field = _status(exc)
            return JSONResponse({"error": message, "field": field}, status_code=status)

    @router.get("/fleet", response_class=HTMLResponse)
    def fleet_page(request: Request, product: str | None = None, station: str | None = None,
                   since: str | None = None,
                   page_no: Annotated[str | None, Query(alias="page")] = None) -> Response:
        def build() -> Mapping[str, Any]:
            sel = Selection.parse(product, station, since)
            return {"sel": sel, **overview(db, sel, parse_page(page_no))}
        return page(request, "fleet.html", build)

    @router.get("/fleet/chart", response_class=HTMLResponse)
    def chart_page(request: Request, name: str | None = None, condition: str | None = None,
                   product: str | None = None, station: str | None = None,
                   since: str | None = None) -> Response:
        def build() -> Mapping[str, Any]:
            from harness.app.fleet_charts import control_chart_svg

            sel = Selection.parse(product, station, since)
            chart = chart_of(db, sel, name, condition)
            return {"sel": sel, "chart": chart,
                    "condition_links": [(c, chart_link(sel, chart.name, c))
                                        for c in chart.conditions],
                    "svg": control_chart_svg(chart) if chart.state == "ok" else ""}
        return page(request, "fleet_chart.html", build)

    @router.get("/fleet/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Response:
        return page(request, "fleet_run.html",
                    lambda: run_detail(db, run_id, reports, allure_results))

    @router.get("/fleet/runs/{run_id}/report", response_model=None)
    def run_report(request: Request, run_id: str) -> Response:
        def build() -> Mapping[str, Any]:
            run_detail(db, run_id, None, None)  # the run must exist
            found = find_report(run_id, reports, allure_results)
            if found is None:
                raise FleetProblem(f"no Allure report for run {run_id} (build one with "
                                   f"harness report --from-journal ... --out "
                                   f"{reports}/{run_id})", 404)
            return {"file": found}
        try:
            return FileResponse(build()["file"], media_type="text/html")
        except FAILURES as exc:
            return problem(request, exc)

    @router.get("/fleet/runs/{run_id}/signoff", response_model=None)
    def run_signoff(request: Request, run_id: str, allow_incomplete: bool = False
                    ) -> Response:
        def build() -> Mapping[str, Any]:
            record = run_detail(db, run_id, None, None)["record"]
            store = db.store()
            assert store is not None
            try:
                return {"html": signoff_page(store, record, allow_incomplete=allow_incomplete)}
            except NotSignable as exc:
                raise FleetProblem(str(exc) + " — open it with ?allow_incomplete=true to "
                                   "see the page anyway", 409) from None
        try:
            return HTMLResponse(build()["html"])
        except FAILURES as exc:
            return problem(request, exc)

    @router.get("/api/fleet/yield")
    def yield_api(product: str | None = None, station: str | None = None,
                  since: str | None = None) -> Response:
        def build() -> Any:
            data = overview(db, Selection.parse(product, station, since))
            return {k: data[k] for k in ("empty", "note", "stations", "limits", "days",
                                         "trend") if k in data}
        return api(build)

    @router.get("/api/fleet/cpk")
    def cpk_api(product: str | None = None, station: str | None = None,
                since: str | None = None) -> Response:
        def build() -> Any:
            sel = Selection.parse(product, station, since)
            store = db.store()
            rows = [] if store is None else store.cpk(
                product=sel.product or None, station=sel.station or None,
                since=sel.since or None)
            return {"rows": rows, "chart_links": [
                chart_link(Selection(r.product, sel.station, sel.since), r.name, r.condition)
                for r in rows]}
        return api(build)

    @router.get("/api/fleet/control")
    def control_api(name: str | None = None, condition: str | None = None,
                    product: str | None = None, station: str | None = None,
                    since: str | None = None) -> Response:
        return api(lambda: chart_of(db, Selection.parse(product, station, since), name,
                                    condition))

    @router.get("/api/fleet/runs")
    def runs_api(product: str | None = None, station: str | None = None,
                 since: str | None = None, page: str | None = None) -> Response:
        def build() -> Any:
            sel = Selection.parse(product, station, since)
            number = parse_page(page)
            store = db.store()
            if store is None:
                return {"runs": [], "runs_total": 0, "page": 1, "pages": 1}
            data = runs_page(store, sel, number)
            return {k: data[k] for k in ("runs", "runs_total", "page", "pages", "newer",
                                         "older")}
        return api(build)

    @router.get("/api/fleet/runs/{run_id}")
    def run_api(run_id: str) -> Response:
        def build() -> Any:
            data = run_detail(db, run_id, reports, allure_results)
            return {**data["record"].as_dict(), "attempt": data["attempt"],
                    "capture_sets": data["capture_sets"], "report": data["report"],
                    "signoff": data["signoff"]}
        return api(build)

    return router


__all__ = ["DAYS_SHOWN", "FAILURES", "MAX_TEXT", "RUNS_SHOWN", "TEMPLATES", "FleetProblem",
           "Records", "Selection", "chart_link", "chart_of", "fleet_router", "make_templates",
           "overview", "parse_condition", "parse_page", "plain", "run_detail", "runs_page"]
