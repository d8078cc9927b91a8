"""The station file: schema and loader.

A station file names the station, its devices (each a registered ``driver:`` plus that
driver's settings), the calibration of each instrument and the harness's ``settings:`` for
this station::

    id: lab-a-st3
    site: Lab A
    power:  {driver: scpi-psu, resource: "TCPIP::10.0.0.5::5025::SOCKET", voltage_v: 3.3}
    light:  {driver: gardasoft, port: /dev/ttyUSB0, channel: 1}
    camera: {driver: genicam, serial: "${DUT_SERIAL}"}
    calibration:
      meter: {certificate: KM-2291, due: 2027-03-01}
    settings: {confirm_label: true, signing_key: keys/lab-a-st3.key}
    limits: ../tests_hil/limits/cm12.yaml   # the default limit spec (--limits overrides it)

Sections that a lower floor owns (the simulator's ``bench:`` and ``simulators:``) are typed by
that floor and registered in :mod:`harness.registry`; the loader checks them too, importing
their owner only when the file has them. So the whole file is checked at load, and every load
error is one line: ``file:line: field: what was found; what is allowed``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.errors import CalibrationExpired, ConfigError
from harness.registry import (
    DEVICE_KINDS,
    driver_class,
    registered_drivers,
    section_loader,
    section_names,
)
from harness.yamlio import FieldPath, LoadedYaml, close_matches, load_yaml, validate_model

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

DEFAULT_LIGHT_CALIBRATION_MAX_AGE_DAYS = 30.0
"""How old a station's light calibration may be before a run refuses it (days)."""


class Calibration(BaseModel):
    """An instrument's calibration certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: str = Field(min_length=1)
    due: dt.date
    issued: dt.date | None = None
    lab: str = ""

    def days_left(self, today: dt.date | None = None) -> int:
        return (self.due - (today or dt.date.today())).days


class LeaseSettings(BaseModel):
    """``settings: lease:``: leases on the station's shared instruments
    (:mod:`harness.station.lease`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="lease every instrument but the cameras while the "
                          "station is open, so other processes driving them wait")
    timeout_s: float = Field(30.0, ge=0.0, allow_inf_nan=False,
                             description="how long open() waits for another holder's lease")
    ttl_s: float = Field(10.0, gt=0.0, allow_inf_nan=False,
                         description="a lease not renewed for this long (its holder died) "
                                     "is free; renewed every ttl_s / 3")


