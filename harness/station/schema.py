"""The station file: schema and loader.

A station file names the station, its devices (each a registered ``driver:`` plus that
driver's settings), an optional simulated ``bench:``, and the calibration of each instrument::

    id: lab-a-st3
    site: Lab A
    power:  {driver: scpi-psu, resource: "TCPIP::10.0.0.5::5025::SOCKET", voltage_v: 3.3}
    light:  {driver: gardasoft, port: /dev/ttyUSB0, channel: 1}
    camera: {driver: genicam, serial: "${DUT_SERIAL}"}
    calibration:
      meter: {certificate: KM-2291, due: 2027-03-01}
    limits: ../tests_hil/limits/cm12.yaml   # the default limit spec (--limits overrides it)

Every load error is one line: ``file:line: field: what was found; what is allowed``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import CalibrationExpired, ConfigError
from harness.station.registry import DEVICE_KINDS, driver_class, registered_drivers
from harness.yamlio import FieldPath, LoadedYaml, close_matches, load_yaml, validation_error

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Calibration(BaseModel):
    """An instrument's calibration certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: str = Field(min_length=1)
    due: dt.date
    issued: dt.date | None = None
    lab: str = ""

    def days_left(self, today: dt.date | None = None) -> int:
        return (self.due - (today or dt.date.today())).days


class StationHeader(BaseModel):
    """Top-level keys other than device sections."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    site: str = ""
    description: str = ""
    lock_dir: str | None = None
    camera: dict[str, Any] | None = None
    cameras: dict[str, dict[str, Any]] | None = None
    light: dict[str, Any] | None = None
    power: dict[str, Any] | None = None
    meter: dict[str, Any] | None = None
    focus: dict[str, Any] | None = None
    chart: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None
    simulators: dict[str, dict[str, Any]] | None = None
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    limits: str | None = Field(None, min_length=1)


@dataclass(frozen=True)
class DeviceSpec:
    """One device of the station: its role, kind, driver class and validated settings."""

    role: str
    kind: str
    driver: str
    cls: type[Any]
    settings: Any
    field_path: FieldPath


@dataclass(frozen=True)
class StationConfig:
    """A validated station file."""

    id: str
    site: str
    description: str
    source: Path
    devices: tuple[DeviceSpec, ...]
    bench: dict[str, Any] | None
    calibration: dict[str, Calibration]
    lock_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    simulators: dict[str, dict[str, Any]] | None = None
    limits: Path | None = None
    """The station's default limit spec (``limits:``, relative to the station file)."""

    def roles(self) -> list[str]:
        return [d.role for d in self.devices]

    def device(self, role: str) -> DeviceSpec | None:
        return next((d for d in self.devices if d.role == role), None)

    def calibration_problems(self, today: dt.date | None = None) -> list[str]:
        """Expired certificates, one message each."""
        today = today or dt.date.today()
        return [
            f"{role}: calibration {cal.certificate} expired on {cal.due.isoformat()}"
            for role, cal in sorted(self.calibration.items())
            if cal.due < today
        ]

    def check_calibration(self, *, allow_expired: bool, today: dt.date | None = None) -> None:
        problems = self.calibration_problems(today)
        if problems and not allow_expired:
            raise CalibrationExpired(
                "; ".join(problems) + " (renew it, or run with --allow-expired-calibration)",
                source=str(self.source),
            )


