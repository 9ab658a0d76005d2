"""How ``--help`` reads: flags shown as flags, and an Examples section on every command.

Typer (0.29) labels every option with its Python type in Rich help, so a flag such as
``--json`` reads ``--json <bool>`` as if it took a value; :func:`install` drops the label
of flags and counters. It also gives each command's help the runnable examples of
:mod:`sahara_cli.commands._examples` as its closing section, looked up by the command's
path when the help is printed (so lazily loaded groups get theirs too), and joins the
lines of each prose paragraph of the help (:func:`reflow`).
"""

from __future__ import annotations

from typing import Any

from sahara_cli.commands._examples import EXAMPLES

_INSTALLED = "__sahara_help__"


def command_path(ctx: Any) -> str:
    """The command's path after ``sahara``: ``"vault add"``; ``""`` for the root."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def examples_text(path: str) -> str | None:
    """The Examples section of the command at ``path``, as Rich markup (None: none)."""
    from rich.markup import escape

    examples = EXAMPLES.get(path)
    if not examples:
        return None
    # the leading newline keeps the indentation (Typer dedents all lines but the first)
    return "\n[bold]Examples[/bold]\n" + "\n".join(f"  {escape(line)}" for line in examples)


def install() -> None:
    """Patch Typer's help rendering once (idempotent)."""
    from typer import core

    if getattr(core, _INSTALLED, False):
        return
    setattr(core, _INSTALLED, True)

    display_type_rich = core.TyperOption.display_type_rich

    def flag_type(self: Any, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value: no "<bool>"/"<int>" beside it
        return display_type_rich(self, ctx)

    core.TyperOption.display_type_rich = flag_type  # type: ignore[method-assign]

    for cls in (core.TyperCommand, core.TyperGroup):
        cls.format_help = _with_examples(cls.format_help)  # type: ignore[method-assign]


def reflow(text: str) -> str:
    """A docstring's paragraphs as Typer should wrap them: Rich help keeps the line breaks
    of every paragraph but the first, so each prose paragraph is joined into one line
    (lists, tables and indented lines are left as they are)."""
    paragraphs = text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        lines = paragraph.split("\n")
        if len(lines) > 1 and not any(
            line.startswith((" ", "\b")) or line.lstrip().startswith(("-", "*", "|", "•"))
            for line in lines
        ):
            paragraphs[i] = " ".join(line.strip() for line in lines)
    return "\n\n".join(paragraphs)


def _with_examples(format_help: Any) -> Any:
    def format_help_with_examples(self: Any, ctx: Any, formatter: Any) -> None:
        if not self.epilog:
            self.epilog = examples_text(command_path(ctx))
        if self.help:
            self.help = reflow(self.help)
        if getattr(self, "commands", None) and getattr(self, "entries", None) is None:
            # A group's list shows each command's first paragraph: wrapped the same way
            # (the root's list comes from its registry, one line each, and loads nothing).
            for name in self.list_commands(ctx):
                command = self.get_command(ctx, name)
                if command is not None and command.help:
                    command.help = reflow(command.help)
        format_help(self, ctx, formatter)

    return format_help_with_examples
