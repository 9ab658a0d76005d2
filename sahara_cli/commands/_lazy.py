"""Command groups that load on demand, so that a command imports only its own module.

The root app lists its commands in a registry of :class:`Entry` (name, where the command
lives, one-line help). :class:`LazyGroup` imports a command's module the first time the
command is looked up (``get_command``), which happens when it runs, when its ``--help`` is
asked for, or when something walks the app (``sahara schema``, the tests). The root
``--help`` lists the commands from the registry's help lines without importing any of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from typer import _click
from typer.core import TyperCommand, TyperGroup

from sahara_cli.commands import _help_render, _params

#: ``ctx.meta`` key set while the root help is being formatted.
_SUMMARIES = "sahara.summaries_only"

_params.install()  # plain option values without pydantic (see _params)
_help_render.install()  # help without rich.markdown and rich.traceback (see _help_render)


@dataclass(frozen=True)
class Entry:
    """One command of the root app.

    ``target`` is ``"module:attribute"``: a ``typer.Typer`` (a command group) or a command
    function. ``help`` is the first paragraph of the command's own help, as the root
    ``--help`` shows it (a test keeps the two the same).
    """

    name: str
    target: str
    help: str


class _LazyCommands(MutableMapping[str, _click.Command]):
    """The group's commands by name: the registry's names, each loaded on first access."""

    def __init__(self, group: LazyGroup, loaded: MutableMapping[str, _click.Command]) -> None:
        self._group = group
        self._loaded = dict(loaded)

    def __getitem__(self, name: str) -> _click.Command:
        command = self._loaded.get(name)
        if command is None:
            entry = self._group.entries_by_name().get(name)
            if entry is None:
                raise KeyError(name)
            command = self._loaded[name] = self._group.load(entry)
        return command

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]  # only a command added or loaded in this process

    def __iter__(self) -> Iterator[str]:
        names = [entry.name for entry in self._group.entries]
        return iter(dict.fromkeys([*names, *self._loaded]))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded


class LazyGroup(TyperGroup):
    """A Typer group whose commands come from :attr:`entries` and load on demand."""

    #: The commands, in the order the help lists them; set by a subclass.
    entries: ClassVar[Sequence[Entry]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self, self.commands)

    @classmethod
    def entries_by_name(cls) -> dict[str, Entry]:
        return {entry.name: entry for entry in cls.entries}

    def load(self, entry: Entry) -> _click.Command:
        """Import ``entry``'s module and build its click command as ``add_typer`` would."""
        import typer

        module, _, attribute = entry.target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=entry.name)
        else:
            holder.command(entry.name)(target)
        return typer.main.get_group(holder).commands[entry.name]

    def list_commands(self, ctx: _click.Context) -> list[str]:  # noqa: ARG002  # click's API
        return list(self.commands)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        commands = self.commands
        if (
            ctx.meta.get(_SUMMARIES)
            and isinstance(commands, _LazyCommands)
            and not commands.is_loaded(cmd_name)
        ):
            entry = self.entries_by_name().get(cmd_name)
            if entry is not None:  # what the help's command list reads, and nothing more
                return TyperCommand(name=entry.name, help=entry.help)
        return commands.get(cmd_name)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        ctx.meta[_SUMMARIES] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta.pop(_SUMMARIES, None)
