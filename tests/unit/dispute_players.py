"""Players of the dispute game for tests: a claimer and a challenger that each follow
their own run of the deterministic machine, and the moves they send.

``Run`` is one run of a program from its first state, possibly with one operation
computed wrong (a dishonest runner, or a challenger whose own run went wrong). ``play``
plays a dispute to its end: the claimer reveals the roots of its committed trace with
their Merkle proofs, the challenger agrees exactly when a revealed root is its own, and
at the one step the given party sends the agreed state's witness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sahara_cli.identity.keys import Signer
from sahara_cli.node.saps import machine, merkle
from sahara_cli.node.saps.machine import Program, State
from sahara_cli.protocol.clients.disputes import DisputeClient
from sahara_cli.protocol.values import TxResult


def tiny_sgd(steps: int = 2, layers: tuple[int, ...] = (2, 3, 1), rows: int = 4) -> State:
    """The first state of a small SGD program on integer-made fixed-point data."""
    program = Program("mlp-sgd", layers, batch=2 if rows > 1 else 1, steps=steps, rows=rows)
    width = layers[0] + layers[-1]
    k = np.arange(rows * width, dtype=np.int64).reshape(rows, width)
    data = ((k * 7919) % 131 - 65) << 10
    return State.initial(program, {"data": data, **machine.init_weights(program, 7)})


@dataclass
class Run:
    first: State
    corrupt: int | None = None
    roots: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.roots = machine.run(self.first, corrupt=self.corrupt).roots

    @property
    def program(self) -> Program:
        return self.first.program

    @property
    def trace_root(self) -> bytes:
        return merkle.root(self.roots)

    def claim_args(self) -> dict[str, object]:
        return {
            "program": self.program.encode(),
            "input_root": self.roots[0],
            "output_root": self.roots[-1],
            "trace_root": self.trace_root,
            "steps": self.program.length,
        }

    def reveal(self, index: int) -> tuple[bytes, list[bytes]]:
        """The root at ``index`` and its proof under the trace root."""
        return self.roots[index], merkle.proof(self.roots, index)

    def witness(self, index: int) -> tuple[list[bytes], list[bytes]]:
        """The one-step witness of operation ``index`` from this run's state there."""
        return machine.state_at(self.first, index, corrupt=self.corrupt).witness(index)


@dataclass
class Played:
    moves: list[tuple[Signer, TxResult]] = field(default_factory=list)
    rounds: int = 0

    def fees(self, signer: Signer) -> int:
        return sum(tx.fee for who, tx in self.moves if who.address == signer.address)


def play(
    disputes: DisputeClient,
    dispute: int,
    *,
    claimer: Signer,
    claimed: Run,
    challenger: Signer,
    believed: Run,
    stepper: Signer | None = None,
    stop: str = "",
) -> Played:
    """Play ``dispute`` until it is resolved, or until it is ``stop``'s turn."""
    played = Played()
    while True:
        game = disputes.get_dispute(dispute)
        if game.turn in ("resolved", stop):
            return played
        if game.turn == "submitter":
            root, proof = claimed.reveal(game.mid)
            played.moves.append((claimer, disputes.bisect(claimer, dispute, root, proof)))
        elif game.turn == "challenger":
            agree = game.mid_root == "0x" + believed.roots[game.mid].hex()
            tx = disputes.respond(challenger, dispute, agree)
            played.moves.append((challenger, tx))
            played.rounds += 1
        else:
            # The state at lo is agreed: both runs hold the same one there.
            who = stepper or challenger
            leaves, reads = believed.witness(game.lo)
            program = claimed.program.encode()
            played.moves.append((who, disputes.one_step(who, dispute, program, leaves, reads)))
