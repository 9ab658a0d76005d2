"""Binary Merkle trees of keccak256, as the dispute game proves trace and state roots.

Leaves are 32-byte hashes. A tree of ``count`` leaves is padded with zero words up to the
next power of two; a node is ``keccak256(left || right)``; a single leaf is its own root.
A proof is the list of sibling hashes from the leaf up, so its length is the tree's depth
(:func:`depth`): a proof of another length is refused, never padded.
"""

from __future__ import annotations

from collections.abc import Sequence

from sahara_cli.identity.keys import keccak256

__all__ = ["ZERO", "depth", "proof", "root", "verify"]

ZERO = b"\0" * 32


def depth(count: int) -> int:
    """The number of levels above the leaves of a tree of ``count`` leaves."""
    if count < 1:
        raise ValueError("a Merkle tree has at least one leaf")
    return (count - 1).bit_length()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    level = list(leaves)
    for leaf in level:
        if len(leaf) != 32:
            raise ValueError("a Merkle leaf is 32 bytes")
    level += [ZERO] * ((1 << depth(len(level))) - len(level))
    levels = [level]
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def root(leaves: Sequence[bytes]) -> bytes:
    """The root of ``leaves``."""
    return _levels(leaves)[-1][0]


def proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes that prove ``leaves[index]`` under :func:`root`."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    out = []
    for level in _levels(leaves)[:-1]:
        out.append(level[index ^ 1])
        index //= 2
    return out


def verify(
    root_hash: bytes, leaf: bytes, index: int, count: int, siblings: Sequence[bytes]
) -> bool:
    """Whether ``leaf`` is leaf ``index`` of a tree of ``count`` leaves with ``root_hash``."""
    if count < 1 or not 0 <= index < count or len(siblings) != depth(count):
        return False
    node = leaf
    for sibling in siblings:
        if len(sibling) != 32:
            return False
        node = keccak256(sibling + node) if index & 1 else keccak256(node + sibling)
        index //= 2
    return node == root_hash
