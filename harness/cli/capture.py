"""``harness capture``: grab N frames from a station's camera into a capture set.

The capture set is the format of :mod:`harness.inputs.captureset` (TIFF frames + JSON
manifest); each frame's record holds what the camera reported for it (frame id, timestamp,
exposure and gain read back or from chunk data), and the manifest holds the camera's identity
and a node-map snapshot taken before the first frame.

The station, the drivers and the capture-set writer are imported when the command runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.cli.app import app, console, error_boundary
from harness.errors import ConfigError, EvidenceError

if TYPE_CHECKING:
    from harness.capture.writer import CaptureSetWriter
    from harness.devices.camera.frames import FrameStack
    from harness.station.station import Station

BURST = 16
"""Frames grabbed per burst while the stream runs (then written before the next burst)."""


def _camera(station: Station, role: str | None) -> tuple[str, Any]:
    if role is None:
        camera = station.camera()
        return next(r for r, d in station.devices.items() if d is camera), camera
    names = [role, f"camera.{role}"] if not role.startswith("camera") else [role]
    for name in names:
        if name in station.devices and name.split(".")[0] == "camera":
            return name, station.devices[name]
    cams = [r for r in station.devices if r == "camera" or r.startswith("camera.")]
    raise ConfigError(f"no camera {role!r} on station {station.id}; cameras: "
                      f"{', '.join(cams) or 'none'}", field="--camera")


def _bits(stack: FrameStack) -> int:
    import numpy as np

    from harness.devices.camera.pixelformats import BY_NAME

    spec = BY_NAME.get(stack.meta[0].pixel_format) if stack.meta else None
    if spec is not None:
        return spec.bits
    return 8 if stack.frames.dtype == np.uint8 else 16


def run_capture(station_file: Path, out: Path, frames: int, role: str | None,
                exposure_us: float | None) -> dict[str, Any]:
    """Open the station, grab ``frames`` frames and write them as a capture set."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from harness.capture.writer import CaptureSetWriter
    from harness.station.station import Station

    if (out / "manifest.json").exists():
        raise ConfigError("a capture set already exists here; choose a new --out",
                          source=str(out))
    with Station.load(station_file) as station:
        name, camera = _camera(station, role)
        if exposure_us is not None:
            camera.set("ExposureTime", exposure_us)
        identity = camera.identity().as_dict()
        snapshot = camera.snapshot()
        writer: CaptureSetWriter | None = None
        gaps: list[tuple[int, int]] = []
        columns = (TextColumn("[bold]capture"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        camera.start()
        try:
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("frames", total=frames)
                done = 0
                while done < frames:
                    stack = camera.grab(min(BURST, frames - done))
                    if writer is None:
                        writer = CaptureSetWriter(
                            out, sequence="capture", cfa=stack.cfa, bits=_bits(stack),
                            station={"id": station.id, "file": str(station_file)},
                            camera={"role": name, **identity}, node_map=snapshot)
                    gaps += stack.frame_id_gaps()  # within a burst; between bursts the
                    for pixels, meta in stack:    # camera runs on while frames are written
                        writer.add(pixels, role=name, group="capture", exposure_us_set=exposure_us,
                                   exposure_us=meta.exposure_us, gain_db=meta.gain_db,
                                   temperature_c=meta.temperature_c, frame_id=meta.frame_id,
                                   timestamp_s=meta.timestamp_s,
                                   extra={"pixel_format": meta.pixel_format,
                                          "incomplete": meta.incomplete})
                    done += len(stack)
                    progress.update(task, completed=done)
        except BaseException:
            if writer is not None:  # keep what was taken: frames on disk, manifest listing them
                with contextlib.suppress(EvidenceError):
                    writer.close()
            raise
        finally:
            camera.stop()
        assert writer is not None
        writer.manifest.extra["frame_id_gaps"] = gaps
        writer.close()
        return {"out": str(out), "frames": frames, "camera": name, "frame_id_gaps": gaps,
                "shape": list(stack.shape), "cfa": stack.cfa}


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars or lists (``positions=[-10,0,10]``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"{item!r} is not key=value", field="--param")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{item!r}: value is not a number, word or [list]",
                              field="--param") from None
    return out


def run_named_sequence(station_file: Path, out: Path, sequence: str,
                       params: dict[str, Any], limits: Path | None) -> Any:
    """Run sequence ``sequence`` on the station into ``out`` through the same capture session
    a qualification run uses: the camera prepared the same way (raw format, 0 dB read back,
    a probe frame kept), the saturation pre-step (black and saturation levels) first where
    the station has a light, the limit spec's conditions overridden by ``params``, capture
    sets numbered in capture order, and a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from harness.limits import load_limits
    from harness.run.session import CaptureSession, sequence_parameters
    from harness.station.station import Station

    sequence_parameters(sequence)  # an unknown name stops here, before the station opens
    conditions = load_limits(limits).conditions if limits else {}
    if out.exists() and any(out.iterdir()):
        raise ConfigError("the output folder is not empty; choose a new --out", source=str(out))
    with Station.load(station_file) as station:
        columns = (TextColumn(f"[bold]{sequence}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("", total=None)

            def tick(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what)

            session = CaptureSession(station, out, conditions=conditions, progress=tick)
            session.parameters(sequence, params)  # a bad --param stops before any capture
            try:
                return session.sequence(sequence, "harness capture", **params)
            finally:
                session.stop()


@app.command("capture")
def capture_command(
    station: Annotated[Path, typer.Argument(help="Station file (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New capture-set folder.")],
    frames: Annotated[int, typer.Option("--frames", "-n", min=1, max=100000,
                                        help="Number of frames.")] = 10,
    camera: Annotated[str | None, typer.Option(
        "--camera", help="Camera role (camera, or a name under cameras:).")] = None,
    exposure_us: Annotated[float | None, typer.Option(
        "--exposure-us", min=0.0, help="Set ExposureTime (us) before grabbing.")] = None,
    sequence: Annotated[str | None, typer.Option(
        "--sequence", help="Run a capture sequence (saturation_level, exposure_sweep, "
                           "dark_stack, flat_stack, focus_sweep, edge, colour).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Sequence parameter key=value (repeatable).")] = None,
    limits: Annotated[Path | None, typer.Option(
        "--limits", help="Limit spec whose conditions give the sequence parameters.")] = None,
) -> None:
    """Grab N frames from a station's camera into a capture set (TIFF frames + manifest), or
    run a named capture sequence with ``--sequence``."""
    with error_boundary():
        if not station.is_file():
            raise ConfigError("station file not found", source=str(station))
        if sequence is not None:
            cs = run_named_sequence(station, out, sequence, _parse_params(param or []), limits)
            console.print(f"wrote {len(cs.records())} frames of {sequence} to {cs.root}")
            return
        result = run_capture(station, out, frames, camera, exposure_us)
        gaps = result["frame_id_gaps"]
        note = f"; frame-id gaps {gaps}" if gaps else ""
        console.print(f"wrote {result['frames']} frames ({'x'.join(map(str, result['shape']))})"
                      f" from {result['camera']} to {result['out']}{note}")


__all__ = ["BURST", "capture_command", "run_capture", "run_named_sequence"]
