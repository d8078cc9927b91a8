"""Blemish detection (harness/analysis/blemish.py) on rendered flat fields.

Ground truth is the generator's parameters (tests_unit/blemish_synth.py): each spot's centre,
its full width at half its centre contrast and that contrast are analytic for both profiles.

The issue's acceptance, tested as stated on three random 12 MP frames: every spot of contrast
>= 1.5 % and diameter 10-80 px found, centre within 2 px, diameter within 15 %, contrast within
20 % (relative), at most one false positive per frame; on 1 % PRNU, shot noise and cos⁴-like
shading to 0.4 at the corners, with hot, dead and clustered defect pixels.

The shot noise is that of a flat averaged over 16 frames of 2000 e- (32 000 e- per pixel at
the centre, 12 800 in the corners): what a blemish test captures. One frame of 2000 e- (2.2 %
shot noise per pixel) cannot meet the tolerances for the faintest smallest spots: a 10 px,
1.5 % Gaussian spot then has a matched-filter SNR of about 4.5, below any detection threshold
that keeps false positives under one per frame; the tests say how far that goes
(``test_single_2000e_frame_finds_the_clear_spots``). Measured over 20 such frames (240 spots,
seeds 20-39) the worst errors and the rare misses are listed in docs/standards.md#blemishes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.analysis.blemish import BlemishOptions, BlemishResult, measure_blemishes
from harness.errors import ConfigError
from tests_unit.blemish_synth import Spot, random_spots, render_flat

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    from harness.cli import app

    res = runner.invoke(app, ["analyze", *args])
    return res.exit_code, res.output


#: Issue 18's tolerances.
POS_PX, DIAM_REL, CONTRAST_REL = 2.0, 0.15, 0.20
MEAN_OF_16 = 16 * 2000.0


def match(res: BlemishResult, spots: list[Spot]) -> tuple[list[tuple[Spot, float, float, float]],
                                                            list[Spot], int]:
    """(spot, centre error px, diameter error rel, contrast error rel) for each spot found
    within half its diameter, the spots missed, and the number of false positives."""
    found, missed, used = [], [], set()
    for s in spots:
        near = [b for b in res.blemishes if math.hypot(b.x - s.x, b.y - s.y) < s.diameter / 2]
        if not near:
            missed.append(s)
            continue
        b = min(near, key=lambda b: math.hypot(b.x - s.x, b.y - s.y))
        used.add(id(b))
        found.append((s, math.hypot(b.x - s.x, b.y - s.y), b.diameter_px / s.diameter - 1,
                      b.contrast_pct / (100 * s.contrast) - 1))
    return found, missed, sum(id(b) not in used for b in res.blemishes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_12mp_flat_meets_the_issue_tolerances(seed: int) -> None:
    """12 spots per frame, diameter 10-80 px and contrast 1.5-10 % (log-uniform), Gaussian and
    flat-topped profiles, centres anywhere (some cut by the border). Tolerances: the issue's."""
    rng = np.random.default_rng(seed)
    spots = random_spots(rng, 12)
    flat = render_flat(spots, electrons=MEAN_OF_16, rng=rng)
    res = measure_blemishes(flat)
    found, missed, false = match(res, spots)
    assert not missed
    assert false <= 1
    for s, dpos, dd, dc in found:
        assert dpos <= POS_PX, (s, dpos)
        assert abs(dd) <= DIAM_REL, (s, dd)
        assert abs(dc) <= CONTRAST_REL, (s, dc)
    assert (res.width, res.height) == (4032, 3024)


