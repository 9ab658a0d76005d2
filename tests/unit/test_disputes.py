"""The dispute game SAP on a real dev node: claims over runs of the deterministic
machine, challenged, bisected to one operation and decided by re-executing it on chain;
bonds move to the wei, training jobs that lose are rejected, bad moves move nothing."""

from __future__ import annotations

import math

import pytest

from sahara_cli.errors import NotPermitted, ProtocolError, ProtocolReverted, RecordNotFound
from sahara_cli.node.saps import dispute, machine, merkle
from sahara_cli.protocol.artifacts import sap_addresses
from tests.unit.chain_fixtures import SAH, Chain
from tests.unit.dispute_players import Run, play, tiny_sgd

pytest_plugins = ("tests.unit.chain_fixtures",)

BOND = SAH // 100
GAME = sap_addresses()["DisputeGame"]


def balance(chain: Chain, who: str) -> int:
    return int(chain.client.call("eth_getBalance", who, "latest"), 16)


def balances(chain: Chain) -> tuple[int, ...]:
    return tuple(
        balance(chain, a)
        for a in (chain.owner.address, chain.buyer.address, GAME, sap_addresses()["TrainingRecord"])
    )


def claim(chain: Chain, run: Run, *, kind: str = "inference", subject: int = 0) -> int:
    claim_id, _ = chain.proto.disputes.claim(
        chain.owner, kind=kind, subject=subject, bond_wei=BOND, **run.claim_args()
    )
    return claim_id


def submit_job(chain: Chain) -> int:
    job, _ = chain.proto.training.submit(
        chain.owner,
        kind="train",
        base=0,
        inputs=[chain.asset],
        weights_bps=[],
        hparams=b"\x11" * 32,
        cid="bafy-disputed-model",
        commitment=b"\x22" * 32,
        name="tuned",
        metrics="{}",
        upstream_bps=0,
        bond_wei=BOND,
    )
    return job


def block_time(chain: Chain, number: int) -> int:
    return int(chain.client.call("eth_getBlockByNumber", hex(number), False)["timestamp"], 16)


def mine_at(chain: Chain, timestamp: int) -> None:
    chain.client.call("sahara_dev_mine", 1, timestamp)


def test_a_dev_chain_has_the_game_parameters(chain: Chain) -> None:
    d = chain.proto.disputes
    assert d.parameters() == (BOND, dispute.DEV_CHALLENGE_WINDOW, dispute.DEV_MOVE_TIMEOUT)
    assert (d.claim_count(), d.dispute_count()) == (0, 0)
    with pytest.raises(RecordNotFound, match="unknown claim 1"):
        d.get_claim(1)
    with pytest.raises(RecordNotFound, match="unknown dispute 1"):
        d.get_dispute(1)


def test_an_honest_claimer_survives_a_full_game_and_takes_the_challengers_bond(
    chain: Chain,
) -> None:
    d = chain.proto.disputes
    honest = Run(tiny_sgd())
    # The challenger's own run went wrong at operation 9: it disputes an honest claim.
    wrong = Run(honest.first, corrupt=9)
    before_owner, before_buyer = (
        balance(chain, chain.owner.address),
        balance(chain, chain.buyer.address),
    )
    claim_id, claim_tx = d.claim(
        chain.owner, kind="inference", subject=0, bond_wei=BOND, **honest.claim_args()
    )
    assert d.program_of(claim_id) == honest.program.encode()
    got = d.get_claim(claim_id)
    assert (got.status, got.kind, got.steps, got.bond_wei) == ("open", "inference", 16, BOND)
    assert got.trace_root == "0x" + honest.trace_root.hex()
    dispute_id, challenge_tx = d.challenge(chain.buyer, claim_id, BOND)
    game = d.get_dispute(dispute_id)
    assert (game.lo, game.hi, game.turn, game.rounds) == (0, 16, "submitter", 0)
    assert d.get_claim(claim_id).dispute == dispute_id

    played = play(
        d,
        dispute_id,
        claimer=chain.owner,
        claimed=honest,
        challenger=chain.buyer,
        believed=wrong,
        stepper=chain.owner,
    )
    game = d.get_dispute(dispute_id)
    assert played.rounds == game.rounds == math.ceil(math.log2(16))
    # Bisected down to the operation the challenger got wrong; the chain sided with the claim.
    assert (game.lo, game.hi, game.turn, game.status) == (9, 10, "resolved", "resolved")
    assert game.winner.lower() == chain.owner.address.lower()
    # The challenger's bond went to the claimer, to the wei; the claim's bond stays locked.
    owner_fees = claim_tx.fee + played.fees(chain.owner)
    buyer_fees = challenge_tx.fee + played.fees(chain.buyer)
    assert balance(chain, chain.owner.address) == before_owner - owner_fees
    assert balance(chain, chain.buyer.address) == before_buyer - BOND - buyer_fees
    assert balance(chain, GAME) == BOND
    assert d.get_claim(claim_id).status == "open" and d.get_claim(claim_id).dispute == 0

    moves = d.moves(dispute_id)
    assert [m.name for m in moves] == ["Challenged"] + ["Bisected", "Responded"] * 4 + ["Resolved"]
    assert moves[-1].args["reason"] == "one-step" and moves[-1].args["amount"] == BOND
    assert all(m.gas_used > 21_000 for m in moves)
    assert [m.tx_hash for m in moves[1:]] == [tx.hash for _, tx in played.moves]

    # The window stood still while the dispute was open; after it, the claim is
    # accepted and its bond comes back.
    paused = block_time(chain, moves[-1].block) - block_time(chain, challenge_tx.block)
    assert d.get_claim(claim_id).deadline == got.deadline + paused
    assert paused >= 1
    mine_at(chain, got.deadline)
    with pytest.raises(ProtocolReverted, match="open to challenges until"):
        d.close(chain.partner, claim_id)
    mine_at(chain, got.deadline + paused)
    close = d.close(chain.partner, claim_id)
    assert d.get_claim(claim_id).status == "accepted"
    assert balance(chain, chain.owner.address) == before_owner - owner_fees + BOND
    assert balance(chain, GAME) == 0
    assert close.event("ClaimAccepted").args["bond"] == BOND


