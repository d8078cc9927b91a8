"""Measured quantum efficiency (issue 18, item 6): the narrow-band light, the PM100-style optical
power meter (driver and simulator), photons per pixel from its irradiance, and the EMVA 1288
QE measured on the simulated station against the simulator's truth.

Truth is computed independently of the code under test: the photon-count formula from the
constants, the band's shape from its samples, the meter's readings from the simulator's own
state (the probe it reads), the QE from the module's spectral model
(:func:`harness.sim.truth.module_truth`).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.analysis import emva1288
from harness.capture.sequences import MeterPhotons, narrowband
from harness.errors import ConfigError, InstrumentError
from harness.sim.colour_response import (
    WAVELENGTHS,
    check_illuminant,
    parse_band,
    photon_spectrum,
)
from harness.sim.faults import InstrumentFault
from harness.sim.instruments.base import SimSpec
from harness.sim.instruments.hub import SimulatorHub, simulator_specs
from harness.sim.instruments.light_model import LightOutput, LightSpec
from harness.sim.instruments.pm100 import (
    Pm100Simulator,
    Pm100Spec,
    reading_factor,
    responsivity_a_w,
)

from .instrument_sim import FAST, NO_WARMUP, driver, hub_of

ROOT = Path(__file__).resolve().parents[1]
H, C = 6.62607015e-34, 299_792_458.0
_FAST: dict[str, Any] = dict(FAST)
NARROW = {"fwhm_nm": 30.0, "min_nm": 400.0, "max_nm": 700.0, "flux_fraction": 0.3}


# -- photons per pixel ---------------------------------------------------------------------

def test_photons_per_pixel_is_e_a_t_lambda_over_hc() -> None:
    """mu_p = E A t lambda / (h c), computed here from SI units (exact to float rounding)."""
    e, pitch_m, t_s, lam_m = 0.25, 1.4e-6, 2e-3, 535e-9
    expected = e * pitch_m**2 * t_s * lam_m / (H * C)
    got = emva1288.photons_per_pixel(0.25, 1.4, 2000.0, 535.0)
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(2639.4, rel=1e-4)  # 4.9e-16 J / 3.713e-19 J per photon


@pytest.mark.parametrize(("args", "field"), [
    ((1.0, 0.0, 1000.0, 535.0), "pixel_pitch_um"),
    ((1.0, 1.4, 1000.0, math.nan), "wavelength_nm"),
    ((-1.0, 1.4, 1000.0, 535.0), "irradiance_w_m2"),
    ((1.0, 1.4, -1.0, 535.0), "exposure_us"),
])
def test_photons_per_pixel_bad_inputs(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        emva1288.photons_per_pixel(*args)
    assert err.value.field == field and "\n" not in str(err.value)


# -- the narrow-band spectrum --------------------------------------------------------------

def test_band_illuminant_is_a_gaussian_of_the_given_centre_and_fwhm() -> None:
    """The power spectrum (photons / lambda) peaks at the centre; its FWHM, read off the 5 nm
    samples by linear interpolation, is the name's within 1 nm (interpolation error)."""
    power = photon_spectrum("band:535/30") / WAVELENGTHS
    power = power / power.max()
    assert WAVELENGTHS[int(np.argmax(power))] == 535.0
    above = np.flatnonzero(power >= 0.5)
    lo, hi = above[0], above[-1]
    left = np.interp(0.5, [power[lo - 1], power[lo]], [WAVELENGTHS[lo - 1], WAVELENGTHS[lo]])
    right = np.interp(0.5, [power[hi + 1], power[hi]], [WAVELENGTHS[hi + 1], WAVELENGTHS[hi]])
    assert right - left == pytest.approx(30.0, abs=1.0)
    assert parse_band("band:535/30") == (535.0, 30.0)
    assert check_illuminant("BAND:450/10") == "BAND:450/10"


