"""``sahara agent``: create agents from templates, chat with them, run tasks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._agent_serve import register as _register_serving
from sahara_cli.commands._agent_team import register as _register_team
from sahara_cli.commands._protocol import IdOption, PasswordFileOption
from sahara_cli.commands._state import PASSWORD_ENV, AppState, state
from sahara_cli.errors import SaharaError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from sahara_cli.agent.brain import Agent
    from sahara_cli.agent.memory import FeedbackStore
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.agent.types import Answer
    from sahara_cli.identity import Signer

app = typer.Typer(
    help="Agents: a persona, a model, tools and memory, answering with sources.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="The agent's name.", show_default=False)]


def _store(st: AppState) -> Any:
    from sahara_cli.agent.spec import AgentStore

    return AgentStore(st.home.require().root)


@app.command("create")
def create(
    name: Name,
    template: Annotated[
        str | None,
        typer.Option(
            "--template", "-t", help="Start from a template ('agent templates' lists them)."
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Copy the spec from this TOML file.", dir_okay=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name in the store, or a path.")
    ] = None,
    runner: Annotated[
        str | None, typer.Option("--runner", help="Runner: llama (GGUF) or torch.")
    ] = None,
    persona: Annotated[str | None, typer.Option("--persona", help="The system persona.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="One line on what the agent does.")
    ] = None,
    identity: IdOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an agent of that name.")] = False,
) -> None:
    """Create an agent from a template, a TOML file, or the defaults."""
    from sahara_cli.agent.spec import AgentSpec, check_name, load_spec, template_spec

    st = state()
    check_name(name)
    if template is not None and from_file is not None:
        raise UsageError("give --template or --from, not both")
    if template is not None:
        spec = template_spec(template, name)
    elif from_file is not None:
        spec = load_spec(from_file).model_copy(update={"name": name})
    else:
        spec = AgentSpec(name=name)
    updates: dict[str, Any] = {}
    if persona is not None:
        updates["persona"] = persona
    if description is not None:
        updates["description"] = description
    if identity is not None:
        updates["identity"] = st.keystore().resolve(identity).name
    model_updates: dict[str, Any] = {}
    if model is not None:
        model_updates["name"] = model
    if runner is not None:
        if runner not in ("llama", "torch"):
            raise UsageError(f"--runner {runner!r} is not one of: llama, torch")
        model_updates["runner"] = runner
    if model_updates:
        updates["model"] = spec.model.model_copy(update=model_updates)
    spec = AgentSpec.model_validate({**spec.model_dump(), **{k: v for k, v in updates.items()}})
    path = _store(st).save(spec, overwrite=force)
    st.output.result(
        {"name": spec.name, "path": str(path), "spec": spec.model_dump(mode="json")},
        lambda c: c.print(f"Created agent [bold]{spec.name}[/] ({path})"),
    )


@app.command("templates")
def templates() -> None:
    """List the no-code agent templates."""
    from sahara_cli.agent.spec import list_templates, template_spec

    st = state()
    rows = [
        {"template": t, "description": template_spec(t, "x").description} for t in list_templates()
    ]

    def render(console: Console) -> None:
        for row in rows:
            console.print(f"[bold]{row['template']}[/]  {row['description']}")

    st.output.result({"templates": rows}, render)


@app.command("list")
def list_agents() -> None:
    """List this home's agents."""
    st = state()
    specs = list(_store(st))
    rows = [
        {
            "name": s.name,
            "description": s.description,
            "model": s.model.name,
            "runner": s.model.runner,
            "tools": s.tools.builtin + s.tools.entry_points + [f"mcp:{m.name}" for m in s.mcp],
            "asset_id": s.asset_id,
        }
        for s in specs
    ]

    def render(console: Console) -> None:
        if not rows:
            console.print("No agents yet: 'sahara agent create NAME --template researcher'.")
            return
        from rich.table import Table

        table = Table("name", "model", "runner", "tools", "asset", "description", box=None)
        for r in rows:
            table.add_row(
                r["name"],
                r["model"],
                r["runner"],
                ", ".join(r["tools"]) or "-",
                f"#{r['asset_id']}" if r["asset_id"] is not None else "-",
                r["description"],
            )
        console.print(table)

    st.output.result({"agents": rows}, render)


@app.command("show")
def show(name: Name) -> None:
    """Show an agent's spec."""
    st = state()
    spec = _store(st).load(name)
    path = _store(st).spec_path(name)
    st.output.result(
        {"name": spec.name, "path": str(path), "spec": spec.model_dump(mode="json")},
        lambda c: c.print(spec.to_toml(), markup=False, highlight=False),
    )


