"""Both sides of the dispute game: verify a claim, challenge it, defend one's own.

A claim commits to a program, the roots of its first and last states and the Merkle
root of its whole trace. :func:`verify` re-executes it from its inputs and compares.
:func:`challenge` plays the game against the claimer: the claimer reveals the root at the
middle of the interval in dispute (with its proof), the challenger says whether it
agrees, and after ⌈log2 n⌉ rounds one operation is left, which the DisputeGame SAP
re-executes from the agreed state. :func:`defend` is the claimer's side, for every claim
this home made: it answers each move and, when the game reaches the last step, proves it
(only when the step holds: a runner that knows it lost lets the challenger prove it).
A side that stops answering loses when its move's deadline passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sahara_cli.compute import claims
from sahara_cli.errors import ClaimHolds, ClaimNotFound, SaharaError
from sahara_cli.node.saps import machine, merkle
from sahara_cli.node.saps.machine import Program

if TYPE_CHECKING:
    from sahara_cli.compute.fixed import FixedRun
    from sahara_cli.compute.game_results import (
        ChallengeResult,
        DefendResult,
        DisputeDetail,
        Move,
        VerifyResult,
    )
    from sahara_cli.compute.workflow import Context
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol

POLL_S = 0.05
log = logging.getLogger("sahara.compute")


def claim_id_of(proto: Protocol, ref: str) -> int:
    """``claim:N``, or a training job's number (its claim)."""
    text = ref.strip()
    if text.startswith("claim:") and text[6:].isdigit():
        claim_id = int(text[6:])
        if not 0 < claim_id <= proto.disputes.claim_count():
            raise ClaimNotFound(f"no claim {claim_id} on this chain")
        return claim_id
    job = text.removeprefix("job:")
    if not job.isdigit():
        raise ClaimNotFound(f"{ref!r} is neither a job number nor claim:N")
    claim_id = proto.disputes.claim_of("training", int(job))
    if not claim_id:
        raise ClaimNotFound(
            f"job {job} has no trace claim: it did not run on the fixed-point runner",
            hint="Only jobs of 'sahara compute train --runner fixed' can be challenged.",
        )
    return claim_id


def _reexecute(ctx: Context, proto: Protocol, claim_id: int) -> tuple[Any, Program, FixedRun]:
    from sahara_cli.compute.fixed import first_state, run_program

    claim = proto.disputes.get_claim(claim_id)
    program = Program.decode(proto.disputes.program_of(claim_id))
    first = first_state(ctx, proto, program)
    return claim, program, run_program(program, first)


def verify(ctx: Context, ref: str) -> VerifyResult:
    """Re-execute a claim here and compare every committed root."""
    from sahara_cli.compute.game_results import VerifyResult

    proto = ctx.protocol()
    started = time.perf_counter()
    claim_id = claim_id_of(proto, ref)
    claim, program, run = _reexecute(ctx, proto, claim_id)
    trace_root = merkle.root(run.roots)
    checks = (
        _hex(run.roots[0]) == claim.input_root,
        _hex(run.roots[-1]) == claim.output_root,
        _hex(trace_root) == claim.trace_root,
    )
    return VerifyResult(
        claim_id=claim_id,
        kind=claim.kind,
        subject=claim.subject,
        claimer=claim.claimer,
        status=claim.status,
        operations=program.length,
        matches=all(checks),
        input_root_matches=checks[0],
        output_root_matches=checks[1],
        trace_root_matches=checks[2],
        claimed_output_root=claim.output_root,
        output_root=_hex(run.roots[-1]),
        verify_s=round(time.perf_counter() - started, 3),
    )