class LightSettleSettings(BaseModel):
    """``settings: light_settle:``: when the light counts as settled after a change, before a
    capture (:func:`harness.station.stability.meter_settle`; EMVA 1288 assumes a constant
    irradiance during each measurement). The meter is read every ``interval_s``; the light is
    settled when the readings of the last ``window_s`` spread by at most ``tolerance_pct`` of
    their mean; after ``timeout_s`` the test is an ERROR. An LED settles in milliseconds, a
    halogen lamp in seconds: set the window to what the light needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance_pct: float = Field(0.5, gt=0.0, allow_inf_nan=False,
                                 description="largest peak-to-peak spread, % of the mean")
    window_s: float = Field(0.5, gt=0.0, allow_inf_nan=False,
                            description="the readings of this last stretch are judged")
    timeout_s: float = Field(30.0, gt=0.0, allow_inf_nan=False,
                             description="not settled after this long: the test is an ERROR")
    interval_s: float = Field(0.05, gt=0.0, allow_inf_nan=False,
                              description="time between meter readings")

    @model_validator(mode="after")
    def _window_holds_readings(self) -> LightSettleSettings:
        if self.interval_s * 2 > self.window_s:
            raise ValueError(f"window_s {self.window_s:g} holds fewer than three readings "
                             f"{self.interval_s:g} s apart; allowed: window_s >= 2 x interval_s")
        return self


class StationSettings(BaseModel):
    """The ``settings:`` section: how the harness behaves on this station.

    Every key the harness reads is declared here, so a misspelt one is a load error instead
    of a setting silently left at its default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    confirm_label: bool = Field(False, description="the operator scans the DUT label before "
                                "the first test; a label that is not the camera's serial, or "
                                "none within label_timeout_s, is an ERROR")
    label_timeout_s: float = Field(60.0, gt=0.0, allow_inf_nan=False,
                                   description="how long to wait for the scanned label")
    watchdog: bool = Field(True, description="start the SIGKILL watchdog with the run, so a "
                           "killed runner still leaves the instruments in their safe state")
    light_calibration_max_age_days: float = Field(
        DEFAULT_LIGHT_CALIBRATION_MAX_AGE_DAYS, gt=0.0, allow_inf_nan=False,
        description="a light calibration older than this refuses the run")
    signing_key: Path | None = Field(None, description="the station's Ed25519 private key "
                                     "(harness station keygen), relative to the station file; "
                                     "the loader resolves it; none: $HARNESS_SIGNING_KEY")
    camera_link_mbps: float | None = Field(
        None, gt=0.0, allow_inf_nan=False, description="the line rate of the Ethernet link the "
        "station's GigE cameras share (Mbit/s): the run refuses to start when their "
        "throughput exceeds 90 % of it; none: not checked")
    lease: LeaseSettings = Field(default_factory=LeaseSettings,
                                 description="leases on the shared instruments")
    light_settle: LightSettleSettings = Field(
        default_factory=LightSettleSettings,
        description="when the light counts as settled after a change, before a capture")
    shared_focus_step_um: float = Field(
        1.0, gt=0.0, allow_inf_nan=False, description="on a multi-up station whose slots "
        "share one focus stage, each slot's best focus is rounded to a multiple of this and "
        "the slots with the same one have their charts captured together there (each within "
        "half a step of its own best focus)")
    analysis_workers: int | None = Field(
        None, ge=0, description="worker processes that analyse the slots' capture sets of a "
        "multi-up station while it captures on; none: one per slot, at most one per core; "
        "0: each test analyses in the run's own process")

    @field_validator("signing_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """``signing_key: ""`` (e.g. ``${KEY:-}``) means no key, not the station's folder."""
        return None if value == "" else value


class StationHeader(BaseModel):
    """Top-level keys the station owns (sections a lower floor owns are checked by it)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    site: str = ""
    description: str = ""
    lock_dir: str | None = None
    camera: dict[str, Any] | None = None
    cameras: dict[str, dict[str, Any]] | None = None
    slots: dict[str, dict[str, Any]] | None = None
    light: dict[str, Any] | None = None
    power: dict[str, Any] | None = None
    meter: dict[str, Any] | None = None
    radiometer: dict[str, Any] | None = None
    focus: dict[str, Any] | None = None
    chart: dict[str, Any] | None = None
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    settings: StationSettings = Field(default_factory=StationSettings)
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
    calibration: dict[str, Calibration]
    lock_dir: Path | None
    settings: StationSettings = field(default_factory=StationSettings)
    """The ``settings:`` section, ``signing_key`` resolved against the station file."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Validated sections a lower floor owns, by name (see :mod:`harness.registry`)."""
    limits: Path | None = None
    """The station's default limit spec (``limits:``, relative to the station file)."""
    slots: tuple[str, ...] = ()
    """The slots of a multi-up station (``slots:``), in file order; empty for one DUT."""

    @property
    def bench(self) -> Any:
        """The ``bench:`` section (a :class:`harness.sim.bench.BenchConfig`), or ``None``."""
        return self.sections.get("bench")

    @property
    def simulators(self) -> Mapping[str, Any] | None:
        """The ``simulators:`` section (name -> the simulator's validated ``Spec``), or
        ``None``."""
        return self.sections.get("simulators")

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
    settings = validate_model(doc, settings_model, values, prefix=path,
                              extra_keys={path: ["driver"]})
    return DeviceSpec(role, kind, driver, cls, settings, path)


def _header(doc: LoadedYaml, sections: list[str]) -> StationHeader:
    """The station's own keys, validated; a registered section's name is an allowed key."""
    data = doc.data
    own = {k: v for k, v in data.items() if k not in sections}
    extra: dict[FieldPath, list[str]] = {(): sections}
    calibration = data.get("calibration")
    for role in calibration if isinstance(calibration, dict) else {}:
        extra[("calibration", role)] = list(Calibration.model_fields)
    return validate_model(doc, StationHeader, own, extra_keys=extra)


#: What a slot of a multi-up station may have of its own (the rest is shared).
SLOT_DEVICES = ("camera", "power", "focus")
_SLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def _slots(doc: LoadedYaml, header: StationHeader) -> dict[str, dict[str, Any]]:
    """``slots:`` checked: each slot a mapping with its own ``camera`` (and optionally
    ``power``, ``focus``); no ``camera``/``cameras`` beside it."""
    if header.slots is None:
        return {}
    if header.camera is not None or header.cameras is not None:
        key = "camera" if header.camera is not None else "cameras"
        raise doc.error((key,), "a station with slots: has each slot's camera in its slot, "
                                f"not a {key}: section")
    if not header.slots:
        raise doc.error(("slots",), "no slot: give at least one, e.g. A: {camera: {...}}")
    out: dict[str, dict[str, Any]] = {}
    for name, raw in header.slots.items():
        if not _SLOT_NAME.match(str(name)):
            raise doc.error(("slots", name), f"slot name {name!r} must be letters, digits, "
                                             "_ or - (at most 32)")
        if not isinstance(raw, dict):
            raise doc.error(("slots", name), "must be a mapping with a 'camera' section")
        unknown = [k for k in raw if k not in SLOT_DEVICES]
        if unknown:
            raise doc.error(("slots", name, unknown[0]),
                            f"unknown key {unknown[0]!r}{close_matches(unknown[0], SLOT_DEVICES)}"
                            f"; a slot may have: {', '.join(SLOT_DEVICES)}")
        if "camera" not in raw:
            raise doc.error(("slots", name), "a slot needs its camera: {driver: ...}")
        for kind, section in raw.items():
            if not isinstance(section, dict):
                raise doc.error(("slots", name, kind), "must be a mapping with a 'driver' key")
        out[str(name)] = raw
    return out


def _sections(doc: LoadedYaml, sections: list[str]) -> dict[str, Any]:
    """Each registered section the file has, checked by its owner (imported only now)."""
    out: dict[str, Any] = {}
    for name, raw in doc.data.items():
        if name in sections and raw is not None:
            out[name] = section_loader(name)(doc, raw)
    return out


def load_station_file(path: str | Path, *, env: Mapping[str, str] | None = None) -> StationConfig:
    """Load and validate a station file; raise a one-line :class:`ConfigError` on any problem."""
    doc = load_yaml(path, what="station file", env=env)
    names = section_names()
    header = _header(doc, names)

    if header.camera is not None and header.cameras is not None:
        raise doc.error(("cameras",), "give either 'camera' (one) or 'cameras' (several), not both")
    slots = _slots(doc, header)

    devices: list[DeviceSpec] = []
    for kind in DEVICE_KINDS:
        if kind == "camera":
            if header.camera is not None:
                devices.append(_device_spec(doc, "camera", kind, ("camera",), header.camera))
            for name, raw in (header.cameras or {}).items():
                if not isinstance(raw, dict):
                    raise doc.error(("cameras", name), "must be a mapping with a 'driver' key")
                devices.append(_device_spec(doc, f"camera.{name}", kind, ("cameras", name), raw))
        else:
            raw = getattr(header, kind)
            if raw is not None:
                devices.append(_device_spec(doc, kind, kind, (kind,), raw))
        for slot, own in slots.items():
            if kind in own:
                devices.append(_device_spec(doc, f"{kind}.{slot}", kind, ("slots", slot, kind),
                                            own[kind]))

    roles = [d.role for d in devices]
    for role in header.calibration:
        if role not in roles:
            hint = close_matches(role, roles)
            raise doc.error(("calibration", role),
                            f"no device {role!r} on this station{hint}; devices: "
                            f"{', '.join(roles) or 'none'}")
    sections = _sections(doc, names)

    source = Path(path)
    settings = header.settings
    if settings.signing_key is not None:
        key = settings.signing_key.expanduser()
        settings = settings.model_copy(update={
            "signing_key": key if key.is_absolute() else source.parent / key})
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
        calibration=dict(header.calibration),
        lock_dir=lock_dir,
        settings=settings,
        sections=sections,
        limits=limits,
        slots=tuple(slots),
    )


def require_station_file(path: str | Path) -> StationConfig:
    """Like :func:`load_station_file`, with a friendlier message for a missing path."""
    if not Path(path).exists():
        raise ConfigError("station file not found (see stations/ for examples)", source=str(path))
    return load_station_file(path)


__all__ = ["DEFAULT_LIGHT_CALIBRATION_MAX_AGE_DAYS", "ID_PATTERN", "SLOT_DEVICES", "Calibration",
           "DeviceSpec", "LeaseSettings", "LightSettleSettings", "StationConfig", "StationHeader",
           "StationSettings", "load_station_file", "require_station_file"]