def test_spots_on_the_border_meet_the_issue_tolerances() -> None:
    """Large spots on the frame border: one 49 px from the bottom edge, one centred 4 px from
    the left edge near a corner, one cut by the right edge. The background mesh held its
    border blocks at the spot's depth (point reflection): before the border fill the first two
    were measured 4.2 and 2.8 px off centre and 19 % and 16 % low in contrast (on this frame
    the first 3.3 px); now 0.83, 1.24 and 0.94 px, contrast within 7.1 %."""
    spots = [Spot(2379.4, 2974.1, 76.5, 0.0266, "gauss"), Spot(4.1, 131.9, 76.6, 0.0296, "disc"),
             Spot(4020.0, 1500.0, 60.0, 0.03, "gauss")]
    res = measure_blemishes(render_flat(spots, electrons=MEAN_OF_16,
                                        rng=np.random.default_rng(31)))
    found, missed, false = match(res, spots)
    assert not missed and false == 0
    for s, dpos, dd, dc in found:
        assert dpos <= POS_PX and abs(dd) <= DIAM_REL and abs(dc) <= CONTRAST_REL, (s, dpos,
                                                                                   dd, dc)


def test_a_spot_below_the_last_whole_mesh_block_is_measured() -> None:
    """3024 rows are 94.5 mesh blocks: a spot centred 2.5 px from the bottom edge sits in the
    part block. Noise-free, it is measured within 0.3 px, 2 % and 6 % (the noise-free
    tolerances); before the part block was completed the mesh saw only its flank and the
    contrast came out 25 % low."""
    spot = Spot(3940.4, 3021.5, 49.0, 0.016, "gauss")
    res = measure_blemishes(render_flat([spot], electrons=None, prnu=0.0, defects=0))
    found, missed, false = match(res, [spot])
    assert not missed and false == 0
    [(_, dpos, dd, dc)] = found
    assert dpos <= 0.3 and abs(dd) <= 0.02 and abs(dc) <= 0.06, (dpos, dd, dc)


def test_bayer_mosaic_reports_full_frame_coordinates() -> None:
    """An RGGB mosaic with white-balance-like gains (R 0.5, B 0.7): the spots are achromatic,
    measured on the 2 x 2 luminance plane, and reported in mosaic pixels. Noise-free apart from
    1 % PRNU (measured: centre within 0.52 px, diameter 0.3 %, contrast 3.4 %), so the
    tolerances are tighter than the issue's: 1 px, 5 %, 10 %."""
    spots = [Spot(401.3, 300.7, 24.0, 0.03, "gauss"), Spot(1500.0, 1000.0, 60.0, 0.02, "disc"),
             Spot(1100.5, 250.2, 12.0, 0.05, "disc")]
    flat = render_flat(spots, (1200, 1800), electrons=None, defects=20,
                       bayer_gains=(0.5, 1.0, 1.0, 0.7), rng=np.random.default_rng(5))
    res = measure_blemishes(flat, bayer="RGGB")
    found, missed, false = match(res, spots)
    assert not missed and false == 0
    for s, dpos, dd, dc in found:
        assert dpos <= 1.0 and abs(dd) <= 0.05 and abs(dc) <= 0.10, (s, dpos, dd, dc)


def test_noise_free_spots_are_exact() -> None:
    """Without noise or PRNU the method's own bias shows (on a 1400 x 2000 frame, whose
    cos⁴ shading to 0.4 curves 2x faster per pixel than at 12 MP). Measured: centre <= 0.24
    px, diameter within 1.3 %, contrast within 4.5 % (the 80 px Gaussian's tails reach the
    background ring; the Butterworth disc's tails are not the model's). Tolerances: 0.3 px,
    2 %, 6 %."""
    spots = [Spot(700.0, 500.0, 10.0, 0.015, "gauss"), Spot(1300.2, 900.9, 80.0, 0.015, "gauss"),
             Spot(300.0, 1000.0, 10.0, 0.015, "disc"), Spot(1600.0, 300.0, 80.0, 0.08, "disc")]
    res = measure_blemishes(render_flat(spots, (1400, 2000), electrons=None, prnu=0.0,
                                        defects=0))
    found, missed, false = match(res, spots)
    assert not missed and false == 0
    for s, dpos, dd, dc in found:
        assert dpos <= 0.3 and abs(dd) <= 0.02 and abs(dc) <= 0.06, (s, dpos, dd, dc)


