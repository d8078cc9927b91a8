"""Allure helpers for the suites: measurement steps, attachments, labels, environment.

Conventions (docs/standards.md#allure-reporting-conventions): one step per limit check whose title
carries the verdict; the measurement also becomes a test parameter ``value unit [min..max] OUTCOME``
(excluded from the history id, so history lines up across runs); plots and thumbnails are attached
as PNG, full figures as JSON/CSV, never raw frames (those are referenced by hash in the capture
set). Status keeps the outcome apart: a FAIL step is ``failed`` (AssertionError), an ERROR step
``broken``; MARGINAL tests carry the label ``outcome=MARGINAL`` that the report's "Marginal"
category matches (categories live in ``allurerc.mjs``; :data:`CATEGORIES` is the Allure 2
``categories.json`` fallback).

Outside an allure-pytest run every call is a harmless no-op (allure-commons has no listener).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import allure
import cv2
import numpy as np
from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import (
    Attachment,
    Label,
    Link,
    Parameter,
    StatusDetails,
    TestResult,
    TestStepResult,
)
from matplotlib.figure import Figure

from harness.evidence.model import RunRecord
from harness.measurement import Measurement, Outcome

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REQUIREMENT_URL_ENV = "HARNESS_REQUIREMENT_URL"


@dataclass(frozen=True)
class Family:
    """Allure feature and severity of one test family."""

    feature: str
    severity: str


FAMILIES: dict[str, Family] = {
    "emva1288": Family("EMVA 1288 sensor performance", "critical"),
    "sfr": Family("ISO 12233 resolution (MTF)", "critical"),
    "defects": Family("Defect pixels", "critical"),
    "colour": Family("Colour accuracy", "normal"),
    "shading": Family("Shading and uniformity", "normal"),
    "focus": Family("Focus", "normal"),
    "station": Family("Station self-test", "minor"),
    # the tests_hil families (hil_family markers)
    "linearity": Family("EMVA 1288 sensor performance", "critical"),
    "uniformity": Family("Shading and uniformity", "normal"),
    "power": Family("Module power", "normal"),
    "interface": Family("Camera interface", "critical"),
    "selftest": Family("Station self-test", "minor"),
}

#: Allure 2 ``categories.json`` (Allure 3 reads the same rules from ``allurerc.mjs``).
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Aborted", "matchedStatuses": ["broken"],
     "messageRegex": ".*([Aa]borted|KeyboardInterrupt).*"},
    {"name": "Out of spec (DUT failed)", "matchedStatuses": ["failed"]},
    {"name": "Station / instrument error", "matchedStatuses": ["broken"]},
    {"name": "Marginal (inside the guard band)", "matchedStatuses": ["passed"]},
]


class MeasurementFailed(AssertionError):
    """Raised inside a measurement step so Allure marks the step ``failed``."""


class MeasurementError(Exception):
    """Raised inside a measurement step so Allure marks the step ``broken``."""


class _Shown:
    """A parameter value shown as is (allure-commons quotes ``str`` values)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def parameter_name(m: Measurement) -> str:
    if not m.condition:
        return m.name
    cond = ", ".join(f"{k}={v}" for k, v in m.condition.items())
    return f"{m.name} ({cond})"


def requirement_url(limit_id: str, template: str | None = None) -> str:
    """The requirement behind a limit id: ``$HARNESS_REQUIREMENT_URL`` with ``{limit_id}``."""
    template = template or os.environ.get(REQUIREMENT_URL_ENV) or "urn:limit:{limit_id}"
    return template.format(limit_id=limit_id)


def link_requirements(limit_ids: Iterable[str], template: str | None = None) -> None:
    for limit_id in dict.fromkeys(i for i in limit_ids if i):
        allure.dynamic.link(requirement_url(limit_id, template), link_type="requirement",
                            name=limit_id)


def apply_family(family: str) -> Family:
    """Feature, severity and ``family`` labels of a test family."""
    try:
        fam = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown test family {family!r}; allowed: "
                         f"{', '.join(FAMILIES)}") from None
    allure.dynamic.feature(fam.feature)
    allure.dynamic.severity(allure.severity_level(fam.severity))
    allure.dynamic.label("family", family)
    return fam


def set_outcome_label(outcome: Outcome) -> None:
    """Label ``outcome=<OUTCOME>``: the report's Marginal/Aborted categories match on it."""
    allure.dynamic.label("outcome", outcome.value)


