"""``harness sim`` commands: ground truth of a simulated module, render frames to TIFF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli.app import app, console, error_boundary
from harness.errors import ConfigError

sim_app = typer.Typer(name="sim", help="Simulated camera modules: ground truth, rendering.",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")

ModuleArg = Annotated[Path, typer.Argument(
    help="Module file, or the name of one in fixtures/modules (e.g. golden).")]
_CHECKOUT_MODULES = Path(__file__).resolve().parents[2] / "fixtures" / "modules"


def module_file(module: Path) -> Path:
    """``module`` as given when it is a file; a bare name (``golden``) is looked up as
    ``fixtures/modules/<name>.yaml`` in the working directory, then in the checkout."""
    if module.is_file() or module.suffix or len(module.parts) > 1:
        return module
    folders = [Path("fixtures") / "modules", _CHECKOUT_MODULES]
    for folder in folders:
        if (folder / f"{module}.yaml").is_file():
            return folder / f"{module}.yaml"
    names = sorted({f.stem for d in folders if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"no module file {str(module)!r} and no module of that name; names: "
                      f"{', '.join(names) or 'none found'}", field="MODULE")


@sim_app.command("truth")
def truth(
    module: ModuleArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    gain_db: Annotated[float, typer.Option("--gain", help="Analog gain, dB.")] = 0.0,
    temperature_c: Annotated[float | None, typer.Option(
        "--temperature", help="Die temperature, C (default: dark-current reference).")] = None,
    focus_um: Annotated[float | None, typer.Option(
        "--focus", help="Focus position, um (default: best focus).")] = None,
    illuminant: Annotated[str, typer.Option(help="Illuminant for the QE figures.")] = "D65",
    size: Annotated[str | None, typer.Option(
        help="Sensor size override WxH, as the camera's sensor_size setting (e.g. 640x480).")
    ] = None,
) -> None:
    """Print the ground truth the module's frames are made from."""
    with error_boundary():
        from harness.sim.colour_response import check_illuminant
        from harness.sim.module import load_module
        from harness.sim.truth import module_truth

        check_illuminant(illuminant)
        mod = load_module(module_file(module))
        if size is not None:
            mod = mod.with_sensor_size(*_parse_size(size))
        if not 0.0 <= gain_db <= mod.sensor.gain_max_db:
            raise ConfigError(f"--gain {gain_db} outside 0..{mod.sensor.gain_max_db} dB")
        data = module_truth(mod, gain_db=gain_db, temperature_c=temperature_c,
                            focus_um=focus_um, illuminant=illuminant)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        _print_truth(data)


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(parts[0]), int(parts[1])
    if not (16 <= width <= 16384 and 16 <= height <= 16384):
        raise ConfigError(f"--size {text!r}: width and height must be 16..16384")
    return width, height


def _print_truth(data: dict[str, object]) -> None:
    m = data["module"]
    s = data["sensor"]
    assert isinstance(m, dict) and isinstance(s, dict)
    console.print(f"[bold]{m['name']}[/] ({m['vendor']} {m['model']} s/n {m['serial']}) "
                  f"{s['width']}x{s['height']} {s['pixel_pitch_um']} um {s['adc_bits']} bit "
                  f"CFA {s['cfa'] or 'none'}")
    table = Table("quantity", "value", title="sensor at " + json.dumps(data["operating_point"]))
    for key in ("system_gain_dn_per_e", "read_noise_e", "dark_noise_dn", "full_well_e",
                "saturation_e", "saturation_limited_by", "qe", "dark_current_e_per_s",
                "dsnu_e", "prnu_pct", "nonlinearity", "relative_illumination_corner"):
        table.add_row(key, json.dumps(data[key]))
    defects = data["defects"]
    assert isinstance(defects, list)
    table.add_row("defects", f"{len(defects)} pixels, columns {data['column_defects']}")
    console.print(table)
    lens = Table("field point", "x, y px", "r", "sigma px", "defocus R px", "MTF50 lens",
                 "MTF50 system", "MTF@0.25", title="lens (cycles/pixel)")
    lens_rows = data["lens"]
    assert isinstance(lens_rows, list)
    for row in lens_rows:
        lens.add_row(row["field_point"], f"{row['x_px']:.0f}, {row['y_px']:.0f}",
                     f"{row['field_radius']:.2f}", f"{row['sigma_px']:.3f}",
                     f"{row['defocus_radius_px']:.3f}", f"{row['mtf50_lens_cy_px']:.4f}",
                     f"{row['mtf50_cy_px']:.4f}", f"{row['mtf_at_0.25']:.4f}")
    console.print(lens)
    colour = data.get("colour")
    if isinstance(colour, dict):
        for name, c in colour.items():
            console.print(f"colour {name}: white balance {c['white_balance']}, "
                          f"RGB->XYZ {c['matrix_rgb_to_xyz']}")
    console.print("defect list: harness sim truth MODULE --json", style="dim")


@sim_app.command("render")
def render(
    module: ModuleArg,
    out: Annotated[Path, typer.Option("--out", help="TIFF file to write (n frames).")],
    scene: Annotated[str, typer.Option(
        help="dark, flat, edge, colour, focus or dotgrid.")] = "flat",
    exposure_us: Annotated[float, typer.Option(help="Exposure time, us.")] = 10_000.0,
    level_pct: Annotated[float, typer.Option("--level", help="Light level, %.")] = 50.0,
    gain_db: Annotated[float, typer.Option("--gain", help="Analog gain, dB.")] = 0.0,
    focus_um: Annotated[float, typer.Option("--focus", help="Focus position, um.")] = 0.0,
    illuminant: Annotated[str, typer.Option(help="Illuminant.")] = "D65",
    frames: Annotated[int, typer.Option(min=1, max=1000, help="Frames to render.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Noise seed.")] = 0,
) -> None:
    """Render frames of a module looking at a chart and write them as a TIFF stack."""
    with error_boundary():
        import tifffile

        from harness.sim.bench import Bench
        from harness.sim.camera import SimCamera
        from harness.sim.scene import check_scene

        if not 0.0 <= level_pct <= 100.0:
            raise ConfigError(f"--level {level_pct} outside 0..100 %")
        bench = Bench()
        bench.set_chart(check_scene(scene))
        bench.set_light(on=True, level_pct=level_pct, illuminant=illuminant)
        bench.set_focus(focus_um)
        cam = SimCamera.standalone(str(module_file(module).resolve()), seed=seed, bench=bench)
        cam.set("ExposureTime", exposure_us)
        cam.set("Gain", gain_db)
        cam.start()
        stack = cam.grab(frames)
        cam.stop()
        out.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(out, stack.frames if frames > 1 else stack.frames[0])
        console.print(f"wrote {frames} frame(s) {stack.shape} {stack.meta[0].pixel_format} "
                      f"to {out}")


__all__ = ["ModuleArg", "module_file", "render", "sim_app", "truth"]
