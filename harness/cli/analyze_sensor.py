"""``harness analyze emva1288 | defects | uniformity``: sensor figures from recorded data.

``--json`` takes an optional OUT: ``--json out.json`` writes the file, a bare ``--json`` prints
the JSON on stdout. (Typer has no optional-value options, so ``--json`` is parsed here.)

The analysis, numpy and matplotlib are imported by the command that uses them, when it runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from harness.cli.analyze import analyze_app
from harness.cli.app import console, err_console, error_boundary
from harness.errors import ConfigError

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
_BAYER_HELP = ("CFA of bare TIFF stacks: RGGB, GRBG, GBRG or BGGR (a capture set's manifest "
               "gives it).")


def split_args(tokens: list[str], names: tuple[str, ...]) -> tuple[list[str], str | None]:
    """Positionals and the ``--json`` target ("-" = stdout, None = not asked) from the tokens
    Typer left over. The token after ``--json`` is its OUT unless it is needed as a positional."""
    positionals: list[str] = []
    json_out: str | None = None
    i = 0
    rest = [t for t in tokens if not t.startswith("-")]
    while i < len(tokens):
        token = tokens[i]
        if token == "--json" or token.startswith("--json="):
            if json_out is not None:
                raise ConfigError("--json given twice", field="--json")
            if "=" in token:
                json_out = token.split("=", 1)[1] or "-"
            elif (i + 1 < len(tokens) and not tokens[i + 1].startswith("-")
                  and len(rest) > len(names)):
                json_out = tokens[i + 1]
                rest.remove(json_out)
                i += 1
            else:
                json_out = "-"
        elif token.startswith("-") and token != "-":
            raise ConfigError(f"unknown option {token!r}; allowed: --json [OUT] and the options "
                              "in --help", field=token)
        else:
            positionals.append(token)
        i += 1
    if len(positionals) != len(names):
        raise ConfigError(f"expected {len(names)} argument(s) {' '.join(names)}, got "
                          f"{len(positionals)}: {' '.join(positionals) or '(none)'}")
    return positionals, json_out


def emit_json(payload: dict[str, Any], target: str | None) -> None:
    if target is None:
        return
    text = json.dumps(payload, indent=2, allow_nan=False)
    if target == "-":
        typer.echo(text)
        return
    try:
        Path(target).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write JSON: {exc.strerror}", source=target) from None


def parse_thresholds(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs for :class:`DefectThresholds` (numbers only; zones via the API)."""
    from dataclasses import fields

    from harness.analysis.defects import DefectThresholds

    kinds = {f.name: f.type for f in fields(DefectThresholds) if f.name != "zones"}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in kinds:
            raise ConfigError(f"{item!r}: expected NAME=VALUE with NAME one of "
                              f"{', '.join(sorted(kinds))}", field="--threshold")
        try:
            out[name] = int(raw) if "int" in str(kinds[name]) else float(raw)
        except ValueError:
            raise ConfigError(f"{item!r}: {raw!r} is not a number",
                              field="--threshold") from None
    for fixed in ("hot_dn", "dead_rel", "bright_rel", "weak_rel"):
        if fixed in out:
            raise ConfigError(f"{fixed}: use --hot-dn, --dead or --weak", field="--threshold")
    return out


#: ``analyze emva1288 --json``: exactly these keys, in this order: the datasheet figures, then
#: the photon-transfer points and the flags (the analysis's full record is
#: :meth:`~harness.analysis.emva1288.Emva1288Result.as_dict`).
EMVA1288_JSON_KEYS = (
    "system_gain_dn_per_e", "temporal_dark_noise_e", "temporal_dark_noise_dn",
    "saturation_capacity_e", "saturation_mean_dn", "snr_max_db", "dynamic_range_db",
    "linearity_error_min_pct", "linearity_error_max_pct", "quantum_efficiency_pct",
    "dark_current_e_per_s", "dsnu_e", "prnu_pct", "points", "flags")


def _json_number(value: Any) -> Any:
    """A number for strict JSON: NaN and infinities become None, numpy scalars plain."""
    import numpy as np

    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def emva1288_json(result: Any) -> dict[str, Any]:
    """The ``--json`` payload of ``analyze emva1288``: :data:`EMVA1288_JSON_KEYS`; NaN becomes
    null; a flagged figure is ``{"value": number or null, "flagged": reason}``, and ``flags``
    lists every flag."""
    out: dict[str, Any] = {}
    for name in EMVA1288_JSON_KEYS:
        if name == "points":
            out[name] = [{k: _json_number(v) for k, v in p.as_dict().items()}
                         for p in result.points]
        elif name == "flags":
            out[name] = dict(result.flags)
        else:
            out[name] = result.figure_json(name)
    return out


