"""The claims this home made: what the submitter's side needs to answer a challenge.

A claim of this home keeps a folder ``compute/claims/N/`` (N its number on chain) with the
program, the first state's tensors and every root of the trace. From those the submitter
answers each move of a dispute: the root at the midpoint with its Merkle proof, and the
witness of the one step the game ends on (the state before it, replayed from the first).
A drill (``--drill-corrupt-op``) is kept too, so that a deliberately wrong runner stays
consistent with the trace it committed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sahara_cli.fsutil import atomic_write
from sahara_cli.node.saps import machine, merkle
from sahara_cli.node.saps.machine import Program, State

CLAIMS_DIR = Path("compute") / "claims"


@dataclass(frozen=True)
class LocalClaim:
    """A claim this home made, with its trace."""

    claim_id: int
    program: Program
    first: State
    roots: list[bytes]
    corrupt: int | None = None

    @property
    def trace_root(self) -> bytes:
        return merkle.root(self.roots)

    def reveal(self, index: int) -> tuple[bytes, list[bytes]]:
        """The root at ``index`` and its proof under the committed trace root."""
        return self.roots[index], merkle.proof(self.roots, index)

    def witness(self, index: int) -> tuple[list[bytes], list[bytes]]:
        """The one-step witness of operation ``index``: the state before it, as this
        runner computed it."""
        return machine.state_at(self.first, index, corrupt=self.corrupt).witness(index)


def folder(home_root: Path, claim_id: int) -> Path:
    return home_root / CLAIMS_DIR / str(claim_id)


def save(home_root: Path, claim: LocalClaim) -> Path:
    """Write ``claim``'s folder (atomically, file by file)."""
    target = folder(home_root, claim.claim_id)
    target.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **claim.first.tensors)
    atomic_write(target / "state0.npz", buffer.getvalue())
    atomic_write(target / "trace.bin", b"".join(claim.roots))
    atomic_write(target / "program.json", claim.program.encode())
    atomic_write(target / "claim.json", json.dumps({"corrupt": claim.corrupt}).encode())
    return target


def load(home_root: Path, claim_id: int) -> LocalClaim | None:
    """This home's claim ``claim_id``, or None when it was made elsewhere."""
    source = folder(home_root, claim_id)
    try:
        program = Program.decode((source / "program.json").read_bytes())
        raw = (source / "trace.bin").read_bytes()
        with np.load(source / "state0.npz") as tensors:
            first = State.initial(program, {k: tensors[k] for k in tensors.files})
        corrupt = json.loads((source / "claim.json").read_text()).get("corrupt")
    except FileNotFoundError:
        return None
    roots = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    return LocalClaim(claim_id, program, first, roots, corrupt)


def all_ids(home_root: Path) -> Iterator[int]:
    """The numbers of this home's claims."""
    base = home_root / CLAIMS_DIR
    if base.is_dir():
        yield from sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
