"""The simulated optical bench: physics of a camera module on a test station.

:mod:`~harness.sim.bench` (shared physical state), :mod:`~harness.sim.module` (module files),
:mod:`~harness.sim.sensor` (EMVA 1288 sensor model), :mod:`~harness.sim.optics` (lens PSF,
MTF, shading, decentre, distortion, lateral colour), :mod:`~harness.sim.blemish` (particle
shadows), :mod:`~harness.sim.scene` (charts), :mod:`~harness.sim.colour_response`
(spectra, colour truth), :mod:`~harness.sim.camera` (SimCamera over a GenApi node map),
:mod:`~harness.sim.truth` (ground truth); instrument simulators live in ``instruments/``.
"""


__all__: list[str] = []
