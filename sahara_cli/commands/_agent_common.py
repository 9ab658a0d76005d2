"""What the ``agent`` commands share: the agent's name argument, opening an agent with its
ID unlocked when a password is at hand, and rendering an answer."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._state import PASSWORD_ENV, AppState

if TYPE_CHECKING:
    from rich.console import Console

    from sahara_cli.agent.brain import Agent
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.agent.types import Answer
    from sahara_cli.identity import Signer

Name = Annotated[str, typer.Argument(help="The agent's name.", show_default=False)]


def load_spec(st: AppState, name: str) -> AgentSpec:
    from sahara_cli.agent.spec import AgentStore

    return AgentStore(st.home.require().root).load(name)


def unlock_agent(st: AppState, name: str, password_file: Path | None) -> Signer:
    """The agent's ID, unlocked (asking for its password when it may)."""
    spec = load_spec(st, name)
    signer, _info, _pw = st.unlock(spec.identity, password_file, role="the agent's ID ")
    return signer


def _signer(st: AppState, spec: AgentSpec, password_file: Path | None) -> Signer | None:
    """The agent's ID unlocked when a password is at hand (or may be asked for)."""
    from sahara_cli.errors import NoDefaultIdentity

    interactive = not (st.no_prompt or st.json or not sys.stdin.isatty())
    if password_file is None and not os.environ.get(PASSWORD_ENV) and not interactive:
        st.output.note(
            "[dim]ID locked: private vault items and long-term memory are not used "
            "(pass --password-file to unlock).[/]"
        )
        return None
    try:
        signer, _info, _pw = st.unlock(spec.identity, password_file, role="the agent's ID ")
    except NoDefaultIdentity:
        return None
    return signer


def open_cli_agent(
    st: AppState,
    name: str,
    password_file: Path | None,
    *,
    verbose_events: bool = False,
    max_tokens: int | None = None,
) -> Agent:
    """Open the agent ``name`` of this home, its plan and tool calls as notes on stderr.

    ``max_tokens`` caps each reply below the spec's own limit, for this run only."""
    from sahara_cli.agent.brain import open_agent

    home = st.home.require()
    spec = load_spec(st, name)
    if max_tokens is not None and max_tokens < spec.generation.max_tokens:
        generation = spec.generation.model_copy(update={"max_tokens": max_tokens})
        spec = spec.model_copy(update={"generation": generation})
    signer = _signer(st, spec, password_file)
    cfg = st.config().config

    def event(kind: str, data: dict[str, Any]) -> None:
        if not verbose_events or st.json:
            return
        if kind == "plan" and data.get("tool") != "answer":
            st.output.note(f"[dim]plan: {data.get('thought', '')} -> {data.get('tool')}[/]")
        elif kind == "tool":
            call = data["call"]
            status = "ok" if call["ok"] else f"failed: {call['error']}"
            st.output.note(f"[dim]tool {call['tool']}({call['arguments']}): {status}[/]")

    with st.output.status(f"Loading {spec.model.name}"):
        agent = open_agent(
            home.root,
            spec,
            signer=signer,
            rpc_url=cfg.node.rpc_url,
            on_event=event,
            vault_config=cfg.vault,
        )
    if agent.runner.is_test_model:
        st.output.note(
            f"[yellow]{spec.name} runs a tiny random-weight test model: its answer is noise.[/]"
        )
    return agent


def render_answer(answer: Answer, console: Console, *, streamed: bool) -> None:
    if not streamed:
        console.print(answer.text, markup=False, highlight=False)
    if answer.sources:
        console.print("[dim]sources:[/]")
        for i, s in enumerate(answer.sources, 1):
            asset = f" asset #{s.asset_id}" if s.asset_id is not None else ""
            console.print(f"[dim]  [{i}] {s.name} ({s.kind}{asset}, {s.score:.2f})[/]")
    rec = answer.record
    if rec:
        line = f"record {str(rec.get('digest', ''))[:18]}…"
        if rec.get("tx"):
            line += f" on chain: tx {rec['tx']}"
        console.print(f"[dim]{line}[/]")
