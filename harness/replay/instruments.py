"""Replay instruments: keep what the replayed suite commands, serve what the run recorded.

Each is ``{driver: replay, run: DIR}`` in its section of the station file and shares the
station's :class:`~harness.replay.recording.Recording` with the replay camera, which
checks every frame against the state they keep (light on and level, colour temperature, chart,
focus position). Readings come from the recording: the meter serves the reading stored with
the frame just served (or the next one), the supply the readings the run journaled, in order.
Their identities are the recorded instruments'.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.devices.base import DeviceIdentity
from harness.devices.light import NOMINAL_CCT_K
from harness.devices.protocols import MeterReading, PowerReading
from harness.errors import ConfigError, InstrumentError
from harness.registry import DriverContext, register_driver
from harness.replay.recording import Recording


class ReplayInstrumentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str


class _ReplayInstrument:
    kind: ClassVar[str]
    driver_name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = ReplayInstrumentSettings

    def __init__(self, name: str, settings: ReplayInstrumentSettings,
                 context: DriverContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.recording: Recording | None = None

    @property
    def rec(self) -> Recording:
        if self.recording is None:
            raise InstrumentError("not open", device=self.name)
        return self.recording

    def open(self) -> None:
        self.recording = Recording.shared(self.context, self.settings.run, f"{self.name}.run")
        self.recording.state.roles.add(self.name)

    def close(self) -> None:
        pass

    def identity(self) -> DeviceIdentity:
        known = self.rec.identity(self.name) if self.recording else {}
        return DeviceIdentity(self.kind, "replay", str(known.get("vendor", "replay")),
                              str(known.get("model", "replay")),
                              str(known.get("serial", f"REPLAY-{self.name}")),
                              str(known.get("firmware", "")), {"replay": self.settings.run})

    def safe_state(self) -> None:
        pass


@register_driver("light", "replay")
class ReplayLight(_ReplayInstrument):
    """On/off, level and colour temperature as commanded; the recorded CCT until one is set."""

    def on(self) -> None:
        self.rec.state.light_on = True

    def off(self) -> None:
        self.rec.state.light_on = False

    def set_level(self, percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise InstrumentError(f"level {percent:g} % out of range 0-100", device=self.name)
        self.rec.state.level_pct = float(percent)

    def level(self) -> float:
        return self.rec.state.level_pct

    def is_on(self) -> bool:
        return self.rec.state.light_on

    def _recorded_cct(self) -> float | None:
        record = self.rec.current()
        return record.light_cct_k if record is not None else None

    def cct(self) -> float:
        state = self.rec.state
        if state.cct_k is not None:
            return state.cct_k
        recorded = self._recorded_cct()
        if recorded is None:
            raise ConfigError(f"{self.name}: the recorded light has no colour temperature",
                              field="cct")
        return recorded

    def set_cct(self, kelvin: float) -> None:
        self.rec.state.cct_k = float(kelvin)

    def set_illuminant(self, name: str) -> None:
        key = name.strip().upper()
        if key.endswith("K") and key[:-1].replace(".", "", 1).isdigit():
            self.set_cct(float(key[:-1]))
        elif key in NOMINAL_CCT_K:
            self.set_cct(NOMINAL_CCT_K[key])
        else:
            raise ConfigError(f"{self.name}: illuminant {name!r} unknown; allowed: <CCT>K, "
                              f"{', '.join(NOMINAL_CCT_K)}", field="illuminant")

    def set_wavelength(self, nm: float | None) -> None:
        """The narrow band as commanded (None: back to white); the frames carry the light's
        effect, the irradiance the recorded radiometer readings."""
        self.rec.state.band_nm = None if nm is None else float(nm)

    def safe_state(self) -> None:
        if self.recording is not None:
            self.rec.state.light_on = False


@register_driver("chart", "replay")
class ReplayChart(_ReplayInstrument):
    """The chart the suite selected, from the charts the recording shows."""

    def select(self, chart: str) -> None:
        charts = self.charts()
        if chart not in charts:
            raise ConfigError(f"{self.name}: no chart {chart!r} in the recording; charts: "
                              f"{', '.join(charts)}", field="chart")
        self.rec.state.chart = chart

    def current(self) -> str:
        state = self.rec.state
        if state.chart is None:
            record = self.rec.current()
            return record.chart if record is not None and record.chart else "dark"
        return state.chart

    def charts(self) -> tuple[str, ...]:
        return self.rec.charts()


@register_driver("focus", "replay")
class ReplayFocus(_ReplayInstrument):
    """The position the suite moved to (the recorded position until it moves)."""

    def move_to(self, position: float) -> None:
        self.rec.state.focus = float(position)

    def position(self) -> float:
        state = self.rec.state
        if state.focus is not None:
            return state.focus
        record = self.rec.current()
        return float(record.focus_position) if record and record.focus_position is not None \
            else 0.0

    def home(self) -> None:
        self.move_to(0.0)

    def wait_settled(self, timeout_s: float = 5.0) -> None:
        pass


@register_driver("meter", "replay")
class ReplayMeter(_ReplayInstrument):
    """The reading recorded with the frame last served (or the next one): the light the
    frame was taken under, chromaticity included."""

    def read(self) -> MeterReading:
        record = self.rec.current()
        if record is None or record.meter_lux is None:
            raise InstrumentError("the recording has no meter reading here", device=self.name)
        return MeterReading(float(record.meter_lux), "lx", record.meter_x, record.meter_y)


@register_driver("radiometer", "replay")
class ReplayRadiometer(_ReplayInstrument):
    """The irradiance recorded with the frame last served (the sweep reads the meter after
    each stack); the correction wavelength as commanded."""

    def set_wavelength(self, nm: float) -> None:
        self.rec.state.radiometer_nm = float(nm)

    def wavelength(self) -> float:
        nm = self.rec.state.radiometer_nm
        if nm is None:
            raise InstrumentError("no wavelength set", device=self.name)
        return nm

    def irradiance_w_m2(self) -> float:
        record = self.rec.current()
        value = None if record is None else record.extra.get("irradiance_w_m2")
        if value is None:
            raise InstrumentError("the recording has no irradiance reading here",
                                  device=self.name)
        return float(value)

    def power_w(self) -> float:
        raise InstrumentError("a replayed radiometer serves the recorded irradiance only",
                              device=self.name)


@register_driver("power", "replay")
class ReplayPower(_ReplayInstrument):
    """Set-points as commanded; ``measure()`` serves the run's journaled readings in order."""

    def set_voltage(self, volts: float) -> None:
        pass

    def set_current_limit(self, amps: float) -> None:
        pass

    def output(self, enabled: bool) -> None:
        self.rec.state.output = bool(enabled)

    def output_enabled(self) -> bool:
        return self.rec.state.output

    def measure(self) -> PowerReading:
        queue = self.rec.readings.get("power.measure")
        if not queue:
            raise InstrumentError("the recording has no more supply readings (the run did "
                                  "not journal this one)", device=self.name)
        value: dict[str, Any] = queue.popleft()
        return PowerReading(float(value["voltage_v"]), float(value["current_a"]))


__all__ = ["ReplayChart", "ReplayFocus", "ReplayInstrumentSettings", "ReplayLight",
           "ReplayMeter", "ReplayPower", "ReplayRadiometer"]
