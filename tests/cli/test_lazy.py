"""The root app's registry: commands load on demand, and look as they would if loaded eagerly."""

from __future__ import annotations

import enum
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer._coercion import build_runtime_param

from sahara_cli.commands._lazy import LazyGroup
from sahara_cli.commands._params import _FastRuntimeParam, fast_coercion
from sahara_cli.commands.main import COMMANDS, app

NAMES = [entry.name for entry in COMMANDS]
GROUPS = [entry.name for entry in COMMANDS if entry.target.endswith(":app")]


def modules_after(args: list[str]) -> set[str]:
    """The modules loaded by ``sahara ARGS`` in a fresh interpreter."""
    probe = (
        "import sys, json, atexit\n"
        f"sys.argv = ['sahara', *{args!r}]\n"
        "atexit.register(lambda: sys.__stderr__.write('\\n@@' + json.dumps(sorted(sys.modules))))\n"
        "from sahara_cli.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    return set(json.loads(done.stderr.rpartition("\n@@")[2]))


@pytest.mark.parametrize("entry", COMMANDS, ids=NAMES)
def test_registry_help_is_the_first_paragraph_of_the_command_help(entry: Any) -> None:
    root = typer.main.get_command(app)
    command = root.get_command(typer.Context(root), entry.name)  # type: ignore[attr-defined]
    assert command is not None
    first = inspect.cleandoc(command.help or "").partition("\f")[0].split("\n\n")[0].strip()
    assert entry.help == first, f"update the help of {entry.name!r} in COMMANDS"


def test_a_walk_of_the_app_sees_every_command() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    assert list(root.commands) == NAMES
    loaded = dict(root.commands.items())  # items() loads each command
    assert all(command.name == name for name, command in loaded.items())
    assert {
        name for name, command in loaded.items() if isinstance(command, typer.core.TyperGroup)
    } == set(GROUPS)
    assert root.get_command(typer.Context(root), "nosuch") is None


def test_root_help_lists_every_command_without_importing_one(sahara: Any) -> None:
    loaded = modules_after(["--help"])
    modules = {f"sahara_cli.commands.{name}" for name in {*NAMES, "tx", "attribute"}}
    assert not modules & loaded, sorted(modules & loaded)
    listed = sahara(["--help"], env={"COLUMNS": "200"}).stdout
    for entry in COMMANDS:
        assert f" {entry.name} " in listed
        assert entry.help.splitlines()[0] in listed


@pytest.mark.parametrize("group", ["id", "vault", "agent"])
def test_a_group_loads_only_its_own_module(group: str) -> None:
    loaded = modules_after([group, "--help"])
    others = {f"sahara_cli.commands.{name}" for name in GROUPS if name != group}
    assert f"sahara_cli.commands.{group}" in loaded
    assert not others & loaded


def _shape(command: Any) -> Any:
    """What a click command is, for a comparison: its name, help, options, and (a group)
    its commands in order, each the same way."""
    params = [(p.name, tuple(getattr(p, "opts", ())), p.required) for p in command.params]
    sub = getattr(command, "commands", None)
    nested = [(name, _shape(c)) for name, c in sub.items()] if sub is not None else None
    return (command.name, command.help, command.hidden, params, nested)


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_builds_its_commands_as_typer_does(group: str) -> None:
    import importlib

    from sahara_cli.commands._lazy import lazy_group

    entry = next(e for e in COMMANDS if e.name == group)
    module, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode="rich")
    holder.add_typer(target, name=group)
    eager = typer.main.get_group(holder).commands[group]
    assert _shape(lazy_group(target, group, "rich")) == _shape(eager)


def test_a_group_builds_only_the_command_that_runs() -> None:
    root = typer.main.get_command(app)
    agent = root.get_command(typer.Context(root), "agent")  # type: ignore[attr-defined]
    assert agent is not None
    built = agent.commands._built  # type: ignore[attr-defined]
    assert built == {}
    chat = agent.get_command(typer.Context(agent), "chat")  # type: ignore[attr-defined]
    assert chat is not None and chat.name == "chat" and list(built) == ["chat"]
    assert agent.get_command(typer.Context(agent), "nosuch") is None  # type: ignore[attr-defined]