def _fmt(value: float | None, unit: str = "", digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}{(' ' + unit) if unit else ''}"


@analyze_app.command("emva1288", context_settings=_EXTRA,
                     options_metavar="PATH [--json [OUT]] [--plots DIR]",
                     short_help="EMVA 1288 4.0 figures from a descriptor file or capture set.")
def emva1288_command(
    ctx: typer.Context,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG plots to this folder.",
                                               file_okay=False)] = None,
) -> None:
    """EMVA 1288 Release 4.0 (Linear) from PATH: an EMVA descriptor file (or its folder) or a
    capture set. Options: --json [OUT] (file, or stdout without OUT), --plots DIR."""
    with error_boundary():
        from harness.analysis.emva1288 import measure_emva1288
        from harness.inputs.stack_input import reduce_emva

        (path,), json_out = split_args(list(ctx.args), ("PATH",))
        data, cfa = reduce_emva(path)
        result = measure_emva1288(data, cfa=cfa)
        if plots is not None:
            _emva_plots(result, plots)
        if json_out is not None:
            emit_json(emva1288_json(result), json_out)
        for note in emva_notes(result):
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        if json_out != "-":
            for name, value in emva_rows(result):
                console.print(f"{name:>22}: {value}", highlight=False, soft_wrap=True)
        count = len(result.flags)
        summary = (f"[red]{count} figure{'s' if count != 1 else ''} flagged[/] (physically "
                   "impossible or not supported by the data; kept for the record, not "
                   "measurements)" if count else "no figure flagged")
        (err_console if json_out == "-" else console).print(summary, highlight=False,
                                                            soft_wrap=True)


def emva_rows(result: Any) -> list[tuple[str, str]]:
    """The console table: (label, rich markup). A row holding a flagged figure is red and ends
    in ``FLAGGED: reason``, so a flagged figure is never shown as a plain value."""

    def row(label: str, text: str, *names: str, extra: str = "") -> tuple[str, str]:
        flagged = {name: result.flag(name) for name in names if result.flag(name)}
        if not flagged:
            return label, escape(text + extra)
        reasons = list(dict.fromkeys(flagged.values()))
        if len(flagged) == len(names) and len(reasons) == 1:
            why = reasons[0]
        else:
            why = "; ".join(f"{name}: {reason}" for name, reason in flagged.items())
        return label, f"[red]{escape(text)}  FLAGGED: {escape(why)}[/]"

    r = result
    return [
        row("system gain K", _fmt(r.system_gain_dn_per_e, "DN/e-"), "system_gain_dn_per_e"),
        row("quantum efficiency", _fmt(r.quantum_efficiency_pct, "%"), "quantum_efficiency_pct"),
        row("temporal dark noise", f"{_fmt(r.temporal_dark_noise_e, 'e-')} "
            f"({_fmt(r.temporal_dark_noise_dn, 'DN')})", "temporal_dark_noise_e",
            "temporal_dark_noise_dn"),
        row("saturation capacity", _fmt(r.saturation_capacity_e, "e-"), "saturation_capacity_e",
            extra="" if r.saturation_reached else " (saturation not reached)"),
        row("SNR max", _fmt(r.snr_max_db, "dB"), "snr_max_db"),
        row("dynamic range", _fmt(r.dynamic_range_db, "dB"), "dynamic_range_db"),
        row("linearity error", f"{_fmt(r.linearity_error_min_pct)} .. "
            f"{_fmt(r.linearity_error_max_pct)} %", "linearity_error_min_pct",
            "linearity_error_max_pct"),
        row("dark current", _fmt(r.dark_current_e_per_s, "e-/s"), "dark_current_e_per_s"),
        row("DSNU / PRNU", f"{_fmt(r.dsnu_e, 'e-')} / {_fmt(r.prnu_pct, '%')}", "dsnu_e",
            "prnu_pct"),
    ]


