"""sahara agent team: run a team of agents on a task (hierarchical or peer-to-peer)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import PasswordFileOption
from sahara_cli.commands._state import PASSWORD_ENV, state
from sahara_cli.errors import FileUnreadable, UsageError

if TYPE_CHECKING:
    from sahara_cli.agent.results import TeamRun
    from sahara_cli.agent.team import TeamEvent

team_app = typer.Typer(
    help="Teams of agents: a manager with workers, or peers talking over Agent2Agent.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``team`` group to the ``agent`` app."""
    app.add_typer(team_app, name="team")


def _task_text(task: str | None, task_file: Path | None) -> str:
    if (task is None) == (task_file is None):
        raise UsageError("give the task with exactly one of --task or --task-file")
    if task_file is not None:
        try:
            return task_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FileUnreadable(f"cannot read {task_file}: {exc}") from exc
    assert task is not None
    return task


def _render(data: TeamRun) -> Any:
    def render(console: Console) -> None:
        table = Table(title=f"team {data.team} ({data.mode})", show_lines=False)
        table.add_column("member")
        table.add_column("asked by", style="dim")
        table.add_column("task")
        table.add_column("answer")
        for sub in data.subtasks:
            answer = Text(sub.answer[:120])
            if sub.error:
                answer = Text(f"failed: {sub.error}", style="red")
            table.add_row(Text(sub.worker), Text(sub.asked_by or "-"), Text(sub.task[:60]), answer)
        if data.subtasks:
            console.print(table)
        console.print(data.answer, markup=False)
        total = data.timings.get("total", 0.0)
        console.print(f"[dim]{len(data.subtasks)} exchange(s), {total:.1f} s[/]")

    return render


@team_app.command("run")
@returns("sahara_cli.agent.results:TeamRun")
def run(
    team_file: Annotated[
        Path, typer.Argument(help="The team's TOML file.", show_default=False, dir_okay=False)
    ],
    task: Annotated[
        str | None, typer.Option("--task", help="The task, as text.", show_default=False)
    ] = None,
    task_file: Annotated[
        Path | None,
        typer.Option(
            "--task-file", help="Read the task from this file.", dir_okay=False, show_default=False
        ),
    ] = None,
    password_file: PasswordFileOption = None,
    network: Annotated[
        bool,
        typer.Option(
            "--network",
            help="Let p2p members listen on the team's host beyond loopback "
            "(every request among them is still signed with the run's team secret).",
        ),
    ] = False,
) -> None:
    """Run a task with a team: progress on stderr, the merged answer on stdout."""
    from sahara_cli.agent.team import load_team, run_team

    st = state()
    text = _task_text(task, task_file)
    spec = load_team(team_file)
    home = st.home.require()
    cfg = st.config().config
    output = st.output

    def progress(event: TeamEvent) -> None:
        if not output.json_mode:
            output.err.print(str(event), style="dim", markup=False, highlight=False)

    options: dict[str, Any] = {"rpc_url": cfg.node.rpc_url, "vault_config": cfg.vault}
    member_env: dict[str, str] = {}
    # With a password at hand the agents read their private vault items and memory:
    # hierarchical agents get the unlocked ID, p2p members the password (their own
    # processes unlock it). Without one they work on public data.
    if password_file is not None or os.environ.get(PASSWORD_ENV):
        signer, _info, password = st.unlock(None, password_file, role="the team's ID ")
        options["signer"] = signer
        member_env[PASSWORD_ENV] = password
    result = run_team(
        home.root,
        spec,
        text,
        on_event=progress,
        agent_options=options,
        member_env=member_env,
        network=network,
    )
    data = result.to_result()
    output.result(data, _render(data))
