"""Module files, bench config, defects, colour response and ``harness sim truth``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.sim.bench import Bench, BenchConfig, build_bench
from harness.sim.colour_response import colour_truth, illuminance_lux
from harness.sim.module import load_module
from harness.sim.scene import CHECKER_GAP_H, CHECKER_PATCH_H
from harness.sim.sensor import Roi, SensorModel
from tests_unit.test_sim_sensor import MODULES, frames, make_module

FAULTY = {
    "hot-cluster.yaml": {"defects.listed"},
    "soft-corner.yaml": {"optics.tilt_x_um"},
    "colour-cast.yaml": {"spectral.red.peak_nm", "spectral.green.peak_nm",
                         "spectral.blue.peak_nm"},
    "nonlinear.yaml": {"sensor.nonlinearity.onset", "sensor.nonlinearity.strength_pct"},
    "low-full-well.yaml": {"sensor.full_well_e"},
    "noisy.yaml": {"sensor.read_noise_e"},
    "high-current.yaml": {"power.idle_a", "power.streaming_a"},
    "blinking.yaml": {"defects.seeded.blinking"},
    "gain-low.yaml": {"sensor.system_gain_dn_per_e"},
    "dark-current.yaml": {"sensor.dark_current_e_per_s"},
    "fixed-pattern.yaml": {"sensor.dsnu_e.pixel", "sensor.prnu_pct.pixel"},
    "many-defects.yaml": {"defects.seeded.hot", "defects.seeded.dead",
                          "defects.seeded.stuck_high", "defects.seeded.stuck_low"},
    "weak-pixels.yaml": {"defects.seeded.cold"},
    "column-defect.yaml": {"defects.listed"},
    "low-ri.yaml": {"optics.relative_illumination_corner"},
    "colour-shading.yaml": {"optics.colour_shading_corner.R"},
    "focus-offset.yaml": {"optics.best_focus_um"},
    "soft-lens.yaml": {"optics.sigma_px"},
    "link-drops.yaml": {"timing.link.fifo_frames"},
    "link-incomplete.yaml": {"timing.link.fifo_frames", "timing.link.overrun"},
    "limited-firmware.yaml": {"sensor.gain_max_db", "timing.max_frame_rate_hz",
                              "timing.min_exposure_us", "timing.max_exposure_us"},
    "dusty.yaml": {"optics.particles"},
    "decentred.yaml": {"optics.decentre_px.x", "optics.decentre_px.y"},
    "distorted.yaml": {"optics.distortion.k1"},
    "lateral-ca.yaml": {"optics.lateral_ca.R", "optics.lateral_ca.B"},
    "low-qe.yaml": {"spectral.red.peak_qe", "spectral.green.peak_qe", "spectral.blue.peak_qe"},
}
IDENTITY = {"name", "serial", "source"}


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "listed":
                out[f"{prefix}{key}"] = value
            else:
                out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


@pytest.mark.parametrize("name", sorted(FAULTY))
def test_each_faulty_module_changes_one_physical_property(name: str) -> None:
    golden = _leaves(load_module(MODULES / "golden.yaml").model_dump(by_alias=True))
    faulty = _leaves(load_module(MODULES / name).model_dump(by_alias=True))
    changed = {k for k in golden if golden[k] != faulty[k]
               and not k.startswith("expect.")} - IDENTITY
    assert changed == FAULTY[name]


def test_every_faulty_module_of_the_product_is_in_the_one_property_table() -> None:
    from harness.run.limit_coverage import product_modules

    named = {f"{name}.yaml" for name, m in product_modules(MODULES, "cm12")
             if m.expect is not None and m.expect.fails}
    assert named == set(FAULTY)


def test_golden_is_a_12_mp_colour_module_whose_pixel_clips_first() -> None:
    """The product's golden unit: 12 MP RGGB, the full well (not the ADC) sets saturation, as
    on a real 1.4 um pixel; raw corner shading and colour shading of a phone-class lens."""
    m = load_module(MODULES / "golden.yaml")
    assert (m.sensor.width, m.sensor.height, m.sensor.cfa) == (4032, 3024, "RGGB")
    assert m.sensor.full_well_e * m.sensor.system_gain_dn_per_e + 64 < m.sensor.max_dn
    low = load_module(MODULES / "low-full-well.yaml").sensor
    assert low.full_well_e < m.sensor.full_well_e
    assert 0.25 <= m.optics.relative_illumination_corner <= 0.45
    ratios = m.optics.colour_shading_corner
    assert 0.05 <= max(1 - ratios.R, 1 - ratios.B) <= 0.20


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nsensor: {width: 64, height: 64, pixel_pitch_um: 2, full_well_e: 1,\n"
     "  system_gain_dn_per_e: 1, read_noise_e: 1, dark_current_e_per_s: 1, colour: 3}\n",
     r"bad.yaml:3: sensor.colour: unknown key 'colour'; allowed: adc_bits"),
    ("name: x\nsensor: {width: sixty, height: 64}\n", r"bad.yaml:2: sensor.width: .*sixty"),
    ("extends: golden.yaml\noptics: {f_number: 0.1}\n",
     r"bad.yaml:2: optics.f_number: Input should be greater than or equal to 0.7"),
    ("extends: golden.yaml\ndefects:\n  listed:\n    - {class: hot, row: 5000, col: 1}\n",
     r"bad.yaml.*outside the 4032x3024 sensor"),
    ("extends: golden.yaml\ndefects:\n  listed:\n    - {class: warm, col: 1}\n",
     r"bad.yaml:4: defects.listed\[0\].class: .*'hot'"),
    ("extends: nowhere.yaml\n", r"nowhere.yaml: module file not found"),
    ("extends: bad.yaml\n", r"circular extends"),
])
def test_bad_module_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    for f in MODULES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_module(bad)
    assert "\n" not in str(info.value)


def test_supply_currents_come_from_the_module_file(tmp_path: Path) -> None:
    golden = load_module(MODULES / "golden.yaml").power
    assert (golden.idle_a, golden.streaming_a, golden.noise_a) == (0.12, 0.30, 0.002)
    high = load_module(MODULES / "high-current.yaml").power
    assert high.idle_a > 0.25 and high.streaming_a > 0.5  # PWR-IDLE, PWR-STREAM of cm12.yaml
    assert high.noise_a == golden.noise_a  # inherited: only the currents differ
    # a module file without a power section (or part of one) takes the schema's defaults
    data = {k: v for k, v in load_module(MODULES / "golden.yaml").model_dump(by_alias=True).items()
            if k != "power"}
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(data))
    bare = load_module(tmp_path / "bare.yaml").power
    assert (bare.idle_a, bare.streaming_a, bare.noise_a) == (0.18, 0.32, 0.0)
    (tmp_path / "part.yaml").write_text(yaml.safe_dump({**data, "power": {"idle_a": 0.1}}))
    assert load_module(tmp_path / "part.yaml").power.streaming_a == 0.32


def test_bad_power_sections_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "golden.yaml").write_text((MODULES / "golden.yaml").read_text())
    for text, message in (
            ("power: {idle_a: 0.3, streaming_a: 0.2}", r"streaming_a 0.2 A is below idle_a 0.3"),
            ("power: {idle_a: -0.1}", r"bad.yaml:2: power.idle_a: .*greater than or equal to 0"),
            ("power: {volts: 3.3}", r"bad.yaml:2: power.volts: unknown key 'volts'; allowed: "
                                    r"idle_a, noise_a, streaming_a")):
        (tmp_path / "bad.yaml").write_text(f"extends: golden.yaml\n{text}\n")
        with pytest.raises(ConfigError, match=message) as info:
            load_module(tmp_path / "bad.yaml")
        assert "\n" not in str(info.value)


def test_a_station_bench_holds_its_camera_modules_power(tmp_path: Path) -> None:
    from harness.station.schema import load_station_file

    station = (Path(__file__).parent / "stations" / "sim-bench.yaml").read_text()
    path = tmp_path / "st.yaml"
    path.write_text(station.replace("../../fixtures/modules/small.yaml",
                                    str(MODULES / "high-current.yaml")))
    config = load_station_file(path)
    assert build_bench(config.bench, config).module_power == load_module(
        MODULES / "high-current.yaml").power
    # no PSU simulator on the station: nothing draws the current, the module is not read
    path.write_text(f"id: bare\nbench: {{chart: flat}}\ncamera: {{driver: sim, module: "
                    f"{MODULES / 'high-current.yaml'}}}\n")
    config = load_station_file(path)
    assert build_bench(config.bench, config).module_power is None


def test_bench_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"bench.chart: .*allowed: dark, flat, edge"):
        build_bench({"chart": "siemens"})
    with pytest.raises(ConfigError, match=r"bench.light.illuminant: .*allowed: D65"):
        build_bench({"light": {"illuminant": "D99"}})
    with pytest.raises(ConfigError, match=r"bench.light.on: unknown key 'on'; allowed: enabled"):
        build_bench({"light": {"on": True}})
    with pytest.raises(ConfigError, match=r"YAML reads 'on' as true: write enabled"):
        build_bench({"light": {True: True}})


def test_bench_state_setters_and_units() -> None:
    bench = Bench(BenchConfig())
    v0 = bench.version
    bench.set_light(level_pct=100.0, illuminant="D65")
    assert bench.version > v0 and bench.photons_per_um2_s() == 2.0e6
    lux = bench.illuminance_lux()
    # ~4.1e3 photons/um^2/s per lux of 555 nm light; a broadband source needs more photons
    assert 100.0 < lux < 500.0
    assert illuminance_lux(1e6, "mono:555") == pytest.approx(1e6 / 4.09e3, rel=0.02)
    bench.set_chart("dark")
    assert bench.photons_per_um2_s() == 0.0
    with pytest.raises(ConfigError):
        bench.set_chart("siemens")
    bench.safe_state()
    assert bench.light_on is False


def test_defects_appear_exactly_where_listed() -> None:
    model = SensorModel(load_module(MODULES / "hot-cluster.yaml").with_sensor_size(640, 480))
    truth = {(p.row, p.col): p.cls for p in model.defects}
    for r in range(200, 203):
        for c in range(300, 303):
            assert truth[(r, c)] == "hot"
    dark = frames(model, 1, chart="dark", exposure_us=200_000.0)[0]
    # hot: +4000 e- = 1680 DN; stuck_high at 4095; nothing else is > 100 DN above black
    found = set(zip(*np.nonzero(dark > 64 + 100), strict=True))
    expected = {rc for rc, cls in truth.items() if cls in ("hot", "stuck_high")}
    assert found == expected
    flat = frames(model, 1, exposure_us=5000.0)[0]
    for (r, c), cls in truth.items():
        if cls == "stuck_low":
            assert flat[r, c] == 0
        elif cls == "dead":
            assert flat[r, c] < 80
        elif cls == "cold":
            neighbours = flat[r - 2:r + 3:2, c - 2:c + 3:2]  # same CFA colour
            signal = flat[r, c] - 64, np.median(neighbours) - 64
            assert signal[0] == pytest.approx(0.8 * signal[1], rel=0.1)  # cold_response 0.8


def test_blinking_pixels_toggle_between_two_levels() -> None:
    m = make_module({"defects": {"listed": [{"class": "blinking", "row": 10, "col": 10,
                                             "value": 200.0}]},
                     "sensor": {"read_noise_e": 0.5, "adc_noise_dn": 0.0}})
    model = SensorModel(m)
    values = frames(model, 40, chart="dark", exposure_us=100.0)[:, 10, 10]
    high = values > 64 + 0.42 * 100
    assert 5 < high.sum() < 35  # switch probability 0.3 per frame
    assert np.ptp(values[high]) <= 6 and np.ptp(values[~high]) <= 6


def test_chart_colours_follow_the_spectral_truth() -> None:
    m = make_module({"optics": {"sigma_px": 0.5}}, base="sim-reference-small.yaml")
    model = SensorModel(m)
    img = frames(model, 4, chart="colour", exposure_us=20_000.0, flux=1.5e6).mean(axis=0) - 64
    truth = colour_truth(m, "D65").patch_rgb
    pitch, patch = (CHECKER_PATCH_H + CHECKER_GAP_H) * 480, CHECKER_PATCH_H * 480
    x0, y0 = 320 - 2.5 * pitch, 240 - 1.5 * pitch
    measured = []
    for k in range(24):
        cx, cy = x0 + (k % 6) * pitch, y0 + (k // 6) * pitch
        r0, c0 = int(cy - patch / 4) // 2 * 2, int(cx - patch / 4) // 2 * 2
        win = img[r0:r0 + int(patch / 2) // 2 * 2, c0:c0 + int(patch / 2) // 2 * 2]
        measured.append([win[0::2, 0::2].mean(), (win[0::2, 1::2].mean()
                                                  + win[1::2, 0::2].mean()) / 2,
                         win[1::2, 1::2].mean()])
    ratio = np.array(measured) / truth
    # one scale factor (photons x K) for all 72 values; shot noise < 0.3 % on dark patches
    assert np.std(ratio[:18]) / np.mean(ratio[:18]) < 0.01
    assert np.allclose(ratio, np.mean(ratio[18:21]), rtol=0.03)


def test_colour_cast_module_has_a_skewed_response() -> None:
    golden = colour_truth(load_module(MODULES / "golden.yaml"), "D65")
    cast = colour_truth(load_module(MODULES / "colour-cast.yaml"), "D65")
    assert abs(cast.white_balance[0] - golden.white_balance[0]) > 0.2
    assert golden.delta_e00.mean() < 1.0 < 2.5 < cast.delta_e00.mean()
    a = colour_truth(load_module(MODULES / "golden.yaml"), "A")
    assert a.white_balance[2] > golden.white_balance[2]  # tungsten: little blue


def test_truth_cli_prints_json_and_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sim", "truth", str(MODULES / "small.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["system_gain_dn_per_e"] == 0.6
    assert data["read_noise_e"] == pytest.approx((2.0**2 + (0.5 / 0.6) ** 2) ** 0.5, rel=1e-5)
    assert data["colour_shading_corner"] == {"R": 0.88, "B": 0.95}
    assert data["colour_shading_corner_pct"] == 12.0
    assert {d["class"] for d in data["defects"]} >= {"hot", "dead", "stuck_high"}
    assert data["lens"][0]["field_point"] == "centre"
    assert set(data["colour"]) == {"D65", "D50", "A", "F11"}
    text = runner.invoke(app, ["sim", "truth", str(MODULES / "golden.yaml")])
    assert text.exit_code == 0 and "MTF50" in text.stdout
    bad = runner.invoke(app, ["sim", "truth", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 2 and "module file not found" in bad.output
    gain = runner.invoke(app, ["sim", "truth", str(MODULES / "small.yaml"), "--gain", "99"])
    assert gain.exit_code == 2 and "outside 0..24" in gain.output
    small = runner.invoke(app, ["sim", "truth", str(MODULES / "hot-cluster.yaml"), "--json",
                                "--size", "640x480"])
    assert small.exit_code == 0, small.output
    cam_truth = SensorModel(load_module(MODULES / "hot-cluster.yaml").with_sensor_size(640, 480))
    assert [(d["row"], d["col"]) for d in json.loads(small.stdout)["defects"]] == [
        (p.row, p.col) for p in cam_truth.defects]
    bad_size = runner.invoke(app, ["sim", "truth", str(MODULES / "small.yaml"), "--size", "big"])
    assert bad_size.exit_code == 2 and "expected WIDTHxHEIGHT" in bad_size.output


def test_truth_cli_takes_a_module_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``harness sim truth golden`` finds fixtures/modules/golden.yaml (from any folder, via
    the checkout); an unknown name is one line listing the names there."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    by_name = runner.invoke(app, ["sim", "truth", "golden", "--json"])
    assert by_name.exit_code == 0, by_name.output
    by_path = runner.invoke(app, ["sim", "truth", str(MODULES / "golden.yaml"), "--json"])
    assert json.loads(by_name.stdout) == json.loads(by_path.stdout)
    assert 0.25 <= json.loads(by_name.stdout)["relative_illumination_corner"] <= 0.45
    unknown = runner.invoke(app, ["sim", "truth", "goldn"])
    assert unknown.exit_code == 2
    assert "no module file 'goldn'" in unknown.output and "golden, high-current" in unknown.output


def test_render_cli_writes_a_tiff(tmp_path: Path) -> None:
    import tifffile

    out = tmp_path / "edge.tiff"
    result = CliRunner().invoke(app, ["sim", "render", str(MODULES / "small.yaml"), "--scene",
                                      "edge", "--out", str(out), "--frames", "2"])
    assert result.exit_code == 0, result.output
    assert tifffile.imread(out).shape == (2, 480, 640)
    bad = CliRunner().invoke(app, ["sim", "render", str(MODULES / "small.yaml"), "--scene",
                                   "siemens", "--out", str(out)])
    assert bad.exit_code == 2 and "allowed: dark, flat" in bad.output


def test_roi_defects_map_to_window_coordinates() -> None:
    model = SensorModel(load_module(MODULES / "hot-cluster.yaml").with_sensor_size(640, 480))
    part = frames(model, 1, chart="dark", exposure_us=200_000.0, roi=Roi(296, 198, 16, 8))[0]
    assert np.all(part[2:5, 4:7] > 64 + 1000)


def _emva(overrides: dict[str, Any], steps: int = 24) -> Any:
    """A photon-transfer sweep of the small clean mono module through SimCamera, analysed by
    harness.analysis.emva1288 (centre 256 x 256 ROI, to 120 % of the ADC saturation)."""
    from harness.analysis.emva1288 import EmvaReducer, measure_emva1288
    from harness.sim.camera import SimCamera
    from harness.sim.colour_response import effective_qe

    m = make_module(overrides)
    bench = Bench()
    bench.set_light(level_pct=100.0)
    cam = SimCamera.standalone(m, bench=bench, seed=4)
    for feature, value in (("Width", 256), ("Height", 256), ("OffsetX", 192), ("OffsetY", 112)):
        cam.set(feature, value)
    flux = bench.photons_per_um2_s()
    t_sat = 9598 / (effective_qe(m, "D65")["Y"] * cam.sensor.photons_per_pixel(flux, 1.0))
    reducer = EmvaReducer(12)
    cam.start()
    for i, exposure in enumerate(np.linspace(0.02, 1.2, steps) * t_sat):
        cam.set("ExposureTime", float(exposure))
        for lit in (True, False):
            bench.set_light(on=lit)
            for frame in cam.grab(2).frames:
                reducer.add(frame, dark=not lit, spatial=False, exposure_ns=exposure * 1e3,
                            photons=cam.sensor.photons_per_pixel(flux, exposure) if lit else None,
                            key=i)
    return measure_emva1288(reducer.finish())


def _fault(name: str) -> dict[str, Any]:
    from harness.yamlio import load_yaml

    data = dict(load_yaml(MODULES / name).data)
    for key in ("extends", "name", "serial", "expect"):
        data.pop(key, None)
    return data


def test_emva_analysis_of_simulated_frames_recovers_the_truth() -> None:
    """K, sigma_d and eta within 1-2 % (65k-pixel pairs: variance SE 0.55 %)."""
    m = make_module()
    model = SensorModel(m)
    from harness.sim.colour_response import effective_qe

    golden = _emva({})
    assert golden.system_gain_dn_per_e == pytest.approx(model.system_gain(0.0), rel=0.01)
    assert golden.temporal_dark_noise_e == pytest.approx(model.read_noise_e(0.0), rel=0.02)
    assert golden.quantum_efficiency_pct == pytest.approx(100 * effective_qe(m, "D65")["Y"],
                                                          rel=0.01)
    assert max(abs(golden.linearity_error_min_pct), golden.linearity_error_max_pct) < 0.1
    assert golden.saturation_capacity_e > 9000  # ADC-limited at 9598 e-


@pytest.mark.parametrize("name", ["nonlinear.yaml", "noisy.yaml", "low-full-well.yaml"])
def test_faulty_modules_show_their_fault_in_the_emva_figures(name: str) -> None:
    result = _emva(_fault(name))
    if name == "nonlinear.yaml":
        assert result.linearity_error_min_pct < -1.0
    elif name == "noisy.yaml":
        expected = math.sqrt(7.0**2 + (0.5 / 0.42) ** 2)
        assert result.temporal_dark_noise_e == pytest.approx(expected, rel=0.02)
    else:  # full well 4000 e-: the variance maximum lies a little below it
        assert 3500 < result.saturation_capacity_e <= 4000


def test_defect_analysis_finds_exactly_the_truth_positions() -> None:
    """harness.analysis.defects on SimCamera stacks: every true defect found, nothing else.

    Class names differ by design (truth: physical cause; analysis: what the data shows):
    cold (80 % response) reads as weak, stuck_high/low as stuck, and a blinking pixel whose
    high state dominates the 16 frames can read as hot.
    """
    from harness.analysis.accumulators import StackAccumulator
    from harness.analysis.defects import measure_defects
    from harness.sim.camera import SimCamera

    bench = Bench()
    cam = SimCamera.standalone(str(MODULES / "hot-cluster.yaml"), bench=bench, seed=5,
                               sensor_size=(640, 480))
    cam.start()
    stacks = []
    for chart, exposure in (("dark", 100_000.0), ("flat", 5000.0)):
        bench.set_chart(chart)
        cam.set("ExposureTime", exposure)
        acc = StackAccumulator()
        for frame in cam.grab(16).frames:
            acc.add(frame)
        stacks.append(acc.stats())
    result = measure_defects(stacks[0], stacks[1], cfa="RGGB")
    found = set()
    for cls in result.counts:
        found |= {(int(r), int(c)) for r, c in zip(*np.nonzero(result.class_mask(cls)),
                                                   strict=True)}
    truth = {(p.row, p.col) for p in cam.sensor.defects}
    assert found == truth
    assert max(c.size for c in result.clusters) == 4  # the 3x3 hot block: 2x2 on the R plane


def test_crosstalk_matrix_mixes_the_channel_responses() -> None:
    from harness.sim.colour_response import channel_response, qe_curves

    plain = make_module(base="small.yaml")
    mix = ((0.8, 0.2, 0.0), (0.1, 0.8, 0.1), (0.0, 0.3, 0.7))
    skewed = make_module({"spectral": {"crosstalk": [list(r) for r in mix]}}, base="small.yaml")
    assert np.allclose(qe_curves(skewed), np.asarray(mix) @ qe_curves(plain))
    white_plain = channel_response(plain, "D65", 1.0)
    white_skewed = channel_response(skewed, "D65", 1.0)
    assert np.allclose(white_skewed, np.asarray(mix) @ white_plain)
