"""Every module of every package under harness/ says what it offers: an ``__all__``.

``__all__`` must exist, hold each name once, and name only what the module itself defines (a
``def``, a ``class`` or an assignment at its top level). A package's ``__init__`` may also name
what it imports from its own submodules (``harness.cli`` offers ``app`` from
``harness.cli.app``); any other module re-exporting a name from elsewhere is refused, so an
import shows where a name lives. Every public function and class a module defines is in its
``__all__``, so the list does not fall behind the module.

Not checked yet: ``harness.sim``, whose modules are being reworked on another branch of work;
they get their ``__all__`` with it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
PENDING: tuple[str, ...] = ()


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not any(name == p or name.startswith(p + ".") for p in PENDING):
            names.append(name)
    return names


def source_path(name: str) -> Path:
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def top_level_bindings(tree: ast.Module) -> tuple[set[str], dict[str, str]]:
    """(names defined by def/class/assignment, name -> module it is imported from), at the top
    level of a module, inside ``if``/``try`` blocks too (``if TYPE_CHECKING:``)."""
    defined: set[str] = set()
    imported: dict[str, str] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target,
                                                                                 ast.Name):
                defined.add(node.target.id)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    imported[alias.asname or alias.name] = node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    imported[alias.asname or alias.name.partition(".")[0]] = alias.name
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return defined, imported


def public_definitions(tree: ast.Module) -> set[str]:
    """Public functions and classes defined at the top level."""
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and not node.name.startswith("_")}


def test_the_walk_finds_the_packages() -> None:
    names = module_names()
    assert {"harness.errors", "harness.cli", "harness.analysis.focus",
            "harness.evidence.records.store"} <= set(names)
    assert {"harness.sim.camera", "harness.sim.instruments.scpi_psu"} <= set(names)


@pytest.mark.parametrize("name", module_names())
def test_module_has_all_naming_only_its_own_definitions(name: str) -> None:
    module = importlib.import_module(name)
    path = source_path(name)
    assert hasattr(module, "__all__"), f"{path.relative_to(ROOT)} has no __all__"
    exported = list(module.__all__)
    assert all(isinstance(n, str) for n in exported)
    assert len(exported) == len(set(exported)), f"{name}.__all__ names something twice"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined, imported = top_level_bindings(tree)
    is_package = path.name == "__init__.py"
    for export in exported:
        assert hasattr(module, export), f"{name}.__all__ names {export!r}, which it lacks"
        if export in defined:
            continue
        source = imported.get(export)
        own = source is not None and source.startswith(name + ".")
        assert is_package and own, (
            f"{name}.__all__ names {export!r}, which it does not define"
            + (f" (it imports it from {source}: import it from there)" if source else ""))
    missing = sorted(public_definitions(tree) - set(exported))
    assert not missing, f"{name} defines {', '.join(missing)} but its __all__ leaves them out"
