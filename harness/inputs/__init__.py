"""Readers of what analysis works on: capture sets, TIFF/PNG images, EMVA 1288 descriptor
files and frame stacks.

:mod:`~harness.inputs.captureset` is the capture-set format and its reader (the writer is
:mod:`harness.capture.writer`), :mod:`~harness.inputs.tiff_layout` reads series of TIFFs
without re-parsing, :mod:`~harness.inputs.image_input` loads images for the optics analyses,
:mod:`~harness.inputs.emva_descriptor` reads (and writes) EMVA descriptor files and
:mod:`~harness.inputs.stack_input` streams stacks and sweeps through the analysis reducers.

This floor sits above :mod:`harness.analysis` (the stack readers feed its reducers, frame by
frame) and below the devices, the capture layer and everything that reads recorded frames.
"""

__all__: list[str] = []