def report_measurement(m: Measurement) -> None:
    """One Allure step for one limit check, plus the parameter and the requirement link."""
    shown = m.allure_parameter()
    allure.dynamic.parameter(parameter_name(m), _Shown(shown), excluded=True)
    if m.limit_id:
        link_requirements([m.limit_id])
    if m.outcome is Outcome.MARGINAL:
        set_outcome_label(Outcome.MARGINAL)
    title = f"{parameter_name(m)} = {shown}"
    if m.limit_id:
        title += f" ({m.limit_id})"
    try:
        with allure.step(title):
            if m.outcome is Outcome.FAIL:
                raise MeasurementFailed(f"out of spec: {m.name} = {shown}")
            if m.outcome in (Outcome.ERROR, Outcome.ABORTED):
                raise MeasurementError(f"{m.outcome.value.lower()}: {m.name}: "
                                       f"{m.message or shown}")
    except (MeasurementFailed, MeasurementError):
        pass  # the step shows it; the test's verdict is the judge's business


def png_bytes(figure: Figure | bytes, *, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (or PNG bytes, checked)."""
    if isinstance(figure, bytes):
        if not figure.startswith(PNG_MAGIC):
            raise ValueError("attach_png expects PNG bytes or a matplotlib Figure")
        return figure
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def attach_png(figure: Figure | bytes, name: str) -> bytes:
    data = png_bytes(figure)
    allure.attach(data, name=name, attachment_type=allure.attachment_type.PNG)
    return data


def attach_text(text: str, name: str) -> str:
    """Attach plain text (an instrument's last exchanges on an ERROR: ``<device> traffic``)."""
    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)
    return text


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
        return obj.value
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=1, default=_json_default, allow_nan=True).encode()


def attach_json(data: Any, name: str) -> bytes:
    body = json_bytes(data)
    allure.attach(body, name=name, attachment_type=allure.attachment_type.JSON)
    return body


