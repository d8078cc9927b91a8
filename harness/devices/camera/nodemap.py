"""GenApi node-map access by SFNC feature name, thread-safe, with one-line errors.

Shared by the GenTL driver (:mod:`harness.devices.camera.genicam`, whose node map is the remote
device's) and the simulated camera (whose node map is a ``genicam.genapi.NodeMap`` connected to
a Python ``AbstractPort``). Both speak the same GenApi API, so both get the same behaviour:
GenApi validates min/max/increment, enum entries and access modes; this module only turns its
exceptions into :class:`~harness.errors.FeatureError` messages an operator can act on.

Thread safety: two threads touching one GenApi node map deadlock (GenApi's ``CLock`` against the GIL
inside SWIG-director port calls; docs/standards.md#harvesters-and-genapi-traps, trap 4), read-only
too. Every node-map call in the process therefore goes through the single re-entrant
:data:`GENAPI_LOCK`; code elsewhere that touches a node map directly (chunk parsing, acquisition
start) must hold it as well.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import genicam.genapi as ga
import genicam.gentl as gt

from harness.devices.base import FeatureInfo, FeatureType
from harness.errors import FeatureError

GENAPI_LOCK = threading.RLock()
"""The one lock around every GenApi call in this process (trap 4 of
docs/standards.md#harvesters-and-genapi-traps)."""

_VALUE_TYPES: tuple[tuple[type[Any], FeatureType], ...] = (
    (ga.IInteger, "int"),
    (ga.IFloat, "float"),
    (ga.IEnumeration, "enum"),
    (ga.IBoolean, "bool"),
    (ga.IString, "str"),
    (ga.ICommand, "command"),
)
_ACCESS_NAMES = {ga.EAccessMode.NI: "not implemented", ga.EAccessMode.NA: "not available",
                 ga.EAccessMode.WO: "write-only", ga.EAccessMode.RO: "read-only",
                 ga.EAccessMode.RW: "read-write"}
_READABLE = (ga.EAccessMode.RO, ga.EAccessMode.RW)
_WRITABLE = (ga.EAccessMode.WO, ga.EAccessMode.RW)


@contextmanager
def genapi_locked() -> Iterator[None]:
    """Hold :data:`GENAPI_LOCK` (for callers that touch a node map directly)."""
    with GENAPI_LOCK:
        yield


def _first_line(exc: BaseException) -> str:
    """GenApi's message without the ``: XException thrown in node ...`` tail."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(" : ", 1)[0].strip()


def _fmt(number: float | int | None) -> str:
    if number is None:
        return "?"
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:g}"


class NodeMapFeatures:
    """Typed access to the features of one GenApi node map.

    ``device`` names the camera in every error (``"cam: Width=4096 is out of range ..."``).
    Values are Python types: ``int``, ``float``, ``bool``, ``str``; enumerations by their symbolic
    entry name (an ``int`` selects an entry by value). Setting a command feature executes it.
    """

    def __init__(self, node_map: Any, device: str) -> None:
        self.node_map = node_map
        self.device = device
        self._names: tuple[str, ...] | None = None

    # -- names -------------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        """Every feature node (``is_feature``) that has a value or is a command, sorted."""
        if self._names is None:
            with GENAPI_LOCK:
                found = []
                for node in self.node_map.nodes:
                    inner = node.node
                    if inner.is_feature() and inner.principal_interface_type in _FEATURE_INTF:
                        found.append(inner.name)
            self._names = tuple(sorted(found))
        return self._names

    def has(self, name: str) -> bool:
        """Whether the node map has a feature node ``name`` (implemented or not)."""
        with GENAPI_LOCK:
            return bool(self.node_map.has_node(name))

    def is_available(self, name: str) -> bool:
        """Whether ``name`` exists and is implemented and available right now."""
        with GENAPI_LOCK:
            if not self.node_map.has_node(name):
                return False
            mode = self.node_map.get_node(name).node.get_access_mode()
            return mode not in (ga.EAccessMode.NI, ga.EAccessMode.NA)

    def _error(self, message: str) -> FeatureError:
        return FeatureError(message, device=self.device)

    def _unknown(self, name: str) -> FeatureError:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        close += [n for n in names if n.lower() == name.lower() and n not in close]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return self._error(f"unknown feature {name!r}{hint}")

    def _node(self, name: str) -> tuple[Any, FeatureType]:
        """The typed node for ``name`` (caller holds the lock)."""
        if not isinstance(name, str) or not self.node_map.has_node(name):
            raise self._unknown(str(name))
        node = self.node_map.get_node(name)
        for cls, kind in _VALUE_TYPES:
            if isinstance(node, cls):
                return node, kind
        raise self._error(f"{name} is a {type(node).__name__.removeprefix('I').lower()} node, "
                          f"not a feature with a value")

    @staticmethod
    def _access(node: Any) -> Any:
        return node.node.get_access_mode()

    # -- read --------------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The current value of ``name`` as a Python value."""
        with GENAPI_LOCK:
            node, kind = self._node(name)
            if kind == "command":
                raise self._error(f"{name} is a command: execute it, it has no value")
            mode = self._access(node)
            if mode not in _READABLE:
                raise self._error(f"{name} is not readable now ({_ACCESS_NAMES.get(mode, mode)})")
            try:
                return self._read(node, kind)
            except (ga.GenericException, gt.GenericException) as exc:
                raise self._error(f"reading {name} failed: {_first_line(exc)}") from None

    @staticmethod
    def _read(node: Any, kind: FeatureType) -> Any:
        value = node.value
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return bool(value)
        return str(value)

    def info(self, name: str) -> FeatureInfo:
        """Type, current value (``None`` when not readable), access, range, unit and choices."""
        with GENAPI_LOCK:
            node, kind = self._node(name)
            mode = self._access(node)
            readable = mode in _READABLE and kind != "command"
            writable = mode in _WRITABLE
            value: Any = None
            if readable:
                try:
                    value = self._read(node, kind)
                except (ga.GenericException, gt.GenericException):
                    readable = False
            lo = hi = inc = None
            unit = ""
            choices: tuple[str, ...] = ()
            if kind in ("int", "float") and mode in _READABLE + _WRITABLE:
                lo, hi, inc = self._range(node, kind)
                unit = str(getattr(node, "unit", "") or "")
            elif kind == "enum" and mode != ga.EAccessMode.NI:
                choices = tuple(str(s) for s in node.symbolics)
            return FeatureInfo(name=name, type=kind, value=value, readable=readable,
                               writable=writable, minimum=lo, maximum=hi, increment=inc,
                               unit=unit, choices=choices)

    @staticmethod
    def _range(node: Any, kind: FeatureType) -> tuple[Any, Any, Any]:
        try:
            if kind == "int":
                return int(node.min), int(node.max), int(node.inc)
            inc = float(node.inc) if node.has_inc() else None
            return float(node.min), float(node.max), inc
        except (ga.GenericException, gt.GenericException):
            return None, None, None

    def snapshot(self) -> dict[str, Any]:
        """Every readable feature's value, by name (commands and unreadable features left out).

        Taken before and after a test and compared with :func:`diff_snapshots`, it catches a test
        that leaves a setting changed (docs/standards.md#sfnc-features-and-the-settings-snapshot).
        """
        out: dict[str, Any] = {}
        with GENAPI_LOCK:
            for name in self.names():
                node, kind = self._node(name)
                if kind == "command" or self._access(node) not in _READABLE:
                    continue
                try:
                    out[name] = self._read(node, kind)
                except (ga.GenericException, gt.GenericException):
                    continue
        return out

    # -- write -------------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Write ``value`` to ``name``; a command feature is executed instead."""
        with GENAPI_LOCK:
            node, kind = self._node(name)
            if kind == "command":
                self._execute(name, node)
                return
            mode = self._access(node)
            if mode not in _WRITABLE:
                raise self._error(f"{name} is not writable now "
                                  f"({_ACCESS_NAMES.get(mode, mode)}; e.g. while streaming)")
            coerced = self._coerce(name, kind, node, value)
            try:
                if kind == "enum" and isinstance(coerced, int):
                    node.set_int_value(coerced)
                else:
                    node.value = coerced
            except ga.OutOfRangeException:
                lo, hi, inc = self._range(node, kind)
                raise self._error(
                    f"{name}={_fmt(coerced)} is out of range (min {_fmt(lo)}, max {_fmt(hi)}, "
                    f"increment {_fmt(inc) if inc is not None else 'any'})") from None
            except ga.InvalidArgumentException as exc:
                if kind == "enum":
                    raise self._bad_entry(name, node, coerced) from None
                raise self._error(f"{name}={coerced!r} rejected: {_first_line(exc)}") from None
            except ga.AccessException:
                mode = self._access(node)
                raise self._error(f"{name} is not writable now "
                                  f"({_ACCESS_NAMES.get(mode, mode)})") from None
            except (ga.GenericException, gt.GenericException) as exc:
                raise self._error(f"writing {name}={coerced!r} failed: "
                                  f"{_first_line(exc)}") from None

    def _bad_entry(self, name: str, node: Any, value: Any) -> FeatureError:
        allowed = ", ".join(str(s) for s in node.symbolics)
        return self._error(f"{name}={value!r} is not an allowed entry; allowed: {allowed}")

    def _coerce(self, name: str, kind: FeatureType, node: Any, value: Any) -> Any:
        """``value`` as the type GenApi wants, or a one-line error saying what was expected."""
        try:
            if kind == "int":
                if isinstance(value, bool):
                    raise TypeError
                number = float(value) if isinstance(value, str) else value
                if isinstance(number, float):
                    if not number.is_integer():
                        raise ValueError
                    number = int(number)
                return int(number)
            if kind == "float":
                if isinstance(value, bool):
                    raise TypeError
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError
                return number
            if kind == "bool":
                if isinstance(value, str) and value.lower() in ("true", "on", "1", "false",
                                                                "off", "0"):
                    return value.lower() in ("true", "on", "1")
                if isinstance(value, bool | int) and value in (0, 1):
                    return bool(value)
                raise ValueError
            if kind == "enum":
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                text = str(value)
                if text not in tuple(node.symbolics):
                    raise self._bad_entry(name, node, value)
                return text
            return str(value)
        except (TypeError, ValueError):
            expected = {"int": "an integer", "float": "a finite number",
                        "bool": "true or false"}.get(kind, kind)
            raise self._error(f"{name}={value!r} is not {expected}") from None

    def execute(self, name: str) -> None:
        """Execute the command feature ``name`` (``TriggerSoftware``, ``AcquisitionStart``)."""
        with GENAPI_LOCK:
            node, kind = self._node(name)
            if kind != "command":
                raise self._error(f"{name} is a {kind} feature, not a command")
            self._execute(name, node)

    def _execute(self, name: str, node: Any) -> None:
        mode = self._access(node)
        if mode not in _WRITABLE:
            raise self._error(f"{name} cannot be executed now ({_ACCESS_NAMES.get(mode, mode)})")
        try:
            node.execute()
        except ga.AccessException:
            raise self._error(f"{name} cannot be executed now") from None
        except (ga.GenericException, gt.GenericException) as exc:
            raise self._error(f"executing {name} failed: {_first_line(exc)}") from None

    def invalidate(self) -> None:
        """Drop GenApi's cached values (after the device changed registers behind its back)."""
        with GENAPI_LOCK:
            self.node_map._invalidate_nodes()


_FEATURE_INTF = {
    ga.EInterfaceType.intfIInteger, ga.EInterfaceType.intfIFloat,
    ga.EInterfaceType.intfIEnumeration, ga.EInterfaceType.intfIBoolean,
    ga.EInterfaceType.intfIString, ga.EInterfaceType.intfICommand,
}


_MISSING = object()


def diff_snapshots(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{name: (old, new)}`` for every feature whose value changed, appeared or vanished.

    A feature present on one side only shows ``None`` on the other. Floats compare with a
    relative tolerance of 1e-9, because a write-then-read through a Converter may round.
    """
    changed: dict[str, tuple[Any, Any]] = {}
    for name in sorted(set(before) | set(after)):
        old = before.get(name, _MISSING)
        new = after.get(name, _MISSING)
        if isinstance(old, float) and isinstance(new, float) and math.isclose(old, new,
                                                                                rel_tol=1e-9):
            continue
        if old is _MISSING or new is _MISSING or old != new:
            changed[name] = (None if old is _MISSING else old, None if new is _MISSING else new)
    return changed


__all__ = ["GENAPI_LOCK", "NodeMapFeatures", "diff_snapshots", "genapi_locked"]
