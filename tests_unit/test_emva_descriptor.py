"""EMVA 1288 descriptor files: reading, writing, bad input, and a cross-check of K and QE
against the reference package ``emva1288`` on the same files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from harness.analysis.emva1288 import measure_emva1288
from harness.errors import ConfigError
from harness.inputs.emva_descriptor import load_image, read_descriptor, write_descriptor
from harness.inputs.stack_input import reduce_descriptor, reduce_emva
from tests_unit.emva_synth import Sensor, write_descriptor_set


def _images(folder: Path, n: int, value: int = 100) -> list[str]:
    (folder / "img").mkdir(exist_ok=True)
    names = []
    for i in range(n):
        tifffile.imwrite(folder / "img" / f"f{i}.tif", np.full((4, 6), value + i, np.uint16))
        names.append(f"img\\f{i}.tif")
    return names


def test_round_trip_and_reference_conventions(tmp_path: Path) -> None:
    imgs = _images(tmp_path, 7)
    path = write_descriptor(tmp_path / "d.txt", bits=12, width=6, height=4,
                            points=[(1000.0, 12.5, imgs[:2]), (1000.0, None, imgs[2:4]),
                                    (2000.0, 25.0, imgs[2:7])])
    text = path.read_text()
    assert "b 1000.0 12.500" in text and "d 1000.0" in text and "i img\\f0.tif" in text
    desc = read_descriptor(path)
    assert (desc.bits, desc.width, desc.height, desc.version) == (12, 6, 4, "4.0")
    kinds = [(p.exposure_ns, p.photons, p.kind) for p in desc.points]
    assert kinds == [(1000.0, 12.5, "temporal"), (1000.0, None, "temporal"),
                     (2000.0, 25.0, "spatial")]
    assert desc.points[0].images[0] == tmp_path / "img" / "f0.tif"


def test_comments_blank_lines_and_decimal_commas(tmp_path: Path) -> None:
    imgs = _images(tmp_path, 2)
    (tmp_path / "d.txt").write_text("# made elsewhere\n\nn 12 6 4\nb 1000,5 3,25\n"
                                    + "".join(f"i {i.replace(chr(92), '/')}\n" for i in imgs))
    desc = read_descriptor(tmp_path / "d.txt")
    assert desc.points[0].exposure_ns == 1000.5 and desc.points[0].photons == 3.25


@pytest.mark.parametrize("body, message", [
    ("b 1 2\ni img\\f0.tif\ni img\\f1.tif\n", "missing 'n"),
    ("n 12 6 4\nn 12 6 4\n", "only one"),
    ("n 12 6\n", "expected 'n"),
    ("n 40 6 4\n", "outside 1..16"),
    ("n 12 6 4\ni img\\f0.tif\n", "before any"),
    ("n 12 6 4\nb 1 2\ni img\\f0.tif\n", "at least 2"),
    ("n 12 6 4\nb x 2\ni img\\f0.tif\ni img\\f1.tif\n", "not a number"),
    ("n 12 6 4\nb 1 -2\ni img\\f0.tif\ni img\\f1.tif\n", ">= 0"),
    ("n 12 6 4\nq 1\n", "unknown record"),
    ("n 12 6 4\nb 1 2\ni img\\missing.tif\ni img\\f1.tif\n", "not found"),
    ("n 12 6 4\nd 1\ni img\\f0.tif\ni img\\f1.tif\nd 1\ni img\\f0.tif\ni img\\f1.tif\n",
     "duplicate"),
    ("n 12 6 4\n", "no 'b' or 'd'"),
])
def test_bad_descriptors_give_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    _images(tmp_path, 2)
    (tmp_path / "d.txt").write_text(body)
    with pytest.raises(ConfigError, match=message) as info:
        read_descriptor(tmp_path / "d.txt")
    assert "\n" not in str(info.value) and "d.txt" in str(info.value)


def test_missing_descriptor_and_bad_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_descriptor(tmp_path / "nope.txt")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ConfigError, match="single-channel"):
        load_image(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "big.tif", np.full((4, 6), 5000, np.uint16))
    with pytest.raises(ConfigError, match="12-bit"):
        load_image(tmp_path / "big.tif", bits=12)
    with pytest.raises(ConfigError, match="expected 4x6"):
        load_image(tmp_path / "big.tif", shape=(6, 4))
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(ConfigError, match=r"allowed: \.tif"):
        load_image(tmp_path / "x.bmp")


def test_png_images_load(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((4, 6), 3000, np.uint16))
    assert load_image(tmp_path / "a.png", bits=12).max() == 3000


def test_a_png_descriptor_set_reduces_as_its_tiff_twin(tmp_path: Path) -> None:
    """The same sweep written as 16-bit PNG and as TIFF (the benchmark's two formats) gives
    the same reduced data: PNG is lossless."""
    sensor = Sensor(height=24, width=32, seed=12)
    tif = write_descriptor_set(tmp_path / "tif", sensor, steps=6, spatial_frames=3)
    png = write_descriptor_set(tmp_path / "png", Sensor(height=24, width=32, seed=12),
                               suffix=".png", steps=6, spatial_frames=3)
    assert {p.suffix for p in (tmp_path / "png" / "images").iterdir()} == {".png"}
    assert reduce_descriptor(png).points == reduce_descriptor(tif).points


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sensor, Path]:
    sensor = Sensor(height=120, width=160, seed=71, full_well_e=20000.0)
    top = 1.1 * (sensor.max_dn - sensor.offset_dn) / sensor.k_dn_per_e
    path = write_descriptor_set(tmp_path_factory.mktemp("emva"), sensor, steps=40,
                                max_electrons=top, spatial_frames=8)
    return sensor, path


def test_descriptor_set_analysis_matches_truth(descriptor_set: tuple[Sensor, Path]) -> None:
    sensor, path = descriptor_set
    res = measure_emva1288(reduce_descriptor(path))
    assert res.system_gain_dn_per_e == pytest.approx(sensor.k_dn_per_e, rel=0.01)
    assert res.quantum_efficiency_pct == pytest.approx(100 * sensor.qe, rel=0.01)
    same, cfa = reduce_emva(path.parent)  # the folder finds its descriptor
    assert cfa is None and measure_emva1288(same).system_gain_dn_per_e == res.system_gain_dn_per_e


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``results(path, **kw)`` runs the reference package on a descriptor (cross-check only,
    never a run-time dependency). Its 1.0.2 release calls np.asfarray, gone in NumPy 2: shim
    it for this test only."""
    if not hasattr(np, "asfarray"):
        monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype),
                            raising=False)
    process = pytest.importorskip("emva1288.process")

    def results(path: Path, **kw: Any) -> Any:
        parser = process.ParseEmvaDescriptorFile(str(path), loglevel=logging.ERROR)
        loaded = process.LoadImageData(parser.images, loglevel=logging.ERROR)
        return process.Results1288(process.Data1288(loaded.data).data, loglevel=logging.ERROR,
                                   **kw)

    return results


