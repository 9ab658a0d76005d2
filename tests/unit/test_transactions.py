"""Our EIP-1559 signer gives the bytes eth-account gives, and RLP matches the spec."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.identity.transactions import rlp_encode, sign_eip1559

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")


@pytest.mark.parametrize(
    ("item", "encoded"),
    [
        (b"", "80"),
        (b"\x00", "00"),
        (b"\x7f", "7f"),
        (b"\x80", "8180"),
        (b"dog", "83646f67"),
        (0, "80"),
        (15, "0f"),
        (1024, "820400"),
        ([], "c0"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (b"a" * 56, "b838" + "61" * 56),
    ],
)
def test_rlp_matches_the_yellow_paper_examples(item: object, encoded: str) -> None:
    assert rlp_encode(item).hex() == encoded  # type: ignore[arg-type]


def test_rlp_refuses_negative_integers() -> None:
    with pytest.raises(ValueError, match="negative"):
        rlp_encode(-1)


@settings(max_examples=60, deadline=None)
@given(
    chain_id=st.integers(1, 2**32),
    nonce=st.integers(0, 2**64 - 1),
    value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=300),
    gas=st.integers(21_000, 30_000_000),
    tip=st.integers(0, 10**12),
    extra=st.integers(0, 10**12),
    to=st.one_of(st.none(), st.binary(min_size=20, max_size=20)),
)
def test_signed_bytes_equal_eth_account(
    chain_id: int,
    nonce: int,
    value: int,
    data: bytes,
    gas: int,
    tip: int,
    extra: int,
    to: bytes | None,
) -> None:
    recipient = None if to is None else "0x" + to.hex()
    ours = sign_eip1559(
        KEY,
        chain_id=chain_id,
        nonce=nonce,
        to=recipient,
        value=value,
        data=data,
        gas=gas,
        max_fee_per_gas=tip + extra,
        max_priority_fee_per_gas=tip,
    )
    tx: dict[str, object] = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "value": value,
        "data": data,
        "gas": gas,
        "maxFeePerGas": tip + extra,
        "maxPriorityFeePerGas": tip,
    }
    if recipient is not None:
        from eth_utils import to_checksum_address

        tx["to"] = to_checksum_address(recipient)
    theirs = Account.sign_transaction(tx, KEY)
    assert ours.raw == bytes(theirs.raw_transaction)
    assert ours.hash == "0x" + bytes(theirs.hash).hex()
