"""sahara schema: the JSON Schema of a command's ``--json`` document.

Each command declares its typed result with :func:`~sahara_cli.commands._output.returns`;
``docs/schemas/`` holds the generated schemas (``scripts/schemas`` writes them, and a test
fails when a model changes without regenerating).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from sahara_cli.commands._output import RESULT_ATTR, returns
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every runnable (click) command under ``command``, with its path of names."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from leaves(sub, (*path, name))
    else:
        yield path, command


def result_model(command: Any) -> Any:
    """The result model a command declared with ``@returns`` (imported now), or None."""
    import importlib

    reference = getattr(command.callback, RESULT_ATTR, None)
    if reference is None:
        return None
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def json_schema(path: tuple[str, ...], model: Any) -> dict[str, Any]:
    """The published JSON Schema of the command at ``path``."""
    schema: dict[str, Any] = {"$schema": DRAFT}
    schema.update(model.model_json_schema(mode="serialization"))
    schema["title"] = "sahara " + " ".join(path)
    return schema


def file_name(path: tuple[str, ...]) -> str:
    return "-".join(path) + ".json"


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def all_schemas(root: Any) -> dict[str, str]:
    """File name to text of every command's schema (commands without a model are left out)."""
    out = {}
    for path, command in leaves(root):
        model = result_model(command)
        if model is not None:
            out[file_name(path)] = render_schema(json_schema(path, model))
    return out


def write_schemas(root: Any, directory: Path) -> list[str]:
    """Write every schema into ``directory``, removing the ones of commands gone; the names."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = all_schemas(root)
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        target = directory / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return sorted(wanted)


@returns("sahara_cli.results:SchemaDocument")
def schema(
    ctx: typer.Context,
    command: Annotated[
        list[str],
        typer.Argument(
            help="The command, as typed after 'sahara' (e.g. vault add).", show_default=False
        ),
    ],
) -> None:
    """Print the JSON Schema of COMMAND's --json document."""
    st = state()
    root = ctx.find_root().command
    found = dict(leaves(root))
    path = tuple(command)
    if path not in found or result_model(found[path]) is None:
        known = sorted(" ".join(p) for p, c in found.items() if result_model(c) is not None)
        raise UsageError(
            f"no command 'sahara {' '.join(command)}' with a typed result",
            hint="Commands: " + ", ".join(known),
        )
    from sahara_cli.results import SchemaDocument

    document = SchemaDocument(json_schema(path, result_model(found[path])))
    st.output.result(document, lambda console: console.print_json(render_schema(document.root)))
