"""Every command's ``--help``: flags read as flags, and an Examples section that parses."""

from __future__ import annotations

import itertools
import shlex

import pytest
import typer

from sahara_cli.commands._examples import EXAMPLES
from sahara_cli.commands.main import app
from tests.cli.test_app_walk import COMMANDS
from tests.conftest import Invoke

ROOT = typer.main.get_command(app)
PATHS = [" ".join(path) for path, _ in COMMANDS]
GLOBAL_FLAGS = {"--json", "--no-prompt", "--debug"}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p or "sahara")
def test_help_has_examples_and_shows_flags_as_flags(path: str, cli: Invoke) -> None:
    result = cli(*path.split(), "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip() == "Examples" for line in lines), f"'sahara {path}' has no Examples"
    for example in EXAMPLES[path]:
        assert any(line.strip() == example for line in lines), f"{example!r} not whole on a line"
    assert "<bool>" not in result.stdout
    assert "BOOLEAN" not in result.stdout
    # The description reads as wrapped paragraphs: no line breaks where the source of
    # the docstring had them (a short line followed by more of the same paragraph).
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.lstrip().startswith("╭")), len(lines))
    text = [line.strip() for line in lines[start:end]]
    for here, after in itertools.pairwise(text):
        if here and after and not after.startswith(("-", "•", "*")):
            assert len(here) >= 48, f"'sahara {path} --help' breaks a line early: {here!r}"


def test_a_flag_has_no_type_beside_it(cli: Invoke) -> None:
    out = cli("tx", "send", "--help", env={"COLUMNS": "80"}).stdout
    wait = next(line for line in out.splitlines() if "--wait" in line)
    assert "--no-wait" in wait
    assert "<" not in wait
    to = next(line for line in out.splitlines() if "--to " in line)
    assert "<str>" in to  # options that take a value still say what


def _resolve(argv: list[str]) -> tuple[str, object, list[str]]:
    """The command an example runs, its path, and the arguments left for it."""
    assert argv[0] == "sahara"
    args = [a for a in argv[1:] if a not in GLOBAL_FLAGS]
    command: object = ROOT
    path: list[str] = []
    while getattr(command, "commands", None) and args and args[0] in command.commands:  # type: ignore[attr-defined]
        path.append(args[0])
        command = command.commands[args.pop(0)]  # type: ignore[attr-defined]
    return " ".join(path), command, args


@pytest.mark.parametrize(
    "path,example",
    [(p, e) for p, examples in sorted(EXAMPLES.items()) for e in examples],
    ids=lambda v: v if isinstance(v, str) and v.startswith("sahara") else None,
)
def test_every_example_parses_against_its_command(path: str, example: str) -> None:
    assert len(example) <= 76, "an example must fit an 80-column terminal"
    runs, command, args = _resolve(shlex.split(example))
    assert runs == path or runs.startswith(f"{path} ".lstrip()), (
        f"{example!r} runs 'sahara {runs}', listed under {path!r}"
    )
    assert not getattr(command, "commands", None), f"{example!r} names no command"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}  # type: ignore[attr-defined]
    unknown = [a for a in args if a.startswith("-") and a.split("=")[0] not in known]
    assert not unknown, f"{example!r}: 'sahara {runs}' has no option {unknown}"
    command.make_context(runs.split()[-1], args, resilient_parsing=True)  # type: ignore[attr-defined]


def test_examples_name_only_existing_commands() -> None:
    assert not set(EXAMPLES) - set(PATHS), "EXAMPLES lists commands that no longer exist"


GROUPS = [
    p
    for p, (path, _) in zip(PATHS, COMMANDS, strict=True)
    if p
    and isinstance(ROOT.get_command(typer.Context(ROOT), path[0]), typer.core.TyperGroup)
    and len(path) == 1
]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", GROUPS)
def test_a_groups_list_shows_each_first_paragraph_on_one_line(path: str, cli: Invoke) -> None:
    from sahara_cli.commands._help import reflow

    result = cli(*path.split(), "--help", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    group = ROOT.get_command(typer.Context(ROOT), path)  # type: ignore[attr-defined]
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command.hidden or not command.help:
            continue
        first = reflow(command.help).split("\n\n")[0].split("\f")[0].strip()
        assert any(first in line for line in result.stdout.splitlines()), (path, name, first)
