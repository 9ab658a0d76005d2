"""sahara compute: train and merge models on licensed data, recorded through the SAPs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sahara_cli.commands._compute import context, server_url
from sahara_cli.commands._compute_game import BondOption, DrillOption
from sahara_cli.commands._compute_game import register as _register_game
from sahara_cli.commands._output import returns
from sahara_cli.commands._progress import interruptible, step_bar
from sahara_cli.commands._protocol import IdOption, PasswordFileOption, table, tx_rows
from sahara_cli.commands._state import state

if TYPE_CHECKING:
    from sahara_cli.compute.results import JobSummary

app = typer.Typer(
    help="Train and merge models on licensed vault data; the chain records and pays for each job.",
    no_args_is_help=True,
)
_RESULTS = "sahara_cli.compute.results"
JobRef = Annotated[
    str,
    typer.Argument(help="A job: its number on chain (7) or its local key.", show_default=False),
]


@app.command("train")
@returns(f"{_RESULTS}:TrainResult")
def train(
    data: Annotated[
        list[int],
        typer.Option(
            "--data", help="A dataset asset to train on (repeat for more).", show_default=False
        ),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Base model (torch): a transformers folder or asset:N.",
            show_default=False,
        ),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="torch (LoRA, floats) or fixed (an MLP on numeric tables, challengeable).",
        ),
    ] = "torch",
    hidden: Annotated[
        str, typer.Option("--hidden", help="fixed: hidden layer widths, comma separated.")
    ] = "16",
    targets: Annotated[
        int, typer.Option("--targets", help="fixed: the table's last columns to predict.")
    ] = 1,
    corrupt: DrillOption = None,
    lora: Annotated[
        str, typer.Option("--lora", help="LoRA: r=8,alpha=16[,dropout=0.05].")
    ] = "r=8,alpha=16",
    dp_epsilon: Annotated[
        float | None,
        typer.Option(
            "--dp-epsilon", help="Train with DP-SGD to this privacy budget ε.", show_default=False
        ),
    ] = None,
    dp_delta: Annotated[float, typer.Option("--dp-delta", help="DP δ.")] = 1e-5,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the data.")] = 1,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", help="Stop after this many steps.", show_default=False),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Blocks per step.")] = 8,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help="Learning rate: AdamW's (torch, 2e-4), or SGD's (fixed, 0.0625: a power of two).",
            show_default=False,
        ),
    ] = None,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per block.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the run.")] = 0,
    name: Annotated[
        str | None, typer.Option("--name", help="Name of the trained adapter.", show_default=False)
    ] = None,
    upstream: Annotated[
        int, typer.Option("--upstream-bps", help="Share of the model's revenue for its inputs.")
    ] = 3_000,
    bond: BondOption = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record the job through the training SAP.")
    ] = True,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Fine-tune a LoRA adapter on licensed datasets and record the job on chain.

    Licenses are checked on chain before anything is decrypted.

    Ctrl-C writes a checkpoint; the same command again resumes from it.

    With --runner fixed, an MLP is trained by SGD on numeric tables on the
    deterministic fixed-point machine, and its trace is claimed: anyone licensed may
    re-execute it and challenge it ('sahara compute challenge JOB').
    """
    from sahara_cli.compute.workflow import TrainRequest
    from sahara_cli.compute.workflow import train as run
    from sahara_cli.errors import UsageError
    from sahara_cli.node.client import parse_sah

    st = state()
    if runner == "fixed":
        from sahara_cli.commands._compute_game import train_fixed

        settings = dict(locals())  # the options, as train_fixed maps them to a request
        return train_fixed(st, context(st, signer_name, password_file), settings)
    if runner != "torch":
        raise UsageError(f"--runner {runner!r}: torch or fixed")
    if base is None:
        raise UsageError("--base is needed with the torch runner")
    request = TrainRequest(
        base=base,
        data=data,
        lora=lora,
        dp_epsilon=dp_epsilon,
        dp_delta=dp_delta,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate or 2e-4,
        seq_len=seq_len,
        seed=seed,
        name=name,
        upstream_bps=upstream,
        bond_wei=parse_sah(bond) if bond is not None else None,
        record=record,
        server_url=server_url(st),
    )
    ctx = context(st, signer_name, password_file)
    with interruptible() as stop, step_bar(st, "Training") as on_step:
        result = run(ctx, request, on_step=on_step, stop=stop)

    def render(console: Console) -> None:
        eps = f", ε = {result.epsilon:.2f} (δ = {result.delta:g})" if result.epsilon else ""
        console.print(
            f"Trained [bold]{result.name}[/]: {result.steps} steps, loss "
            f"{result.first_loss:.3f} → {result.last_loss:.3f}{eps}"
        )
        rows: dict[str, Any] = {
            "adapter": result.output_cid,
            "job": result.job_id or "not recorded",
        }
        if result.finalize_after_at:
            rows["finalise after"] = result.finalize_after_at
        table(rows)(console)
        if result.transaction is not None:
            table(tx_rows(result.transaction))(console)

    st.output.result(result, render)