def test_a_job_whose_trace_is_wrong_at_one_operation_loses_everything_to_the_challenger(
    chain: Chain,
) -> None:
    d, t = chain.proto.disputes, chain.proto.training
    honest = Run(tiny_sgd())
    dishonest = Run(honest.first, corrupt=5)
    job = submit_job(chain)
    claim_id = claim(chain, dishonest, kind="training", subject=job)
    assert d.claim_of("training", job) == claim_id
    assert d.get_claim(claim_id).deadline == t.get_job(job).finalize_after
    with pytest.raises(ProtocolReverted, match="already has a claim"):
        claim(chain, honest, kind="training", subject=job)
    before_buyer = balance(chain, chain.buyer.address)
    dispute_id, challenge_tx = d.challenge(chain.buyer, claim_id, BOND)
    played = play(
        d,
        dispute_id,
        claimer=chain.owner,
        claimed=dishonest,
        challenger=chain.buyer,
        believed=honest,
    )
    game = d.get_dispute(dispute_id)
    assert (game.lo, game.hi, game.winner.lower()) == (5, 6, chain.buyer.address.lower())
    # The claim's bond, the job's bond and its own bond back: three bonds to the challenger.
    fees = challenge_tx.fee + played.fees(chain.buyer)
    assert balance(chain, chain.buyer.address) == before_buyer - fees + 2 * BOND
    assert balance(chain, GAME) == 0
    assert balance(chain, sap_addresses()["TrainingRecord"]) == 0
    assert d.get_claim(claim_id).status == "rejected"
    assert t.get_job(job).status == "rejected"
    last = played.moves[-1][1]
    assert last.event("JobRejected").args["to"].lower() == chain.buyer.address.lower()
    # Never finalised: not after the window either.
    mine_at(chain, t.get_job(job).finalize_after)
    with pytest.raises(ProtocolError, match="not pending"):
        t.finalize(chain.partner, job)


def test_a_1024_operation_trace_is_bisected_in_10_rounds_and_one_step_decides(
    chain: Chain,
) -> None:
    d = chain.proto.disputes
    first = tiny_sgd(steps=256, layers=(1, 1), rows=2)
    assert first.program.length == 1024
    honest, dishonest = Run(first), Run(first, corrupt=701)
    # One wrong operation, and every root after it differs from the honest run's.
    assert [i for i in range(1025) if honest.roots[i] != dishonest.roots[i]] == list(
        range(702, 1025)
    )
    dispute_id, _ = d.challenge(chain.buyer, claim(chain, dishonest), BOND)
    played = play(
        d,
        dispute_id,
        claimer=chain.owner,
        claimed=dishonest,
        challenger=chain.buyer,
        believed=honest,
    )
    game = d.get_dispute(dispute_id)
    assert played.rounds == game.rounds == 10
    assert (game.lo, game.hi) == (701, 702)
    assert game.winner.lower() == chain.buyer.address.lower()


