"""Capture sequences and the capture-set writer (frames as evidence; the format and its
reader are :mod:`harness.inputs.captureset`)."""

__all__: list[str] = []