def emva_notes(result: Any) -> list[str]:
    """Warnings about the data (not errors: the figures are still computed)."""
    notes = []
    frac = result.spatial_fraction_of_saturation
    if frac is not None and not 0.3 <= frac <= 0.7:
        notes.append(f"the spatial stacks sit at {100 * frac:.0f} % of saturation (EMVA 1288 "
                     "asks ~50 %); DSNU/PRNU may be invalid")
    if not result.saturation_reached:
        notes.append("the sweep does not reach saturation: saturation capacity, SNR max and "
                     "dynamic range are lower bounds")
    if result.dark_noise_quantisation_limited:
        notes.append("dark noise is below the quantisation limit (0.24 DN^2): the dark noise "
                     "figure is an upper bound")
    return notes


def _emva_plots(result: Any, folder: Path) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create plot folder: {exc.strerror}",
                          source=str(folder)) from None
    pts = result.points
    signal = np.array([p.mean_dn - p.mean_dark_dn for p in pts])
    var = np.array([p.var_dn2 - p.var_dark_dn2 for p in pts])
    k = result.system_gain_dn_per_e
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(signal, var, "o", ms=3, label="measured")
    lo, hi = result.gain_fit_range
    ax.plot(signal[lo:hi + 1], k * signal[lo:hi + 1], "-", label=f"K = {k:.4g} DN/e-")
    ax.axvline(signal[result.saturation_index], ls=":", c="gray", label="saturation")
    ax.set(xlabel="mu_y - mu_y.dark [DN]", ylabel="sigma^2_y - sigma^2_y.dark [DN^2]",
           title="Photon transfer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "photon_transfer.png", dpi=100)
    plt.close(fig)
    x = np.array([p.photons if p.photons is not None else p.exposure_ns for p in pts])
    lo, hi = result.linearity_fit_range
    if hi - lo < 1:
        return  # no linearity fit (flagged: too few points)
    xs, ys = x[lo:hi + 1], signal[lo:hi + 1]
    b0, a1 = np.polynomial.polynomial.polyfit(xs, ys, 1, w=1.0 / ys)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ys, 100.0 * (ys - (a1 * xs + b0)) / (a1 * xs + b0), "o-", ms=3)
    ax.axhline(0.0, c="gray", lw=0.5)
    ax.set(xlabel="mu_y - mu_y.dark [DN]", ylabel="linearity error [%]", title="Linearity")
    fig.tight_layout()
    fig.savefig(folder / "linearity.png", dpi=100)
    plt.close(fig)


def _load_stack(path: str, roles: tuple[str, ...], bayer: str | None) -> Any:
    from harness.inputs.stack_input import open_stack

    source = open_stack(path, roles=roles, cfa=bayer)
    return source, source.reduce()


@analyze_app.command("defects", context_settings=_EXTRA,
                     options_metavar="DARK FLAT [--bayer CFA] [--json [OUT]] [OPTIONS]",
                     short_help="Defect pixels, clusters and column/row defects.")
def defects_command(
    ctx: typer.Context,
    bayer: Annotated[str | None, typer.Option("--bayer", help=_BAYER_HELP)] = None,
    hot_dn: Annotated[float | None, typer.Option(
        "--hot-dn", help="Hot threshold in DN above the local median (default: 8 robust sigma).")
    ] = None,
    dead: Annotated[float, typer.Option("--dead", help="Dead/bright threshold, fraction.")] = 0.30,
    weak: Annotated[float, typer.Option("--weak", help="Weak threshold, fraction.")] = 0.09,
    threshold: Annotated[list[str] | None, typer.Option(
        "--threshold", help="Any other threshold as NAME=VALUE (repeatable), e.g. "
        "line_min_run=8, median_size=3, blink_false_alarms=0.01.")] = None,
) -> None:
    """Defect pixels from DARK and FLAT stacks (capture set, multi-page TIFF or folder of
    TIFFs): hot, dead, bright, weak, stuck, blinking, clusters, column/row defects; per Bayer
    plane, counted per zone. Option: --json [OUT]."""
    with error_boundary():
        from harness.analysis.defects import DefectThresholds, measure_defects

        (dark_path, flat_path), json_out = split_args(list(ctx.args), ("DARK", "FLAT"))
        thresholds = DefectThresholds(hot_dn=hot_dn, dead_rel=dead, bright_rel=dead,
                                      weak_rel=weak, **parse_thresholds(threshold or []))
        dark_src, dark = _load_stack(dark_path, ("dark",), bayer)
        flat_src, flat = _load_stack(flat_path, ("flat", "bright"), bayer)
        cfa = dark_src.cfa or flat_src.cfa
        result = measure_defects(dark, flat, cfa=cfa, thresholds=thresholds,
                                 conditions=dark_src.conditions)
        emit_json(result.as_dict(), json_out)
        if json_out != "-":
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            console.print(f"{result.total} defect pixels ({counts}); {len(result.clusters)} "
                          f"clusters; {len(result.lines)} column/row defects", highlight=False)
            for zone in result.zone_counts:
                console.print(f"  {zone}: {result.zone_total(zone)}", highlight=False)


