"""``harness analyze sfr | colour | focus``: optics figures from images on disk.

IMAGE: TIFF or PNG, 8/16-bit, mono, RGB or a raw Bayer mosaic (``--bayer``); values are linear
camera data unless ``--encoding srgb``. ``--json OUT`` writes the figures as JSON (NaN -> null).

Each command imports the analysis it runs when it runs (colour-science alone takes about a
second to import): this module itself imports only typer, rich and the standard library.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.analyze import analyze_app
from harness.cli.app import console, error_boundary
from harness.errors import ConfigError
from harness.jsonsafe import json_safe

BayerOpt = Annotated[str | None, typer.Option(
    "--bayer", help="Raw Bayer mosaic: RGGB, GRBG, GBRG or BGGR (colour at (0,0),(0,1),(1,0),"
    "(1,1)).")]
EncodingOpt = Annotated[str, typer.Option(
    "--encoding", help="linear (camera data, default) or srgb (decoded with colour-science).")]
BitsOpt = Annotated[int | None, typer.Option(
    "--bits", help="Significant bits of integer data (e.g. 12 in a 16-bit file): sets full scale "
    "and the clip level. Default: the container's (8 or 16).", min=1, max=16)]
# The parameters that analysis errors name -> this command's options (see error_boundary).
#: ``analyze sfr``: :func:`~harness.analysis.sfr.measure_sfr_rois` (and, for ROIs given with
#: --roi, :func:`~harness.analysis.edges.parse_roi` and the ROIs' own errors: ``roi``).
SFR_FLAGS = {"fit_order": "--fit-order", "method": "--method"}
#: ``analyze colour``: :func:`~harness.analysis.colour.measure_colour`.
COLOUR_FLAGS = {"illuminant": "--illuminant", "corners": "--corners",
                "black_level": "--black-level"}
#: ``analyze focus``: :func:`~harness.analysis.focus.measure_focus_sweep`.
FOCUS_FLAGS = {"metric": "--metric", "model": "--fit"}

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the figures to this JSON "
                                              "file.", dir_okay=False)]


def write_json(payload: dict[str, Any], target: Path | None) -> None:
    if target is None:
        return
    try:
        target.write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write JSON: {exc.strerror}", source=str(target)) from None
    console.print(f"JSON written to {target}")


def _f(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"


def _parse_floats(text: str, field: str, count: int) -> list[float]:
    try:
        values = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(f"expected {count} comma-separated numbers, got {text!r}",
                          field=field) from None
    if len(values) != count:
        raise ConfigError(f"expected {count} comma-separated numbers, got {len(values)}",
                          field=field)
    return values


def load_ccm(path: Path) -> tuple[Any, Any]:
    """(3x3 CCM, gains or None) from a JSON or YAML file: a bare 3x3 list, or a mapping with
    ``ccm`` and optionally ``wb_gains`` (R, G, B)."""
    import yaml

    from harness.analysis.colour import check_ccm, check_wb_gains

    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=src, field="--ccm") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                          f"{exc}", source=src, field="--ccm") from None
    if isinstance(data, dict):
        unknown = sorted(set(map(str, data)) - {"ccm", "wb_gains"})
        if unknown or "ccm" not in data:
            raise ConfigError(f"expected keys ccm and optionally wb_gains, found "
                              f"{', '.join(map(str, data)) or 'none'}", source=src)
        gains = data.get("wb_gains")
        return (check_ccm(data["ccm"], field="ccm", source=src),
                None if gains is None else check_wb_gains(gains, field="wb_gains", source=src))
    return check_ccm(data, field="ccm", source=src), None


@analyze_app.command("sfr")
def sfr_command(
    image: Annotated[Path, typer.Argument(help="Image holding slanted edges.")],
    roi: Annotated[list[str] | None, typer.Option(
        "--roi", help="x,y,w,h of an edge ROI (repeatable). Default: find the centre and corner "
        "squares of a slanted-square chart, or the whole image if it holds one edge.")] = None,
    channel: Annotated[str, typer.Option("--channel", help="Y (luminance), R, G or B.")] = "Y",
    bayer: BayerOpt = None,
    encoding: EncodingOpt = "linear",
    bits: BitsOpt = None,
    fit_order: Annotated[int, typer.Option(
        "--fit-order", help="Edge fit: 1 = line (ISO 12233:2017), up to 5 for distorted "
        "edges.")] = 1,
    method: Annotated[str, typer.Option(
        "--method", help="robust (default: ISO 12233 steps with a refined edge fit and the LSF "
        "tails low-passed against noise) or iso12233 (the ISO 12233 Annex D steps "
        "exactly).")] = "robust",
    json_out: JsonOpt = None,
) -> None:
    """ISO 12233 e-SFR per edge ROI: edge angle, MTF50, MTF at 0.125/0.25/0.5 cy/px."""
    with error_boundary({**SFR_FLAGS, "roi": "--roi"} if roi else SFR_FLAGS):
        from harness.analysis.edges import find_edge_rois, parse_roi
        from harness.analysis.sfr import field_gaps, measure_sfr_rois, summarise_field
        from harness.inputs.image_input import gray_image, load_image, sfr_plane

        img = load_image(image, bayer=bayer, encoding=encoding, bits=bits)
        plane = sfr_plane(img, channel)
        if roi:
            rois = [parse_roi(r, img.data.shape) for r in roi]
        else:
            rois = find_edge_rois(gray_image(img))
        results = measure_sfr_rois(plane.plane, rois, mask=plane.mask, locate=plane.locate,
                                   saturation=img.saturation, channel=plane.channel,
                                   method=method,
                                   fit_order=fit_order, oversampling=plane.oversampling,
                                   phase_pitch=plane.phase_pitch)
        table = Table(title=f"e-SFR {image.name}, channel {plane.channel}, method {method} "
                      "(MTF50 and MTF in cycles/pixel)")
        notes = any(r.warnings for r in results)
        for col in ("ROI", "edge", "angle°", "MTF50", "@0.125", "@0.25", "@0.5",
                    *(("warnings",) if notes else ())):
            table.add_column(col, no_wrap=col != "warnings")
        for r in results:
            table.add_row(r.label.removesuffix(f"_{r.orientation}"), r.orientation[0].upper(),
                          f"{r.edge_angle_deg:.2f}", _f(r.mtf50_cy_per_px), _f(r.mtf_at_0125, 3),
                          _f(r.mtf_at_025, 3), _f(r.mtf_at_05, 3),
                          *(("; ".join(r.warnings),) if notes else ()))
        console.print(table)
        summary = summarise_field(results)
        if summary is not None:
            console.print(f"corner/centre MTF50 {summary.corner_to_centre_mtf50_ratio:.3f} "
                          f"(worst corner {summary.worst_corner})")
        # on a chart, say which field ROIs the figures above lack (not found, or no MTF50)
        gaps = field_gaps(results) if any(r.orientation for r in rois) else None
        if gaps is not None and not gaps.complete:
            console.print(f"[yellow]incomplete field:[/] {gaps.message()}")
        write_json({"image": str(image), "channel": plane.channel, "method": method,
                    "rois": [r.as_dict() for r in results],
                    "summary": summary.as_dict() if summary is not None else None,
                    "missing_rois": gaps.as_dict() if gaps is not None else None}, json_out)


@analyze_app.command("colour")
def colour_command(
    image: Annotated[Path, typer.Argument(help="Image of a ColorChecker 24.")],
    illuminant: Annotated[str, typer.Option(
        "--illuminant", help="Capture illuminant (CIE name: D65, D50, A, FL2, ...).")] = "D65",
    corners: Annotated[str | None, typer.Option(
        "--corners", help="x1,y1,...,x4,y4: centres of the dark skin, bluish green, black and "
        "white patches (clockwise from dark skin). Default: find the chart.")] = None,
    black_level: Annotated[float, typer.Option(
        "--black-level", help="Black level in the file's digital numbers.")] = 0.0,
    bits: BitsOpt = None,
    bayer: BayerOpt = None,
    encoding: EncodingOpt = "linear",
    ccm_file: Annotated[Path | None, typer.Option(
        "--ccm", help="A fixed production CCM to judge as well: JSON or YAML, a 3x3 list (rows "
        "= output R, G, B) or {ccm: 3x3, wb_gains: [r, g, b]} (without gains: fitted on the "
        "neutral patches).", dir_okay=False)] = None,
    json_out: JsonOpt = None,
) -> None:
    """Colour accuracy: ΔE2000 per patch as delivered, after white balance + a 3x3 CCM fitted
    on the chart (in-sample and leave-one-out) and, with --ccm, after a fixed production CCM."""
    with error_boundary(COLOUR_FLAGS):
        from dataclasses import replace

        from harness.analysis.colour import measure_colour
        from harness.inputs.image_input import load_image, rgb_image

        ccm, wb_gains = load_ccm(ccm_file) if ccm_file is not None else (None, None)
        img = load_image(image, bayer=bayer, encoding=encoding, bits=bits)
        rgb = rgb_image(img)
        pts = _parse_floats(corners, "--corners", 8) if corners is not None else None
        if pts is not None and img.kind == "bayer":
            pts = [(p - 0.5) / 2 for p in pts]  # superpixel grid of the mosaic
        full = float(2**img.bit_depth - 1) if img.saturation is not None else 1.0
        if black_level < 0 or black_level >= full:
            raise ConfigError(f"must be in 0..{full:g} DN, got {black_level:g}",
                              field="--black-level")
        res = measure_colour(rgb, illuminant=illuminant, corners=pts,
                             black_level=black_level / full, saturation=img.saturation,
                             ccm=ccm, wb_gains=wb_gains)
        if img.kind == "bayer":  # report centres in mosaic pixels
            res = replace(res, chart_centres_px=tuple((2 * x + 0.5, 2 * y + 0.5)
                                                      for x, y in res.chart_centres_px))
        prod = res.ccm_production is not None
        table = Table(title=f"ColorChecker {image.name} ({illuminant}), ΔE00")
        for col in ("patch", "before", "in-sample", "leave-one-out",
                    *(("production",) if prod else ()), "noise G"):
            table.add_column(col)
        for p in res.patches:
            table.add_row(p.name + (" (clipped)" if p.clipped else ""),
                          f"{p.delta_e_2000_before:.2f}", f"{p.delta_e_2000_in_sample:.2f}",
                          f"{p.delta_e_2000_loo:.2f}",
                          *((f"{p.delta_e_2000_production or 0.0:.2f}",) if prod else ()),
                          f"{p.noise_rgb[1]:.2g}")
        console.print(table)
        console.print(f"ΔE00 as delivered: mean {res.delta_e_2000_mean_before:.2f}, max "
                      f"{res.delta_e_2000_max_before:.2f}")
        console.print(f"ΔE00 after WB + CCM fitted on this chart: in-sample mean "
                      f"{res.delta_e_2000_mean_in_sample:.2f}, max "
                      f"{res.delta_e_2000_max_in_sample:.2f}; leave-one-out mean "
                      f"{res.delta_e_2000_mean_loo:.2f}, max {res.delta_e_2000_max_loo:.2f}")
        if prod:
            console.print(f"ΔE00 after the production CCM ({ccm_file}): mean "
                          f"{res.delta_e_2000_mean_production or 0.0:.2f}, max "
                          f"{res.delta_e_2000_max_production or 0.0:.2f}; gains "
                          + ", ".join(f"{g:.4g}" for g in res.wb_gains_production or ())
                          + (" (fitted)" if wb_gains is None else ""))
        console.print(f"white-balance error {res.white_balance_error_dc_ab:.2f} Δa*b*; gains "
                      + ", ".join(f"{g:.4g}" for g in res.wb_gains))
        console.print("CCM " + "; ".join(", ".join(f"{v:.4f}" for v in row) for row in res.ccm))
        for w in res.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        write_json({"image": str(image), **res.as_dict()}, json_out)


@analyze_app.command("focus")
def focus_command(
    stack: Annotated[Path, typer.Argument(
        help="Multi-page TIFF, folder of TIFF/PNG frames (name order) or capture set.")],
    positions: Annotated[str | None, typer.Option(
        "--positions", help="Focus position of each frame: a,b,c,... (default: capture set, "
        "numbers in the file names, or the frame index).")] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="tenengrad (default), laplacian or brenner.")] = "tenengrad",
    fit: Annotated[str, typer.Option("--fit", help="gaussian (default) or parabola.")] =
        "gaussian",
    bayer: BayerOpt = None,
    encoding: EncodingOpt = "linear",
    json_out: JsonOpt = None,
) -> None:
    """Best focus, depth of focus and field tilt from a focus sweep."""
    with error_boundary(FOCUS_FLAGS):
        from harness.analysis.focus import measure_focus_sweep
        from harness.inputs.image_input import load_stack

        st = load_stack(stack, positions=positions, bayer=bayer, encoding=encoding)
        res = measure_focus_sweep(st.frames, st.positions, metric=metric, model=fit,
                                  positions_from=st.positions_from)
        table = Table(title=f"focus sweep {stack.name} ({metric}, positions from "
                      f"{st.positions_from})")
        for col in ("region", "best position", "depth of focus", "warnings"):
            table.add_column(col)
        table.add_row("whole frame", _f(res.best_focus.best_position),
                      _f(res.best_focus.depth_of_focus), "; ".join(res.best_focus.warnings))
        for name, p in res.regions.items():
            table.add_row(name, _f(p.best_position), _f(p.depth_of_focus),
                          "; ".join(p.warnings))
        console.print(table)
        console.print(f"field tilt: {res.field_tilt_x_per_px:.3g} /px in x, "
                      f"{res.field_tilt_y_per_px:.3g} /px in y; corner range "
                      f"{res.field_tilt_range:.4g}")
        write_json({"stack": str(stack), **res.as_dict()}, json_out)


__all__ = ["COLOUR_FLAGS", "FOCUS_FLAGS", "SFR_FLAGS", "BayerOpt", "BitsOpt", "EncodingOpt",
           "JsonOpt", "colour_command", "focus_command", "load_ccm", "sfr_command", "write_json"]