@app.command("rm")
def rm(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove an agent: its spec, feedback and records (vault notes stay in the vault)."""
    st = state()
    store = _store(st)
    store.load(name)
    st.confirm(f"Remove agent '{name}' with its feedback and records?", yes=yes)
    store.remove(name)
    st.output.result({"removed": name}, lambda c: c.print(f"Removed agent [bold]{name}[/]"))


# --- running an agent ------------------------------------------------------------------


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
) -> Agent:
    from sahara_cli.agent.brain import open_agent

    home = st.home.require()
    spec = _store(st).load(name)
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
        return open_agent(
            home.root,
            spec,
            signer=signer,
            rpc_url=cfg.node.rpc_url,
            on_event=event,
            vault_config=cfg.vault,
        )


def _render_answer(answer: Answer, console: Console, *, streamed: bool) -> None:
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


def _commit(st: AppState, agent: Agent, answer: Answer) -> None:
    """Commit the answer's provenance record on chain (``--record``)."""
    from sahara_cli.agent.record import commit_record
    from sahara_cli.commands._protocol import protocol

    signer = agent.ctx.signer if agent.ctx is not None else None
    if signer is None:
        raise UsageError("--record needs the agent's ID unlocked", hint="Pass --password-file.")
    result = commit_record(protocol(st), signer, answer.record)
    answer.record.update(result)
    if agent.records is not None:
        agent.records.mark_committed(answer.record["digest"], result)


OptMessage = Annotated[
    str | None,
    typer.Option("--message", "-m", help="Ask one question and exit (non-interactive)."),
]
OptFile = Annotated[
    list[Path] | None,
    typer.Option(
        "--file", "-f", help="A document to read with the message (repeatable).", dir_okay=False
    ),
]
OptImage = Annotated[
    list[Path] | None,
    typer.Option(
        "--image", help="An image to look at (needs a model with a projector).", dir_okay=False
    ),
]
OptRecord = Annotated[
    bool, typer.Option("--record", help="Commit each answer's provenance record on chain.")
]


@app.command("chat")
def chat(
    name: Name,
    message: OptMessage = None,
    file: OptFile = None,
    image: OptImage = None,
    record: OptRecord = False,
    password_file: PasswordFileOption = None,
) -> None:
    """Chat with an agent: streaming answers with sources; /help lists slash commands."""
    st = state()
    if message is None and (st.json or st.no_prompt):
        raise UsageError(
            "an interactive chat cannot run with --json or --no-prompt",
            hint='Pass --message "..." for one answer.',
        )
    agent = open_cli_agent(st, name, password_file, verbose_events=True)
    with agent:
        if message is not None:
            _one_shot(st, agent, message, file or [], image or [], record)
        else:
            _interactive(st, agent, file or [], record)


def _one_shot(
    st: AppState, agent: Agent, message: str, files: list[Path], images: list[Path], record: bool
) -> None:
    stream = not st.json and sys.stdout.isatty()
    out = st.output.out

    def delta(text: str) -> None:
        out.print(text, end="", markup=False, highlight=False)

    answer = agent.ask(message, on_delta=delta if stream else None, files=files, images=images)
    if stream:
        out.print()
    if record:
        _commit(st, agent, answer)
    doc = {"agent": agent.spec.name, **answer.to_dict()}
    st.output.result(doc, lambda c: _render_answer(answer, c, streamed=stream))


SLASH_HELP = """\
/tools              the agent's tools
/memory             what long-term memory holds
/sources            the sources of the last answer
/feedback           feedback kept so far
/good, /bad         rate the last answer
/correct TEXT       give the right answer to the last question
/reset              forget this conversation (long-term memory stays)
/exit               leave (Ctrl-D too)"""


def _interactive(st: AppState, agent: Agent, files: list[Path], record: bool) -> None:
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
        if record:
            try:
                _commit(st, agent, answer)
            except SaharaError as exc:
                st.output.error(exc)
        _render_answer(answer, console, streamed=True)


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


@app.command("run")
def run(
    name: Name,
    task: Annotated[Path, typer.Option("--task", help="A file holding the task.", dir_okay=False)],
    file: OptFile = None,
    record: OptRecord = False,
    password_file: PasswordFileOption = None,
) -> None:
    """Run one task read from a file and print the answer."""
    from sahara_cli.errors import FileUnreadable

    st = state()
    try:
        text = task.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileUnreadable(f"cannot read task file {task}: {exc}") from None
    if not text:
        raise UsageError(f"task file {task} is empty")
    agent = open_cli_agent(st, name, password_file, verbose_events=True)
    with agent:
        _one_shot(st, agent, text, file or [], [], record)


feedback_app = typer.Typer(help="Feedback an agent has learned from.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


def _feedback(
    st: AppState, name: str, password_file: Path | None
) -> tuple[AgentSpec, FeedbackStore]:
    """The agent's spec and its feedback store, opened with the agent's ID unlocked
    (feedback is sealed to it)."""
    from sahara_cli.agent.memory import FeedbackStore

    store = _store(st)
    spec = store.load(name)
    signer, _info, _pw = st.unlock(spec.identity, password_file, role="the agent's ID ")
    return spec, FeedbackStore(store.dir(name) / "feedback.sqlite", signer=signer)


@feedback_app.command("list")
def feedback_list(name: Name, password_file: PasswordFileOption = None) -> None:
    """List rated answers and corrections (unlocks the agent's ID: they are sealed to it)."""
    st = state()
    _spec, fb = _feedback(st, name, password_file)
    try:
        rows = [f.to_dict() for f in fb.all()]
    finally:
        fb.close()

    def render(console: Console) -> None:
        if not rows:
            console.print("No feedback yet: rate answers with /good, /bad or /correct in a chat.")
        for r in rows:
            extra = f" -> {r['correction']}" if r["correction"] else ""
            console.print(f"#{r['id']} [{r['rating']}] {r['question']}{extra}", markup=False)

    st.output.result({"feedback": rows}, render)


@feedback_app.command("export")
def feedback_export(
    name: Name,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.", dir_okay=False)],
    password_file: PasswordFileOption = None,
) -> None:
    """Export approved and corrected answers as a chat-format training set (JSONL);
    unlocks the agent's ID, to which they are sealed."""
    st = state()
    spec, fb = _feedback(st, name, password_file)
    try:
        counts = fb.export(out, spec.persona)
    except OSError as exc:  # no such folder, a directory, no permission
        raise UsageError(
            f"cannot write {out}: {exc.strerror or exc}",
            hint="Pass -o a file in an existing folder you can write to.",
        ) from None
    finally:
        fb.close()
    st.output.result(
        {"agent": name, "out": str(out), **counts},
        lambda c: c.print(f"Wrote {counts['written']} examples to {out}"),
    )


# Serving, publishing and API keys; teams over Agent2Agent.
_register_serving(app)
_register_team(app)
