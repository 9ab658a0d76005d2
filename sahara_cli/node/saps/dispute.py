"""The dispute game SAP: an optimistic claim about a computation, bisected on chain.

A **claim** commits to a computation of the deterministic machine (:mod:`.machine`): the
hash of its program, the root of its input state, the root of its output state and the
Merkle root (:mod:`.merkle`) of its trace, the ``steps + 1`` state roots from the input
(state 0) to the output (state ``steps``). It locks a bond and stays open to challenges
until its deadline: a training job's ``finalize_after`` for a claim about that job, or
``challengeWindow`` after the claim for an inference claim. After the deadline, with no
dispute going on, anyone closes it and its bond goes back to the claimer.

A **challenge** locks a bond of the challenger's and opens a dispute over the interval
``[lo, hi] = [0, steps]``, whose end roots both parties hold to be agreed (``lo``) and
disputed (``hi``). Each round the claimer reveals the root at ``mid = (lo + hi) // 2``
with a proof that it is in the committed trace (:meth:`DisputeGame.bisect`), and the
challenger says whether it agrees (:meth:`DisputeGame.respond`): the interval halves
(:func:`next_interval`) until it is one operation long. Then either party has the chain
re-execute that one operation from a witness of the agreed state
(:meth:`DisputeGame.one_step`): if it ends on the claimer's root the claimer wins,
otherwise the challenger does. A party that does not move before the move deadline loses
(:meth:`DisputeGame.timeout`).

The loser's bond goes to the winner. A claim that loses is rejected for good, and for a
training claim the job is rejected in the training SAP (never finalised; its bond goes
to the challenger too). A challenger that loses leaves the claim open to others, and
the claim's window stands still while a dispute is open: the claim (and its job) gets
back the time the dispute took, so that a slow challenger, even one the claimer set up,
cannot run out the clock on the others. While a dispute is open, the job can be neither
finalised nor cancelled.
"""

from __future__ import annotations

from typing import Any

from sahara_cli.identity.keys import keccak256
from sahara_cli.node.saps import inference, merkle, training
from sahara_cli.node.saps.base import SAP, Call, Method, SAPRevert, slot
from sahara_cli.node.saps.dispute_state import (
    ACCEPTED,
    ACCEPTED_EVENT,
    ADDRESS,
    BISECTED,
    CHALLENGED,
    CHALLENGER,
    CLAIM_STATES,
    CLAIM_TUPLE,
    CLAIMED,
    DEFAULT_CHALLENGE_WINDOW,
    DEFAULT_MIN_BOND,
    DEFAULT_MOVE_TIMEOUT,
    DEV_CHALLENGE_WINDOW,
    DEV_MOVE_TIMEOUT,
    DISPUTE_TUPLE,
    INFERENCE,
    JOB_TYPE,
    MAX_LEAVES,
    MAX_PROGRAM,
    MAX_READS,
    MAX_STEPS,
    OPEN,
    RECORD_TYPE,
    REJECTED,
    RESOLVED,
    RESOLVED_EVENT,
    RESPONDED,
    STEP,
    SUBMITTER,
    TRAINING,
    TURN_NAMES,
    ClaimRecord,
    DisputeRecord,
    address_of,
    claim_key,
    dispute_key,
    genesis_storage,
    keccak_gas,
    merkle_gas,
    next_interval,
    to_bytes32,
    word,
)

__all__ = [
    "ADDRESS",
    "DEFAULT_CHALLENGE_WINDOW",
    "DEFAULT_MIN_BOND",
    "DEFAULT_MOVE_TIMEOUT",
    "DEV_CHALLENGE_WINDOW",
    "DEV_MOVE_TIMEOUT",
    "DisputeGame",
    "genesis_storage",
    "keccak_gas",
    "next_interval",
]