def test_a_claimer_that_stops_answering_loses_by_timeout(chain: Chain) -> None:
    d, t = chain.proto.disputes, chain.proto.training
    run = Run(tiny_sgd())
    job = submit_job(chain)
    claim_id = claim(chain, run, kind="training", subject=job)
    dispute_id, _ = d.challenge(chain.buyer, claim_id, BOND)
    # While the dispute is open the job can be neither finalised nor cancelled.
    mine_at(chain, t.get_job(job).finalize_after)
    with pytest.raises(ProtocolError, match=f"job {job} has a dispute open"):
        t.finalize(chain.partner, job)
    with pytest.raises(ProtocolError, match=f"job {job} has a dispute open"):
        t.cancel(chain.owner, job)
    before = balances(chain)
    game = d.get_dispute(dispute_id)
    with pytest.raises(ProtocolReverted, match="move is due by"):
        d.timeout(chain.partner, dispute_id)
    mine_at(chain, game.deadline)
    with pytest.raises(ProtocolReverted, match="move deadline passed"):
        d.bisect(chain.owner, dispute_id, *run.reveal(8))
    assert balances(chain) == before
    tx = d.timeout(chain.partner, dispute_id)
    assert tx.event("Resolved").args["reason"] == "timeout"
    assert d.get_dispute(dispute_id).winner.lower() == chain.buyer.address.lower()
    assert t.get_job(job).status == "rejected"
    assert balance(chain, chain.buyer.address) == before[1] + 3 * BOND


def test_a_challenger_that_stops_answering_loses_by_timeout(chain: Chain) -> None:
    d, t = chain.proto.disputes, chain.proto.training
    run = Run(tiny_sgd())
    job = submit_job(chain)
    claim_id = claim(chain, run, kind="training", subject=job)
    window = t.get_job(job).finalize_after
    dispute_id, challenge_tx = d.challenge(chain.buyer, claim_id, BOND)
    d.bisect(chain.owner, dispute_id, *run.reveal(8))
    mine_at(chain, d.get_dispute(dispute_id).deadline)
    owner = balance(chain, chain.owner.address)
    timeout_tx = d.timeout(chain.partner, dispute_id)
    assert d.get_dispute(dispute_id).winner.lower() == chain.owner.address.lower()
    assert balance(chain, chain.owner.address) == owner + BOND
    # The claim survives; the job is released, its window runs on from where the
    # dispute stopped it (for the claim too), and it finalises once that is over.
    assert d.get_claim(claim_id).status == "open"
    paused = block_time(chain, timeout_tx.block) - block_time(chain, challenge_tx.block)
    assert paused > dispute.DEV_MOVE_TIMEOUT
    assert t.get_job(job).finalize_after == d.get_claim(claim_id).deadline == window + paused
    with pytest.raises(ProtocolError, match="open to challenges until"):
        t.finalize(chain.partner, job)
    mine_at(chain, window + paused)
    asset, _ = t.finalize(chain.partner, job)
    assert t.get_job(job).status == "finalized" and asset


