"""What the light client verified, and how a state proof is checked.

:class:`VerifiedHeader` is a CometBFT header CometBFT's light client verified; its app
hash is the state root of EVM block ``height - 1``. :func:`verify_account` checks an
``eth_getProof`` answer node by node against that root (account trie, then each storage
trie) and refuses any value the proof does not carry
(:class:`~sahara_cli.errors.LightProofInvalid`). No network here: :mod:`sahara_cli.node.light`
fetches, this module judges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import LightProofInvalid

if TYPE_CHECKING:
    from sahara_cli.node.results import LightAccount, LightHeader, TrustedHeader

__all__ = ["TrustRoot", "VerifiedAccount", "VerifiedHeader", "verify_account"]


@dataclass(frozen=True)
class TrustRoot:
    """The header the light client starts from: its height and hash (hex, upper case as
    CometBFT prints it), and where it came from."""

    height: int
    hash: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "hash": self.hash, "source": self.source}

    def result(self) -> TrustedHeader:
        from sahara_cli.node.results import TrustedHeader, hex_hash

        return TrustedHeader(height=self.height, hash=hex_hash(self.hash), source=self.source)


@dataclass(frozen=True)
class VerifiedHeader:
    """A CometBFT header the light client verified."""

    height: int
    hash: str
    app_hash: bytes
    time: str
    chain_id: str
    validators_hash: str

    @property
    def evm_block(self) -> int:
        """The EVM block whose state root this header's app hash is."""
        return self.height - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "hash": self.hash,
            "app_hash": "0x" + self.app_hash.hex(),
            "state_root_of_block": self.evm_block,
            "time": self.time,
            "chain_id": self.chain_id,
            "validators_hash": self.validators_hash,
        }

    def result(self) -> LightHeader:
        """The typed result (``light follow`` prints one a line)."""
        from sahara_cli.node.results import LightHeader

        return LightHeader(**self._fields())

    def _fields(self) -> dict[str, Any]:
        from sahara_cli.node.results import hex_hash

        return {
            "height": self.height,
            "hash": hex_hash(self.hash),
            "app_hash": hex_hash(self.app_hash),
            "state_root_of_block": self.evm_block,
            "produced_at": self.time,
            "cometbft_chain_id": self.chain_id,
            "validators_hash": hex_hash(self.validators_hash),
        }


@dataclass(frozen=True)
class VerifiedAccount:
    """An account's fields and storage slots at ``block``, proven against ``state_root``."""

    address: str
    block: int
    state_root: bytes
    header: VerifiedHeader
    balance: int
    nonce: int
    storage_hash: bytes
    code_hash: bytes
    storage: dict[int, int] = field(default_factory=dict)

    def result(self, trusted: TrustRoot) -> LightAccount:
        """The typed result of ``light balance`` and ``light storage``."""
        from sahara_cli.node.results import LightAccount

        return LightAccount(
            address=self.address,
            block=self.block,
            balance_wei=self.balance,
            nonce=self.nonce,
            storage_hash="0x" + self.storage_hash.hex(),
            code_hash="0x" + self.code_hash.hex(),
            storage={hex(k): hex(v) for k, v in self.storage.items()},
            state_root="0x" + self.state_root.hex(),
            header=self.header.result(),
            trusted=trusted.result(),
        )