def _chain_time(proto: Protocol) -> int:
    return int(proto.node.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def _past(proto: Protocol, deadline: int) -> bool:
    """Whether a transaction now would land after ``deadline`` (the next block carries
    the wall clock's time, or one past the last block's)."""
    return max(int(time.time()), _chain_time(proto) + 1) > deadline


def challenge(
    ctx: Context,
    ref: str,
    *,
    bond_wei: int | None = None,
    force: bool = False,
    on_move: Callable[[Move], None] | None = None,
    stop: threading.Event | None = None,
    lie_at: int | None = None,
) -> ChallengeResult:
    """Challenge a claim and play the game to its end. Without ``force`` a claim that
    re-executes to the same output is not challenged (the bond would be lost);
    ``lie_at`` makes this side disagree from that trace position on (a drill of a
    dishonest challenger)."""
    from sahara_cli.compute.game_results import ChallengeResult

    proto = ctx.protocol()
    who = ctx.unlock()
    started = time.perf_counter()
    claim_id = claim_id_of(proto, ref)
    bond = bond_wei if bond_wei is not None else proto.disputes.parameters()[0]
    dispute_id = _own_dispute(proto, claim_id, who.address)  # an interrupted game resumes
    if not dispute_id:
        _check_open(proto, claim_id, bond)
    claim, program, run = _reexecute(ctx, proto, claim_id)
    if not dispute_id:
        if _hex(run.roots[-1]) == claim.output_root and not force:
            raise ClaimHolds(
                f"claim {claim_id} re-executes to its committed output: "
                "a challenge would lose its bond",
                hint="Pass --force to challenge anyway.",
            )
        dispute_id, _ = proto.disputes.challenge(who, claim_id, bond)
    dispute = proto.disputes.get_dispute(dispute_id)
    bond = dispute.challenger_bond_wei
    seen = 0
    while dispute.turn != "resolved":
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        if dispute.turn == "challenger":
            mid = (dispute.lo + dispute.hi) // 2
            agree = dispute.mid_root == _hex(run.roots[mid]) and (lie_at is None or mid < lie_at)
            proto.disputes.respond(who, dispute_id, agree)
        elif dispute.turn == "step" and _wins_step(run, dispute, lie_at):
            leaves, reads = machine.state_at(run.first, dispute.lo).witness(dispute.lo)
            proto.disputes.one_step(who, dispute_id, program.encode(), leaves, reads)
        elif _past(proto, dispute.deadline):
            proto.disputes.timeout(who, dispute_id)
        else:
            time.sleep(POLL_S)
        dispute = proto.disputes.get_dispute(dispute_id)
        seen = _report(proto, dispute_id, seen, on_move)
    moves = moves_of(proto, dispute_id)
    resolved = proto.disputes.moves(dispute_id)[-1].args
    won = str(resolved["winner"]).lower() == who.address.lower()
    by_step = resolved["reason"] == "one-step"
    op = program.op(dispute.lo) if by_step else None
    return ChallengeResult(
        claim_id=claim_id,
        dispute_id=dispute_id,
        winner="challenger" if won else "claimer",
        reason=str(resolved["reason"]),
        rounds=dispute.rounds,
        ended_on=dispute.lo if by_step else None,
        first_difference=dispute.lo if by_step and won else None,
        operation=op.name if op else None,
        training_step=op.step if op and program.kind == "mlp-sgd" else None,
        moves=moves,
        gas_used=sum(m.gas_used for m in moves),
        bond_wei=bond,
        payout_wei=int(resolved["amount"]),
        game_s=round(time.perf_counter() - started, 3),
    )


def _own_dispute(proto: Protocol, claim_id: int, challenger: str) -> int:
    """The dispute over ``claim_id`` that ``challenger`` opened and that is still open."""
    claim = proto.disputes.get_claim(claim_id)
    if claim.status == "open" and claim.dispute:
        dispute = proto.disputes.get_dispute(claim.dispute)
        if dispute.challenger.lower() == challenger.lower():
            return int(claim.dispute)
    return 0


def _check_open(proto: Protocol, claim_id: int, bond: int) -> None:
    """Refuse, before any work or bond, a challenge the chain would refuse."""
    from sahara_cli.errors import BondTooSmall, ComputeJobState
    from sahara_cli.units import format_sah

    claim = proto.disputes.get_claim(claim_id)
    if claim.status != "open":
        raise ComputeJobState(f"claim {claim_id} is {claim.status}: its game is over")
    if claim.dispute:
        raise ComputeJobState(
            f"claim {claim_id} is in dispute {claim.dispute} already",
            hint=f"Follow it with 'sahara compute dispute show {claim.dispute}'.",
        )
    if _past(proto, claim.deadline):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claim.deadline))
        raise ComputeJobState(f"claim {claim_id}'s challenge window closed at {when}")
    least = proto.disputes.parameters()[0]
    if bond < least:
        raise BondTooSmall(
            f"a bond of {format_sah(bond)} SAH is below the game's minimum of "
            f"{format_sah(least)} SAH",
            details={"bond_wei": str(bond), "min_bond_wei": str(least)},
        )


def _wins_step(run: FixedRun, dispute: Any, lie_at: int | None) -> bool:
    """Whether the chain's check of the last step would find for the challenger: the
    agreed state is this side's, and the step from it does not give the claimer's root
    (the side that would lose leaves the step to the other, or to the timeout)."""
    if lie_at is not None and dispute.lo >= lie_at:
        return False
    return bool(
        dispute.lo_root == _hex(run.roots[dispute.lo])
        and dispute.hi_root != _hex(run.roots[dispute.lo + 1])
    )


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


KINDS = {"Challenged": "challenge", "Bisected": "bisect", "Responded": "respond"}


