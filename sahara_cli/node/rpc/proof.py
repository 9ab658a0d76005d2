"""eth_getProof: Merkle proofs of an account and its storage slots (EIP-1186).

The proofs come from :meth:`~sahara_cli.node.state.ChainView.account_proof`: the account
trie at the block's state root, keyed by keccak(address), and the account's storage trie,
keyed by keccak(slot). Each proof element is the RLP of one trie node, as geth returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.errors import InvalidParams
from sahara_cli.node.rpc.params import storage_key

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI

    from sahara_cli.node.state import ChainView

MAX_SLOTS = 1_024


def storage_keys(value: Any) -> list[tuple[str, int]]:
    """The slots to prove, each as (the string the client sent, its number)."""
    if not isinstance(value, list):
        raise InvalidParams("storage keys must be an array")
    if len(value) > MAX_SLOTS:
        raise InvalidParams(f"too many storage keys: at most {MAX_SLOTS}")
    return [(item, storage_key(item)) for item in value]


StorageKeys = Annotated[list[tuple[str, int]], storage_keys]


def get_proof(
    view: ChainView, header: BlockHeaderAPI, address: bytes, slots: list[tuple[str, int]]
) -> dict[str, Any]:
    proven = view.account_proof(header.state_root, address, [slot for _, slot in slots])
    return {
        "address": fmt.d(address),
        "accountProof": [fmt.d(node) for node in proven.account_proof],
        "balance": fmt.q(proven.balance),
        "codeHash": fmt.d(proven.code_hash),
        "nonce": fmt.q(proven.nonce),
        "storageHash": fmt.d(proven.storage_root),
        "storageProof": [
            {
                "key": given,
                "value": fmt.q(value),
                "proof": [fmt.d(node) for node in nodes],
            }
            for (given, _), (value, nodes) in zip(slots, proven.storage, strict=True)
        ],
    }
