"""Typed results of challengeable compute: answers, verification, challenges, disputes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sahara_cli.results import Address, Hash32, Result, Sah, Timestamp, Transaction, Wei

ClaimKind = Literal["training", "inference"]


class Move(Result):
    """One transaction of a dispute, as the chain recorded it."""

    round: int = Field(description="the bisection round it belongs to (0: the challenge)")
    kind: Literal["challenge", "bisect", "respond", "one-step", "timeout"]
    by: Address
    index: int | None = Field(description="the trace position the move is about")
    root: Hash32 | None = Field(description="the state root revealed (bisect)")
    agree: bool | None = Field(description="the challenger's answer (respond)")
    gas_used: int
    tx_hash: Hash32


class InferResult(Result):
    """``compute infer``: a fixed-point model's answer, claimed on chain."""

    model: str = Field(description="the model: asset:N")
    input: list[float]
    output: list[float]
    operations: int
    output_root: Hash32
    trace_root: Hash32
    claim_id: int | None = Field(description="the dispute game's claim; None with --no-claim")
    bond_wei: Wei
    bond_sah: Sah = ""
    challenge_until_at: Timestamp | None
    transaction: Transaction | None


class VerifyResult(Result):
    """``compute verify``: a claim re-executed here and compared with its commitments."""

    claim_id: int
    kind: ClaimKind
    subject: int = Field(description="the training job, or the inference record (0: none)")
    claimer: Address
    status: str = Field(description="open, accepted or rejected")
    operations: int
    matches: bool = Field(description="the re-execution gives the claim's every root")
    input_root_matches: bool
    output_root_matches: bool
    trace_root_matches: bool
    claimed_output_root: Hash32
    output_root: Hash32 = Field(description="the output root of the re-execution here")
    verify_s: float


class ChallengeResult(Result):
    """``compute challenge``: the whole game played against the claimer."""

    claim_id: int
    dispute_id: int
    winner: Literal["challenger", "claimer"]
    reason: str = Field(description="one-step (the chain re-executed the step) or timeout")
    rounds: int = Field(description="bisection rounds played")
    ended_on: int | None = Field(
        description="the operation the chain re-executed (its index in the trace)"
    )
    first_difference: int | None = Field(
        description="the first operation the claimer got wrong, when the challenger won by it"
    )
    operation: str | None = Field(description="that operation's name (linear0, update1...)")
    training_step: int | None
    moves: list[Move]
    gas_used: int = Field(description="gas of every move of both sides")
    bond_wei: Wei = Field(description="the challenger's bond")
    bond_sah: Sah = ""
    payout_wei: Wei = Field(description="what the winner received from the loser's bonds")
    payout_sah: Sah = ""
    game_s: float


class DisputeDetail(Result):
    """``compute dispute show``: a dispute and its moves."""

    dispute_id: int
    claim_id: int
    kind: ClaimKind
    subject: int
    claimer: Address
    challenger: Address
    turn: str = Field(description="submitter, challenger, step or resolved")
    lo: int = Field(description="the last trace position both sides agree on")
    hi: int = Field(description="the first trace position they disagree on")
    rounds: int
    deadline_at: Timestamp | None = Field(description="when the side to move loses by timeout")
    winner: Address | None
    moves: list[Move]


class DefendResult(Result):
    """``compute defend``: the moves this home made for its claims."""

    claims: list[int] = Field(description="this home's claims that were watched")
    moves: list[Move]
    won: list[int] = Field(description="disputes this home's claims won")
    lost: list[int] = Field(description="disputes they lost")
