"""Sign EIP-1559 (type 2) transactions with a Sahara ID key.

A small RLP encoder and coincurve do what ``eth_account.Account.sign_transaction``
does, without its 0.9 s import; ``tests/unit/test_transactions.py`` checks that the
bytes are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from sahara_cli.identity.keys import keccak256, sign_hash

RLPItem = bytes | int | list["RLPItem"]


def rlp_encode(item: RLPItem) -> bytes:
    """Recursive-length-prefix encoding of bytes, non-negative ints and lists."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP cannot encode a negative integer")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length_prefix(len(item), 0x80) + item
    body = b"".join(rlp_encode(x) for x in item)
    return _length_prefix(len(body), 0xC0) + body


def _length_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes
    hash: str


def sign_eip1559(
    private_key: bytes,
    *,
    chain_id: int,
    nonce: int,
    to: str | None,
    value: int,
    data: bytes,
    gas: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
) -> SignedTransaction:
    """Sign a type-2 transaction (empty access list); ``to=None`` creates a contract."""
    recipient = b"" if to is None else bytes.fromhex(to.removeprefix("0x"))
    fields: list[RLPItem] = [
        chain_id,
        nonce,
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas,
        recipient,
        value,
        data,
        [],
    ]
    signature = sign_hash(private_key, keccak256(b"\x02" + rlp_encode(fields)))
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    raw = b"\x02" + rlp_encode([*fields, signature[64] - 27, r, s])
    return SignedTransaction(raw=raw, hash="0x" + keccak256(raw).hex())
