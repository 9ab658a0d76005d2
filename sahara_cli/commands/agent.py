"""``sahara agent``: create agents from templates, chat with them, run tasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sahara_cli.commands._agent_common import Name, open_cli_agent, render_answer, unlock_agent
from sahara_cli.commands._agent_learn import register as _register_learning
from sahara_cli.commands._agent_serve import register as _register_serving
from sahara_cli.commands._agent_team import register as _register_team
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from sahara_cli.agent.brain import Agent

app = typer.Typer(
    help="Agents: a persona, a model, tools and memory, answering with sources.",
    no_args_is_help=True,
)


@app.command("create")
@returns("sahara_cli.agent.results:AgentSpecDocument")
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
    from sahara_cli.agent.workflows import create_agent

    st = state()
    doc = create_agent(
        st.home.require().root,
        name,
        template=template,
        from_file=from_file,
        model=model,
        runner=runner,
        persona=persona,
        description=description,
        identity=st.keystore().resolve(identity).name if identity is not None else None,
        overwrite=force,
    )
    st.output.result(doc, lambda c: c.print(f"Created agent [bold]{doc.name}[/] ({doc.path})"))


@app.command("templates")
@returns("sahara_cli.agent.results:AgentTemplates")
def templates() -> None:
    """List the no-code agent templates."""
    from sahara_cli.agent.workflows import agent_templates

    found = agent_templates()

    def render(console: Console) -> None:
        for row in found.templates:
            console.print(f"[bold]{row.template}[/]  {row.description}")

    state().output.result(found, render)


@app.command("list")
@returns("sahara_cli.agent.results:AgentList")
def list_agents() -> None:
    """List this home's agents."""
    from sahara_cli.agent.workflows import list_agents as listed

    st = state()
    found = listed(st.home.require().root)

    def render(console: Console) -> None:
        if not found.agents:
            console.print("No agents yet: 'sahara agent create NAME --template researcher'.")
            return
        from rich.table import Table

        table = Table("name", "model", "runner", "tools", "asset", "description", box=None)
        for r in found.agents:
            table.add_row(
                r.name,
                r.model,
                r.runner,
                ", ".join(r.tools) or "-",
                f"#{r.asset_id}" if r.asset_id is not None else "-",
                r.description,
            )
        console.print(table)

    st.output.result(found, render)


@app.command("show")
@returns("sahara_cli.agent.results:AgentSpecDocument")
def show(name: Name) -> None:
    """Show an agent's spec."""
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.agent.workflows import spec_document

    st = state()
    spec = AgentStore(st.home.require().root).load(name)
    st.output.result(
        spec_document(st.home.require().root, spec),
        lambda c: c.print(spec.to_toml(), markup=False, highlight=False),
    )


@app.command("rm")
@returns("sahara_cli.agent.results:AgentRemoved")
def rm(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove an agent: its spec, feedback and records (vault notes stay in the vault)."""
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.agent.workflows import remove_agent

    st = state()
    root = st.home.require().root
    AgentStore(root).load(name)
    st.confirm(f"Remove agent '{name}' with its feedback and records?", yes=yes)
    st.output.result(remove_agent(root, name), lambda c: c.print(f"Removed agent [bold]{name}[/]"))


# --- running an agent ------------------------------------------------------------------

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
OptMaxTokens = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        min=1,
        help="Cap each answer at this many tokens (below the agent's own limit).",
        show_default="the agent's generation.max_tokens",
    ),
]
OptRecord = Annotated[
    bool, typer.Option("--record", help="Commit each answer's provenance record on chain.")
]


@app.command("chat")
@returns("sahara_cli.agent.results:AgentAnswer")
def chat(
    name: Name,
    message: OptMessage = None,
    file: OptFile = None,
    image: OptImage = None,
    record: OptRecord = False,
    max_tokens: OptMaxTokens = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Chat with an agent: streaming answers with sources; /help lists slash commands.

    With --message, prints the one answer (its JSON with --json); the interactive chat
    prints no document."""
    from sahara_cli.commands._agent_chat import interactive
    from sahara_cli.commands._protocol import protocol

    st = state()
    if message is None and (st.json or st.no_prompt):
        raise UsageError(
            "an interactive chat cannot run with --json or --no-prompt",
            hint='Pass --message "..." for one answer.',
        )
    agent = open_cli_agent(st, name, password_file, verbose_events=True, max_tokens=max_tokens)
    with agent:
        if message is not None:
            _one_shot(st, agent, message, file or [], image or [], record)
        else:
            interactive(st, agent, file or [], (lambda: protocol(st)) if record else None)


def _one_shot(
    st: AppState, agent: Agent, message: str, files: list[Path], images: list[Path], record: bool
) -> None:
    import sys

    from sahara_cli.agent.workflows import answer_result, commit_answer
    from sahara_cli.commands._protocol import protocol

    stream = not st.json and sys.stdout.isatty()
    out = st.output.out

    def delta(text: str) -> None:
        out.print(text, end="", markup=False, highlight=False)

    answer = agent.ask(message, on_delta=delta if stream else None, files=files, images=images)
    if stream:
        out.print()
    tx = commit_answer(agent, answer, lambda: protocol(st)) if record else None
    st.output.result(
        answer_result(agent.spec.name, answer, tx),
        lambda c: render_answer(answer, c, streamed=stream),
    )


@app.command("run")
@returns("sahara_cli.agent.results:AgentAnswer")
def run(
    name: Name,
    task: Annotated[Path, typer.Option("--task", help="A file holding the task.", dir_okay=False)],
    file: OptFile = None,
    record: OptRecord = False,
    password_file: PasswordFileOption = None,
) -> None:
    """Run one task read from a file and print the answer."""
    from sahara_cli.agent.workflows import read_task

    st = state()
    text = read_task(task)
    agent = open_cli_agent(st, name, password_file, verbose_events=True)
    with agent:
        _one_shot(st, agent, text, file or [], [], record)


feedback_app = typer.Typer(help="Feedback an agent has learned from.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("list")
@returns("sahara_cli.agent.results:FeedbackList")
def feedback_list(name: Name, password_file: PasswordFileOption = None) -> None:
    """List rated answers and corrections (unlocks the agent's ID: they are sealed to it)."""
    from sahara_cli.agent.workflows import list_feedback

    st = state()
    signer = unlock_agent(st, name, password_file)
    found = list_feedback(st.home.require().root, name, signer)

    def render(console: Console) -> None:
        if not found.feedback:
            console.print("No feedback yet: rate answers with /good, /bad or /correct in a chat.")
        for r in found.feedback:
            extra = f" -> {r.correction}" if r.correction else ""
            console.print(f"#{r.feedback_id} [{r.rating}] {r.question}{extra}", markup=False)

    st.output.result(found, render)


@feedback_app.command("export")
@returns("sahara_cli.agent.results:FeedbackExport")
def feedback_export(
    name: Name,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.", dir_okay=False)],
    password_file: PasswordFileOption = None,
) -> None:
    """Export approved and corrected answers as a chat-format training set (JSONL);
    unlocks the agent's ID, to which they are sealed."""
    from sahara_cli.agent.workflows import export_feedback

    st = state()
    signer = unlock_agent(st, name, password_file)
    done = export_feedback(st.home.require().root, name, signer, out)
    st.output.result(done, lambda c: c.print(f"Wrote {done.written} examples to {out}"))


# Learning from feedback; serving, publishing and API keys; teams over Agent2Agent.
_register_learning(app)
_register_serving(app)
_register_team(app)
