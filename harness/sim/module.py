"""Simulated camera-module files (``fixtures/modules/*.yaml``): schema and loader.

A module file describes one physical unit: sensor (EMVA 1288 linear model parameters,
EMVA 1288 Release 4.0 section 2), spectral response, lens (PSF, shading, decentre, distortion,
lateral colour, particles on its cover glass), defects and the supply current it
draws (``power``, read by the simulated PSU; see :class:`Power` for its defaults).
``extends: other.yaml`` starts from another module file and overrides keys (mappings merge key
by key, lists and scalars replace), so a faulty module states the ONE property in which it
differs from the golden one.

Every problem is one :class:`~harness.errors.ConfigError` line naming file, line and field.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import ConfigError
from harness.yamlio import LoadedYaml, load_yaml, validation_error

CfaPattern = Literal["RGGB", "GRBG", "GBRG", "BGGR"]
DefectClass = Literal["hot", "dead", "cold", "stuck_high", "stuck_low", "blinking", "column"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(_Strict):
    """A fixed-pattern non-uniformity split into row, column and pixel parts (EMVA 1288 4.0 8.2)."""

    pixel: float = Field(0.0, ge=0.0)
    row: float = Field(0.0, ge=0.0)
    column: float = Field(0.0, ge=0.0)


class Nonlinearity(_Strict):
    """Compression near saturation: above ``onset`` x full well, the signal loses
    ``strength_pct`` % of full well at full well, growing quadratically from the onset."""

    onset: float = Field(0.8, gt=0.0, lt=1.0)
    strength_pct: float = Field(0.0, ge=0.0, le=50.0)


class Sensor(_Strict):
    width: int = Field(ge=16, le=16384)
    height: int = Field(ge=16, le=16384)
    pixel_pitch_um: float = Field(gt=0.2, le=50.0)
    adc_bits: int = Field(12, ge=8, le=16)
    cfa: CfaPattern | None = None
    full_well_e: float = Field(gt=0.0)
    system_gain_dn_per_e: float = Field(gt=0.0, description="K at Gain = 0 dB")
    read_noise_e: float = Field(ge=0.0, description="noise before the analog gain, e-")
    adc_noise_dn: float = Field(0.0, ge=0.0, description="noise after the analog gain, DN")
    black_level_dn: float = Field(64.0, ge=0.0)
    dark_current_e_per_s: float = Field(ge=0.0)
    dark_ref_temp_c: float = 25.0
    dark_doubling_k: float = Field(6.5, gt=0.0)
    dsnu_e: Split = Split()
    prnu_pct: Split = Split()
    nonlinearity: Nonlinearity = Nonlinearity()
    gain_max_db: float = Field(24.0, ge=0.0, le=48.0)
    poisson_threshold_e: float = Field(30.0, ge=5.0, le=1000.0)

    @property
    def max_dn(self) -> int:
        return int(2**self.adc_bits - 1)


class Thermal(_Strict):
    """Die temperature = ambient + offset + self_heating x (1 - exp(-t_streaming / tau))."""

    offset_c: float = 2.0
    self_heating_c: float = Field(0.0, ge=0.0)
    time_constant_s: float = Field(60.0, gt=0.0)


class Link(_Strict):
    """The module's output link: a FIFO of ``fifo_frames`` frames between sensor and host.

    A burst of consecutive frames longer than the FIFO (one ``grab`` of more frames) overruns
    it: every ``(fifo_frames + 1)``-th frame of the burst is lost (``overrun: drop``, the frame
    id jumps) or delivered partially (``incomplete``). ``fifo_frames: null`` never overruns."""

    fifo_frames: int | None = Field(None, ge=1)
    overrun: Literal["drop", "incomplete"] = "drop"


class Timing(_Strict):
    readout_ms: float = Field(30.0, ge=0.0)
    max_frame_rate_hz: float = Field(30.0, gt=0.0)
    min_exposure_us: float = Field(10.0, gt=0.0)
    max_exposure_us: float = Field(2_000_000.0, gt=0.0)
    link: Link = Link()


class Band(_Strict):
    """A Gaussian spectral quantum-efficiency band."""

    peak_nm: float = Field(ge=300.0, le=1100.0)
    fwhm_nm: float = Field(gt=5.0, le=1000.0)
    peak_qe: float = Field(gt=0.0, le=1.0)


class Spectral(_Strict):
    mono: Band = Band(peak_nm=550.0, fwhm_nm=260.0, peak_qe=0.65)
    red: Band = Band(peak_nm=600.0, fwhm_nm=90.0, peak_qe=0.50)
    green: Band = Band(peak_nm=535.0, fwhm_nm=100.0, peak_qe=0.60)
    blue: Band = Band(peak_nm=460.0, fwhm_nm=90.0, peak_qe=0.50)
    ir_cut_nm: float | None = Field(660.0, ge=500.0, le=1100.0)
    crosstalk: tuple[tuple[float, float, float], tuple[float, float, float],
                     tuple[float, float, float]] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                                    (0.0, 0.0, 1.0))


class ChannelRatios(_Strict):
    """Red and blue relative to green (a colour sensor's lens shading differs per channel)."""

    R: float = Field(1.0, gt=0.05, le=2.0)
    B: float = Field(1.0, gt=0.05, le=2.0)


class Offset(_Strict):
    """A displacement on the sensor in pixels (x right, y down)."""

    x: float = Field(0.0, ge=-2000.0, le=2000.0)
    y: float = Field(0.0, ge=-2000.0, le=2000.0)


class Distortion(_Strict):
    """Radial distortion about the optical centre: r_d = r_u (1 + k1 r_u^2 + k2 r_u^4), r
    normalised to the half-diagonal (k1 < 0 barrel, > 0 pincushion); must stay monotonic
    (dr_d/dr_u > 0) out to r_u = 1.5."""

    k1: float = Field(0.0, ge=-0.5, le=0.5)
    k2: float = Field(0.0, ge=-0.5, le=0.5)

    @model_validator(mode="after")
    def _monotonic(self) -> Distortion:
        r2 = [(i / 100.0) ** 2 for i in range(151)]
        if min(1.0 + 3.0 * self.k1 * u + 5.0 * self.k2 * u * u for u in r2) <= 0.05:
            raise ValueError(f"k1 {self.k1}, k2 {self.k2} fold the image over before r = 1.5 "
                             f"(dr_d/dr_u must stay > 0.05)")
        return self


class LateralCa(_Strict):
    """Lateral chromatic aberration: the red and blue images are magnified by (1 + R) and
    (1 + B) relative to the green one, about the optical centre."""

    R: float = Field(0.0, ge=-0.02, le=0.02)
    B: float = Field(0.0, ge=-0.02, le=0.02)


class Particle(_Strict):
    """A particle (blemish) on the cover glass / IR filter, ``distance_um`` in front of the
    pixels: its shadow is centred at column ``x_px``, row ``y_px`` (pixel indices, pixel
    centres at integer coordinates as in OpenCV; fractions allowed); ``diameter_um`` is the
    particle's own size."""

    x_px: float = Field(ge=-0.5)
    y_px: float = Field(ge=-0.5)
    diameter_um: float = Field(gt=0.0, le=2000.0)
    distance_um: float = Field(gt=0.0, le=5000.0)


class Optics(_Strict):
    f_number: float = Field(2.0, ge=0.7, le=64.0)
    sigma_px: float = Field(0.6, gt=0.05, le=20.0, description="Gaussian PSF sigma, centre")
    sigma_field_growth: float = Field(0.0, ge=0.0, le=10.0,
                                      description="relative sigma growth at the corner")
    best_focus_um: float = 0.0
    field_curvature_um: float = Field(0.0, description="best-focus shift at the corner")
    tilt_x_um: float = Field(0.0, description="best-focus shift at the right edge (left: -)")
    tilt_y_um: float = Field(0.0, description="best-focus shift at the bottom edge (top: -)")
    relative_illumination_corner: float = Field(1.0, gt=0.05, le=1.0)
    colour_shading_corner: ChannelRatios = Field(
        default_factory=lambda: ChannelRatios(),
        description="red and blue response relative to green at the corner (chief-ray angle "
                    "and IR-cut filter shift): 1 = no colour shading")
    fill_factor: float = Field(1.0, gt=0.0, le=1.0, description="pixel aperture width / pitch")
    decentre_px: Offset = Field(default_factory=lambda: Offset(),
                                description="optical axis minus the image centre, px")
    distortion: Distortion = Field(default_factory=lambda: Distortion())
    lateral_ca: LateralCa = Field(default_factory=lambda: LateralCa(),
                                  description="red / blue magnification - 1 relative to green")
    particles: tuple[Particle, ...] = Field((), description="blemishes on the cover glass")

    @property
    def has_geometry(self) -> bool:
        """Whether the lens maps the scene other than 1:1 (distortion or lateral CA)."""
        d, ca = self.distortion, self.lateral_ca
        return d.k1 != 0.0 or d.k2 != 0.0 or ca.R != 0.0 or ca.B != 0.0


class Defect(_Strict):
    """A listed defect: ``rows`` x ``cols`` pixels from (``row``, ``col``) (a cluster if > 1)."""

    cls: DefectClass = Field(alias="class")
    row: int = Field(0, ge=0)
    col: int = Field(ge=0)
    rows: int = Field(1, ge=1, le=64)
    cols: int = Field(1, ge=1, le=64)
    value: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Seeded(_Strict):
    hot: int = Field(0, ge=0)
    dead: int = Field(0, ge=0)
    cold: int = Field(0, ge=0)
    stuck_high: int = Field(0, ge=0)
    stuck_low: int = Field(0, ge=0)
    blinking: int = Field(0, ge=0)


class Defects(_Strict):
    listed: tuple[Defect, ...] = ()
    seeded: Seeded = Seeded()
    hot_e_per_s: float = Field(20000.0, gt=0.0, description="default extra dark current")
    cold_response: float = Field(0.8, ge=0.0, lt=1.0)
    blinking_e: float = Field(12.0, gt=0.0)
    blinking_switch_prob: float = Field(0.3, gt=0.0, le=1.0)
    column_e: float = Field(30.0)


class Power(_Strict):
    """Supply current the module draws from the station supply (the simulated PSU's channel 1),
    anywhere inside the supply's powered range: ``idle_a`` with acquisition stopped,
    ``streaming_a`` while acquiring; each current reading carries a Gaussian ``noise_a``
    (1 sigma). A key the module file leaves out takes its default here: 0.18 A idle, 0.32 A
    streaming, no noise, the fixed load the PSU simulator drew before modules had a ``power``
    section."""

    idle_a: float = Field(0.18, ge=0.0, le=5.0)
    streaming_a: float = Field(0.32, ge=0.0, le=5.0)
    noise_a: float = Field(0.0, ge=0.0, le=0.05)

    @model_validator(mode="after")
    def _streaming_draws_more(self) -> Power:
        if self.streaming_a < self.idle_a:
            raise ValueError(f"streaming_a {self.streaming_a} A is below idle_a {self.idle_a} A "
                             f"(a sensor reading out draws more)")
        return self


class Expectation(_Strict):
    """What a qualification of this module must find: the limits of ``product``'s spec it
    fails (none for the golden unit). ``harness limits coverage`` checks it."""

    product: str = Field(min_length=1)
    fails: tuple[str, ...] = ()


class Module(_Strict):
    """One simulated camera module (what ``harness sim truth`` reports)."""

    name: str
    vendor: str = "Harness Sim"
    model: str = "SIM"
    serial: str = "SIM-0001"
    firmware: str = "1.0.0"
    pattern_seed: int = Field(1288, ge=0)
    sensor: Sensor
    thermal: Thermal = Thermal()
    timing: Timing = Timing()
    spectral: Spectral = Spectral()
    optics: Optics = Optics()
    defects: Defects = Defects()
    power: Power = Power()
    expect: Expectation | None = Field(None, description="the limits of a product's spec "
                                       "this unit must fail (a faulty module) or none (golden)")
    source: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _defects_inside(self) -> Module:
        w, h = self.sensor.width, self.sensor.height
        for i, d in enumerate(self.defects.listed):
            if d.cls == "column":
                if d.col >= w:
                    raise ValueError(f"defects.listed[{i}]: column {d.col} outside 0..{w - 1}")
            elif d.row + d.rows > h or d.col + d.cols > w:
                raise ValueError(f"defects.listed[{i}]: pixels ({d.row}, {d.col}) + "
                                 f"{d.rows}x{d.cols} outside the {w}x{h} sensor")
        for i, p in enumerate(self.optics.particles):
            if p.x_px > w - 0.5 or p.y_px > h - 0.5:
                raise ValueError(f"optics.particles[{i}]: ({p.x_px}, {p.y_px}) px outside the "
                                 f"{w}x{h} sensor")
        return self

    @property
    def is_colour(self) -> bool:
        return self.sensor.cfa is not None

    @cached_property
    def channels(self) -> tuple[str, ...]:
        return ("R", "G", "B") if self.is_colour else ("Y",)

    def with_sensor_size(self, width: int, height: int) -> Module:
        """The same module with a smaller (or larger) sensor; listed defects must still fit.

        The lens scales with the sensor (relative illumination, distortion and the field are
        normalised to it), so the decentre and the particles' positions scale by the size
        ratio; the particles' physical size and distance, hence their shadows in pixels, do not.
        """
        data = self.model_dump(by_alias=True)
        sx, sy = width / self.sensor.width, height / self.sensor.height
        optics = data["optics"]
        if optics["decentre_px"] != {"x": 0.0, "y": 0.0}:
            optics["decentre_px"] = {"x": optics["decentre_px"]["x"] * sx,
                                     "y": optics["decentre_px"]["y"] * sy}
        optics["particles"] = [{**p, "x_px": (p["x_px"] + 0.5) * sx - 0.5,
                                "y_px": (p["y_px"] + 0.5) * sy - 0.5}
                               for p in optics["particles"]]
        data["sensor"].update(width=width, height=height)
        try:
            return Module.model_validate({**data, "source": self.source})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise ConfigError(str(first["msg"]).removeprefix("Value error, "),
                              source=self.source, field="sensor size override") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], list[LoadedYaml]]:
    doc = load_yaml(path, what="module file")
    data = dict(doc.data)
    parent = data.pop("extends", None)
    if parent is None:
        return data, [doc]
    if not isinstance(parent, str):
        raise doc.error(("extends",), "must be a path to another module file")
    parent_path = path.parent / parent
    if parent_path.resolve() in seen:
        raise doc.error(("extends",), f"circular extends via {parent}")
    base, docs = _load_chain(parent_path, (*seen, parent_path.resolve()))
    return _merge(base, data), [doc, *docs]


