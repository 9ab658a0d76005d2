"""sahara compute infer|verify|challenge|defend|dispute: challengeable compute and its game."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands._compute import context
from sahara_cli.commands._output import returns
from sahara_cli.commands._progress import interruptible
from sahara_cli.commands._protocol import IdOption, PasswordFileOption, table, tx_rows
from sahara_cli.commands._state import AppState, state

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from sahara_cli.compute.game_results import Move
    from sahara_cli.compute.workflow import Context

_RESULTS = "sahara_cli.compute.game_results"
ClaimRef = Annotated[
    str,
    typer.Argument(
        help="A training job's number (7) or an answer's claim (claim:3).", show_default=False
    ),
]
BondOption = Annotated[
    str | None,
    typer.Option("--bond", help="Bond in SAH (default: the chain's minimum).", show_default=False),
]
DrillOption = Annotated[
    int | None,
    typer.Option(
        "--drill-corrupt-op",
        hidden=True,
        help="A drill: get this operation wrong, so a challenge wins.",
    ),
]
dispute_app = typer.Typer(help="Disputes of the dispute game.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the game's commands to the ``compute`` app."""
    app.command("infer")(returns(f"{_RESULTS}:InferResult")(infer))
    app.command("verify")(returns(f"{_RESULTS}:VerifyResult")(verify))
    app.command("challenge")(returns(f"{_RESULTS}:ChallengeResult")(challenge))
    app.command("defend")(returns(f"{_RESULTS}:DefendResult")(defend))
    dispute_app.command("show")(returns(f"{_RESULTS}:DisputeDetail")(dispute_show))
    app.add_typer(dispute_app, name="dispute")


def _bond(text: str | None) -> int | None:
    from sahara_cli.node.client import parse_sah

    return parse_sah(text) if text is not None else None


def _move_line(move: Move) -> str:
    what = {
        "challenge": "challenged",
        "bisect": f"round {move.round}: the claimer revealed the root at {move.index}",
        "respond": f"round {move.round}: the challenger "
        + ("agreed" if move.agree else "disagreed"),
        "one-step": "the chain re-executed the last step",
        "timeout": "a side did not move in time",
    }[move.kind]
    return f"{what} ({move.gas_used:,} gas)"


@contextlib.contextmanager
def _moves(st: AppState) -> Iterator[Callable[[Move], None] | None]:
    """Each move as it lands, on stderr (silent for scripts)."""
    if st.output.json_mode or not sys.stderr.isatty():
        yield None
        return

    def on_move(move: Move) -> None:
        st.output.err.print(f"  {_move_line(move)}")

    yield on_move


def train_fixed(st: AppState, ctx: Context, kw: dict[str, Any]) -> None:
    """``compute train --runner fixed``: the run on the deterministic machine, claimed
    (``kw``: the options of ``compute train``)."""
    from types import SimpleNamespace

    from sahara_cli.commands._compute import server_url
    from sahara_cli.commands._progress import step_bar
    from sahara_cli.compute.verifiable import FixedTrainRequest
    from sahara_cli.compute.verifiable import train_fixed as run
    from sahara_cli.errors import UsageError
    from sahara_cli.node.client import parse_sah

    hidden = kw["hidden"]
    try:
        widths = tuple(int(w) for w in hidden.split(",") if w.strip())
    except ValueError:
        raise UsageError(f"--hidden {hidden!r}: give widths separated by commas") from None
    request = FixedTrainRequest(
        data=kw["data"],
        hidden=widths,
        targets=kw["targets"],
        steps=kw["max_steps"] or 128,
        batch_size=kw["batch_size"],
        learning_rate=kw["learning_rate"] or 0.0625,
        seed=kw["seed"],
        name=kw["name"],
        upstream_bps=kw["upstream"],
        bond_wei=parse_sah(kw["bond"]) if kw["bond"] is not None else None,
        record=kw["record"],
        server_url=server_url(st),
        corrupt_op=kw["corrupt"],
    )

    with step_bar(st, "Training (fixed point)") as on_step:
        progress = (
            None
            if on_step is None
            else lambda step, loss: on_step(
                SimpleNamespace(step=step + 1, total_steps=request.steps, loss=loss)
            )
        )
        result = run(ctx, request, on_step=progress)

    def render(console: Console) -> None:
        console.print(
            f"Trained [bold]{result.name}[/] on the fixed-point runner: {result.steps} steps "
            f"({result.operations} operations), loss {result.first_loss:.4f} → "
            f"{result.last_loss:.4f}"
        )
        rows: dict[str, Any] = {
            "model": result.output_cid,
            "job": result.job_id or "not recorded",
            "claim": result.claim_id or "-",
            "trace root": result.trace_root,
        }
        if result.finalize_after_at:
            rows["open to challenges until"] = result.finalize_after_at
        table(rows)(console)
        if result.transaction is not None:
            table(tx_rows(result.transaction))(console)

    st.output.result(result, render)


