"""Command groups whose commands are imported and built only when they are used.

Typer turns a whole application into click commands before it parses the first argument: for the
harness's 32 commands in five groups that took about 50 ms per invocation (``harness --version``
0.15 s before, 0.10 s after), plus the imports of every command module. A :class:`LazyGroup`
knows which module registers each of its commands (a table, kept complete by
``tests_unit/test_startup.py``); it imports that module and builds that one command when click
resolves the name, so ``harness analyze emva1288`` pays for ``analyze emva1288`` alone. Listing
the commands (``--help``, a misspelt name) imports and builds all of them.

The pattern is click's "lazily loading subcommands"
(https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands) applied to
the typer applications the command modules register on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import typer
from typer import _click as click  # typer >= 0.26 vendors click; the version is pinned
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group_from_info


class LazyGroup(TyperGroup):
    """A typer group that imports a command's module the first time the command is asked for.

    Subclasses set :attr:`owner` (returns the :class:`typer.Typer` the modules register on) and
    :attr:`modules` (command name -> the modules that register it, imported in order)."""

    owner: ClassVar[Callable[[], typer.Typer]]
    modules: ClassVar[Mapping[str, tuple[str, ...]]]

    def list_commands(self, ctx: click.Context) -> list[str]:
        for name in self.modules:
            self.get_command(ctx, name)
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            for module in self.modules[cmd_name]:
                importlib.import_module(module)
            command = _build(type(self).owner(), cmd_name)
            if command is not None:
                self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError:
            self.list_commands(ctx)  # every name known, so the error can suggest the nearest
            return super().resolve_command(ctx, args)


def _build(owner: typer.Typer, name: str) -> click.Command | None:
    """The click command or group registered on ``owner`` under ``name`` (None if none is)."""
    options: dict[str, Any] = {"pretty_exceptions_short": owner.pretty_exceptions_short,
                               "rich_markup_mode": owner.rich_markup_mode}
    for info in owner.registered_commands:
        if info.callback is not None and (
                info.name or get_command_name(info.callback.__name__)) == name:
            return get_command_from_info(info, **options)
    for group in owner.registered_groups:  # each added by add_typer with its name
        if group.name == name:
            return get_group_from_info(group, suggest_commands=owner.suggest_commands,
                                       **options)
    return None


def lazy_group(owner: Callable[[], typer.Typer],
               modules: Mapping[str, tuple[str, ...]]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class for ``owner``'s commands (pass it as ``typer.Typer(cls=...)``)."""
    return type("LazyGroup", (LazyGroup,), {"owner": staticmethod(owner), "modules": modules})


__all__ = ["LazyGroup", "lazy_group"]