def test_shading_prnu_and_defects_make_no_blemish() -> None:
    """A 12 MP flat without spots: strong shading (0.25 at the corners), 1 % PRNU, one frame
    of shot noise, 400 hot and dead pixels with clusters, a 4 x 4 dead cluster, a 3 x 3 hot
    one and a 40 px dead column segment: nothing is a blemish."""
    rng = np.random.default_rng(7)
    flat = render_flat([], corner=0.25, electrons=2000.0, defects=200, rng=rng)
    flat[1000:1004, 2000:2004] = 0.0
    flat[500:503, 3000:3003] *= 4.0
    flat[2000:2040, 1234] = 0.0
    assert measure_blemishes(flat).count == 0
    # and the same without any noise: the contrast floor, not the noise, keeps it empty
    clean = render_flat([], (1500, 2000), corner=0.25, electrons=None, prnu=0.0, defects=50)
    assert measure_blemishes(clean).count == 0


def test_single_2000e_frame_finds_the_clear_spots() -> None:
    """One frame of 2000 e- (2.2 % shot noise per pixel): spots of matched-filter SNR >= 10
    (here 20-60 px at 3-8 %) still meet the issue's tolerances; at most one false positive."""
    spots = [Spot(800.0, 600.0, 20.0, 0.05, "gauss"), Spot(2500.0, 1500.0, 40.0, 0.03, "disc"),
             Spot(3500.0, 2500.0, 60.0, 0.03, "gauss"), Spot(1200.0, 2200.0, 30.0, 0.08, "disc")]
    rng = np.random.default_rng(11)
    res = measure_blemishes(render_flat(spots, electrons=2000.0, rng=rng))
    found, missed, false = match(res, spots)
    assert not missed and false <= 1
    for s, dpos, dd, dc in found:
        assert dpos <= POS_PX and abs(dd) <= DIAM_REL and abs(dc) <= CONTRAST_REL, s


