"""eth_getProof: Merkle proofs of an account and its storage slots (EIP-1186).

The proofs come straight from py-evm's tries in the node's database: the account trie
at the block's state root, keyed by keccak(address), and the account's storage trie,
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
    import rlp
    from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
    from eth.rlp.accounts import Account
    from eth_hash.auto import keccak
    from trie.hexary import HexaryTrie

    def encode(proof: Any) -> list[str]:
        return [fmt.d(rlp.encode(node)) for node in proof]

    def prove(trie: Any, key: bytes) -> list[str]:
        return encode(trie.get_proof(key))

    accounts = HexaryTrie(view.db, header.state_root)
    key = keccak(address)
    raw = accounts.get(key)
    if raw:
        account = rlp.decode(raw, sedes=Account)
        nonce, balance = int(account.nonce), int(account.balance)
        storage_root, code_hash = bytes(account.storage_root), bytes(account.code_hash)
    else:
        nonce, balance, storage_root, code_hash = 0, 0, BLANK_ROOT_HASH, EMPTY_SHA3
    storage = HexaryTrie(view.db, storage_root)
    storage_proof = []
    for given, slot in slots:
        slot_key = keccak(slot.to_bytes(32, "big"))
        value = storage.get(slot_key)
        storage_proof.append(
            {
                "key": given,
                "value": fmt.q(rlp.decode(value, sedes=rlp.sedes.big_endian_int) if value else 0),
                "proof": prove(storage, slot_key),
            }
        )
    return {
        "address": fmt.d(address),
        "accountProof": prove(accounts, key),
        "balance": fmt.q(balance),
        "codeHash": fmt.d(code_hash),
        "nonce": fmt.q(nonce),
        "storageHash": fmt.d(storage_root),
        "storageProof": storage_proof,
    }
