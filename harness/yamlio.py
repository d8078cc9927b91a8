"""Safe YAML loading that remembers where every value came from.

Station files, limit specs and module files are read with ``yaml.SafeLoader`` only (no Python
tags), with ``${VAR}`` / ``${VAR:-default}`` environment substitution in string values, and a
map from each field path to its line so an error can name file, line and field in one line.
Duplicate keys, which PyYAML silently resolves to the last one, are an error here.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

FieldPath = tuple[str | int, ...]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedYaml:
    """A parsed YAML document plus the line of every field path."""

    data: Any
    source: str
    lines: dict[FieldPath, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def error(self, path: Sequence[str | int], message: str) -> ConfigError:
        return ConfigError(message, source=self.source, line=self.line_of(path),
                           field=format_path(path) or None)


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


#: Bounds on a document's shape: station files, limit specs and module files are a few levels
#: deep and a few hundred values long; these bounds refuse alias bombs ("billion laughs"),
#: self-referencing anchors and absurd nesting with one line instead of a hang or a
#: RecursionError.
MAX_DEPTH = 64
MAX_NODES = 100_000


class _Walk:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[FieldPath, int] = {}
        self.count = 0
        self.active: set[int] = set()

    def fail(self, node: yaml.Node, path: FieldPath, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, line=node.start_mark.line + 1,
                           field=format_path(path) or None)

    def walk(self, node: yaml.Node, path: FieldPath) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"more than {MAX_NODES} values once aliases are "
                                        "expanded; refusing the document")
        if len(path) > MAX_DEPTH:
            raise self.fail(node, path, f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in self.active:
            raise self.fail(node, path, "an alias refers to a value that contains it "
                                        "(recursive anchor)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                line = key_node.start_mark.line + 1
                if not isinstance(key, str):
                    raise self.fail(key_node, path, "a key must be a plain value, "
                                                    "not a list or mapping")
                if key in seen:
                    raise ConfigError(
                        f"duplicate key {key!r} (first at line {seen[key]})",
                        source=self.source, line=line, field=format_path((*path, key)),
                    )
                seen[key] = line
                self.lines[(*path, key)] = line
                self.walk(value_node, (*path, key))
            self.active.discard(id(node))
        elif isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))
            self.active.discard(id(node))


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python tags) whose value errors carry the value's line.

    PyYAML's safe constructors raise a bare ``ValueError`` for a value of the right shape
    but impossible content (``2027-13-01`` as a date); this turns it into a marked error.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"bad value {str(node.value)[:40]!r}: {exc}",
                node.start_mark) from None


def _substitute(value: Any, path: FieldPath, doc: LoadedYaml, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise doc.error(path, f"environment variable {name} is not set "
                                  f"(write ${{{name}:-default}} to give a default)")
        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), doc, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), doc, env) for i, v in enumerate(value)]
    return value


def load_yaml(path: str | Path, *, what: str = "file",
              env: Mapping[str, str] | None = None) -> LoadedYaml:
    """Read ``path`` safely; every problem is a one-line :class:`ConfigError`."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError(f"is a directory, expected a YAML {what}", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    return parse_yaml(text, source=source, what=what, env=env)


def parse_yaml(text: str, *, source: str, what: str = "file",
               env: Mapping[str, str] | None = None) -> LoadedYaml:
    loader: _SafeLoader | None = None
    try:
        loader = _SafeLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}".splitlines()[0], source=source) from None
    except RecursionError:
        raise ConfigError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels",
                          source=source) from None
    except (ValueError, OverflowError) as exc:  # the scanner on e.g. a "\U7fffffff" escape
        raise ConfigError(f"invalid YAML: {exc}".splitlines()[0], source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    walker = _Walk(source)
    if node is not None:
        walker.walk(node, ())
    lines = walker.lines
    doc = LoadedYaml(data, source, lines)
    if data is None:
        raise ConfigError(f"empty {what}", source=source, line=1)
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping of keys, found {type(data).__name__}",
                          source=source, line=1)
    data = _substitute(data, (), doc, os.environ if env is None else env)
    return LoadedYaml(data, source, lines)


def close_matches(word: str, allowed: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or '' — for unknown-key and unknown-name errors."""
    matches = difflib.get_close_matches(word, list(allowed), n=2, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def validation_error(doc: LoadedYaml, exc: ValidationError, *, prefix: FieldPath = (),
                     model_fields: Mapping[FieldPath, Iterable[str]] | None = None) -> ConfigError:
    """Turn the first pydantic error into one line naming file, line, field, found and allowed.

    ``model_fields`` maps a field path to the keys allowed there, for unknown-key messages.
    """
    errors = exc.errors(include_url=False)
    # a misspelt key also shows up as a missing one: name the misspelling first
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc: FieldPath = (*prefix, *(p for p in first["loc"] if isinstance(p, (str, int))))
    kind = first["type"]
    found = first.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = sorted((model_fields or {}).get(loc[:-1], []))
        msg = f"unknown key {key!r}{close_matches(key, allowed)}"
        if allowed:
            msg += f"; allowed: {', '.join(allowed)}"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = first["msg"]
        if not isinstance(found, (dict, list)):
            msg += f", found {found!r}"
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return doc.error(loc, msg)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds directly, or as one arm of ``X | None`` / a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _nested_models(arg)]
    return []


def model_keys(model: type[BaseModel], prefix: FieldPath = ()) -> dict[FieldPath, list[str]]:
    """The keys ``model`` allows at each of its nested model paths, for unknown-key hints."""
    out: dict[FieldPath, list[str]] = {prefix: list(model.model_fields)}
    if len(prefix) > MAX_DEPTH:  # a model that holds itself: its keys are known by now
        return out
    for name, info in model.model_fields.items():
        for nested in _nested_models(info.annotation):
            out.update(model_keys(nested, (*prefix, name)))
    return out


def validate_model(doc: LoadedYaml, model: type[M], data: Any, *, prefix: FieldPath = (),
                   extra_keys: Mapping[FieldPath, Iterable[str]] | None = None) -> M:
    """``model.model_validate(data)`` for the part of ``doc`` at ``prefix``; a failure is one
    :class:`ConfigError` line naming file, line, field, what was found and the allowed keys.

    ``extra_keys`` adds keys allowed beside the model's own (e.g. ``driver`` of a device),
    so a misspelling of them gets its "did you mean" too.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = {(*prefix, *sub): keys for sub, keys in model_keys(model).items()}
        for path, keys in (extra_keys or {}).items():
            fields[path] = [*fields.get(path, []), *keys]
        raise validation_error(doc, exc, prefix=prefix, model_fields=fields) from None


__all__ = ["MAX_DEPTH", "MAX_NODES", "FieldPath", "LoadedYaml", "close_matches", "format_path",
           "load_yaml", "model_keys", "parse_yaml", "validate_model", "validation_error"]
