"""A click group that imports a command's module only when the command is asked for.

The pattern of click's documentation ("Lazily Loading Subcommands"): `tandem --help` and
`tandem validate` stay fast because `tandem run`'s executor and `tandem get`'s Kubernetes client
are imported only by the commands that use them.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

import click

from .boundary import TandemGroup


class LazyGroup(TandemGroup):
    """`lazy_subcommands` maps a command name to "module:attribute" of its click command."""

    def __init__(self, *args: Any, lazy_subcommands: Optional[dict[str, str]] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in self.lazy_subcommands:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, attribute = self.lazy_subcommands[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command