def moves_of(proto: Protocol, dispute_id: int) -> list[Move]:
    """A dispute's moves, each with who sent it and the gas it used."""
    from sahara_cli.compute.game_results import Move

    out = []
    for event in proto.disputes.moves(dispute_id):
        tx = proto.node.call("eth_getTransactionByHash", event.tx_hash) or {}
        args = event.args
        kind = KINDS.get(event.name) or (
            "timeout" if args.get("reason") == "timeout" else "one-step"
        )
        root = args.get("root")
        out.append(
            Move(
                round=int(args.get("round", 0)),
                kind=kind,
                by=tx.get("from", "0x" + "00" * 20),
                index=int(args["index"]) if "index" in args else None,
                root="0x" + bytes(root).hex() if isinstance(root, bytes | bytearray) else root,
                agree=args.get("agree"),
                gas_used=event.gas_used,
                tx_hash=event.tx_hash,
            )
        )
    return out


def _report(
    proto: Protocol, dispute_id: int, seen: int, on_move: Callable[[Move], None] | None
) -> int:
    if on_move is None:
        return seen
    moves = moves_of(proto, dispute_id)
    for move in moves[seen:]:
        on_move(move)
    return len(moves)


def _answer(proto: Protocol, who: Signer, local: claims.LocalClaim, dispute: Any) -> bool:
    """Make the claimer's move in ``dispute`` if it is its turn; whether it moved."""
    if dispute.turn == "submitter":
        root, proof = local.reveal((dispute.lo + dispute.hi) // 2)
        proto.disputes.bisect(who, dispute.id, root, proof)
        return True
    if dispute.turn == "step":
        leaves, reads = local.witness(dispute.lo)
        step = machine.verify_step(local.program, dispute.lo, leaves, reads)
        if _hex(step.pre_root) == dispute.lo_root and _hex(step.post_root) == dispute.hi_root:
            proto.disputes.one_step(who, dispute.id, local.program.encode(), leaves, reads)
            return True
    return False


def defend(
    ctx: Context,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    on_move: Callable[[Move], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> DefendResult:
    """Answer every dispute over this home's claims until ``stop`` (or ``until()``), or,
    with ``once``, make the moves due now and return."""
    from sahara_cli.compute.game_results import DefendResult

    proto = ctx.protocol()
    who = ctx.unlock()
    mine = {cid: claims.load(ctx.home_root, cid) for cid in claims.all_ids(ctx.home_root)}
    watched = {cid: c for cid, c in mine.items() if c is not None}
    made: list[Move] = []
    won: list[int] = []
    lost: list[int] = []
    settled: set[int] = set()
    scanned = 0
    open_disputes: set[int] = set()
    while True:
        count = proto.disputes.dispute_count()
        for dispute_id in range(scanned + 1, count + 1):
            if proto.disputes.get_dispute(dispute_id).claim in watched:
                open_disputes.add(dispute_id)
        scanned = count
        moved = False
        for dispute_id in sorted(open_disputes - settled):
            dispute = proto.disputes.get_dispute(dispute_id)
            if dispute.turn == "resolved":
                settled.add(dispute_id)
                winner = proto.disputes.get_claim(dispute.claim).claimer == dispute.winner
                (won if winner else lost).append(dispute_id)
                continue
            try:
                answered = _answer(proto, who, watched[dispute.claim], dispute)
            except SaharaError as exc:
                # The dispute moved on meanwhile (the other side's step, a timeout): read
                # it again next round; a move that keeps failing shows in the log.
                log.warning("dispute %d: %s", dispute_id, exc.message)
                continue
            if answered:
                moved = True
                move = moves_of(proto, dispute_id)[-1]
                made.append(move)
                if on_move is not None:
                    on_move(move)
        if once and not moved:
            break
        if (stop is not None and stop.is_set()) or (until is not None and until()):
            break
        if not moved:
            time.sleep(POLL_S)
    return DefendResult(claims=sorted(watched), moves=made, won=won, lost=lost)


def show_dispute(ctx: Context, dispute_id: int) -> DisputeDetail:
    """A dispute and every move of it."""
    from sahara_cli.compute.game_results import DisputeDetail

    proto = ctx.protocol()
    if not 0 < dispute_id <= proto.disputes.dispute_count():
        raise ClaimNotFound(f"no dispute {dispute_id} on this chain")
    d = proto.disputes.get_dispute(dispute_id)
    claim = proto.disputes.get_claim(d.claim)
    return DisputeDetail(
        dispute_id=dispute_id,
        claim_id=d.claim,
        kind=claim.kind,
        subject=claim.subject,
        claimer=claim.claimer,
        challenger=d.challenger,
        turn=d.turn,
        lo=d.lo,
        hi=d.hi,
        rounds=d.rounds,
        deadline_at=d.deadline if d.turn != "resolved" else None,
        winner=d.winner or None,
        moves=moves_of(proto, dispute_id),
    )
