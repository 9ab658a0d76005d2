"""The interactive ``sahara agent chat``: a prompt loop with streamed answers and slash
commands (/tools, /memory, /sources, /feedback, /good, /bad, /correct, /reset, /exit)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.commands._agent_common import render_answer
from sahara_cli.commands._state import AppState
from sahara_cli.errors import SaharaError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from sahara_cli.agent.brain import Agent
    from sahara_cli.protocol.client import Protocol


SLASH_HELP = """\
/tools              the agent's tools
/memory             what long-term memory holds
/sources            the sources of the last answer
/feedback           feedback kept so far
/good, /bad         rate the last answer
/correct TEXT       give the right answer to the last question
/reset              forget this conversation (long-term memory stays)
/exit               leave (Ctrl-D too)"""


def interactive(
    st: AppState,
    agent: Agent,
    files: list[Path],
    protocol: Callable[[], Protocol] | None,
) -> None:
    """Chat until /exit or end of input; with ``protocol``, commit each answer's record."""
    from sahara_cli.agent.workflows import commit_answer

    console = st.output.out
    console.print(
        f"[bold]{agent.spec.name}[/] on {agent.runner.describe()['model']} "
        "([dim]/help for commands, /exit to leave[/])"
    )
    pending_files = list(files)
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ").strip()
        except EOFError:
            console.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            if _slash(st, agent, line, console):
                return
            continue
        console.print(f"[bold green]{agent.spec.name}>[/] ", end="")
        try:
            answer = agent.ask(
                line,
                on_delta=lambda d: console.print(d, end="", markup=False, highlight=False),
                files=pending_files,
            )
        except SaharaError as exc:
            console.print()
            st.output.error(exc)
            continue
        pending_files = []
        console.print()
        if protocol is not None:
            try:
                commit_answer(agent, answer, protocol)
            except SaharaError as exc:
                st.output.error(exc)
        render_answer(answer, console, streamed=True)


def _show_tools(agent: Agent, console: Console, _rest: str) -> None:
    tools = agent.toolbox.tools if agent.toolbox is not None else {}
    if not tools:
        console.print("[dim]no tools[/]")
    for tool in tools.values():
        console.print(f"[bold]{tool.name}[/] ({tool.source}): {tool.description}")


def _show_memory(agent: Agent, console: Console, _rest: str) -> None:
    if agent.long_term is None:
        console.print("[dim]long-term memory is off (or the ID is locked)[/]")
    else:
        console.print(f"{agent.long_term.count()} notes in the vault")
        for note in agent.long_term.listing():
            console.print(f"[dim]  {note['cid'][:16]}…[/] {note['summary']}")
    console.print(f"[dim]{len(agent.short_term.turns)} turns in this conversation[/]")


def _show_sources(agent: Agent, console: Console, _rest: str) -> None:
    if agent.last_answer is None:
        console.print("[dim]no answer yet[/]")
        return
    for i, s in enumerate(agent.last_answer.sources, 1):
        console.print(f"[{i}] {s.name} ({s.kind}, {s.score:.2f})", markup=False)
        console.print(f"    {s.text[:300]}", markup=False, highlight=False)


def _show_feedback(agent: Agent, console: Console, _rest: str) -> None:
    counts = agent.feedback.counts() if agent.feedback is not None else {}
    console.print(
        f"{counts.get('total', 0)} rated answers: {counts.get('good', 0)} good, "
        f"{counts.get('corrected', 0)} corrected"
    )


def _rate_good(agent: Agent, console: Console, _rest: str) -> None:
    agent.rate("good")
    console.print("[dim]noted: good[/]")


def _rate_bad(agent: Agent, console: Console, _rest: str) -> None:
    agent.rate("bad")
    console.print("[dim]noted: bad[/]")


def _correct(agent: Agent, console: Console, rest: str) -> None:
    if not rest.strip():
        raise UsageError("write the right answer after /correct")
    agent.rate("bad", rest.strip())
    console.print("[dim]correction kept: similar questions will see it[/]")


def _reset(agent: Agent, console: Console, _rest: str) -> None:
    agent.short_term.clear()
    console.print("[dim]conversation forgotten[/]")


def _help(_agent: Agent, console: Console, _rest: str) -> None:
    console.print(SLASH_HELP, markup=False)


SLASH = {
    "/help": _help,
    "/tools": _show_tools,
    "/memory": _show_memory,
    "/sources": _show_sources,
    "/feedback": _show_feedback,
    "/good": _rate_good,
    "/bad": _rate_bad,
    "/correct": _correct,
    "/reset": _reset,
}


def _slash(st: AppState, agent: Agent, line: str, console: Console) -> bool:
    """Handle a slash command; True means leave."""
    command, _, rest = line.partition(" ")
    command = command.lower()
    if command in ("/exit", "/quit"):
        return True
    handler = SLASH.get(command)
    if handler is None:
        console.print(f"[red]unknown command {command}[/] (/help lists them)")
        return False
    try:
        handler(agent, console, rest)
    except SaharaError as exc:
        st.output.error(exc)
    return False