def _fields_of(model: type[BaseModel], prefix: tuple[str, ...],
               out: dict[tuple[str | int, ...], list[str]]) -> None:
    out[prefix] = [f.alias or name for name, f in model.model_fields.items() if name != "source"]
    if prefix == ():
        out[prefix].append("extends")
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _fields_of(ann, (*prefix, name), out)


def load_module(path: str | Path) -> Module:
    """Read and validate a module file (and the files it extends)."""
    p = Path(path)
    data, docs = _load_chain(p, (p.resolve(),))
    try:
        return Module.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        fields: dict[tuple[str | int, ...], list[str]] = {}
        _fields_of(Module, (), fields)
        loc = tuple(x for x in exc.errors(include_url=False)[0]["loc"] if isinstance(x, str | int))
        doc = next((d for d in docs if loc and loc in d.lines), docs[0])
        doc = LoadedYaml(doc.data, str(path) if doc is docs[0] else doc.source, doc.lines)
        err = validation_error(doc, exc, model_fields=fields)
        raise ConfigError(str(err).replace("Value error, ", "")) from None


__all__ = ["Band", "ChannelRatios", "Defect", "Defects", "Distortion", "Expectation",
           "LateralCa", "Link", "Module", "Nonlinearity", "Offset", "Optics", "Particle", "Power",
           "Seeded", "Sensor", "Spectral", "Split", "Thermal", "Timing", "load_module"]
