"""sahara agent learn: turn an agent's rated feedback into a LoRA adapter it then uses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._agent_common import Name, load_spec
from sahara_cli.commands._compute import server_url
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import PasswordFileOption
from sahara_cli.commands._state import AppState, state

if TYPE_CHECKING:
    from rich.console import Console

    from sahara_cli.compute.workflow import Context


def register(app: typer.Typer) -> None:
    """Add ``learn`` to the ``agent`` app."""
    app.command("learn")(returns("sahara_cli.agent.learn_results:AgentLearned")(learn))


def _context(st: AppState, name: str, password_file: Path | None) -> Context:
    """The home, its vault and node, and the agent's ID (unlocked on first use)."""
    from sahara_cli.commands._protocol import protocol
    from sahara_cli.commands._vault import open_vault
    from sahara_cli.compute.workflow import Context
    from sahara_cli.identity import Signer

    spec = load_spec(st, name)
    signers: list[Signer] = []

    def unlock() -> Signer:
        if not signers:
            who, _, _ = st.unlock(spec.identity, password_file, role="the agent's ID ")
            signers.append(who)
        return signers[0]

    return Context(st.home.require().root, open_vault(st), lambda: protocol(st), unlock)


def learn(
    name: Name,
    dpo: Annotated[
        bool,
        typer.Option(
            "--dpo/--sft",
            help="Preference tuning (DPO) on corrected against rejected answers, or "
            "supervised tuning on corrected and approved answers.",
        ),
    ] = False,
    lora: Annotated[
        str, typer.Option("--lora", help="LoRA: r=8,alpha=16[,dropout=0.05].")
    ] = "r=8,alpha=16",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the examples.")] = 3,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Stop after this many steps.", show_default=False),
    ] = None,
    learning_rate: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 2e-4,
    beta: Annotated[
        float, typer.Option("--beta", help="DPO's beta: larger keeps closer to the model.")
    ] = 0.1,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Record the job through the training SAP (when the agent is published).",
        ),
    ] = True,
    password_file: PasswordFileOption = None,
) -> None:
    """Learn from feedback: train a LoRA adapter on the agent's corrected, approved and
    rejected answers; the agent loads it from then on (a transformers model only).

    The job is recorded on chain with the agent's asset as its input when the agent is
    published; 'agent show' names the adapter and its job."""
    from sahara_cli.agent.learn import LearnRequest
    from sahara_cli.agent.learn import learn as run
    from sahara_cli.commands._progress import interruptible, step_bar

    st = state()
    request = LearnRequest(
        agent=name,
        objective="dpo" if dpo else "sft",
        lora=lora,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        beta=beta,
        record=record,
        server_url=server_url(st),
    )
    ctx = _context(st, name, password_file)
    with interruptible() as stop, step_bar(st, "Learning") as on_step:
        result = run(ctx, request, on_step=on_step, stop=stop)

    def render(console: Console) -> None:
        from sahara_cli.commands._protocol import table, tx_rows

        noun = "example" if result.objective == "sft" else "preference pair"
        plural = "" if result.examples == 1 else "s"
        console.print(
            f"Agent [bold]{result.agent}[/] learned from {result.examples} {noun}{plural} "
            f"({result.objective}): {result.steps} steps, loss "
            f"{result.first_loss:.3f} → {result.last_loss:.3f}"
        )
        rows: dict[str, Any] = {
            "adapter": result.adapter_path,
            "in the vault": result.adapter_cid,
            "job": result.job_id if result.job_id is not None else result.job_key,
        }
        if result.not_recorded:
            rows["not recorded"] = result.not_recorded
        if result.finalize_after_at:
            rows["finalise after"] = result.finalize_after_at
        table(rows)(console)
        if result.transaction is not None:
            table(tx_rows(result.transaction))(console)

    st.output.result(result, render)
