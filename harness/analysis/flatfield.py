"""Flat-field correction: take the lens shading (and the chart's uneven lighting) out of an image.

A camera module's lens darkens the corners (relative illumination) and, on a colour sensor,
shades red and blue differently from green (colour shading); the chart's own illumination is
never perfectly even either. Colour accuracy is a property of the sensor's spectral response
and of the colour pipeline, measured on a uniformly lit chart, so the ColorChecker image is
divided by the station's flat field first (the usual practice before a colour measurement,
ISO 17321-1's uniform-illumination condition; the shading itself is judged on the flat by the
shading limits, docs/standards.md#iso-17957-shading).

The gain map is per Bayer site: each plane of the flat is divided by its own median over a
central window, so the correction removes the spatial fall-off of every channel but keeps the
colour balance of the image centre, which is what white balance and the colour matrix are
measured on. A defect pixel of the flat (more than :data:`OUTLIER` from the 5 x 5 median of
its plane) takes that median instead, so it does not become a gain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import ConfigError, MeasurementError

FloatArray = NDArray[np.float64]

CENTRE_FRACTION = 0.1
"""The central window (fraction of the height and width) a plane is normalised over."""
OUTLIER = 0.2
"""Relative departure from the local median that marks a flat-field pixel as a defect."""


def _planes(cfa: str | None) -> list[tuple[int, int, int]]:
    """(row offset, column offset, stride) of each plane: four Bayer sites, or one plane."""
    return [(0, 0, 1)] if cfa is None else [(r, c, 2) for r in (0, 1) for c in (0, 1)]


def flat_field_gain(flat: NDArray[Any], black: float, cfa: str | None) -> FloatArray:
    """The per-pixel gain that makes ``flat`` (a mean flat field in DN, its black level
    ``black``) uniform per Bayer site, 1 at the centre of every plane."""
    a = np.asarray(flat, dtype=np.float64)
    if a.ndim != 2:
        raise ConfigError(f"a flat field is a 2-D image, got shape {a.shape}", field="flat")
    signal = a - float(black)
    gain = np.empty_like(signal)
    import cv2

    for r0, c0, step in _planes(cfa):
        plane = signal[r0::step, c0::step].copy()
        local = cv2.medianBlur(np.ascontiguousarray(plane, dtype=np.float32),
                               5).astype(np.float64)
        odd = np.abs(plane - local) > OUTLIER * np.abs(local)
        plane[odd] = local[odd]
        h, w = plane.shape
        dh, dw = max(1, int(h * CENTRE_FRACTION / 2)), max(1, int(w * CENTRE_FRACTION / 2))
        centre = float(np.median(plane[h // 2 - dh:h // 2 + dh, w // 2 - dw:w // 2 + dw]))
        if not centre > 0 or float(plane.min()) <= 0:
            raise MeasurementError("the flat field has no signal above the black level in "
                                   "places: it cannot correct the shading", figure="flat")
        gain[r0::step, c0::step] = centre / plane
    return gain


def flat_field_correct(image: NDArray[Any], flat: NDArray[Any], black: float,
                       cfa: str | None) -> FloatArray:
    """``image`` (DN) with its shading removed: ``(image - black) * gain + black``, ``gain``
    from :func:`flat_field_gain`. The image and the flat must have the same size."""
    a = np.asarray(image, dtype=np.float64)
    if a.shape != np.shape(flat):
        raise ConfigError(f"image {a.shape} and flat field {np.shape(flat)} differ in size",
                          field="flat")
    return (a - float(black)) * flat_field_gain(flat, black, cfa) + float(black)


__all__ = ["CENTRE_FRACTION", "flat_field_correct", "flat_field_gain"]