def test_unknown_command_is_still_suggested(sahara: Any) -> None:
    done = sahara(["vaul"])
    assert done.returncode == 2
    assert "'vault'" in done.stderr


# -- option values without pydantic ------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


CASES: list[tuple[Any, dict[str, Any], Any]] = [
    (str, {}, "hello"),
    (str, {}, ""),
    (int, {}, "12"),
    (int, {}, "-3"),
    (int, {}, 7),
    (int, {}, "007"),
    (int, {}, " 5"),
    (int, {}, "1_000"),
    (int, {"min": 1, "max": 10}, "5"),
    (int, {"min": 1, "max": 10}, "50"),
    (int, {}, "abc"),
    (float, {}, "1.5"),
    (float, {}, "2"),
    (float, {}, 0),
    (float, {}, "1e3"),
    (float, {"min": 0.0}, "-1"),
    (bool, {}, True),
    (bool, {}, "yes"),
    (Path, {}, "some/file.txt"),
    (Path, {}, Path("x")),
    (Path, {"exists": True}, "/no/such/path"),
    (Path, {"exists": True}, "/"),
    (list[str], {}, ("a", "b")),
    (list[Path], {}, ("a", "b/c")),
    (Colour, {}, "red"),
    (Colour, {}, "green"),
]


#: Well-formed values that the fast path leaves to Typer all the same.
SLOW = {(int, "007"), (int, " 5"), (int, "1_000"), (float, "1e3"), (bool, "yes")}


def option(annotation: Any, settings: dict[str, Any]) -> Any:
    """The click parameter Typer builds for ``--x`` of ``annotation`` with ``settings``."""
    sub = typer.Typer()

    def command(x: Any) -> None:
        """A command."""

    command.__annotations__ = {"x": Annotated[annotation, typer.Option("--x", **settings)]}
    sub.command()(command)
    built = typer.main.get_command(sub)
    return built, built.params[0]


def coerce(runtime: Any, command: Any, param: Any, value: Any) -> tuple[str, Any]:
    """What a coercion returns for ``value``, or the error it raises with its message."""
    try:
        return "value", runtime._coerce_value(value, param=param, ctx=typer.Context(command))
    except Exception as exc:  # the error is what is compared
        return type(exc).__name__, str(getattr(exc, "message", exc))


@pytest.mark.parametrize(("annotation", "settings", "value"), CASES, ids=repr)
def test_fast_coercion_agrees_with_typer(
    annotation: Any, settings: dict[str, Any], value: Any
) -> None:
    command, param = option(annotation, settings)
    info = param.type_descriptor.parameter_info
    fast = fast_coercion(param.type_descriptor.annotation, info)
    assert fast is not None, "a plain type takes the fast path"
    ours = _FastRuntimeParam(parameter_info=info, annotation=annotation, fast=fast)
    typer_own = build_runtime_param(param.type_descriptor)
    fast_result = coerce(ours, command, param, value)
    decided = param._runtime_param is None  # ours hands to Typer's by caching it there
    assert fast_result == coerce(typer_own, command, param, value)
    assert decided == (fast_result[0] == "value" and (annotation, value) not in SLOW), (
        "a well-formed value takes the fast path; anything else Typer's"
    )


def test_the_help_renderer_loads_markdown_and_tracebacks_when_used() -> None:
    probe = (
        "import sys\n"
        "from sahara_cli.commands import main\n"
        "import typer.rich_utils as ru\n"
        "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
        "from rich.markdown import Markdown\n"
        "from rich.traceback import Traceback\n"
        "assert isinstance(ru.Markdown('*x*'), Markdown)\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n"
        "    assert isinstance(ru.Traceback.from_exception(type(exc), exc, None), Traceback)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout == "ok\n", done.stderr