def test_min_contrast_and_diameter_filter_the_report() -> None:
    """Options: a 1.2 % spot is reported at the default 1 % and not at 2 %; a 14 px spot not
    with --min-diameter 20. A bright spot (negative contrast) is reported as such."""
    spots = [Spot(400.0, 400.0, 30.0, 0.012, "gauss"), Spot(1200.0, 700.0, 14.0, 0.05, "gauss"),
             Spot(900.0, 300.0, 30.0, -0.03, "gauss")]
    flat = render_flat(spots, (1000, 1600), electrons=None, defects=0)
    res = measure_blemishes(flat)
    assert res.count == 3
    assert min(res.blemishes, key=lambda b: b.contrast_pct).contrast_pct == pytest.approx(
        -3.0, rel=0.05)
    assert measure_blemishes(flat, options=BlemishOptions(min_contrast_pct=2.0)).count == 2
    assert measure_blemishes(flat, options=BlemishOptions(min_diameter_px=20.0)).count == 2
    d = res.as_dict()
    assert d["count"] == 3 and set(d["blemishes"][0]) == {"x", "y", "diameter_px",
                                                           "contrast_pct", "area_px", "snr"}
    b = res.blemishes[0]
    assert b.area_px == pytest.approx(math.pi * b.diameter_px**2 / 4)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"min_contrast_pct": 0.0}, "min_contrast_pct"),
    ({"min_diameter_px": 1.0}, "min_diameter_px"),
    ({"threshold_sigma": 2.0}, "threshold_sigma"),
    ({"defect_sigma": 1.0}, "defect_sigma"),
])
def test_bad_options(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        BlemishOptions(**kwargs)
    assert err.value.field == field and "\n" not in str(err.value)


def test_bad_inputs() -> None:
    ok = np.ones((400, 400), np.float32)
    cases: list[tuple[np.ndarray, str | None, str]] = [
        (np.ones((400, 400, 3)), None, "2-D"),
        (np.ones((100, 400)), None, "too small"),
        (ok, "RGBG", "allowed"),
        (np.zeros((400, 400)), None, "no signal"),
        (np.full((400, 400), np.nan), None, "NaN"),
        (np.ones((400, 400), bool), None, "real numbers"),
    ]
    for arr, bayer, text in cases:
        with pytest.raises(ConfigError, match=text):
            measure_blemishes(arr, bayer=bayer)
    assert measure_blemishes(ok).count == 0


# --------------------------------------------------------------------------- command line


def _write_u16(path: Path, img: np.ndarray, scale: float) -> None:
    tifffile.imwrite(path, np.clip(np.round(img * scale), 0, 65535).astype(np.uint16))


def test_cli_json_mono_and_bayer(tmp_path: Path) -> None:
    """``harness analyze blemish FLAT --json OUT`` on 16-bit TIFFs (mono, then an RGGB mosaic
    with --bayer and a black level): the issue's JSON keys, spots within 1 px / 5 % / 10 %
    (1 % PRNU only, quantised to 16 bits)."""
    spots = [Spot(500.0, 400.0, 30.0, 0.04, "gauss"), Spot(1300.0, 800.0, 50.0, 0.03, "disc")]
    flat = render_flat(spots, (1100, 1600), electrons=None, defects=10,
                       rng=np.random.default_rng(3))
    _write_u16(tmp_path / "flat.tif", flat, 10.0)
    code, out = _run("blemish", str(tmp_path / "flat.tif"), "--json", str(tmp_path / "o.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["count"] == 2 and data["width"] == 1600 and data["height"] == 1100
    assert {"x", "y", "diameter_px", "contrast_pct", "area_px"} <= set(data["blemishes"][0])
    for s in spots:
        b = min(data["blemishes"], key=lambda b: math.hypot(b["x"] - s.x, b["y"] - s.y))
        assert math.hypot(b["x"] - s.x, b["y"] - s.y) <= 1.0
        assert b["diameter_px"] == pytest.approx(s.diameter, rel=0.05)
        assert b["contrast_pct"] == pytest.approx(100 * s.contrast, rel=0.10)
    raw = render_flat(spots, (1100, 1600), electrons=None, defects=10,
                      bayer_gains=(0.5, 1.0, 1.0, 0.7), rng=np.random.default_rng(3))
    _write_u16(tmp_path / "raw.tif", raw + 200.0, 10.0)  # black level 2000 DN
    code, out = _run("blemish", str(tmp_path / "raw.tif"), "--bayer", "RGGB", "--black-level",
                     "2000", "--json", str(tmp_path / "b.json"))
    assert code == 0, out
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["count"] == 2
    for s in spots:
        b = min(data["blemishes"], key=lambda b: math.hypot(b["x"] - s.x, b["y"] - s.y))
        assert math.hypot(b["x"] - s.x, b["y"] - s.y) <= 1.0
        assert b["contrast_pct"] == pytest.approx(100 * s.contrast, rel=0.10)
    code, out = _run("blemish", str(tmp_path / "flat.tif"), "--min-contrast", "3.5")
    assert code == 0 and "1 blemish(es)" in out


@pytest.mark.parametrize(("args", "text"), [
    (["missing.tif"], "file not found"),
    (["flat.tif", "--min-contrast", "0"], "--min-contrast: 0.0 outside (0, 100)"),
    (["flat.tif", "--min-diameter", "500"], "--min-diameter: 500.0 outside [2, 200] px"),
    (["flat.tif", "--threshold", "1"], "--threshold: 1.0 outside [3, 50]"),
    (["flat.tif", "--bayer", "XYZW"], "--bayer"),
    (["flat.tif", "--black-level", "-1"], "--black-level: must be in"),
    (["small.tif"], "FLAT: flat 100x100 is too small"),
])
def test_cli_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                       text: str) -> None:
    """Bad input: exit code 2 and one line naming the option."""
    monkeypatch.chdir(tmp_path)
    _write_u16(tmp_path / "flat.tif", np.full((300, 300), 0.5), 65535.0)
    _write_u16(tmp_path / "small.tif", np.full((100, 100), 0.5), 65535.0)
    code, out = _run("blemish", *args)
    assert code == 2, out
    assert text in " ".join(out.split())
