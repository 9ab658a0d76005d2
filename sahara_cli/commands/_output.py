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
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # rich loads when something is printed, not with the module
    from rich.console import Console

    from sahara_cli.errors import SaharaError

Render = Callable[["Console"], None]
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


@dataclass
class Output:
    json_mode: bool = False
    debug: bool = False
    _emitted: bool = field(default=False, init=False)

    @property
    def out(self) -> Console:
        from rich.console import Console

        from sahara_cli.commands._whole import WholeValues

        console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        console.push_render_hook(WholeValues(console))
        return console

    @property
    def err(self) -> Console:
        from rich.console import Console

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
