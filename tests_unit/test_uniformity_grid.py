"""ISO 17957 shading grid of ``measure_uniformity``, its heat map and ``analyze uniformity``.

Ground truth is computed without cv2: on a flat that is constant within each cell the cell
means are the generator's levels, and the figures follow from the formulas of the module
docstring (luminance 100 Σ w_c C/C_centre with Rec. 709 weights, colour deviation
100 ((C/G) / (C/G)_centre - 1)); on a flat that does not divide into whole cells the cell
means are area averages computed with explicit overlap weights in numpy. Noise-free data; the
analysis holds the channel planes and their cell sums in float32 (relative error ~1e-6), so
figures in % agree to 1e-3 %: rounding only.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from harness.analysis.uniformity import (
    LUMA_WEIGHTS,
    UniformityOptions,
    measure_uniformity,
    shading_grid,
)
from harness.cli import app
from harness.errors import ConfigError
from harness.evidence import plots

ROWS = COLS = 11
CELL_H, CELL_W = 10, 14  # channel-plane pixels per cell
SITES = {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}  # RGGB

runner = CliRunner()


def cell_levels(seed: int = 0) -> dict[str, np.ndarray]:
    """Per-cell channel levels: a vignetting-like falloff times random colour casts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:ROWS * 1j, -1:1:COLS * 1j]
    base = 1.0 - 0.3 * (xx**2 + yy**2)
    return {"R": 900.0 * base * rng.uniform(0.9, 1.1, (ROWS, COLS)),
            "G": 2000.0 * base * rng.uniform(0.95, 1.05, (ROWS, COLS)),
            "B": 1300.0 * base * rng.uniform(0.9, 1.1, (ROWS, COLS))}


def mosaic(levels: dict[str, np.ndarray], offset: float) -> np.ndarray:
    """RGGB mosaic, each channel constant within a cell (Gr = Gb = G)."""
    h, w = 2 * ROWS * CELL_H, 2 * COLS * CELL_W
    out = np.empty((h, w))
    for site, (r0, c0) in SITES.items():
        plane = np.kron(levels[site[0]], np.ones((CELL_H, CELL_W)))
        out[r0::2, c0::2] = plane
    return out + offset