class DisputeGame(SAP):
    name = "DisputeGame"
    address = ADDRESS

    def claim(
        self,
        call: Call,
        kind: int,
        subject: int,
        program: bytes,
        input_root: bytes,
        output_root: bytes,
        trace_root: bytes,
        steps: int,
    ) -> tuple[Any, ...]:
        from sahara_cli.node.saps import machine  # numpy: only when a claim is made

        if kind not in (TRAINING, INFERENCE):
            raise SAPRevert(f"a claim's kind is 1 (training) or 2 (inference), not {kind}")
        min_bond = call.read(slot("minBond"))
        if call.value < min_bond:
            raise SAPRevert(f"bond too small: {call.value} wei sent, {min_bond} wei needed")
        if len(program) > MAX_PROGRAM:
            raise SAPRevert(f"the program is over {MAX_PROGRAM} bytes")
        if not 1 <= steps <= MAX_STEPS:
            raise SAPRevert(f"steps must be between 1 and {MAX_STEPS}")
        call.charge(keccak_gas(len(program)), "SAP keccak of the program")
        try:
            length = machine.Program.decode(program).length
        except machine.MachineError as exc:
            raise SAPRevert(f"malformed program: {exc}") from None
        if steps != length:
            raise SAPRevert(f"the program has {length} operations, the claim says {steps}")
        sender = word(call.sender)
        deadline = self._deadline(call, kind, subject, sender)
        one_per_subject = slot("claimOf", kind, subject)
        if subject and call.read(one_per_subject):
            what = "job" if kind == TRAINING else "inference record"
            raise SAPRevert(f"{what} {subject} already has a claim")
        claim = call.read(slot("claimCount")) + 1
        call.write(slot("claimCount"), claim)
        record = ClaimRecord(claim, sender, kind, OPEN, deadline, steps, 0)
        record.save_head(call)
        record.save_info(call)
        call.write(claim_key(claim, "bond"), call.value)
        for key, value in (
            ("subject", subject),
            ("program_hash", word(keccak256(program))),
            ("input_root", word(input_root)),
            ("output_root", word(output_root)),
            ("trace_root", word(trace_root)),
        ):
            if value:
                call.write(claim_key(claim, key), value)
        if subject:
            call.write(one_per_subject, claim)
        call.emit(
            CLAIMED,
            claim=claim,
            claimer="0x" + call.sender.hex(),
            kind=kind,
            subject=subject,
            program=program,
            input_root=input_root,
            output_root=output_root,
            trace_root=trace_root,
            steps=steps,
            bond=call.value,
            deadline=deadline,
        )
        return (claim,)

    def _deadline(self, call: Call, kind: int, subject: int, sender: int) -> int:
        """Check the claim's subject (the sender's job or record); the claim's deadline."""
        if kind == TRAINING:
            (job,) = call.view(training.ADDRESS, "getJob", ["uint256"], [subject], [JOB_TYPE])
            if int(job[0], 16) != sender:
                raise SAPRevert("only the job's submitter can claim its computation")
            if job[2] != training.PENDING:
                raise SAPRevert(f"job {subject} is not pending")
            if call.timestamp >= job[15]:
                raise SAPRevert(f"the challenge window of job {subject} closed at {job[15]}")
            return int(job[15])
        if subject:
            (record,) = call.view(
                inference.ADDRESS, "getRecord", ["uint256"], [subject], [RECORD_TYPE]
            )
            if int(record[0], 16) != sender:
                raise SAPRevert("only the record's recorder can claim its computation")
        return call.timestamp + call.read(slot("challengeWindow"))

    def challenge(self, call: Call, claim_id: int) -> tuple[Any, ...]:
        c = ClaimRecord.load(call, claim_id)
        if c.status != OPEN:
            raise SAPRevert(f"claim {claim_id} is {CLAIM_STATES[c.status]}")
        if call.timestamp >= c.deadline:
            raise SAPRevert(f"the challenge window of claim {claim_id} closed at {c.deadline}")
        if c.dispute:
            raise SAPRevert(f"claim {claim_id} already has an open dispute ({c.dispute})")
        challenger = word(call.sender)
        if challenger == c.claimer:
            raise SAPRevert("the claimer cannot challenge its own claim")
        min_bond = call.read(slot("minBond"))
        if call.value < min_bond:
            raise SAPRevert(f"bond too small: {call.value} wei sent, {min_bond} wei needed")
        dispute = call.read(slot("disputeCount")) + 1
        call.write(slot("disputeCount"), dispute)
        d = DisputeRecord(
            id=dispute,
            claim=claim_id,
            challenger=challenger,
            lo=0,
            hi=c.steps,
            turn=STEP if c.steps == 1 else SUBMITTER,
            rounds=0,
            deadline=call.timestamp + call.read(slot("moveTimeout")),
            started=call.timestamp,
        )
        d.save_state(call)
        call.write(dispute_key(dispute, "meta"), challenger | claim_id << 160)
        call.write(dispute_key(dispute, "bond"), call.value)
        for mine, theirs in (("lo_root", "input_root"), ("hi_root", "output_root")):
            value = call.read(claim_key(claim_id, theirs))
            if value:
                call.write(dispute_key(dispute, mine), value)
        c.dispute = dispute
        c.save_info(call)
        if c.kind == TRAINING:
            call.send(training.ADDRESS, "hold", ["uint256"], [c.value(call, "subject")], [])
        call.emit(
            CHALLENGED,
            dispute=dispute,
            claim=claim_id,
            challenger="0x" + call.sender.hex(),
            bond=call.value,
            turn=d.turn,
            deadline=d.deadline,
        )
        return (dispute,)

    def bisect(self, call: Call, dispute: int, root: bytes, proof: list[bytes]) -> tuple[Any, ...]:
        d = DisputeRecord.load(call, dispute)
        c = ClaimRecord.load(call, d.claim)
        d.open_for(call, SUBMITTER, c.claimer, "bisect")
        mid = (d.lo + d.hi) // 2
        call.charge(len(proof) * keccak_gas(64), "SAP keccak of a Merkle proof")
        trace_root = to_bytes32(call.read(claim_key(c.id, "trace_root")))
        if not merkle.verify(trace_root, root, mid, c.steps + 1, proof):
            raise SAPRevert(
                f"forged Merkle proof: that root is not state {mid} of claim {c.id}'s trace"
            )
        call.write(dispute_key(dispute, "mid_root"), word(root))
        d.turn = CHALLENGER
        d.deadline = call.timestamp + call.read(slot("moveTimeout"))
        d.save_state(call)
        call.emit(BISECTED, dispute=dispute, round=d.rounds + 1, index=mid, root=root)
        return ()

    def respond(self, call: Call, dispute: int, agree: bool) -> tuple[Any, ...]:
        d = DisputeRecord.load(call, dispute)
        d.open_for(call, CHALLENGER, d.challenger, "respond")
        mid_root = call.read(dispute_key(dispute, "mid_root"))
        d.lo, d.hi = next_interval(d.lo, d.hi, agree)
        call.write(dispute_key(dispute, "lo_root" if agree else "hi_root"), mid_root)
        d.rounds += 1
        d.turn = STEP if d.hi - d.lo == 1 else SUBMITTER
        d.deadline = call.timestamp + call.read(slot("moveTimeout"))
        d.save_state(call)
        call.emit(RESPONDED, dispute=dispute, round=d.rounds, agree=agree, lo=d.lo, hi=d.hi)
        return ()

    def one_step(
        self,
        call: Call,
        dispute: int,
        program: bytes,
        leaves: list[bytes],
        reads: list[bytes],
    ) -> tuple[Any, ...]:
        from sahara_cli.node.saps import machine

        d = DisputeRecord.load(call, dispute)
        c = ClaimRecord.load(call, d.claim)
        d.open_for(call, STEP, None, "check the step")
        if word(call.sender) not in (c.claimer, d.challenger):
            raise SAPRevert(
                f"only the claimer or the challenger can check dispute {dispute}'s step"
            )
        if len(leaves) > MAX_LEAVES or len(reads) > MAX_READS:
            raise SAPRevert(f"a witness has at most {MAX_LEAVES} leaves and {MAX_READS} reads")
        call.charge(keccak_gas(len(program)), "SAP keccak of the program")
        if word(keccak256(program)) != call.read(claim_key(c.id, "program_hash")):
            raise SAPRevert(f"that program is not the one claim {c.id} committed to")
        hashing = 2 * merkle_gas(len(leaves)) + sum(keccak_gas(len(r)) for r in reads)
        call.charge(hashing, "SAP keccak of the witness")
        try:
            step = machine.verify_step(machine.Program.decode(program), d.lo, leaves, reads)
        except machine.MachineError as exc:
            raise SAPRevert(f"bad witness: {exc}") from None
        call.charge(step.work * machine.WORK_GAS, "SAP one-step re-execution")
        agreed = d.root(call, "lo_root")
        if step.pre_root != agreed:
            raise SAPRevert(
                f"the witness is not the agreed state {d.lo}: its root is 0x{step.pre_root.hex()}, "
                f"the agreed root is 0x{agreed.hex()}"
            )
        claimer_wins = step.post_root == d.root(call, "hi_root")
        return self._resolve(call, d, c, claimer_wins=claimer_wins, reason="one-step")

    def timeout(self, call: Call, dispute: int) -> tuple[Any, ...]:
        d = DisputeRecord.load(call, dispute)
        if d.turn == RESOLVED:
            raise SAPRevert(f"dispute {dispute} is resolved")
        if call.timestamp < d.deadline:
            raise SAPRevert(
                f"dispute {dispute}: the {TURN_NAMES[d.turn]}'s move is due by {d.deadline}"
            )
        c = ClaimRecord.load(call, d.claim)
        return self._resolve(call, d, c, claimer_wins=d.turn == CHALLENGER, reason="timeout")

    def _resolve(
        self, call: Call, d: DisputeRecord, c: ClaimRecord, *, claimer_wins: bool, reason: str
    ) -> tuple[Any, ...]:
        bond = call.read(dispute_key(d.id, "bond"))
        winner, loser = (c.claimer, d.challenger) if claimer_wins else (d.challenger, c.claimer)
        d.turn = RESOLVED
        d.save_state(call)
        call.write(dispute_key(d.id, "winner"), winner)
        c.dispute = 0
        c.save_info(call)
        if claimer_wins:
            amount = bond
            # The window stood still while the dispute was open: others get the time back.
            c.deadline += call.timestamp - d.started
            c.save_head(call)
        else:
            amount = bond + c.value(call, "bond")
            c.status = REJECTED
            c.save_head(call)
        call.pay(winner.to_bytes(20, "big"), amount)
        if c.kind == TRAINING and claimer_wins:
            call.send(training.ADDRESS, "release", ["uint256"], [c.value(call, "subject")], [])
        elif c.kind == TRAINING:
            call.send(
                training.ADDRESS,
                "reject",
                ["uint256", "address"],
                [c.value(call, "subject"), address_of(d.challenger)],
                [],
            )
        call.emit(
            RESOLVED_EVENT,
            dispute=d.id,
            claim=c.id,
            winner=address_of(winner),
            loser=address_of(loser),
            reason=reason,
            amount=amount,
        )
        return (address_of(winner),)

    def close(self, call: Call, claim_id: int) -> tuple[Any, ...]:
        c = ClaimRecord.load(call, claim_id)
        if c.status != OPEN:
            raise SAPRevert(f"claim {claim_id} is {CLAIM_STATES[c.status]}")
        if c.dispute:
            raise SAPRevert(f"claim {claim_id} has an open dispute ({c.dispute})")
        if call.timestamp < c.deadline:
            raise SAPRevert(f"claim {claim_id} is open to challenges until {c.deadline}")
        c.status = ACCEPTED
        c.save_head(call)
        bond = c.value(call, "bond")
        call.pay(c.claimer.to_bytes(20, "big"), bond)
        call.emit(ACCEPTED_EVENT, claim=claim_id, claimer=address_of(c.claimer), bond=bond)
        return ()

    def get_claim(self, call: Call, claim_id: int) -> tuple[Any, ...]:
        c = ClaimRecord.load(call, claim_id)
        roots = [
            to_bytes32(call.read(claim_key(claim_id, k)))
            for k in ("program_hash", "input_root", "output_root", "trace_root")
        ]
        return (
            (
                address_of(c.claimer),
                c.kind,
                c.value(call, "subject"),
                *roots,
                c.steps,
                c.value(call, "bond"),
                c.deadline,
                c.status,
                c.dispute,
            ),
        )

    def get_dispute(self, call: Call, dispute: int) -> tuple[Any, ...]:
        d = DisputeRecord.load(call, dispute)
        roots = [d.root(call, k) for k in ("lo_root", "hi_root", "mid_root")]
        return (
            (
                d.claim,
                address_of(d.challenger),
                d.lo,
                d.hi,
                *roots,
                d.turn,
                d.rounds,
                d.deadline,
                2 if d.turn == RESOLVED else 1,
                address_of(call.read(dispute_key(dispute, "winner"))),
                call.read(claim_key(d.claim, "bond")),
                call.read(dispute_key(dispute, "bond")),
            ),
        )

    def claim_of(self, call: Call, kind: int, subject: int) -> tuple[Any, ...]:
        return (call.read(slot("claimOf", kind, subject)) if subject else 0,)

    def claim_count(self, call: Call) -> tuple[Any, ...]:
        return (call.read(slot("claimCount")),)

    def dispute_count(self, call: Call) -> tuple[Any, ...]:
        return (call.read(slot("disputeCount")),)

    def parameters(self, call: Call) -> tuple[Any, ...]:
        return tuple(call.read(slot(k)) for k in ("minBond", "challengeWindow", "moveTimeout"))