def test_bad_moves_are_refused_and_leave_every_bond_where_it_was(chain: Chain) -> None:
    d = chain.proto.disputes
    honest = Run(tiny_sgd())
    dishonest = Run(honest.first, corrupt=3)
    args = dishonest.claim_args()

    def refused(error: type[Exception], match: str, move: object, *a: object, **kw: object) -> None:
        before = balances(chain)
        with pytest.raises(error, match=match):
            move(*a, **kw)  # type: ignore[operator]
        assert balances(chain) == before

    claim_kw = {"kind": "inference", "subject": 0, **args}
    refused(ProtocolError, "bond too small", d.claim, chain.owner, bond_wei=BOND - 1, **claim_kw)
    refused(
        ProtocolError,
        "has 16 operations, the claim says 15",
        d.claim,
        chain.owner,
        bond_wei=BOND,
        **{**claim_kw, "steps": 15},
    )
    refused(
        ProtocolError,
        "malformed program",
        d.claim,
        chain.owner,
        bond_wei=BOND,
        **{**claim_kw, "program": b"{}"},
    )
    refused(
        NotPermitted,
        "only the job's submitter",
        d.claim,
        chain.buyer,
        bond_wei=BOND,
        **{**claim_kw, "kind": "training", "subject": submit_job(chain)},
    )
    claim_id = claim(chain, dishonest)
    refused(RecordNotFound, "unknown claim 9", d.challenge, chain.buyer, 9, BOND)
    refused(ProtocolError, "bond too small", d.challenge, chain.buyer, claim_id, BOND - 1)
    refused(
        NotPermitted, "cannot challenge its own claim", d.challenge, chain.owner, claim_id, BOND
    )
    refused(ProtocolReverted, "open to challenges until", d.close, chain.owner, claim_id)
    dispute_id, _ = d.challenge(chain.buyer, claim_id, BOND)
    refused(
        ProtocolReverted, "already has an open dispute", d.challenge, chain.partner, claim_id, BOND
    )
    refused(ProtocolReverted, "open dispute", d.close, chain.owner, claim_id)
    # Out of turn, or by the wrong party.
    refused(ProtocolReverted, "the claimer's move", d.respond, chain.buyer, dispute_id, True)
    refused(
        NotPermitted,
        "only the claimer can bisect",
        d.bisect,
        chain.buyer,
        dispute_id,
        *dishonest.reveal(8),
    )
    leaves, reads = honest.witness(0)
    refused(
        ProtocolReverted,
        "the claimer's move",
        d.one_step,
        chain.buyer,
        dispute_id,
        args["program"],
        leaves,
        reads,
    )
    # A forged Merkle proof: the honest root where the committed trace has another, or
    # the right root with the proof of another position.
    refused(
        ProtocolError,
        "forged Merkle proof",
        d.bisect,
        chain.owner,
        dispute_id,
        *Run(honest.first, corrupt=0).reveal(8),
    )
    refused(
        ProtocolError,
        "forged Merkle proof",
        d.bisect,
        chain.owner,
        dispute_id,
        dishonest.roots[8],
        merkle.proof(dishonest.roots, 7),
    )
    d.bisect(chain.owner, dispute_id, *dishonest.reveal(8))
    refused(
        ProtocolReverted,
        "the challenger's move",
        d.bisect,
        chain.owner,
        dispute_id,
        *dishonest.reveal(8),
    )
    refused(
        NotPermitted, "only the challenger can respond", d.respond, chain.owner, dispute_id, False
    )
    play(
        d,
        dispute_id,
        claimer=chain.owner,
        claimed=dishonest,
        challenger=chain.buyer,
        believed=honest,
        stop="step",
    )
    game = d.get_dispute(dispute_id)
    assert (game.lo, game.hi, game.turn) == (3, 4, "step")
    # A wrong witness: another state's leaves, a tampered tensor, another program.
    leaves, reads = honest.witness(3)
    # (a consistent witness of operation 3, from the state before operation 2)
    other_leaves, other_reads = machine.state_at(honest.first, 2).witness(3)
    refused(
        ProtocolError,
        "not the agreed state 3",
        d.one_step,
        chain.buyer,
        dispute_id,
        args["program"],
        other_leaves,
        other_reads,
    )
    tampered = [reads[0][:-1] + bytes([reads[0][-1] ^ 1]), *reads[1:]]
    refused(
        ProtocolError,
        "bad witness",
        d.one_step,
        chain.buyer,
        dispute_id,
        args["program"],
        leaves,
        tampered,
    )
    refused(
        ProtocolError,
        "not the one claim",
        d.one_step,
        chain.buyer,
        dispute_id,
        tiny_sgd(steps=3).program.encode(),
        leaves,
        reads,
    )
    refused(
        NotPermitted,
        "only the claimer or the challenger",
        d.one_step,
        chain.partner,
        dispute_id,
        args["program"],
        leaves,
        reads,
    )
    refused(RecordNotFound, "unknown dispute 7", d.timeout, chain.buyer, 7)
    d.one_step(chain.buyer, dispute_id, args["program"], leaves, reads)
    refused(ProtocolReverted, "is resolved", d.timeout, chain.buyer, dispute_id)
    refused(ProtocolReverted, "is rejected", d.challenge, chain.partner, claim_id, BOND)


def test_a_claim_unchallenged_in_its_window_closes_and_returns_its_bond(chain: Chain) -> None:
    d = chain.proto.disputes
    before = balance(chain, chain.owner.address)
    claim_id, tx = d.claim(
        chain.owner, kind="inference", subject=0, bond_wei=BOND, **Run(tiny_sgd()).claim_args()
    )
    mine_at(chain, d.get_claim(claim_id).deadline)
    snapshot = balances(chain)
    with pytest.raises(ProtocolReverted, match="challenge window of claim 1 closed"):
        d.challenge(chain.buyer, claim_id, BOND)
    assert balances(chain) == snapshot
    d.close(chain.buyer, claim_id)
    assert d.get_claim(claim_id).status == "accepted"
    assert balance(chain, chain.owner.address) == before - tx.fee
    with pytest.raises(ProtocolReverted, match="is accepted"):
        d.close(chain.buyer, claim_id)


def test_an_inference_claim_names_a_record_of_its_claimer(chain: Chain) -> None:
    d = chain.proto.disputes
    record, _ = chain.proto.inference.record(chain.owner, chain.asset, b"\5" * 32)
    args = Run(tiny_sgd()).claim_args()
    with pytest.raises(NotPermitted, match="only the record's recorder"):
        d.claim(chain.buyer, kind="inference", subject=record, bond_wei=BOND, **args)
    claim_id, _ = d.claim(chain.owner, kind="inference", subject=record, bond_wei=BOND, **args)
    assert d.claim_of("inference", record) == claim_id
    assert d.get_claim(claim_id).subject == record