def infer(
    model: Annotated[
        int, typer.Argument(help="A fixed-point model asset (its number).", show_default=False)
    ],
    values: Annotated[str, typer.Option("--input", help="The input: numbers separated by commas.")],
    claim: Annotated[
        bool, typer.Option("--claim/--no-claim", help="Claim the answer in the dispute game.")
    ] = True,
    bond: BondOption = None,
    corrupt: DrillOption = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Answer an input with a fixed-point model and claim the answer on chain.

    Anyone holding the model may re-execute the answer ('sahara compute verify claim:N')
    and challenge it within the game's window.
    """
    from sahara_cli.compute.verifiable import infer as run
    from sahara_cli.errors import UsageError

    st = state()
    try:
        parsed = [float(v) for v in values.split(",")]
    except ValueError:
        raise UsageError(f"--input {values!r}: give numbers separated by commas") from None
    ctx = context(st, signer_name, password_file)
    result = run(ctx, model, parsed, claim=claim, bond_wei=_bond(bond), corrupt_op=corrupt)

    def render(console: Console) -> None:
        console.print("Output: " + ", ".join(f"{v:g}" for v in result.output))
        rows: dict[str, Any] = {"claim": result.claim_id or "not claimed"}
        if result.challenge_until_at:
            rows["open to challenges until"] = result.challenge_until_at
        table(rows)(console)

    st.output.result(result, render)


def verify(
    ref: ClaimRef, signer_name: IdOption = None, password_file: PasswordFileOption = None
) -> None:
    """Re-execute a claimed job or answer here and compare it with its commitments.

    Exits 0 either way; 'matches' says whether every root agreed.
    """
    from sahara_cli.compute.game import verify as run

    st = state()
    result = run(context(st, signer_name, password_file), ref)

    def render(console: Console) -> None:
        verdict = "[green]matches[/]" if result.matches else "[red]does not match[/]"
        console.print(
            f"Claim {result.claim_id} ({result.kind}, {result.operations} operations) "
            f"{verdict} its re-execution here"
        )
        table(
            {
                "input root": "same" if result.input_root_matches else "different",
                "trace root": "same" if result.trace_root_matches else "different",
                "output root": "same" if result.output_root_matches else "different",
                "status": result.status,
            }
        )(console)

    st.output.result(result, render)


def challenge(
    ref: ClaimRef,
    bond: BondOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Challenge a claim that re-executes correctly.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Challenge a claim and play the dispute game to its end.

    The claim is re-executed here first; the claimer's side answers from its own node.
    Each round halves the disputed part of the trace; the chain re-executes the one
    operation left, and the loser's bond goes to the winner.
    """
    from sahara_cli.compute.game import challenge as run

    st = state()
    ctx = context(st, signer_name, password_file)
    with interruptible() as stop, _moves(st) as on_move:
        result = run(ctx, ref, bond_wei=_bond(bond), force=force, on_move=on_move, stop=stop)

    def render(console: Console) -> None:
        who = "[green]You won[/]" if result.winner == "challenger" else "[red]The claimer won[/]"
        where = (
            f" at operation {result.ended_on} ({result.operation}"
            + (
                f", training step {result.training_step}"
                if result.training_step is not None
                else ""
            )
            + ")"
            if result.ended_on is not None
            else ""
        )
        console.print(
            f"{who} dispute {result.dispute_id} by {result.reason}{where}, after "
            f"{result.rounds} rounds"
        )
        table(
            {
                "paid to the winner": f"{result.payout_sah} SAH",
                "gas, both sides": f"{result.gas_used:,}",
                "time": f"{result.game_s:.1f} s",
            }
        )(console)

    st.output.result(result, render)


def defend(
    once: Annotated[
        bool, typer.Option("--once", help="Make the moves due now, then exit.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Answer every challenge of this home's claims until Ctrl-C.

    Run it (or 'compute finalize --wait', which defends while it waits) while any claim
    is open to challenges: a side that does not answer in time loses its bond.
    """
    from sahara_cli.compute.game import defend as run

    st = state()
    ctx = context(st, signer_name, password_file)
    with interruptible() as stop, _moves(st) as on_move:
        result = run(ctx, once=once, stop=stop, on_move=on_move)

    def render(console: Console) -> None:
        console.print(
            f"Watched {len(result.claims)} claims; made {len(result.moves)} moves; "
            f"won {len(result.won)}, lost {len(result.lost)} disputes"
        )

    st.output.result(result, render)


def dispute_show(
    dispute_id: Annotated[int, typer.Argument(help="The dispute's number.", show_default=False)],
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Show a dispute: the claim, the interval still disputed, and every move."""
    from sahara_cli.compute.game import show_dispute

    st = state()
    result = show_dispute(context(st, signer_name, password_file), dispute_id)

    def render(console: Console) -> None:
        table(
            {
                "dispute": result.dispute_id,
                "claim": f"{result.claim_id} ({result.kind} {result.subject})",
                "claimer": result.claimer,
                "challenger": result.challenger,
                "turn": result.turn,
                "disputed": f"{result.lo} .. {result.hi}",
                "rounds": result.rounds,
                "winner": result.winner or "-",
            }
        )(console)
        for move in result.moves:
            console.print(f"  {_move_line(move)}")

    st.output.result(result, render)