_ID = (("claim", "uint256"),)
_DISPUTE = (("dispute", "uint256"),)
DisputeGame.methods = (
    Method(
        "claim",
        (
            ("kind", "uint8"),
            ("subject", "uint256"),
            ("program", "bytes"),
            ("input_root", "bytes32"),
            ("output_root", "bytes32"),
            ("trace_root", "bytes32"),
            ("steps", "uint256"),
        ),
        _ID,
        DisputeGame.claim,
        "payable",
    ),
    Method("challenge", _ID, _DISPUTE, DisputeGame.challenge, "payable"),
    Method(
        "bisect",
        (*_DISPUTE, ("root", "bytes32"), ("proof", "bytes32[]")),
        (),
        DisputeGame.bisect,
    ),
    Method("respond", (*_DISPUTE, ("agree", "bool")), (), DisputeGame.respond),
    Method(
        "oneStep",
        (*_DISPUTE, ("program", "bytes"), ("leaves", "bytes32[]"), ("reads", "bytes[]")),
        (("winner", "address"),),
        DisputeGame.one_step,
    ),
    Method("timeout", _DISPUTE, (("winner", "address"),), DisputeGame.timeout),
    Method("close", _ID, (), DisputeGame.close),
    Method("getClaim", _ID, (("", CLAIM_TUPLE),), DisputeGame.get_claim, "view"),
    Method("getDispute", _DISPUTE, (("", DISPUTE_TUPLE),), DisputeGame.get_dispute, "view"),
    Method(
        "claimOf",
        (("kind", "uint8"), ("subject", "uint256")),
        _ID,
        DisputeGame.claim_of,
        "view",
    ),
    Method("claimCount", (), (("", "uint256"),), DisputeGame.claim_count, "view"),
    Method("disputeCount", (), (("", "uint256"),), DisputeGame.dispute_count, "view"),
    Method(
        "parameters",
        (),
        (("min_bond", "uint256"), ("challenge_window", "uint256"), ("move_timeout", "uint256")),
        DisputeGame.parameters,
        "view",
    ),
)
DisputeGame.events = (
    CLAIMED,
    CHALLENGED,
    BISECTED,
    RESPONDED,
    RESOLVED_EVENT,
    ACCEPTED_EVENT,
)
