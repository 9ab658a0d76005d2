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
        """Import ``entry``'s module and build its click command as ``add_typer`` would;
        a group's own commands are built when they are looked up (:func:`lazy_group`)."""
        import typer

        module, _, attribute = entry.target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            return lazy_group(target, entry.name, self.rich_markup_mode)
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode)
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


class _SubCommands(MutableMapping[str, _click.Command]):
    """A group's commands and sub-groups by name, each built by Typer on first access."""

    def __init__(self, app: Any, markup: Any) -> None:
        from typer.main import get_command_name

        self._app, self._markup = app, markup
        self._built: dict[str, _click.Command] = {}
        self._infos: dict[str, Any] = {}
        for info in app.registered_commands:
            self._infos[info.name or get_command_name(info.callback.__name__)] = info
        for info in app.registered_groups:
            name = info.name or info.typer_instance.info.name
            if isinstance(name, str):  # a group added without a name merges: built at once
                self._infos[name] = info
            else:
                group = _build(info, app, markup)
                self._built.update(getattr(group, "commands", {}))

    def __getitem__(self, name: str) -> _click.Command:
        command = self._built.get(name)
        if command is None:
            info = self._infos[name]  # KeyError: no such command
            command = self._built[name] = _build(info, self._app, self._markup)
        return command

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._built.pop(name, None)
        self._infos.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._infos, *self._built]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _build(info: Any, app: Any, markup: Any) -> _click.Command:
    from typer.main import get_command_from_info, get_group_from_info
    from typer.models import CommandInfo

    if isinstance(info, CommandInfo):
        return get_command_from_info(
            info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=markup
        )
    return get_group_from_info(
        info,
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=markup,
        suggest_commands=app.suggest_commands,
    )


def lazy_group(app: Any, name: str, markup: Any) -> _click.Command:
    """``app`` as a click group named ``name``, as ``typer.main.get_group`` builds it,
    except that its commands are built when looked up: running ``sahara agent chat``
    builds ``chat`` and not the fourteen other commands of ``agent`` (their signatures,
    options and help cost tens of milliseconds)."""
    from typer.main import get_group_from_info
    from typer.models import TyperInfo

    commands, groups = app.registered_commands, app.registered_groups
    app.registered_commands, app.registered_groups = [], []
    try:  # the group itself (options, callback, help) with no commands yet
        group = get_group_from_info(
            TyperInfo(app, name=name),
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=markup,
            suggest_commands=app.suggest_commands,
        )
    finally:
        app.registered_commands, app.registered_groups = commands, groups
    group.commands = _SubCommands(app, markup)
    return group