@app.command("merge")
@returns(f"{_RESULTS}:MergeResult")
def merge(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Models to merge: asset:N (or a folder with --no-record).", show_default=False
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help="average, task-arithmetic, ties or fisher.")
    ] = "average",
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights", help="One weight per model, comma separated.", show_default=False
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Base model of task-arithmetic and ties.", show_default=False),
    ] = None,
    density: Annotated[
        float, typer.Option("--density", help="TIES: share of each task vector kept.")
    ] = 0.2,
    lam: Annotated[float, typer.Option("--lambda", help="Task arithmetic and TIES: scale.")] = 1.0,
    fisher_data: Annotated[
        list[int] | None,
        typer.Option(
            "--fisher-data", help="Fisher: a dataset asset to weigh on.", show_default=False
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name of the merged model.", show_default=False)
    ] = None,
    upstream: Annotated[
        int, typer.Option("--upstream-bps", help="Share of the model's revenue for its inputs.")
    ] = 3_000,
    bond: BondOption = None,
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Record the merge through the training SAP."),
    ] = True,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Merge models or LoRA adapters into one, with the inputs as its weighted parents."""
    from sahara_cli.compute.merging import MergeRequest
    from sahara_cli.compute.merging import merge as run
    from sahara_cli.errors import UsageError
    from sahara_cli.node.client import parse_sah

    st = state()
    try:
        parsed = [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        raise UsageError(f"--weights {weights!r}: give numbers separated by commas") from None
    request = MergeRequest(
        models=models,
        method=method,
        weights=parsed,
        base=base,
        density=density,
        lam=lam,
        fisher_data=fisher_data or [],
        name=name,
        upstream_bps=upstream,
        bond_wei=parse_sah(bond) if bond is not None else None,
        record=record,
        server_url=server_url(st),
    )
    result = run(context(st, signer_name, password_file), request)

    def render(console: Console) -> None:
        console.print(
            f"Merged {len(models)} models ({result.method}) into [bold]{result.name}[/]: "
            + ", ".join(f"{w / 100:g}%" for w in result.weights_bps)
        )
        table({"model": result.output_cid, "job": result.job_id or "not recorded"})(console)
        if result.transaction is not None:
            table(tx_rows(result.transaction))(console)

    st.output.result(result, render)


@app.command("finalize")
@returns(f"{_RESULTS}:JobFinalized")
def finalize(
    job: JobRef,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the challenge window to end.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Register a job's output as a model asset once its challenge window is over."""
    from sahara_cli.compute.lifecycle import finalize as run

    st = state()
    result = run(context(st, signer_name, password_file), job, wait=wait)

    def render(console: Console) -> None:
        console.print(
            f"Job {result.job_id} is asset [bold]#{result.asset_id}[/], derived from "
            + ", ".join(f"#{p}" for p in result.parents)
        )
        table(tx_rows(result.transaction))(console)

    st.output.result(result, render)


@app.command("cancel")
@returns(f"{_RESULTS}:JobCancelled")
def cancel(
    job: JobRef, signer_name: IdOption = None, password_file: PasswordFileOption = None
) -> None:
    """Stop a running job of this home, or withdraw a pending one (the bond comes back)."""
    from sahara_cli.compute.lifecycle import cancel as run

    st = state()
    result = run(context(st, signer_name, password_file), job)

    def render(console: Console) -> None:
        if result.stopped:
            console.print(f"Asked job {result.job_key} to checkpoint and stop")
        else:
            console.print(f"Cancelled job {result.job_id}; bond of {result.bond_sah} SAH returned")
            if result.transaction is not None:
                table(tx_rows(result.transaction))(console)

    st.output.result(result, render)


def _rows(jobs: list[JobSummary]) -> list[list[str]]:
    return [
        [
            str(j.job_id or "-"),
            j.job_key,
            j.kind,
            j.name,
            j.state,
            ",".join(f"#{i}" for i in j.input_ids),
            f"#{j.asset_id}" if j.asset_id else "-",
        ]
        for j in jobs
    ]


@app.command("jobs")
@returns(f"{_RESULTS}:JobList")
def jobs_(signer_name: IdOption = None, password_file: PasswordFileOption = None) -> None:
    """List this home's training and merge jobs, with where each stands on chain."""
    from rich.table import Table

    from sahara_cli.compute.lifecycle import list_jobs

    st = state()
    result = list_jobs(context(st, signer_name, password_file))

    def render(console: Console) -> None:
        if not result.jobs:
            console.print("No compute jobs yet: 'sahara compute train --help'.")
            return
        grid = Table("job", "key", "kind", "name", "state", "inputs", "asset")
        for row in _rows(result.jobs):
            grid.add_row(*row)
        console.print(grid)

    st.output.result(result, render)


@app.command("show")
@returns(f"{_RESULTS}:JobDetail")
def show(
    job: JobRef, signer_name: IdOption = None, password_file: PasswordFileOption = None
) -> None:
    """Show a job: inputs, settings hash, metrics, bond, window and output."""
    from sahara_cli.compute.lifecycle import show_job

    st = state()
    result = show_job(context(st, signer_name, password_file), job)

    def render(console: Console) -> None:
        rows: dict[str, Any] = {
            "job": result.job_id or "-",
            "key": result.job_key,
            "kind": result.kind,
            "state": result.state,
            "inputs": ", ".join(f"#{i}" for i in result.input_ids),
            "weights": ", ".join(f"{w / 100:g}%" for w in result.weights_bps) or "equal",
            "base": result.base or "-",
            "output": result.output_cid or "-",
            "asset": f"#{result.asset_id}" if result.asset_id else "-",
            "bond": f"{result.bond_sah} SAH",
        }
        if result.finalize_after_at:
            rows["finalise after"] = result.finalize_after_at
        if result.claim_id:
            rows["claim"] = f"{result.claim_id} ({result.claim_status})" + (
                f", dispute {result.dispute_id}" if result.dispute_id else ""
            )
        for key in ("first_loss", "last_loss", "epsilon", "steps"):
            if result.metrics.get(key) is not None:
                rows[key.replace("_", " ")] = result.metrics[key]
        table(rows)(console)

    st.output.result(result, render)


_register_game(app)