def _quantity(proof: dict[str, Any], key: str) -> int:
    value = proof.get(key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise LightProofInvalid(f"eth_getProof: {key} is missing or not a hex number")
    try:
        return int(value, 16)
    except ValueError:
        raise LightProofInvalid(f"eth_getProof: {key} is not a hex number") from None


def _data(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise LightProofInvalid(f"eth_getProof: {what} is missing or not hex data")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise LightProofInvalid(f"eth_getProof: {what} is not hex data") from None


def _walk(root: bytes, key: bytes, nodes: Any, what: str, block: int) -> bytes:
    """The value under ``keccak(key)`` in the trie of ``root``, checked node by node."""
    import rlp
    from eth_hash.auto import keccak
    from trie.exceptions import BadTrieProof
    from trie.hexary import HexaryTrie

    if not isinstance(nodes, list):
        raise LightProofInvalid(f"eth_getProof: the {what} proof is not a list")
    try:
        decoded = [rlp.decode(_data(n, f"a {what} proof node")) for n in nodes]
        value: bytes = HexaryTrie.get_from_proof(  # type: ignore[no-untyped-call]
            root, keccak(key), decoded
        )
    except (BadTrieProof, rlp.DecodingError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise LightProofInvalid(
            f"the {what} proof does not lead to the verified state of block {block}: {exc}"[:300],
            hint="The node served a forged or corrupt proof; do not trust its answers.",
        ) from None
    return value


def _shown(value: int | bytes) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def verify_account(
    address: bytes, proof: Any, header: VerifiedHeader, slots: Sequence[int] = ()
) -> VerifiedAccount:
    """Checks an ``eth_getProof`` answer for ``address`` against ``header``'s app hash
    (the state root of EVM block ``header.height - 1``)."""
    import rlp
    from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
    from eth.rlp.accounts import Account

    block = header.evm_block
    root = header.app_hash
    who = "0x" + address.hex()
    if not isinstance(proof, dict):
        raise LightProofInvalid(f"eth_getProof for {who} at block {block}: no proof")
    if str(proof.get("address", "")).lower() != who:
        raise LightProofInvalid(
            f"eth_getProof answered for {proof.get('address')!r}, not {who}",
            hint="The node served a forged or corrupt proof; do not trust its answers.",
        )
    leaf = _walk(root, address, proof.get("accountProof"), "account", block)
    balance, nonce = 0, 0
    storage_hash: bytes = BLANK_ROOT_HASH  # a proof of absence: the empty account
    code_hash: bytes = EMPTY_SHA3
    if leaf:
        try:
            account = rlp.decode(leaf, sedes=Account)
        except rlp.DecodingError as exc:
            raise LightProofInvalid(f"the account leaf of {who} is not an account: {exc}") from None
        balance, nonce = int(account.balance), int(account.nonce)
        storage_hash, code_hash = bytes(account.storage_root), bytes(account.code_hash)
    checks: list[tuple[str, int | bytes, int | bytes]] = [
        ("balance", _quantity(proof, "balance"), balance),
        ("nonce", _quantity(proof, "nonce"), nonce),
        ("storageHash", _data(proof.get("storageHash"), "storageHash"), storage_hash),
        ("codeHash", _data(proof.get("codeHash"), "codeHash"), code_hash),
    ]
    for name, reported, proven in checks:
        if reported != proven:
            raise LightProofInvalid(
                f"the node reports {name} {_shown(reported)} for {who} at block {block}, "
                f"but its proof against the verified state root says {_shown(proven)}",
                hint="The node served a forged or corrupt answer; do not trust it.",
            )
    storage: dict[int, int] = {}
    entries = proof.get("storageProof") or []
    if not isinstance(entries, list) or len(entries) != len(slots):
        raise LightProofInvalid(
            f"eth_getProof returned {len(entries) if isinstance(entries, list) else 0} "
            f"storage proofs for {len(slots)} slots"
        )
    for slot, entry in zip(slots, entries, strict=True):
        if not isinstance(entry, dict):
            raise LightProofInvalid("eth_getProof: a storage proof is not an object")
        stored = _walk(storage_hash, slot.to_bytes(32, "big"), entry.get("proof"), "storage", block)
        value = rlp.decode(stored, sedes=rlp.sedes.big_endian_int) if stored else 0
        claimed = _quantity(entry, "value")
        if claimed != value:
            raise LightProofInvalid(
                f"the node reports slot {hex(slot)} of {who} = {hex(claimed)} at block {block}, "
                f"but its proof against the verified state root says {hex(value)}",
                hint="The node served a forged or corrupt answer; do not trust it.",
            )
        storage[slot] = value
    return VerifiedAccount(
        address=who,
        block=block,
        state_root=root,
        header=header,
        balance=balance,
        nonce=nonce,
        storage_hash=storage_hash,
        code_hash=code_hash,
        storage=storage,
    )
