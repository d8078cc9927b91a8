"""``harness analyze chromatic``: lateral chromatic displacement (ISO 19084) from slanted edges.

IMAGE: a raw Bayer mosaic (``--bayer``; the colour planes are compared on their own sites, the
preferred input) or a linear RGB image. ROIs: ``--roi`` or the centre and corner squares of a
slanted-square chart. ``--json OUT`` writes per-ROI displacements and the summary (NaN -> null).
This module imports only typer, rich and the standard library at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.analyze import analyze_app
from harness.cli.analyze_optics import BayerOpt, BitsOpt, EncodingOpt, JsonOpt, write_json
from harness.cli.app import console, error_boundary

#: The parameters that :func:`~harness.analysis.chromatic.measure_lateral_ca` errors name ->
#: this command's options.
CHROMATIC_FLAGS = {"bayer": "--bayer", "centre": "--centre", "roi": "--roi"}


def _parse_centre(text: str) -> tuple[float, float]:
    from harness.errors import ConfigError

    try:
        cx, cy = (float(t) for t in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"expected x,y as two numbers, got {text!r}", field="--centre") from None
    return cx, cy


@analyze_app.command("chromatic")
def chromatic_command(
    image: Annotated[Path, typer.Argument(help="Image holding slanted edges (raw mosaic or RGB).")],
    roi: Annotated[list[str] | None, typer.Option(
        "--roi", help="x,y,w,h of an edge ROI (repeatable). Default: find the centre and corner "
        "squares of a slanted-square chart, or the whole image if it holds one edge.")] = None,
    bayer: BayerOpt = None,
    bits: BitsOpt = None,
    encoding: EncodingOpt = "linear",
    centre: Annotated[str | None, typer.Option(
        "--centre", help="x,y of the optical centre in pixels (default: the image centre).")]
        = None,
    json_out: JsonOpt = None,
) -> None:
    """Lateral chromatic displacement: R and B edge position minus G's along each edge normal
    (pixels, positive away from the centre), and the worst as % of the half-diagonal."""
    with error_boundary(CHROMATIC_FLAGS):
        from harness.analysis.chromatic import measure_lateral_ca
        from harness.analysis.edges import find_edge_rois, parse_roi
        from harness.errors import ConfigError
        from harness.inputs.image_input import gray_image, load_image

        img = load_image(image, bayer=bayer, encoding=encoding, bits=bits)
        if img.kind == "mono":
            raise ConfigError("lateral CA compares colour planes: give the raw mosaic's pattern "
                              "(RGGB, GRBG, GBRG or BGGR), or an RGB image", source=str(image),
                              field="--bayer")
        centre_xy = _parse_centre(centre) if centre is not None else None
        rois = ([parse_roi(r, img.data.shape) for r in roi] if roi
                else find_edge_rois(gray_image(img)))
        res = measure_lateral_ca(img.data, rois, bayer=img.bayer, centre=centre_xy,
                                 saturation=img.saturation)
        table = Table(title=f"lateral chromatic displacement {image.name} (px along the edge "
                      "normal, + away from the centre)")
        notes = any(r.warnings for r in res.rois)
        for col in ("ROI", "radius px", "R-G px", "B-G px", "±1σ px",
                    *(("warnings",) if notes else ())):
            table.add_column(col, no_wrap=col != "warnings")
        for r in res.rois:
            table.add_row(r.label, f"{r.radius_px:.0f}", f"{r.shift_r_g_px:+.3f}",
                          f"{r.shift_b_g_px:+.3f}",
                          f"{max(r.shift_r_g_se_px, r.shift_b_g_se_px):.3f}",
                          *(("; ".join(r.warnings),) if notes else ()))
        console.print(table)
        console.print(f"lateral CA max {res.lateral_ca_max_px:.3f} px = {res.lateral_ca_pct:.4f} "
                      f"% of the half-diagonal ({res.worst_channel}-G at {res.worst_roi})")
        write_json({"image": str(image), "bayer": img.bayer, **res.as_dict()}, json_out)


__all__ = ["CHROMATIC_FLAGS", "chromatic_command"]