def _device_spec(doc: LoadedYaml, role: str, kind: str, path: FieldPath,
                 raw: Mapping[str, Any]) -> DeviceSpec:
    driver = raw.get("driver")
    names = registered_drivers(kind)
    if driver is None:
        raise doc.error(path, f"required key 'driver' is missing (registered {kind} drivers: "
                              f"{', '.join(names) or 'none'})")
    if not isinstance(driver, str) or driver not in names:
        hint = close_matches(str(driver), names)
        raise doc.error((*path, "driver"), f"unknown {kind} driver {driver!r}{hint}; "
                                           f"registered: {', '.join(names) or 'none'}")
    cls = driver_class(kind, driver)
    settings_model: type[BaseModel] = cls.Settings
    values = {k: v for k, v in raw.items() if k != "driver"}
    try:
        settings = settings_model.model_validate(values)
    except ValidationError as exc:
        allowed = {(*path, *sub): keys for sub, keys in _model_keys(settings_model).items()}
        allowed[path] = [*allowed.get(path, []), "driver"]
        raise validation_error(doc, exc, prefix=path, model_fields=allowed) from None
    return DeviceSpec(role, kind, driver, cls, settings, path)


def _model_keys(model: type[BaseModel], prefix: FieldPath = ()) -> dict[FieldPath, list[str]]:
    """Allowed keys at each nested model path (for unknown-key hints)."""
    out: dict[FieldPath, list[str]] = {prefix: list(model.model_fields)}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_model_keys(ann, (*prefix, name)))
    return out


def load_station_file(path: str | Path, *, env: Mapping[str, str] | None = None) -> StationConfig:
    """Load and validate a station file; raise a one-line :class:`ConfigError` on any problem."""
    doc = load_yaml(path, what="station file", env=env)
    try:
        header = StationHeader.model_validate(doc.data)
    except ValidationError as exc:
        top = _model_keys(StationHeader)
        top[("calibration", "*")] = list(Calibration.model_fields)
        fields = dict(top)
        calibration = doc.data.get("calibration") if isinstance(doc.data, dict) else None
        for role in calibration if isinstance(calibration, dict) else {}:
            fields[("calibration", role)] = list(Calibration.model_fields)
        raise validation_error(doc, exc, model_fields=fields) from None

    if header.camera is not None and header.cameras is not None:
        raise doc.error(("cameras",), "give either 'camera' (one) or 'cameras' (several), not both")

    devices: list[DeviceSpec] = []
    for kind in DEVICE_KINDS:
        if kind == "camera":
            if header.camera is not None:
                devices.append(_device_spec(doc, "camera", kind, ("camera",), header.camera))
            for name, raw in (header.cameras or {}).items():
                if not isinstance(raw, dict):
                    raise doc.error(("cameras", name), "must be a mapping with a 'driver' key")
                devices.append(_device_spec(doc, f"camera.{name}", kind, ("cameras", name), raw))
            continue
        raw = getattr(header, kind)
        if raw is not None:
            devices.append(_device_spec(doc, kind, kind, (kind,), raw))

    roles = [d.role for d in devices]
    for role in header.calibration:
        if role not in roles:
            hint = close_matches(role, roles)
            raise doc.error(("calibration", role),
                            f"no device {role!r} on this station{hint}; devices: "
                            f"{', '.join(roles) or 'none'}")
    if header.bench is not None and not isinstance(header.bench, dict):
        raise doc.error(("bench",), "must be a mapping")

    source = Path(path)
    lock_dir = Path(header.lock_dir).expanduser() if header.lock_dir else None
    if lock_dir is not None and not lock_dir.is_absolute():
        lock_dir = source.parent / lock_dir
    limits = Path(header.limits).expanduser() if header.limits else None
    if limits is not None and not limits.is_absolute():
        limits = source.parent / limits
    return StationConfig(
        id=header.id,
        site=header.site,
        description=header.description,
        source=source,
        devices=tuple(devices),
        bench=header.bench,
        calibration=dict(header.calibration),
        lock_dir=lock_dir,
        settings=dict(header.settings),
        simulators=header.simulators,
        limits=limits,
    )


def require_station_file(path: str | Path) -> StationConfig:
    """Like :func:`load_station_file`, with a friendlier message for a missing path."""
    if not Path(path).exists():
        raise ConfigError("station file not found (see stations/ for examples)", source=str(path))
    return load_station_file(path)
