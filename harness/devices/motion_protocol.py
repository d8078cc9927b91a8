"""Shared parts of the harness's ASCII motion protocol (focus stages and chart changers).

No public wire protocol was found for these devices (docs/standards.md#harness-motion-protocol), so
the harness defines one: one LF-terminated command per line, one reply per command; ``OK``
acknowledges a command, ``ERR <n> <text>`` refuses one, queries answer their value; ``*IDN?``
answers ``vendor,model,serial,firmware``. See :mod:`harness.sim.instruments.focus_stage` and
:mod:`harness.sim.instruments.chart_wheel` for the full command lists.
"""

from __future__ import annotations

from harness.devices.instrument import InstrumentDriver


class MotionDriver(InstrumentDriver):
    """``OK`` / ``ERR n text`` handling for the motion protocol."""

    backend = "serial"

    def command(self, cmd: str, *, safe: bool = False) -> str:
        reply = self.query(cmd, safe=safe)
        if reply.startswith("ERR"):
            raise self.fail(f"device error {reply[3:].strip()!r}", cmd, reply)
        return reply

    def act(self, cmd: str, *, safe: bool = False) -> None:
        reply = self.command(cmd, safe=safe)
        if reply != "OK":
            raise self.fail("expected OK", cmd, reply)


__all__ = ["MotionDriver"]
