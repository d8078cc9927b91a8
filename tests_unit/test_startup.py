"""Start-up: the command line loads what a command uses, when it runs.

``harness --version`` and ``harness --help`` must start within 3x the time of
``python -c "import numpy"`` measured in the same test (issue "House", item 1), and importing
``harness.cli`` must load none of the heavy libraries: every command module imports only typer,
rich and the standard library at its top, and the machinery inside the command function.

Timing on a shared machine: each command runs 3 times, interleaved with the numpy reference so
that a burst of load falls on both, and the *best* of each is compared (the least disturbed
run; noise only ever adds time). Measured here: numpy 0.08-0.10 s, --version 0.10 s (the root
group builds no command it is not asked for, harness.cli.lazy_group), --help 0.17-0.20 s, so
the bound holds with room for noise; a regression that imports colour, scipy or SQLAlchemy
again costs 0.5-2 s and fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

HARNESS = Path(sys.executable).with_name("harness")
#: None of these may be imported by ``import harness.cli`` (nor by the pytest11 entry point,
#: tests_unit/test_pytest_plugin.py).
HEAVY = ("numpy", "cv2", "matplotlib", "sqlalchemy", "allure", "tifffile", "colour", "scipy")


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _modules_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_cli(*argv: str) -> str:
    """Run ``harness argv`` inside a probe that catches its exit (any exit status)."""
    return ("import sys\n"
            f"sys.argv = ['harness', *{list(argv)!r}]\n"
            "import harness.cli\n"
            "try:\n    harness.cli.main()\nexcept SystemExit:\n    pass")


@pytest.mark.skipif(not HARNESS.exists(), reason="the harness console script is not installed")
def test_version_and_help_start_within_3x_numpy() -> None:
    runs: dict[str, list[float]] = {"numpy": [], "--version": [], "--help": []}
    for _ in range(3):
        runs["numpy"].append(_wall([sys.executable, "-c", "import numpy"]))
        runs["--version"].append(_wall([str(HARNESS), "--version"]))
        runs["--help"].append(_wall([str(HARNESS), "--help"]))
    best = {name: min(times) for name, times in runs.items()}
    for flag in ("--version", "--help"):
        assert best[flag] <= 3.0 * best["numpy"], (
            f"harness {flag} took {best[flag]:.3f} s, more than 3x python -c 'import numpy' "
            f"({best['numpy']:.3f} s); every run: {runs}")


def test_importing_the_cli_loads_nothing_heavy() -> None:
    loaded = _modules_after("import harness.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(("argv", "absent"), [
    # a command that fails on its input still shows what its start-up imported
    (("analyze", "emva1288", "/nonexistent/descriptor.txt"),
     {"colour", "matplotlib", "sqlalchemy", "scipy", "allure"}),
    (("analyze", "focus", "/nonexistent.tif"), {"colour", "matplotlib", "sqlalchemy", "allure"}),
    (("analyze", "sfr", "/nonexistent.tif"), {"colour", "matplotlib", "sqlalchemy", "allure"}),
    (("records", "runs", "--records", "/nonexistent.sqlite"),
     {"cv2", "colour", "matplotlib", "scipy", "tifffile"}),
    (("analyze", "colour", "--help"), set(HEAVY)),
])
def test_a_command_pays_only_for_what_it_uses(argv: tuple[str, ...], absent: set[str]) -> None:
    loaded = _modules_after(_run_cli(*argv))
    assert not loaded & absent, f"harness {' '.join(argv)} imported {sorted(loaded & absent)}"


def test_the_devices_help_names_the_gentl_variable_the_driver_reads() -> None:
    from harness.cli.devices import GENTL_ENV
    from harness.devices.camera.harvester import GENTL_ENV as DRIVER_ENV

    assert GENTL_ENV == DRIVER_ENV


def _registered(owner: object) -> set[str]:
    from typer.main import get_command_name

    commands = {info.name or get_command_name(info.callback.__name__)
                for info in owner.registered_commands if info.callback is not None}  # type: ignore[attr-defined]
    groups = {info.name for info in owner.registered_groups}  # type: ignore[attr-defined]
    return commands | {name for name in groups if name}


def test_the_lazy_tables_name_every_command_and_only_those() -> None:
    """Every module under harness/cli that registers a command is in a table, and importing
    the tables' modules registers exactly the tables' names: a command added without its
    table entry would be missing from ``harness`` altogether."""
    import importlib

    from harness.cli.analyze import ANALYZE_MODULES, analyze_app
    from harness.cli.app import COMMAND_MODULES, app

    tables = {**COMMAND_MODULES, **ANALYZE_MODULES}
    for modules in tables.values():
        for module in modules:
            importlib.import_module(module)
    assert _registered(app) == set(COMMAND_MODULES)
    assert _registered(analyze_app) == set(ANALYZE_MODULES)
    listed = {module for modules in tables.values() for module in modules}
    cli = Path(__file__).resolve().parents[1] / "harness" / "cli"
    registering = {f"harness.cli.{path.stem}" for path in cli.glob("*.py")
                   if any(mark in path.read_text() for mark in (
                       "_app.command(", "app.command(", "add_typer("))}
    assert registering <= listed | {"harness.cli.analyze"}, sorted(registering - listed)


def test_emva1288_on_a_descriptor_loads_only_its_own_command(tmp_path: Path) -> None:
    """``harness analyze emva1288`` on an EMVA descriptor set reads TIFFs: no pydantic (the
    capture-set manifest models), no other command module, no other analysis."""
    from tests_unit.emva_synth import Sensor, write_descriptor_set

    descriptor = write_descriptor_set(tmp_path / "set", Sensor(seed=3), steps=6,
                                      spatial_frames=4)
    probe = (_run_cli("analyze", "emva1288", str(descriptor), "--json", str(tmp_path / "o.json"))
             + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (tmp_path / "o.json").is_file(), done.stderr
    unwanted = {"pydantic", "harness.inputs.captureset", "harness.cli.analyze_blemish",
                "harness.cli.analyze_optics", "harness.cli.records", "harness.analysis.sfr",
                "harness.analysis.blemish"} | set(HEAVY) - {"numpy", "cv2", "tifffile"}
    assert not loaded & unwanted, sorted(loaded & unwanted)
    assert "harness.cli.analyze_sensor" in loaded


def test_a_misspelt_command_is_refused_with_the_nearest_name() -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, ["analyze", "emva128", "x"])
    assert result.exit_code == 2
    assert "emva1288" in result.output
