"""The dispute game's parameters, rules, storage records and events (:mod:`.dispute`).

A claim and a dispute are each kept in a few packed storage words, so that a round of
the game writes two words: the revealed or agreed root and the dispute's state word
(``lo``, ``hi``, whose turn, the round count and the move deadline).
"""

from __future__ import annotations

from dataclasses import dataclass

from sahara_cli.node.saps import inference, training
from sahara_cli.node.saps.base import Call, Event, SAPRevert, _canonical, slot

ADDRESS = bytes.fromhex("5a4a000000000000000000000000000000000102")

#: Claim kinds, as ``claim``'s ``kind`` numbers them.
TRAINING, INFERENCE = 1, 2
#: Claim states.
OPEN, ACCEPTED, REJECTED = 1, 2, 3
#: Whose move it is in a dispute; RESOLVED once it is over.
SUBMITTER, CHALLENGER, STEP, RESOLVED = 1, 2, 3, 4

MAX_PROGRAM = 4096
MAX_STEPS = 1 << 20
#: The most slot leaves and read tensors a one-step witness may carry.
MAX_LEAVES = 256
MAX_READS = 16

#: Parameters a genesis sets: the smallest bond (of a claim and of a challenge), how
#: long a claim not tied to a training job is open to challenges, and how long a party
#: has for each move.
DEFAULT_MIN_BOND = 10**16  # 0.01 SAH
DEFAULT_CHALLENGE_WINDOW = 86_400
DEV_CHALLENGE_WINDOW = 10
DEFAULT_MOVE_TIMEOUT = 3_600
DEV_MOVE_TIMEOUT = 10

#: KECCAK256's price: 30 plus 6 per 32-byte word hashed.
G_KECCAK = 30
G_KECCAK_WORD = 6

CLAIM_TUPLE = (
    "(claimer:address,kind:uint8,subject:uint256,program_hash:bytes32,input_root:bytes32,"
    "output_root:bytes32,trace_root:bytes32,steps:uint256,bond:uint256,deadline:uint256,"
    "status:uint8,dispute:uint256)"
)
DISPUTE_TUPLE = (
    "(claim:uint256,challenger:address,lo:uint256,hi:uint256,lo_root:bytes32,"
    "hi_root:bytes32,mid_root:bytes32,turn:uint8,rounds:uint256,deadline:uint256,"
    "status:uint8,winner:address,claim_bond:uint256,challenger_bond:uint256)"
)
JOB_TYPE = _canonical(training.JOB_TUPLE)
RECORD_TYPE = _canonical(inference.RECORD_TUPLE)


def genesis_storage(
    *,
    min_bond: int = DEFAULT_MIN_BOND,
    challenge_window: int = DEFAULT_CHALLENGE_WINDOW,
    move_timeout: int = DEFAULT_MOVE_TIMEOUT,
) -> dict[int, int]:
    """The SAP's storage in block 0: its parameters."""
    return {
        slot("minBond"): min_bond,
        slot("challengeWindow"): challenge_window,
        slot("moveTimeout"): move_timeout,
    }


def next_interval(lo: int, hi: int, agree: bool) -> tuple[int, int]:
    """The interval after a round: the challenger agrees with the root at the midpoint
    (the first difference is after it) or not (it is at or before it)."""
    if hi - lo < 2:
        raise ValueError("the interval is one operation already")
    mid = (lo + hi) // 2
    return (mid, hi) if agree else (lo, mid)


