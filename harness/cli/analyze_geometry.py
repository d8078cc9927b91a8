"""``harness analyze geometry``: optical centre and image geometry from a flat field.

FLAT: TIFF or PNG, 8/16-bit, mono, RGB or a raw Bayer mosaic (``--bayer``), first page of a
multi-page TIFF. The optical centre is the centre of the fitted relative-illumination surface
(:func:`harness.analysis.geometry.measure_optical_centre`); ``--json OUT`` writes the figures
(``optical_centre_px``, ``optical_centre_offset_px``, ...) as JSON.

This module imports only typer, rich and the standard library; the analysis is imported when
the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.analyze import analyze_app
from harness.cli.analyze_optics import BayerOpt, BitsOpt, EncodingOpt, JsonOpt, write_json
from harness.cli.app import console, error_boundary

#: ``analyze geometry``: :func:`~harness.analysis.geometry.measure_optical_centre`.
GEOMETRY_FLAGS = {"bayer": "--bayer", "blocks": "--blocks", "dark": "--dark", "flat": "FLAT"}


@analyze_app.command("geometry")
def geometry_command(
    flat: Annotated[Path, typer.Argument(help="Flat-field image (a mean of frames is best).")],
    dark: Annotated[Path | None, typer.Option(
        "--dark", help="Dark image of the same size to subtract (a constant black level does "
        "not move the centre).", dir_okay=False)] = None,
    bayer: BayerOpt = None,
    encoding: EncodingOpt = "linear",
    bits: BitsOpt = None,
    blocks: Annotated[int, typer.Option(
        "--blocks", help="Block means along the long side for the fit (16..1024).")] = 128,
    json_out: JsonOpt = None,
) -> None:
    """Optical centre (centre of the relative-illumination surface) and its offset from the
    image centre ((W-1)/2, (H-1)/2), in pixels."""
    with error_boundary(GEOMETRY_FLAGS):
        from harness.analysis.geometry import measure_optical_centre
        from harness.inputs.image_input import load_image

        img = load_image(flat, bayer=bayer, encoding=encoding, bits=bits)
        dark_data = None
        if dark is not None:
            dark_data = load_image(dark, bayer=bayer, encoding=encoding, bits=bits).data
        res = measure_optical_centre(img.data, bayer=img.bayer, dark=dark_data, blocks=blocks)
        table = Table(title=f"optical centre {flat.name} ({res.image_size_px[0]}x"
                      f"{res.image_size_px[1]} px)")
        for col in ("figure", "x", "y"):
            table.add_column(col)
        for name, (x, y) in (("optical centre (px)", res.optical_centre_px),
                             ("image centre (px)", res.image_centre_px),
                             ("offset (px)", res.optical_centre_offset_px),
                             ("standard error (px)", res.centre_se_px)):
            table.add_row(name, f"{x:.2f}", f"{y:.2f}")
        console.print(table)
        console.print(f"offset radius {res.optical_centre_offset_radius_px:.2f} px; fit RMS "
                      f"{res.fit_rms_pct:.3f} % of the peak; corner RI "
                      + ", ".join(f"{k} {v:.3f}"
                                  for k, v in res.relative_illumination_corners.items()),
                      highlight=False)
        write_json({"image": str(flat), **res.as_dict()}, json_out)


__all__ = ["GEOMETRY_FLAGS", "geometry_command"]