def test_rggb_cells_match_the_formulas() -> None:
    """Each cell's luminance and R/G, B/G deviation equal the closed forms (to 1e-3 %)."""
    lv = cell_levels()
    flat = mosaic(lv, 64.0)
    res = measure_uniformity(flat, dark_mean=np.full(flat.shape, 64.0), cfa="RGGB")
    grid = res.iso_grid
    assert grid is not None and (grid.rows, grid.cols) == (ROWS, COLS)
    c = (ROWS // 2, COLS // 2)
    rel = {k: v / v[c] for k, v in lv.items()}
    lum = 100 * sum(w * rel[k] for k, w in zip("RGB", LUMA_WEIGHTS, strict=True))
    np.testing.assert_allclose(grid.luminance_pct, lum, atol=1e-3)
    assert grid.luminance_pct[c[0]][c[1]] == pytest.approx(100.0, abs=1e-9)
    for k in ("R", "B"):
        dev = 100 * ((lv[k] / lv["G"]) / (lv[k][c] / lv["G"][c]) - 1)
        np.testing.assert_allclose(grid.colour_deviation_pct[f"{k}/G"], dev, atol=1e-3)
        assert grid.colour_deviation_max_pct[f"{k}/G"] == pytest.approx(np.abs(dev).max(),
                                                                      abs=1e-3)
        assert np.abs(dev).max() > 5  # the casts are visible
    assert grid.luminance_min_pct == pytest.approx(lum.min(), abs=1e-3)
    assert grid.luminance_max_pct == pytest.approx(lum.max(), abs=1e-3)


def area_means(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Cell means with fractional pixels weighted by their overlap (independent of cv2)."""

    def weights(n: int, cells: int) -> np.ndarray:
        edges = np.linspace(0, n, cells + 1)
        px = np.arange(n)
        lo = np.maximum(edges[:-1, None], px[None, :])
        hi = np.minimum(edges[1:, None], px[None, :] + 1)
        return np.clip(hi - lo, 0, None) / (n / cells)

    return weights(img.shape[0], rows) @ img @ weights(img.shape[1], cols).T


def test_mono_grid_on_cells_that_are_not_whole_pixels() -> None:
    """A 151 x 203 mono flat (not a multiple of 11): cell means are area averages, so the
    luminance grid equals the numpy overlap-weighted means / centre cell (to 1e-3 %); no
    colour grids."""
    yy, xx = np.mgrid[0:151, 0:203].astype(float)
    flat = 3000.0 * (1 - 0.4 * (((xx - 90) / 101) ** 2 + ((yy - 80) / 75) ** 2)) + 5 * np.sin(xx)
    grid = shading_grid({"Y": flat.astype(np.float32)})
    truth = area_means(flat, ROWS, COLS)
    np.testing.assert_allclose(grid.luminance_pct, 100 * truth / truth[5, 5], atol=1e-3)
    assert grid.colour_deviation_pct == {} and grid.colour_deviation_max_pct == {}
    res = measure_uniformity(flat, options=UniformityOptions(iso_grid_rows=7, iso_grid_cols=9))
    assert res.iso_grid is not None and len(res.iso_grid.luminance_pct) == 7
    truth = area_means(flat, 7, 9)
    np.testing.assert_allclose(res.iso_grid.luminance_pct, 100 * truth / truth[3, 4], atol=1e-3)


def test_existing_outputs_are_kept_and_the_grid_is_added() -> None:
    flat = mosaic(cell_levels(1), 0.0)
    payload = measure_uniformity(flat, cfa="RGGB").as_dict()
    assert list(payload) == ["relative_illumination_min", "grid_max_deviation_pct",
                             "colour_shading_max_pct", "channels", "ratio_grids",
                             "iso17957_grid"]
    iso = payload["iso17957_grid"]
    assert set(iso) == {"rows", "cols", "luminance_min_pct", "luminance_max_pct",
                        "colour_deviation_max_pct", "luminance_pct", "colour_deviation_pct"}
    assert set(iso["colour_deviation_pct"]) == {"R/G", "B/G"}
    assert len(iso["luminance_pct"]) == ROWS and len(iso["luminance_pct"][0]) == COLS
    json.dumps(payload, allow_nan=False)


def test_bad_grid_options_and_input() -> None:
    for kwargs in ({"iso_grid_rows": 10}, {"iso_grid_cols": 1}):
        with pytest.raises(ConfigError, match="odd number of cells"):
            UniformityOptions(**kwargs)
    with pytest.raises(ConfigError, match="odd sides"):
        shading_grid({"Y": np.ones((40, 40), np.float32)}, 4, 5)
    with pytest.raises(ConfigError, match="no signal in the centre cell"):
        shading_grid({"Y": np.zeros((40, 40), np.float32)})
    with pytest.raises(ConfigError, match="too small for a 11x11 grid"):
        measure_uniformity(np.ones((20, 60)), options=UniformityOptions(grid_rows=3,
                                                                         grid_cols=3))


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    return img[..., ::-1].astype(int)  # RGB


def test_heat_map_shows_the_colour_casts() -> None:
    """Three panels (luminance, R/G, B/G); a positive R/G cast fills its cells with red (the
    colour bars alone hold ~6000 reddish pixels at 100 dpi; the cast adds ~50 000), a
    negative one with blue."""
    yy, xx = np.mgrid[-1:1:11j, -1:1:11j]
    lum = 100 - 40 * (xx**2 + yy**2)

    def reds(png: bytes) -> int:
        img = decode(png)
        return int(((img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)).sum())

    zero = np.zeros_like(lum)
    cast = plots.shading_grid_map(lum, {"R/G": 6 * xx**2, "B/G": zero})
    flat = plots.shading_grid_map(lum, {"R/G": zero, "B/G": zero})
    blue = plots.shading_grid_map(lum, {"R/G": -6 * xx**2, "B/G": zero})
    mono = plots.shading_grid_map(lum)
    assert reds(cast) > reds(flat) + 20000 and reds(blue) == reds(flat)
    assert decode(cast).shape[1] > 2 * decode(mono).shape[1]
    with pytest.raises(ValueError, match="2-D grid"):
        plots.shading_grid_map(np.ones(5))
    with pytest.raises(ValueError, match="colour grid 'R/G' has shape"):
        plots.shading_grid_map(lum, {"R/G": np.ones((3, 3))})


def test_cli_prints_writes_and_plots_the_grid(tmp_path: Path) -> None:
    frames = [mosaic(cell_levels(2), 64.0).astype(np.uint16)] * 2
    tifffile.imwrite(tmp_path / "flat.tif", np.stack(frames), photometric="minisblack")
    out, folder = tmp_path / "u.json", tmp_path / "plots"
    res = runner.invoke(app, ["analyze", "uniformity", str(tmp_path / "flat.tif"), "--bayer",
                              "RGGB", "--json", str(out), "--plots", str(folder)])
    assert res.exit_code == 0, res.output
    assert "ISO 17957 grid 11x11: luminance" in res.stdout
    assert "R/G max |deviation|" in res.stdout
    assert sum(line.startswith("  ") for line in res.stdout.splitlines()) == ROWS
    grid = json.loads(out.read_text())["iso17957_grid"]
    assert grid["luminance_pct"][5][5] == pytest.approx(100.0)
    assert (folder / "shading_grid.png").read_bytes().startswith(b"\x89PNG")
    (tmp_path / "file").write_text("x")
    bad = runner.invoke(app, ["analyze", "uniformity", str(tmp_path / "flat.tif"), "--plots",
                              str(tmp_path / "file" / "sub")])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.output