def csv_bytes(rows: Sequence[Mapping[str, Any]] | np.ndarray,
              header: Sequence[str] | None = None) -> bytes:
    """CSV of a list of dicts (header from the keys) or of a 2-D array with ``header``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if isinstance(rows, np.ndarray):
        table = np.atleast_2d(rows)
        if header is not None:
            if len(header) != table.shape[1]:
                raise ValueError(f"header has {len(header)} names for {table.shape[1]} columns")
            writer.writerow(header)
        writer.writerows(table.tolist())
    else:
        keys = list(header or dict.fromkeys(k for r in rows for k in r))
        writer.writerow(keys)
        writer.writerows([[r.get(k, "") for k in keys] for r in rows])
    return buf.getvalue().encode()


def attach_csv(rows: Sequence[Mapping[str, Any]] | np.ndarray, name: str,
               header: Sequence[str] | None = None) -> bytes:
    body = csv_bytes(rows, header)
    allure.attach(body, name=name, attachment_type=allure.attachment_type.CSV)
    return body


def thumbnail(frame: np.ndarray, max_side: int = 320) -> np.ndarray:
    """An 8-bit preview: 0.5–99.5 % percentile stretch, area-averaged down to ``max_side``."""
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise ValueError(f"a frame must be 2-D (mono/raw) or 3-D (RGB), got {frame.shape}")
    data: np.ndarray = frame.astype(np.float32)
    h, w = data.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        data = cv2.resize(data, size, interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(data, [0.5, 99.5])
    span = hi - lo if hi > lo else 1.0
    return np.clip((data - lo) * (255.0 / span), 0, 255).astype(np.uint8)


def thumbnail_png(frame: np.ndarray, max_side: int = 320) -> bytes:
    thumb = thumbnail(frame, max_side)
    if thumb.ndim == 3:
        thumb = cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", thumb)
    if not ok:
        raise ValueError("PNG encoding of the thumbnail failed")
    return buf.tobytes()


def attach_thumbnail(frame: np.ndarray, name: str, max_side: int = 320) -> bytes:
    """Attach a downscaled 8-bit PNG of a frame (never the raw frame)."""
    data = thumbnail_png(frame, max_side)
    allure.attach(data, name=name, attachment_type=allure.attachment_type.PNG)
    return data


def _prop_escape(text: str, *, key: bool) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        for ch in (" ", "=", ":", "#", "!"):
            out = out.replace(ch, "\\" + ch)
    return out


def write_environment(results_dir: str | Path, env: Mapping[str, Any]) -> Path:
    """Write ``environment.properties`` (and the Allure 2 ``categories.json``)."""
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    lines = [f"{_prop_escape(str(k), key=True)}={_prop_escape(str(v), key=False)}"
             for k, v in env.items()]
    path = results / "environment.properties"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (results / "categories.json").write_text(json.dumps(CATEGORIES, indent=1))
    return path


def run_environment(record: RunRecord) -> dict[str, str]:
    """The environment block of a run: station, DUT, software, limits, instruments."""
    env = {"station": record.station, "run": record.run_id, "product": record.product,
           "dut.serial": record.dut_serial, "dut.firmware": record.dut_firmware,
           "operator": record.operator, "limits.file": record.limits_file,
           "limits.sha256": record.limits_hash, "outcome": record.outcome.value}
    env.update({f"software.{k}": str(v) for k, v in record.software.items()})
    for d in record.devices:
        ident = " ".join(str(d.get(k, "")) for k in ("vendor", "model") if d.get(k))
        env[f"device.{d.get('role', '?')}"] = (
            f"{ident} s/n {d.get('serial', '')} fw {d.get('firmware', '')}".strip())
    for c in record.calibrations:
        env[f"calibration.{c.get('role', '?')}"] = (
            f"{c.get('certificate', '')} due {c.get('due', '')}".strip())
    return {k: v for k, v in env.items() if v}


def write_results(record: RunRecord, results_dir: str | Path,
                  attachments_root: Path | None = None) -> int:
    """Allure results for a run record (e.g. rebuilt from a journal); returns #tests written.

    Artefacts of kind ``plot``/``thumbnail`` whose file still exists are attached; frames are
    listed by hash in a JSON attachment, never copied.
    """
    results = Path(results_dir)
    logger = AllureFileLogger(str(results))
    written = 0
    for t in record.tests:
        steps = []
        for m in t.measurements:
            status = m.outcome.allure_status
            steps.append(TestStepResult(
                name=f"{parameter_name(m)} = {m.allure_parameter()}"
                     + (f" ({m.limit_id})" if m.limit_id else ""),
                status=status, stage="finished",
                statusDetails=StatusDetails(message=m.message) if m.message else None))
        labels = [Label("outcome", t.outcome.value), Label("framework", "harness-journal"),
                  Label("suite", t.test_id.split("::")[0])]
        fam = FAMILIES.get(t.family)
        if fam:
            labels += [Label("feature", fam.feature), Label("severity", fam.severity),
                       Label("family", t.family)]
        links = [Link("requirement", requirement_url(i), i)
                 for i in dict.fromkeys(m.limit_id for m in t.measurements if m.limit_id)]
        message = t.message
        if t.outcome is Outcome.FAIL and not message:
            message = "out of spec: " + ", ".join(
                m.name for m in t.measurements if m.outcome is Outcome.FAIL)
        if t.outcome is Outcome.ABORTED and "aborted" not in message.lower():
            message = f"Aborted: {message}".rstrip(": ")
        if t.errors:
            message = "; ".join([message, *t.errors]).strip("; ")
        attachments = []
        frames = [a.sha256 for a in record.artefacts
                  if a.test_id == t.test_id and a.kind == "frame"]
        if frames:
            attachments.append(_attach_data(logger, json_bytes({"frames_sha256": frames}),
                                            "frames (by hash)", "application/json", "json"))
        for a in record.artefacts:
            if a.test_id != t.test_id or a.kind == "frame" or not a.path:
                continue
            src = Path(a.path)
            if not src.is_absolute() and attachments_root is not None:
                src = attachments_root / src
            if src.is_file():
                attachments.append(_attach_data(logger, src.read_bytes(), a.name or src.name,
                                                _media(src), src.suffix.lstrip(".") or "bin"))
        result = TestResult(
            uuid=str(uuid.uuid4()), name=t.title or t.test_id.split("::")[-1],
            fullName=t.test_id, historyId=uuid.uuid5(uuid.NAMESPACE_URL, t.test_id).hex,
            status=t.outcome.allure_status, stage="finished", steps=steps,
            statusDetails=StatusDetails(message=message) if message else None,
            parameters=[Parameter(parameter_name(m), m.allure_parameter(), excluded=True)
                        for m in t.measurements],
            labels=labels, links=links, attachments=attachments,
            start=_millis(t.started), stop=_millis(t.ended))
        logger.report_result(result)
        written += 1
    write_environment(results, run_environment(record))
    return written


def _attach_data(logger: AllureFileLogger, body: bytes, name: str, media: str,
                 ext: str) -> Attachment:
    source = f"{uuid.uuid4()}-attachment.{ext}"
    logger.report_attached_data(body=body, file_name=source)
    return Attachment(name=name, source=source, type=media)


def _media(path: Path) -> str:
    return {".png": "image/png", ".json": "application/json", ".csv": "text/csv",
            ".txt": "text/plain", ".html": "text/html"}.get(path.suffix.lower(),
                                                           "application/octet-stream")


def _millis(iso: str) -> int | None:
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


__all__ = ["CATEGORIES", "FAMILIES", "Family", "MeasurementError", "MeasurementFailed",
           "apply_family", "attach_csv", "attach_json", "attach_png", "attach_text",
           "attach_thumbnail",
           "csv_bytes", "json_bytes", "link_requirements", "parameter_name", "png_bytes",
           "report_measurement", "requirement_url", "run_environment", "set_outcome_label",
           "thumbnail", "thumbnail_png", "write_environment", "write_results"]
