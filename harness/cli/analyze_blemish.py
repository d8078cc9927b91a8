"""``harness analyze blemish``: particle shadows (blemishes) in a flat field on disk.

FLAT: TIFF or PNG, 8/16-bit or float, mono, RGB (taken as its luminance) or a raw Bayer mosaic
(``--bayer``), linear camera data. ``--json OUT`` writes the spots as JSON (NaN -> null). The
method is :mod:`harness.analysis.blemish` (docs/standards.md#blemishes).

This module imports only typer, rich and the standard library at its top; the analysis is
imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.analyze import analyze_app
from harness.cli.analyze_optics import BayerOpt, BitsOpt, JsonOpt, write_json
from harness.cli.app import console, error_boundary
from harness.errors import ConfigError

#: ``analyze blemish``: :class:`~harness.analysis.blemish.BlemishOptions` and
#: :func:`~harness.analysis.blemish.measure_blemishes`.
BLEMISH_FLAGS = {"min_contrast_pct": "--min-contrast", "min_diameter_px": "--min-diameter",
                 "threshold_sigma": "--threshold", "bayer": "--bayer", "flat": "FLAT"}


@analyze_app.command("blemish")
def blemish_command(
    flat: Annotated[Path, typer.Argument(help="Flat field (ideally the mean of several frames).")],
    bayer: BayerOpt = None,
    bits: BitsOpt = None,
    black_level: Annotated[float, typer.Option(
        "--black-level", help="Offset subtracted first, in the file's digital numbers (an "
        "offset left in dilutes the contrast).")] = 0.0,
    min_contrast: Annotated[float, typer.Option(
        "--min-contrast", help="Smallest contrast reported, % (100 x (1 - spot / "
        "background) at the centre).")] = 1.0,
    min_diameter: Annotated[float, typer.Option(
        "--min-diameter", help="Smallest diameter reported (full width at half contrast), "
        "px.")] = 6.0,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Detection threshold in noise sigmas of the matched filter.")] = 5.5,
    json_out: JsonOpt = None,
) -> None:
    """Blemishes (dust shadows): centre, diameter at half contrast and contrast of each spot."""
    with error_boundary(BLEMISH_FLAGS):
        from harness.analysis.blemish import BlemishOptions, measure_blemishes
        from harness.inputs.image_input import load_image, luminance

        opt = BlemishOptions(min_contrast_pct=min_contrast, min_diameter_px=min_diameter,
                             threshold_sigma=threshold)
        img = load_image(flat, bayer=bayer, bits=bits)
        full = float(2**img.bit_depth - 1) if img.saturation is not None else 1.0
        if not 0 <= black_level < full:
            raise ConfigError(f"must be in 0..{full:g} DN, got {black_level:g}",
                              field="--black-level")
        data = luminance(img.data) if img.kind == "rgb" else img.data
        if black_level:
            data = data - black_level / full
        res = measure_blemishes(data, bayer=img.bayer, options=opt)
        table = Table(title=f"blemishes in {flat.name} ({res.width}x{res.height}, pixel noise "
                      f"{res.noise_pct:.2f} %)")
        for col in ("#", "x", "y", "diameter px", "contrast %", "area px", "SNR"):
            table.add_column(col, justify="right")
        for i, b in enumerate(res.blemishes, 1):
            table.add_row(str(i), f"{b.x:.1f}", f"{b.y:.1f}", f"{b.diameter_px:.1f}",
                          f"{b.contrast_pct:.2f}", f"{b.area_px:.0f}", f"{b.snr:.1f}")
        console.print(table)
        console.print(f"{res.count} blemish(es) with contrast >= {opt.min_contrast_pct:g} % and "
                      f"diameter >= {opt.min_diameter_px:g} px")
        write_json({"flat": str(flat), **res.as_dict()}, json_out)


__all__ = ["BLEMISH_FLAGS", "blemish_command"]
