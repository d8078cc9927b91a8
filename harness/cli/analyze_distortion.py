"""``harness analyze distortion``: radial and SMIA TV distortion from an image of a dot grid.

IMAGE: TIFF or PNG of the dot-grid chart filling the frame (8/16-bit, mono, RGB or a raw Bayer
mosaic with ``--bayer``). ``--json OUT`` writes the figures as JSON (NaN -> null). The analysis
(:mod:`harness.analysis.distortion`) is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.analyze import analyze_app
from harness.cli.analyze_optics import BayerOpt, BitsOpt, EncodingOpt, JsonOpt, write_json
from harness.cli.app import console, error_boundary

#: ``analyze distortion``: :func:`~harness.analysis.distortion.measure_distortion`.
DISTORTION_FLAGS = {"centre": "--centre", "dots": "--dots"}


@analyze_app.command("distortion")
def distortion_command(
    image: Annotated[Path, typer.Argument(help="Image of a dot-grid chart filling the frame.")],
    centre: Annotated[str, typer.Option(
        "--centre", help="Distortion centre: fit (default) or image (fixed at the image "
        "centre).")] = "fit",
    dots: Annotated[str, typer.Option(
        "--dots", help="auto (default), dark (dark dots on a light ground) or light.")] = "auto",
    bayer: BayerOpt = None,
    encoding: EncodingOpt = "linear",
    bits: BitsOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Radial distortion at 0.5, 0.7, 0.9 of the half-diagonal, k1, k2, distortion centre, grid
    rotation and SMIA TV distortion."""
    with error_boundary({**DISTORTION_FLAGS, "image": str(image)}):
        from harness.analysis.distortion import measure_distortion
        from harness.inputs.image_input import gray_image, load_image

        img = load_image(image, bayer=bayer, encoding=encoding, bits=bits)
        res = measure_distortion(gray_image(img), centre=centre, dots=dots)
        table = Table(title=f"distortion {image.name} ({res.dots_used} {res.polarity} dots, "
                      f"pitch {res.pitch_px:.1f} px)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for r, d in res.radial_distortion_pct.items():
            table.add_row(f"D at r = {r} (%)", f"{d:+.3f}")
        table.add_row("SMIA TV distortion (%)", f"{res.smia_tv_distortion_pct:+.3f}")
        table.add_row("k1, k2", f"{res.k1:+.5f}, {res.k2:+.5f}")
        table.add_row(f"centre ({res.centre_mode}) (px)",
                      f"{res.centre_px[0]:.2f}, {res.centre_px[1]:.2f}")
        table.add_row("rotation (°)", f"{res.rotation_deg:+.3f}")
        table.add_row("fit residual rms / max (px)",
                      f"{res.rms_residual_px:.3f} / {res.max_residual_px:.3f}")
        console.print(table)
        for w in res.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        write_json({"image": str(image), **res.as_dict()}, json_out)


__all__ = ["DISTORTION_FLAGS", "distortion_command"]