@pytest.mark.parametrize(("name", "message"), [
    ("band:535", "expected band:<nm>/<fwhm>"),
    ("band:abc/30", "expected band:<nm>/<fwhm>"),
    ("band:300/30", r"centre 300 nm outside 400\.\.740 nm"),
    ("band:535/200", r"FWHM 200 nm outside 5\.\.100 nm"),
])
def test_band_illuminant_bad_names(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_illuminant(name)


# -- the narrow-band light -----------------------------------------------------------------

def _output(**spec: Any) -> LightOutput:
    out = LightOutput(LightSpec(**{**NO_WARMUP, "illuminant": "D65", **spec}), clock=lambda: 0.0)
    out.set_level(50.0)
    out.set_on(True)
    return out


def test_light_narrow_band_switches_spectrum_and_flux() -> None:
    """In the narrow band the rendered spectrum is band:<nm>/<fwhm> at flux_fraction of the
    white output; a CCT (or wavelength None) returns to white; the CCT read meanwhile is the
    white channel's (about 6504 K for D65)."""
    out = _output(narrowband=NARROW)
    white = out.relative_output()
    out.set_wavelength(535.0)
    assert out.illuminant == "band:535/30" and out.fwhm_nm == 30.0
    assert out.relative_output() == pytest.approx(0.3 * white, rel=1e-9)
    assert out.cct_k == pytest.approx(6504, abs=2)
    out.set_wavelength(None)
    assert out.illuminant == "D65" and out.fwhm_nm is None
    out.set_wavelength(450.0)
    out.set_cct(4000.0)
    assert out.illuminant == "4000K" and out.wavelength_nm is None
    with pytest.raises(ValueError, match=r"wavelength 800 nm outside 400\.\.700 nm"):
        out.set_wavelength(800.0)
    with pytest.raises(ValueError, match="no narrow-band mode"):
        _output().set_wavelength(535.0)


@pytest.mark.parametrize(("narrow", "message"), [
    ({"fwhm_nm": 60}, "fwhm_nm"),            # EMVA 1288: at most 50 nm
    ({"min_nm": 650, "max_nm": 500}, "min_nm 650.0 above max_nm 500.0"),
    ({"flux_fraction": 0}, "flux_fraction"),
])
def test_narrowband_spec_is_checked_when_the_station_loads(narrow: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulator_specs({"light": {"type": "scpi-led", "light": {"narrowband": narrow}}})


# -- the PM100 simulator -------------------------------------------------------------------

def test_meter_wavelength_correction_model() -> None:
    """At the band's own wavelength the reading is the irradiance within 0.1 % (the
    responsivity's curvature over 30 nm); at another wavelength it is off by R(band)/R(set)
    within 1 % (the band's width); a white light (D65) read at 535 nm is off by more than 3 %
    (about 6 %)."""
    assert reading_factor("band:535/30", 535.0) == pytest.approx(1.0, abs=1e-3)
    expected = float(responsivity_a_w(535.0) / responsivity_a_w(633.0))
    assert reading_factor("band:535/30", 633.0) == pytest.approx(expected, rel=0.01)
    assert abs(reading_factor("D65", 535.0) - 1.0) > 0.03


def test_pm100_simulator_scpi() -> None:
    """Commands straight to the simulator: settings, read-backs, readings from its probe
    (E = 2 W/m2 of a 535 nm band on a 9.5 mm head, no noise), errors queued."""
    sim = Pm100Simulator("pm", Pm100Spec(noise_pct=0.0, wavelength_nm=535.0),
                         probe=lambda: (2.0, "band:535/30"))
    assert sim.handle("*IDN?") == "Thorlabs,PM100USB,P2000001,1.6.0"
    assert sim.handle("sense:correction:wavelength 535;SENS:CORR:WAV?") == "535.0"
    area = math.pi * (9.5e-3 / 2) ** 2
    factor = reading_factor("band:535/30", 535.0)
    assert float(sim.handle("MEAS:POW?") or "") == pytest.approx(2.0 * area * factor, rel=1e-6)
    assert float(sim.handle("MEAS:PDEN?") or "") == pytest.approx(2.0e-4 * factor, rel=1e-6)
    sim.handle("SENS:CORR:BEAM 5")
    assert float(sim.handle("MEAS:PDEN?") or "") == pytest.approx(
        2.0e-4 * factor * (9.5 / 5) ** 2, rel=1e-6)  # the PM100 divides by the beam area set
    sim.handle("SENS:CORR:WAV 5000")
    sim.handle("CONF:POW 3")
    sim.handle("FOO?")
    assert [sim.handle("SYST:ERR?") for _ in range(4)] == [
        '-222,"Data out of range"', '-108,"Parameter not allowed"', '-113,"Undefined header"',
        '0,"No error"']


# -- driver against the simulator over a socket ----------------------------------------------

SPECS: dict[str, dict[str, Any]] = {
    "pm": {"type": "pm100", "serial": "PM-7", "noise_pct": 0.0},
    "led": {"type": "scpi-led", "light": {"max_lux": 1000, **NO_WARMUP, "narrowband": NARROW}},
}


@pytest.fixture(scope="module")
def hub() -> Iterator[SimulatorHub]:
    with hub_of(SPECS) as h:
        h.simulator("pm").probe = lambda: (1.5, "band:535/30")
        yield h


@pytest.fixture()
def pm(hub: SimulatorHub) -> Iterator[Any]:
    meter = driver("radiometer", "optical-power-meter", hub, resource="sim:pm", serial="PM-7",
                   wavelength_nm=535.0, **_FAST)
    meter.open()
    yield meter
    meter.safe_state()
    meter.close()
    hub.simulator("pm").faults.clear()


def test_optical_power_meter_reads_the_simulated_irradiance(hub: SimulatorHub, pm: Any) -> None:
    """Identity, wavelength read back, irradiance and power as the simulator's probe gives
    them (noise 0; the band factor within 0.1 %)."""
    ident = pm.identity()
    assert (ident.vendor, ident.model, ident.serial, ident.driver) == (
        "Thorlabs", "PM100USB", "PM-7", "optical-power-meter")
    assert pm.wavelength() == 535.0 and hub.simulator("pm").wavelength_nm == 535.0
    assert pm.irradiance_w_m2() == pytest.approx(1.5, rel=1e-3)
    assert pm.power_w() == pytest.approx(1.5 * math.pi * (9.5e-3 / 2) ** 2, rel=1e-3)
    pm.set_wavelength(633.0)
    assert pm.irradiance_w_m2() == pytest.approx(1.5 * reading_factor("band:535/30", 633.0),
                                                 rel=1e-5)


def test_optical_power_meter_refuses_bad_values_before_sending(hub: SimulatorHub,
                                                               pm: Any) -> None:
    sent = len(hub.simulator("pm").log)
    with pytest.raises(ConfigError, match=r"wavelength 100 nm outside 200\.\.1800 nm"):
        pm.set_wavelength(100)
    with pytest.raises(ConfigError, match=r"beam diameter 0 mm outside"):
        pm.set_beam_diameter(0)
    assert len(hub.simulator("pm").log) == sent
    with pytest.raises(ValueError, match="wavelength_nm"):  # the station loader's one line
        driver("radiometer", "optical-power-meter", hub, resource="sim:pm",
               wavelength_nm=5000.0)


@pytest.mark.parametrize(("fault", "message"), [
    (InstrumentFault(kind="garbage", text="1.2 W"), "reply is not a number"),
    # longer than both tries (timeout 0.2 s, one retry) even on a loaded machine
    (InstrumentFault(kind="delay", delay_s=2.0), "timeout|no reply|timed out"),
    (InstrumentFault(kind="error"), r"instrument error -310"),
])
def test_optical_power_meter_bad_replies_are_instrument_errors(
        hub: SimulatorHub, pm: Any, fault: InstrumentFault, message: str) -> None:
    hub.simulator("pm").faults.arm(fault)
    with pytest.raises(InstrumentError, match=message) as err:
        if fault.kind == "error":
            pm.set_wavelength(540.0)  # a setting: the simulator refuses it
        else:
            pm.irradiance_w_m2()
    assert "\n" not in str(err.value) and err.value.device == "radiometer"


def test_optical_power_meter_over_range_is_refused(hub: SimulatorHub) -> None:
    meter = driver("radiometer", "optical-power-meter", hub, resource="sim:pm",
                   max_power_w=1e-6, **_FAST)
    meter.open()
    try:
        with pytest.raises(InstrumentError, match="outside the plausible range"):
            meter.power_w()
    finally:
        meter.close()


def test_scpi_led_narrow_band_over_the_wire(hub: SimulatorHub) -> None:
    led = driver("light", "scpi-led", hub, resource="sim:led", narrowband=True, **_FAST)
    plain = driver("light", "scpi-led", hub, resource="sim:led", **_FAST)
    led.open()
    try:
        state = hub.simulator("led").output
        led.set_wavelength(535.0)
        assert state.illuminant == "band:535/30"
        assert led.wavelength() == 535.0 and led.bandwidth_nm() == 30.0
        with pytest.raises(InstrumentError, match="instrument error -222"):
            led.set_wavelength(800.0)
        with pytest.raises(ConfigError, match="not a positive number"):
            led.set_wavelength(-5.0)
        led.set_wavelength(None)
        assert state.illuminant == "5000K" and led.wavelength() is None  # the spec's white
        with pytest.raises(ConfigError, match="no narrow-band mode"):
            plain.set_wavelength(535.0)
    finally:
        led.safe_state()
        led.close()


# -- photons hook and narrow band in the sequence -------------------------------------------

class _Meter:
    def __init__(self) -> None:
        self.nm: float | None = None

    def set_wavelength(self, nm: float) -> None:
        self.nm = nm

    def wavelength(self) -> float:
        return float(self.nm or 0.0)

    def irradiance_w_m2(self) -> float:
        return 0.5


def test_meter_photons_needs_the_pitch_and_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"conditions\.emva1288\.pixel_pitch_um is missing") \
            as err:
        MeterPhotons(_Meter(), None, 535.0).reading(1000.0)
    assert err.value.field == "conditions.emva1288.pixel_pitch_um"
    meter = _Meter()
    photons = MeterPhotons(meter, 1.4, 535.0)
    assert photons(1000.0) is None  # white light: no photon count at the band's wavelength
    photons.in_band = True
    assert photons(1000.0) == pytest.approx(emva1288.photons_per_pixel(0.5, 1.4, 1000.0, 535.0))
    assert meter.nm == 535.0  # the correction wavelength is the light's


def test_a_light_without_narrow_band_is_refused_with_a_meter() -> None:
    class Ctx:
        light = object()
        photons_per_pixel = MeterPhotons(_Meter(), 1.4, 535.0)

    with pytest.raises(ConfigError, match="no narrow-band mode") as err, \
            narrowband(Ctx()):  # type: ignore[arg-type]
        pass
    assert err.value.field == "light.narrowband"


# -- accuracy on the simulated station -------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from harness.run.session import CaptureSession
    from harness.station.station import Station

    spec = yaml.safe_load((ROOT / "tests_hil/limits/cm12.yaml").read_text())
    out = tmp_path_factory.mktemp("qe")
    station_file = out / "sim-small.yaml"
    station_file.write_text((ROOT / "stations/sim-small.yaml").read_text().replace(
        "../fixtures/", f"{ROOT}/fixtures/") + f"lock_dir: {out}\n")
    with Station.load(station_file) as station:
        session = CaptureSession(station, out / "captures", conditions=spec["conditions"])
        cs = session.sequence("exposure_sweep")
        light_after = station.device("light").wavelength()
        bench = station.services["bench"]
        yield cs, (light_after, bench)
    shutil.rmtree(out, ignore_errors=True)


def test_every_frame_records_irradiance_and_photons(sweep: tuple[Any, Any]) -> None:
    """Every frame of the sweep has the irradiance read and the photons it means; the photons
    of the bright frames agree within 0.5 % with the bench's own photon flux x pixel area x
    exposure (the meter's noise 0.1 %, the band's photon energy vs hc/lambda_centre < 0.1 %,
    the light's settling); dark frames have none; the light is white again after the sweep."""
    cs, (light_after, bench) = sweep
    assert cs.manifest.extra["radiometry"]["wavelength_nm"] == 535.0
    assert cs.manifest.extra["radiometry"]["fwhm_nm"] <= 50.0
    records = cs.records()
    measured = [r for r in records if r.role in ("bright", "dark")]
    assert measured and all(r.photons is not None and "irradiance_w_m2" in r.extra
                            for r in measured)
    flux = bench.state().full_scale_photons_per_um2_s * 0.5 * 0.3  # level 50 %, band 30 %
    for r in (r for r in measured if r.role == "bright"):
        truth = flux * 1.4**2 * (r.exposure_us_set or 0.0) * 1e-6
        assert r.photons == pytest.approx(truth, rel=0.005)
    assert all(r.photons == 0.0 for r in measured if r.role == "dark")
    assert light_after is None


def test_measured_qe_within_3_pct_of_truth(sweep: tuple[Any, Any]) -> None:
    """QE of the Gr plane (central 1/8 window, as the suite) within 3 % (relative) of the
    simulator's truth under the same band (module_truth(illuminant="band:535/30")): the error
    budget is K's statistical error on the window (~1 %, 1200 pixels per pair), the window's
    relative illumination (-0.6 %), the meter (0.1 %)."""
    from harness.inputs.stack_input import reduce_capture_set_planes
    from harness.sim.module import load_module
    from harness.sim.truth import module_truth

    cs, _ = sweep
    data, cfa = reduce_capture_set_planes(cs.root, ("Gr",), window={"Gr": 0.125})["Gr"]
    result = emva1288.measure_emva1288(data, cfa=cfa)
    truth = module_truth(load_module(ROOT / "fixtures/modules/small.yaml"),
                         illuminant="band:535/30")
    assert truth["qe_narrowband"]["qe_at_wavelength"]["G"] == pytest.approx(0.60, rel=1e-6)
    eta = truth["qe"]["G"]
    measured = result.require("quantum_efficiency_pct") / 100.0
    assert measured == pytest.approx(eta, rel=0.03), (measured, eta)
    threshold = result.require("sensitivity_threshold_photons")
    assert threshold == pytest.approx(result.require("sensitivity_threshold_e") / measured)
    assert result.require("responsivity_dn_per_photon") == pytest.approx(
        measured * result.require("system_gain_dn_per_e"))


def test_station_files_have_the_radiometer() -> None:
    from harness.station.schema import load_station_file

    for name in ("sim.yaml", "sim-small.yaml"):
        config = load_station_file(ROOT / "stations" / name)
        spec = config.device("radiometer")
        assert spec is not None and spec.driver == "optical-power-meter"
        sims = config.sections["simulators"]
        assert isinstance(sims["pm"], SimSpec) and sims["pm"].type == "pm100"