def test_cross_check_against_reference_package(descriptor_set: tuple[Sensor, Path],
                                               reference: Any) -> None:
    """Same files, same saturation index (the package's own search is tested below): K, QE,
    dark noise, linearity and DSNU/PRNU agree to 1e-4 relative; the formulas are the same, only
    the arithmetic differs (exact integer sums here, int64 images there)."""
    _, path = descriptor_set
    ours = measure_emva1288(reduce_descriptor(path))
    ref = reference(path, index_u_ysat=ours.saturation_index)
    assert ours.system_gain_dn_per_e == pytest.approx(ref.K, rel=1e-4)
    assert ours.quantum_efficiency_pct == pytest.approx(ref.QE, rel=1e-4)
    assert ours.temporal_dark_noise_dn == pytest.approx(ref.sigma_y_dark, rel=1e-3)
    assert ours.linearity_error_max_pct == pytest.approx(ref.LE_max, abs=1e-3)
    assert ours.dsnu_e == pytest.approx(ref.DSNU1288, rel=1e-3)
    assert ours.prnu_pct == pytest.approx(ref.PRNU1288, rel=1e-3)


def test_reference_saturation_search_fails_on_a_plateau_ours_does_not(tmp_path: Path,
                                                                      reference: Any) -> None:
    """Full well (12 000 e- = 3000 DN) below the ADC range with steps to 1.6x full well: the
    reference package's backward walk stops inside the plateau
    (docs/standards.md#emva-reference-implementation)."""
    sensor = Sensor(height=64, width=80, seed=72, full_well_e=12000.0)
    path = write_descriptor_set(tmp_path, sensor, steps=40, max_electrons=1.6 * 12000.0,
                                spatial_frames=4)
    ours = measure_emva1288(reduce_descriptor(path))
    truth = sensor.true_saturation_e()
    assert ours.saturation_capacity_e == pytest.approx(truth, rel=0.03)
    assert reference(path).u_e_sat > 1.2 * truth


def test_reference_generated_data_set_loads_and_agrees(tmp_path: Path, reference: Any) -> None:
    """A data set written by the reference package's own generator (int32 'mode I' TIFFs,
    backslash paths) loads here; K and QE agree with the package at the same saturation
    index. Its default full well (below the ADC range) also puts its 'spatial' point on the
    plateau, which our spatial_fraction_of_saturation reports (> 1)."""
    generator = pytest.importorskip("emva1288.camera.dataset_generator")
    gen = generator.DatasetGenerator(steps=20, L=4, image_format="tiff", outdir=str(tmp_path),
                                     width=64, height=48, bit_depth=12, seed=3)
    path = Path(gen.descriptor_path)
    assert tifffile.imread(next((tmp_path / "images").iterdir())).dtype == np.int32
    ours = measure_emva1288(reduce_descriptor(path))
    ref = reference(path, index_u_ysat=ours.saturation_index)
    assert ours.system_gain_dn_per_e == pytest.approx(ref.K, rel=1e-6)
    assert ours.quantum_efficiency_pct == pytest.approx(ref.QE, rel=1e-6)
    assert ours.spatial_fraction_of_saturation is not None
    assert ours.spatial_fraction_of_saturation > 1.0
    assert reference(path).u_e_sat > 2 * ours.saturation_capacity_e  # its plateau failure


def test_wide_integer_images_must_fit_16_bits(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "ok.tif", np.full((4, 6), 4000, np.int32))
    assert load_image(tmp_path / "ok.tif", bits=12).dtype == np.uint16
    tifffile.imwrite(tmp_path / "neg.tif", np.full((4, 6), -1, np.int32))
    with pytest.raises(ConfigError, match="do not fit"):
        load_image(tmp_path / "neg.tif")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((4, 6), np.float32))
    with pytest.raises(ConfigError, match="not supported"):
        load_image(tmp_path / "float.tif")
