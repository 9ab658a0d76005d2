"""The typed client of the dispute game SAP: claims, challenges, the bisection, one step.

A claimer commits to a computation of the deterministic machine (program, input, output
and trace roots) with a bond; a challenger disputes it with a bond of its own; the two
bisect the trace (``bisect`` and ``respond``) down to one operation, which the chain
re-executes (``one_step``); a party that stops answering loses (``timeout``); an
unchallenged claim is closed after its deadline (``close``). The rules are in
``sahara_cli.node.saps.dispute`` and ``docs/compute.md``.

A revert becomes the :class:`~sahara_cli.errors.ProtocolError` its reason stands for:
``RecordNotFound`` for an unknown claim or dispute, ``NotPermitted`` for a move by the
wrong party, ``ProtocolReverted`` for a move the game's state refuses (out of turn,
after a deadline, a resolved dispute), ``ProtocolInvalidArgument`` for bad arguments
(a bond too small, a forged Merkle proof, a wrong witness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    NotPermitted,
    ProtocolInvalidArgument,
    ProtocolReverted,
    RecordNotFound,
    SaharaError,
)
from sahara_cli.protocol.clients.saps import SAPClient
from sahara_cli.protocol.values import TxResult, hex32

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer

#: Claim kinds, claim states and turns, as the dispute game SAP numbers them.
CLAIM_KINDS = {1: "training", 2: "inference"}
CLAIM_STATES = {1: "open", 2: "accepted", 3: "rejected"}
TURNS = {1: "submitter", 2: "challenger", 3: "step", 4: "resolved"}
#: The events of a dispute, in the order a game emits them.
MOVE_EVENTS = ("Challenged", "Bisected", "Responded", "Resolved")
_ZERO_ADDRESS = "0x" + "00" * 20
#: Words of the reasons the game gives for a move its state refuses.
_CONFLICTS = (
    "is accepted",
    "is rejected",
    "is resolved",
    "window",
    "'s move",
    "move deadline",
    "move is due",
    "open dispute",
    "open to challenges",
    "not pending",
    "has a dispute open",
)


@dataclass(frozen=True)
class Claim:
    """A claim about a computation, as the dispute game keeps it."""

    id: int
    claimer: str
    kind: str
    subject: int
    program_hash: str
    input_root: str
    output_root: str
    trace_root: str
    steps: int
    bond_wei: int
    deadline: int
    status: str
    dispute: int  # the dispute open over it now, 0 for none


@dataclass(frozen=True)
class Dispute:
    """A dispute over a claim: the interval still disputed and whose move it is."""

    id: int
    claim: int
    challenger: str
    lo: int
    hi: int
    lo_root: str
    hi_root: str
    mid_root: str
    turn: str
    rounds: int
    deadline: int
    status: str
    winner: str  # "" while the dispute is open
    claim_bond_wei: int
    challenger_bond_wei: int

    @property
    def mid(self) -> int:
        """The trace position the claimer reveals next."""
        return (self.lo + self.hi) // 2


@dataclass(frozen=True)
class Move:
    """One event of a dispute, with the block, transaction and gas of the move."""

    name: str
    args: dict[str, Any]
    block: int
    tx_hash: str
    log_index: int
    gas_used: int


def _topic(number: int) -> str:
    return "0x" + number.to_bytes(32, "big").hex()


def _refine(exc: SaharaError) -> SaharaError:
    """The error a dispute game's revert reason stands for (see the module's doc)."""
    reason = str(exc.details.get("reason", exc.message))
    details = exc.details
    if reason.startswith(("unknown claim", "unknown dispute")):
        return RecordNotFound(reason, details=details)
    if reason.startswith("the claimer cannot"):
        return NotPermitted(reason, details=details)
    if isinstance(exc, ProtocolInvalidArgument) and any(w in reason for w in _CONFLICTS):
        return ProtocolReverted(reason, details=details)
    return exc


class DisputeClient(SAPClient):
    """The dispute game SAP: claim, challenge, bisect, respond, check one step, time out,
    close; read claims, disputes and the moves of a dispute."""

    CONTRACT = "DisputeGame"
    PROBE = "claimCount"

    def write(
        self, signer: Signer, function: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> TxResult:
        try:
            return super().write(signer, function, *args, value=value, gas=gas)
        except (ProtocolInvalidArgument, ProtocolReverted) as exc:
            raise _refine(exc) from None

    def read(self, function: str, *args: Any) -> Any:
        try:
            return super().read(function, *args)
        except (ProtocolInvalidArgument, ProtocolReverted) as exc:
            raise _refine(exc) from None

    # -- moves ------------------------------------------------------------------------

    def claim(
        self,
        signer: Signer,
        *,
        kind: str,
        subject: int,
        program: bytes,
        input_root: bytes | str,
        output_root: bytes | str,
        trace_root: bytes | str,
        steps: int,
        bond_wei: int,
    ) -> tuple[int, TxResult]:
        """Claim a computation of ``program`` with ``bond_wei`` locked; returns its id.

        ``kind`` "training": ``subject`` is the sender's pending training job; "inference":
        ``subject`` is the sender's inference record, or 0 for a claim of its own."""
        codes = {v: k for k, v in CLAIM_KINDS.items()}
        if kind not in codes:
            raise ProtocolInvalidArgument(f"a claim's kind is training or inference, not {kind}")
        tx = self.write(
            signer,
            "claim",
            codes[kind],
            subject,
            bytes(program),
            hex32(input_root),
            hex32(output_root),
            hex32(trace_root),
            steps,
            value=bond_wei,
        )
        return int(tx.event("Claimed").args["claim"]), tx

    def challenge(self, signer: Signer, claim_id: int, bond_wei: int) -> tuple[int, TxResult]:
        """Dispute a claim with ``bond_wei`` locked; returns the dispute's id."""
        tx = self.write(signer, "challenge", claim_id, value=bond_wei)
        return int(tx.event("Challenged").args["dispute"]), tx

    def bisect(
        self, signer: Signer, dispute_id: int, root: bytes | str, proof: Sequence[bytes | str]
    ) -> TxResult:
        """The claimer reveals the state root at the midpoint, with its Merkle proof."""
        return self.write(signer, "bisect", dispute_id, hex32(root), [hex32(p) for p in proof])

    def respond(self, signer: Signer, dispute_id: int, agree: bool) -> TxResult:
        """The challenger agrees with the revealed root, or not."""
        return self.write(signer, "respond", dispute_id, bool(agree))

    def one_step(
        self,
        signer: Signer,
        dispute_id: int,
        program: bytes,
        leaves: Sequence[bytes | str],
        reads: Sequence[bytes],
    ) -> TxResult:
        """Have the chain re-execute the disputed operation from the agreed state's slot
        ``leaves`` and the tensors it ``reads``; the dispute is resolved."""
        return self.write(
            signer,
            "oneStep",
            dispute_id,
            bytes(program),
            [hex32(leaf) for leaf in leaves],
            [bytes(r) for r in reads],
        )

    def timeout(self, signer: Signer, dispute_id: int) -> TxResult:
        """Resolve a dispute against the party that did not move before the deadline."""
        return self.write(signer, "timeout", dispute_id)

    def close(self, signer: Signer, claim_id: int) -> TxResult:
        """Accept an unchallenged claim after its deadline; its bond goes back."""
        return self.write(signer, "close", claim_id)

    # -- reads ------------------------------------------------------------------------

    def get_claim(self, claim_id: int) -> Claim:
        raw = self.read("getClaim", claim_id)
        return Claim(
            id=claim_id,
            claimer=raw["claimer"],
            kind=CLAIM_KINDS.get(raw["kind"], str(raw["kind"])),
            subject=raw["subject"],
            program_hash="0x" + raw["program_hash"].hex(),
            input_root="0x" + raw["input_root"].hex(),
            output_root="0x" + raw["output_root"].hex(),
            trace_root="0x" + raw["trace_root"].hex(),
            steps=raw["steps"],
            bond_wei=raw["bond"],
            deadline=raw["deadline"],
            status=CLAIM_STATES.get(raw["status"], str(raw["status"])),
            dispute=raw["dispute"],
        )

    def get_dispute(self, dispute_id: int) -> Dispute:
        raw = self.read("getDispute", dispute_id)
        winner = raw["winner"]
        return Dispute(
            id=dispute_id,
            claim=raw["claim"],
            challenger=raw["challenger"],
            lo=raw["lo"],
            hi=raw["hi"],
            lo_root="0x" + raw["lo_root"].hex(),
            hi_root="0x" + raw["hi_root"].hex(),
            mid_root="0x" + raw["mid_root"].hex(),
            turn=TURNS.get(raw["turn"], str(raw["turn"])),
            rounds=raw["rounds"],
            deadline=raw["deadline"],
            status="resolved" if raw["status"] == 2 else "active",
            winner="" if winner.lower() == _ZERO_ADDRESS else winner,
            claim_bond_wei=raw["claim_bond"],
            challenger_bond_wei=raw["challenger_bond"],
        )

    def claim_of(self, kind: str, subject: int) -> int:
        """The claim about a training job or an inference record; 0 for none."""
        codes = {v: k for k, v in CLAIM_KINDS.items()}
        if kind not in codes:
            raise ProtocolInvalidArgument(f"a claim's kind is training or inference, not {kind}")
        return int(self.read("claimOf", codes[kind], subject))

    def parameters(self) -> tuple[int, int, int]:
        """``(min_bond_wei, challenge_window_s, move_timeout_s)``."""
        min_bond, window, timeout = self.read("parameters")
        return int(min_bond), int(window), int(timeout)

    def claim_count(self) -> int:
        return int(self.read("claimCount"))

    def dispute_count(self) -> int:
        return int(self.read("disputeCount"))

    def program_of(self, claim_id: int) -> bytes:
        """The program a claim committed to, from its ``Claimed`` event."""
        for event in self.logs("Claimed", _topic(claim_id)):
            return bytes(event.args["program"])
        raise RecordNotFound(f"no claim {claim_id} on this chain")

    def moves(self, dispute_id: int) -> list[Move]:
        """The events of a dispute in order (``Challenged``, then ``Bisected`` and
        ``Responded`` each round, then ``Resolved``), with the gas of each move's
        transaction from its receipt."""
        self.ensure_deployed()
        raw = self.node.call(
            "eth_getLogs",
            {
                "address": self.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [[self.topic(name) for name in MOVE_EVENTS], _topic(dispute_id)],
            },
        )
        events = sorted(
            (e for e in (self.decode_log(entry) for entry in raw) if e is not None),
            key=lambda e: (e.block, e.log_index),
        )
        gas: dict[str, int] = {}
        moves = []
        for event in events:
            if event.tx_hash not in gas:
                receipt = self.node.receipt(event.tx_hash) or {}
                gas[event.tx_hash] = int(receipt.get("gasUsed", "0x0"), 16)
            moves.append(
                Move(
                    name=event.name,
                    args=dict(event.args),
                    block=event.block,
                    tx_hash=event.tx_hash,
                    log_index=event.log_index,
                    gas_used=gas[event.tx_hash],
                )
            )
        return moves
