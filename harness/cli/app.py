"""Root typer application, version flag and the error boundary every command shares."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from harness.cli.lazy_group import lazy_group
from harness.errors import Aborted, ConfigError, HarnessError, one_line

#: Each top-level command or group -> the modules that register it on :data:`app`, imported
#: when the command is used (:mod:`harness.cli.lazy_group`).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "analyze": ("harness.cli.analyze",),
    "capture": ("harness.cli.capture",),
    "devices": ("harness.cli.devices",),
    "limits": ("harness.cli.limits",),
    "msa": ("harness.cli.msa",),
    "records": ("harness.cli.records",),
    "rejudge": ("harness.cli.rejudge",),
    "reliability": ("harness.cli.reliability",),
    "report": ("harness.cli.report",),
    "serve": ("harness.cli.serve",),
    "signoff": ("harness.cli.signoff",),
    "sim": ("harness.cli.sim",),
    "station": ("harness.cli.station", "harness.cli.station_calibrate"),
}

app: typer.Typer = typer.Typer(
    name="harness",
    cls=lazy_group(lambda: app, COMMAND_MODULES),
    help="Camera-module qualification harness: stations, devices, capture, analysis, evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

#: Exit codes: 1 = a check found a problem, 2 = bad input, 3 = device/station fault,
#: 130 = aborted.
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2
EXIT_DEVICE = 3
EXIT_ABORTED = 130


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one red line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


def as_typed(exc: ConfigError, flags: Mapping[str, str] | None = None) -> str:
    """``exc``'s one line, with the parameter it names shown as the option the user typed.

    The layers below the command line name the parameter that was wrong (``field="metric"``);
    ``flags`` maps such names to this command's options (``{"metric": "--metric",
    "model": "--fit"}``). A field not in ``flags`` is shown as it is.
    """
    flag = (flags or {}).get(exc.field or "")
    if flag is None:
        return str(exc)
    return str(ConfigError(exc.detail, source=exc.source, line=exc.line, field=flag))


@contextmanager
def error_boundary(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn harness errors into one-line messages and exit codes instead of tracebacks.

    ``flags``: parameter name -> the command's option, for the errors of bad input that name
    a parameter (see :func:`as_typed`).
    """
    try:
        yield
    except ConfigError as exc:
        fail(as_typed(exc, flags), EXIT_BAD_INPUT)
    except HarnessError as exc:
        fail(str(exc), EXIT_DEVICE)
    except OSError as exc:  # a path the OS refuses (name too long, NUL, permissions, ...)
        name = str(exc.filename or "")
        where = f"{name if len(name) <= 160 else name[:80] + '…' + name[-60:]}: " if name else ""
        fail(one_line(f"{where}{exc.strerror or exc}"), EXIT_BAD_INPUT)
    except (Aborted, KeyboardInterrupt):
        fail("aborted", EXIT_ABORTED)


def guarded(func: Callable[[], T]) -> T:
    with error_boundary():
        return func()
    raise AssertionError("unreachable")  # pragma: no cover


def _version_callback(value: bool) -> None:
    if value:
        from harness import __version__

        console.print(f"harness {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version."),
    ] = False,
) -> None:
    """Camera-module qualification harness."""


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        err_console.print("[bold red]error:[/] aborted")
        sys.exit(EXIT_ABORTED)


__all__ = ["COMMAND_MODULES", "EXIT_ABORTED", "EXIT_BAD_INPUT", "EXIT_DEVICE", "EXIT_PROBLEM",
           "app", "as_typed", "console", "err_console", "error_boundary", "fail", "guarded", "main",
           "root"]
