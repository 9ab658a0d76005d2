"""How every command speaks: Rich for people, one JSON document for programs.

With ``--json``: exactly one JSON document on stdout for a result; an error is
``{"error": {"code", "message", "hint"}}`` on stderr; no colour, markup or progress.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console, ConsoleRenderable, Group, RenderableType, RenderHook

from sahara_cli.errors import SaharaError

Render = Callable[[Console], None]
F = TypeVar("F", bound=Callable[..., Any])

#: The attribute on a command's callback that names its result model.
RESULT_ATTR = "__sahara_result__"


def returns(model: str) -> Callable[[F], F]:
    """Declare the typed result a command prints (its ``--json`` document's schema).

    ``model`` is ``"package.module:ClassName"``, a pydantic model of the library, named
    rather than imported so that ``sahara --help`` loads no pydantic. Put it under
    ``@app.command(...)``; ``sahara schema COMMAND`` and ``docs/schemas/`` read it, and the
    app walk validates each command's ``--json`` output against it.
    """
    if ":" not in model:
        raise ValueError(f"name the result model as 'module:Class', not {model!r}")

    def mark(callback: F) -> F:
        setattr(callback, RESULT_ATTR, model)
        return callback

    return mark


def dump(value: Any) -> Any:
    """A typed result as JSON-ready data (``model_dump(mode="json")``); other data as is."""
    model_dump = getattr(value, "model_dump", None)
    return (
        model_dump(mode="json") if callable(model_dump) and not isinstance(value, type) else value
    )


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return dump(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


class WholeValues(RenderHook):
    """Tables never fold or cut a word: hashes, addresses, CIDs and URLs stay whole.

    A table whose columns cannot all fit the terminal at their longest word (a 64-hex
    hash beside a 40-hex address does not fit 80 columns) is laid out wider than the
    terminal instead of breaking values, so each value stays on one line to copy; prose
    still wraps between words.
    """

    def __init__(self, console: Console) -> None:
        self.console = console

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        for renderable in renderables:
            self._widen(renderable)
        return renderables

    def _widen(self, renderable: RenderableType) -> None:
        from rich.padding import Padding
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        if isinstance(renderable, Group):
            for inner in renderable.renderables:
                self._widen(inner)
        elif isinstance(renderable, Panel | Padding):
            self._widen(renderable.renderable)
        elif isinstance(renderable, Table):
            for column in renderable.columns:
                for cell in column.cells:
                    self._widen(cell)
                    text = self.console.render_str(cell) if isinstance(cell, str) else cell
                    words = text.plain.split() if isinstance(text, Text) else []
                    longest = max((len(word) for word in words), default=0)
                    column.min_width = max(column.min_width or 0, longest)
            if renderable.width is None:
                wide = self.console.options.update(max_width=1_000_000)
                needed = self.console.measure(renderable, options=wide).minimum
                if needed > self.console.width:
                    renderable.width = needed


@dataclass
class Output:
    json_mode: bool = False
    debug: bool = False
    _emitted: bool = field(default=False, init=False)

    @property
    def out(self) -> Console:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        console.push_render_hook(WholeValues(console))
        return console

    @property
    def err(self) -> Console:
        return Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def result(self, data: Any, render: Render | None = None) -> None:
        """Print a command's result: ``data`` as JSON, or ``render`` for people.

        ``data`` is the command's typed result (a :class:`~sahara_cli.results.Result`);
        ``--json`` prints its ``model_dump(mode="json")``.
        """
        data = dump(data)
        if self.json_mode:
            if self._emitted:
                raise RuntimeError("a command printed two JSON documents")
            self._emitted = True
            sys.stdout.write(to_json(data) + "\n")
            sys.stdout.flush()
        elif render is not None:
            render(self.out)
        else:
            self.out.print(to_json(data), markup=False)

    def note(self, message: str) -> None:
        """A side remark for people (stderr); silent in JSON mode."""
        if not self.json_mode:
            self.err.print(message)

    def warn(self, message: str) -> None:
        if not self.json_mode:
            self.err.print(f"[yellow]warning:[/] {message}")

    def error(self, error: SaharaError) -> None:
        if self.json_mode:
            sys.stderr.write(json.dumps({"error": error.to_dict()}) + "\n")
            sys.stderr.flush()
            return
        self.err.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)
        if error.hint:
            self.err.print(f"[dim]hint:[/] {error.hint}")

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr for slow work; yields a function to update its text."""
        if self.json_mode or not sys.stderr.isatty():
            yield lambda _msg: None
            return
        with self.err.status(message) as live:
            yield live.update

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A byte progress bar on stderr; yields ``advance(n_bytes)``. Silent for scripts."""
        if self.json_mode or not sys.stderr.isatty():
            yield lambda _n: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
