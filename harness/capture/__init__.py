"""Capture sequences and the capture-set format (frames as evidence)."""
