"""Replay: a station that serves a recorded run again, so the same suites can re-judge it.

``camera: {driver: replay, run: DIR}`` serves the frames of the run's capture sets in the order
they were captured; ``light``, ``chart``, ``focus``, ``meter`` and ``power`` with ``driver:
replay`` keep the state the suite commands and serve what the recording holds (the meter the
reading stored with each frame, the supply the readings the run journaled). With ``strict:
true`` (the default) every frame served is checked against what the suite asked for (exposure,
gain, chart, light level, colour temperature, focus) and against how the suite stores it
(sequence, role, group, step): a difference stops the step with an ERROR naming the frame and
the field, never a judgement of the wrong frames. ``harness rejudge`` builds such a station.

Replay is a backend of its own, not one of :mod:`harness.devices`: it plays back evidence (the
run's journal and its capture sets), so it sits above :mod:`harness.evidence` and
:mod:`harness.inputs`. Its drivers register in :mod:`harness.registry` like any other, and the
station finds them by name without importing this package.
"""

__all__: list[str] = []
