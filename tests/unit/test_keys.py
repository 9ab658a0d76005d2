"""Keys and signatures: compared with eth-account, the reference implementation."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import to_checksum_address as eth_checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import SecretInvalid, SignatureInvalid
from sahara_cli.identity import mnemonic
from sahara_cli.identity.keys import (
    Signer,
    address_of_public_key,
    parse_private_key,
    personal_message_hash,
    recover_hash,
    to_checksum_address,
    typed_data_hash,
)
from tests.conftest import TEST_ADDRESS_0, TEST_ADDRESS_1, TEST_KEY_0, TEST_MNEMONIC

KEY = bytes.fromhex(TEST_KEY_0[2:])

TYPED = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def test_signer_address_and_public_key() -> None:
    signer = Signer(KEY)
    assert signer.address == TEST_ADDRESS_0
    assert len(signer.public_key) == 65
    assert address_of_public_key(signer.public_key) == TEST_ADDRESS_0
    assert TEST_KEY_0 not in repr(signer)


def test_eip191_signature_matches_eth_account() -> None:
    message = "hello sahara"
    ours = Signer(KEY).sign_message(message.encode())
    theirs = Account.sign_message(encode_defunct(text=message), KEY).signature
    assert ours == bytes(theirs)
    assert Account.recover_message(encode_defunct(text=message), signature=ours) == TEST_ADDRESS_0


def test_eip712_hash_and_signature_match_eth_account() -> None:
    signable = encode_typed_data(full_message=TYPED)
    theirs = Account.sign_message(signable, KEY)
    assert typed_data_hash(TYPED) == bytes(theirs.message_hash)
    # The EIP-712 example's well-known digest.
    assert (
        typed_data_hash(TYPED).hex()
        == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    )
    assert Signer(KEY).sign_typed_data(TYPED) == bytes(theirs.signature)


def test_bad_typed_data_is_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        typed_data_hash({"types": {}, "message": {}})


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=200), key=st.binary(min_size=32, max_size=32))
def test_sign_then_recover_round_trip(message: bytes, key: bytes) -> None:
    try:
        signer = Signer(parse_private_key(key.hex()))
    except SecretInvalid:
        return  # zero or >= n: not a key
    signature = signer.sign_message(message)
    assert recover_hash(personal_message_hash(message), signature) == signer.address


def test_recover_rejects_malformed_signatures() -> None:
    digest = personal_message_hash(b"x")
    good = Signer(KEY).sign_message(b"x")
    with pytest.raises(SignatureInvalid, match="65 bytes"):
        recover_hash(digest, good[:64])
    with pytest.raises(SignatureInvalid, match="recovery id"):
        recover_hash(digest, good[:64] + bytes([5]))
    with pytest.raises(SignatureInvalid, match="hex"):
        recover_hash(digest, "0xnothex")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = good[:32] + (n - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + good[64:]
    with pytest.raises(SignatureInvalid, match="high s"):
        recover_hash(digest, high_s)


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    assert to_checksum_address(raw) == eth_checksum(raw)
    assert to_checksum_address("0x" + raw.hex()) == eth_checksum(raw)


@pytest.mark.parametrize("text", ["", "0x1234", "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32])
def test_bad_private_keys(text: str) -> None:
    with pytest.raises(SecretInvalid):
        parse_private_key(text)


def test_private_key_parsing_tolerates_whitespace_and_prefix() -> None:
    assert parse_private_key(f"  {TEST_KEY_0}\n") == KEY
    assert parse_private_key(TEST_KEY_0[2:]) == KEY


def test_mnemonic_derivation_matches_the_standard_test_accounts() -> None:
    assert Signer(mnemonic.derive(TEST_MNEMONIC)).address == TEST_ADDRESS_0
    assert Signer(mnemonic.derive(TEST_MNEMONIC, "m/44'/60'/0'/0/1")).address == TEST_ADDRESS_1


def test_generated_mnemonic_round_trips() -> None:
    phrase = mnemonic.generate(24)
    assert len(phrase.split()) == 24
    key = mnemonic.derive(phrase)
    assert Signer(key).address == Account.from_key(key).address


@pytest.mark.parametrize(
    ("phrase", "path"),
    [
        ("test " * 11 + "test", mnemonic.DEFAULT_PATH),  # bad checksum
        ("test test junk", mnemonic.DEFAULT_PATH),  # wrong length
        ("zzzz " * 11 + "junk", mnemonic.DEFAULT_PATH),  # unknown words
        (TEST_MNEMONIC, "m/44'/60'/x"),  # bad path
    ],
)
def test_bad_mnemonics_and_paths(phrase: str, path: str) -> None:
    with pytest.raises(SecretInvalid):
        mnemonic.derive(phrase, path)