@analyze_app.command("uniformity", context_settings=_EXTRA,
                     options_metavar="FLAT [--bayer CFA] [--dark DARK] [--json [OUT]] "
                     "[--plots DIR]",
                     short_help="Relative illumination, colour shading, grid deviation.")
def uniformity_command(
    ctx: typer.Context,
    bayer: Annotated[str | None, typer.Option("--bayer", help=_BAYER_HELP)] = None,
    dark_path: Annotated[str | None, typer.Option(
        "--dark", help="Dark stack to subtract (default: a capture set's dark frames, if any).")
    ] = None,
    plots: Annotated[Path | None, typer.Option(
        "--plots", help="Write the ISO 17957 shading-grid heat map (PNG) to this folder.",
        file_okay=False)] = None,
) -> None:
    """Relative illumination (corner/centre), colour shading (R/G, B/G), grid deviation and
    the ISO 17957 shading grid (luminance and colour shading per cell) of a FLAT stack
    (capture set, multi-page TIFF or folder). Options: --json [OUT], --plots DIR."""
    with error_boundary():
        from harness.analysis.uniformity import measure_uniformity
        from harness.inputs.stack_input import is_capture_set

        (flat_path,), json_out = split_args(list(ctx.args), ("FLAT",))
        flat_src, flat = _load_stack(flat_path, ("flat", "bright"), bayer)
        dark_mean = None
        if dark_path is not None:
            dark_mean = _load_stack(dark_path, ("dark",), bayer)[1].mean_img
        elif is_capture_set(Path(flat_path)):
            try:
                dark_mean = _load_stack(flat_path, ("dark",), bayer)[1].mean_img
            except ConfigError:
                dark_mean = None
        result = measure_uniformity(flat.mean_img, dark_mean=dark_mean, cfa=flat_src.cfa)
        if plots is not None and result.iso_grid is not None:
            _shading_grid_plot(result.iso_grid, plots)
        emit_json(result.as_dict(), json_out)
        if json_out != "-":
            for name, ch in result.channels.items():
                console.print(f"{name}: corner/centre min {ch.relative_illumination_min:.3f}, "
                              f"grid max deviation {ch.grid_max_deviation_pct:.2f} %",
                              highlight=False)
            for key, value in result.colour_shading_max_pct.items():
                console.print(f"colour shading {key}: {value:.2f} %", highlight=False)
            if result.iso_grid is not None:
                for line in iso_grid_lines(result.iso_grid):
                    console.print(line, highlight=False, soft_wrap=True)


def iso_grid_lines(grid: Any) -> list[str]:
    """The ISO 17957 grid on the console: a summary line, then the luminance of each cell
    (% of the centre cell), one line per row of cells."""
    colour = "".join(f"; {k} max |deviation| {v:.2f} %"
                     for k, v in grid.colour_deviation_max_pct.items())
    lines = [f"ISO 17957 grid {grid.rows}x{grid.cols}: luminance {grid.luminance_min_pct:.1f} "
             f"to {grid.luminance_max_pct:.1f} % of the centre cell{colour}"]
    lines += ["  " + " ".join(f"{v:5.1f}" for v in row) for row in grid.luminance_pct]
    return lines


def _shading_grid_plot(grid: Any, folder: Path) -> None:
    import numpy as np

    from harness.evidence.plots import shading_grid_map

    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shading_grid.png").write_bytes(shading_grid_map(
            np.asarray(grid.luminance_pct),
            {k: np.asarray(v) for k, v in grid.colour_deviation_pct.items()}))
    except OSError as exc:
        raise ConfigError(f"cannot write the plot: {exc.strerror}", source=str(folder),
                          field="--plots") from None


__all__ = ["EMVA1288_JSON_KEYS", "defects_command", "emit_json", "emva1288_command",
           "emva1288_json", "emva_notes", "emva_rows", "iso_grid_lines", "parse_thresholds",
           "split_args", "uniformity_command"]
