"""Station-file sections that a lower floor owns (the idea of labgrid's ``factory.py``).

The station loader (:mod:`harness.station.schema`) types the sections it owns itself (``id``,
devices, ``calibration``, ``settings``). A section that belongs to a lower floor, such as the
simulator's ``bench:`` and ``simulators:``, is typed by that floor: its module registers a
loader with :func:`register_section`, and the station loader calls it when the file has the
section, so a typo there is a start-up error with the same file:line line as any other.

This module is neutral ground (it imports only the ground floor): the simulator registers here
without importing the station, and the station finds the simulator's schema without importing
the simulator. :data:`BUILTIN_SECTIONS` names, as strings, the module that registers each
built-in section; :func:`section_loader` imports it only when a station file has that section,
so a real station never imports :mod:`harness.sim`. (The driver registry, today
``harness/station/registry.py``, is planned to move here beside it.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from harness.yamlio import LoadedYaml

SectionLoader = Callable[[LoadedYaml, Any], Any]
"""``(doc, raw) -> validated``: check a station file's section ``raw`` (``doc.data[name]``,
never ``None``) and return its typed value; raise one-line errors with ``doc.error`` or
:func:`harness.yamlio.validate_model`, which name the station file's line."""

BUILTIN_SECTIONS: dict[str, str] = {
    "bench": "harness.sim.bench",
    "simulators": "harness.sim.instruments.hub",
}
"""Section name -> the module that registers its loader on import."""

_sections: dict[str, SectionLoader] = {}


def register_section(name: str) -> Callable[[SectionLoader], SectionLoader]:
    """Decorator: ``fn`` checks the station file's top-level section ``name``."""
    def decorate(fn: SectionLoader) -> SectionLoader:
        existing = _sections.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                fn.__module__, fn.__qualname__):
            raise ValueError(f"station section {name!r} is already registered by "
                             f"{existing.__module__}.{existing.__qualname__}")
        _sections[name] = fn
        return fn

    return decorate


def section_names() -> list[str]:
    """Every section a station file may have beside the station's own keys, sorted."""
    return sorted({*BUILTIN_SECTIONS, *_sections})


def section_loader(name: str) -> SectionLoader:
    """The loader of section ``name``, importing its owner on first use; ``KeyError`` if no
    module owns it."""
    if name not in _sections and name in BUILTIN_SECTIONS:
        importlib.import_module(BUILTIN_SECTIONS[name])
    return _sections[name]


__all__ = ["BUILTIN_SECTIONS", "SectionLoader", "register_section", "section_loader",
           "section_names"]