def keccak_gas(size: int) -> int:
    """What KECCAK256 of ``size`` bytes costs."""
    return G_KECCAK + G_KECCAK_WORD * ((size + 31) // 32)


def merkle_gas(count: int) -> int:
    """Hashing a Merkle tree of ``count`` leaves to its root (padded to a power of two)."""
    return ((1 << (count - 1).bit_length()) - 1) * keccak_gas(64) if count > 1 else 0


# -- storage: a claim and a dispute, a few packed words each ------------------------


def claim_key(claim: int, name: str) -> int:
    return slot("claim", claim, name)


def dispute_key(dispute: int, name: str) -> int:
    return slot("dispute", dispute, name)


def word(value: bytes) -> int:
    return int.from_bytes(value, "big")


def to_bytes32(value: int) -> bytes:
    return value.to_bytes(32, "big")


def address_of(value: int) -> str:
    return "0x" + value.to_bytes(20, "big").hex()


MASK32, MASK64, MASK160 = (1 << 32) - 1, (1 << 64) - 1, (1 << 160) - 1


@dataclass
class ClaimRecord:
    """A claim's words: ``head`` = claimer | kind | status | deadline, ``info`` = steps |
    the open dispute; then the subject, the bond, the program hash and the three roots,
    read when needed (:meth:`value`, :meth:`word`)."""

    id: int
    claimer: int
    kind: int
    status: int
    deadline: int
    steps: int
    dispute: int

    @classmethod
    def load(cls, call: Call, claim: int) -> ClaimRecord:
        head = call.read(claim_key(claim, "head"))
        if not head:  # every claim has a claimer
            raise SAPRevert(f"unknown claim {claim}")
        info = call.read(claim_key(claim, "info"))
        return cls(
            id=claim,
            claimer=head & MASK160,
            kind=(head >> 160) & 0xFF,
            status=(head >> 168) & 0xFF,
            deadline=head >> 176,
            steps=info & MASK32,
            dispute=info >> 32,
        )

    def value(self, call: Call, name: str) -> int:
        """``subject`` or ``bond``."""
        return call.read(claim_key(self.id, name))

    def word(self, call: Call, name: str) -> bytes:
        """``program_hash``, ``input_root``, ``output_root`` or ``trace_root``."""
        return to_bytes32(call.read(claim_key(self.id, name)))

    def save_head(self, call: Call) -> None:
        head = self.claimer | self.kind << 160 | self.status << 168 | self.deadline << 176
        call.write(claim_key(self.id, "head"), head)

    def save_info(self, call: Call) -> None:
        call.write(claim_key(self.id, "info"), self.steps | self.dispute << 32)


@dataclass
class DisputeRecord:
    """A dispute's words: ``state`` = lo | hi | turn | rounds | deadline | started, ``meta`` =
    challenger | claim; then the three roots, the challenger's bond and the winner."""

    id: int
    claim: int
    challenger: int
    lo: int
    hi: int
    turn: int
    rounds: int
    deadline: int
    started: int

    @classmethod
    def load(cls, call: Call, dispute: int) -> DisputeRecord:
        meta = call.read(dispute_key(dispute, "meta"))
        if not meta:  # every dispute has a challenger
            raise SAPRevert(f"unknown dispute {dispute}")
        state = call.read(dispute_key(dispute, "state"))
        return cls(
            id=dispute,
            claim=meta >> 160,
            challenger=meta & MASK160,
            lo=state & MASK32,
            hi=(state >> 32) & MASK32,
            turn=(state >> 64) & 0xFF,
            rounds=(state >> 72) & 0xFF,
            deadline=(state >> 80) & MASK64,
            started=state >> 144,
        )

    def save_state(self, call: Call) -> None:
        state = self.lo | self.hi << 32 | self.turn << 64 | self.rounds << 72
        state |= (self.deadline & MASK64) << 80 | self.started << 144
        call.write(dispute_key(self.id, "state"), state)

    def root(self, call: Call, name: str) -> bytes:
        """``lo_root``, ``hi_root`` or ``mid_root``."""
        return to_bytes32(call.read(dispute_key(self.id, name)))

    def open_for(self, call: Call, turn: int, mover: int | None, action: str) -> None:
        """Refuse a move that is not ``turn``'s, not by ``mover`` or after the deadline."""
        if self.turn == RESOLVED:
            raise SAPRevert(f"dispute {self.id} is resolved")
        if self.turn != turn:
            raise SAPRevert(f"dispute {self.id}: it is the {TURN_NAMES[self.turn]}'s move")
        if mover is not None and word(call.sender) != mover:
            who = "claimer" if turn == SUBMITTER else "challenger"
            raise SAPRevert(f"only the {who} can {action} in dispute {self.id}")
        if call.timestamp >= self.deadline:
            raise SAPRevert(
                f"dispute {self.id}: the move deadline passed at {self.deadline}; "
                "the dispute is to be timed out"
            )


TURN_NAMES = {SUBMITTER: "claimer", CHALLENGER: "challenger", STEP: "one-step check"}


CLAIM_STATES = {OPEN: "open", ACCEPTED: "accepted", REJECTED: "rejected"}

CLAIMED = Event(
    "Claimed",
    (
        ("claim", "uint256", True),
        ("claimer", "address", True),
        ("kind", "uint8", False),
        ("subject", "uint256", False),
        ("program", "bytes", False),
        ("input_root", "bytes32", False),
        ("output_root", "bytes32", False),
        ("trace_root", "bytes32", False),
        ("steps", "uint256", False),
        ("bond", "uint256", False),
        ("deadline", "uint256", False),
    ),
)
CHALLENGED = Event(
    "Challenged",
    (
        ("dispute", "uint256", True),
        ("claim", "uint256", True),
        ("challenger", "address", True),
        ("bond", "uint256", False),
        ("turn", "uint8", False),
        ("deadline", "uint256", False),
    ),
)
BISECTED = Event(
    "Bisected",
    (
        ("dispute", "uint256", True),
        ("round", "uint256", False),
        ("index", "uint256", False),
        ("root", "bytes32", False),
    ),
)
RESPONDED = Event(
    "Responded",
    (
        ("dispute", "uint256", True),
        ("round", "uint256", False),
        ("agree", "bool", False),
        ("lo", "uint256", False),
        ("hi", "uint256", False),
    ),
)
RESOLVED_EVENT = Event(
    "Resolved",
    (
        ("dispute", "uint256", True),
        ("claim", "uint256", True),
        ("winner", "address", False),
        ("loser", "address", False),
        ("reason", "string", False),
        ("amount", "uint256", False),
    ),
)
ACCEPTED_EVENT = Event(
    "ClaimAccepted",
    (("claim", "uint256", True), ("claimer", "address", True), ("bond", "uint256", False)),
)
