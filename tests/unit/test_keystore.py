"""Keystore v3: our codec against eth-account, in both directions, and bad input."""

from __future__ import annotations

import copy
import json

import pytest
from eth_account import Account

from sahara_cli.errors import KeystoreInvalid, WrongPassword
from sahara_cli.identity import keystore
from tests.conftest import TEST_ADDRESS_0, TEST_KEY_0

KEY = bytes.fromhex(TEST_KEY_0[2:])


def test_our_keystore_decrypts_with_eth_account() -> None:
    document = keystore.encrypt(KEY, "pw", scrypt_n=1024)
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["address"] == TEST_ADDRESS_0[2:].lower()
    assert Account.decrypt(document, "pw") == KEY


def test_eth_account_keystore_decrypts_with_ours_scrypt_and_pbkdf2() -> None:
    scrypt_doc = Account.encrypt(KEY, "pw", kdf="scrypt", iterations=1024)
    pbkdf2_doc = Account.encrypt(KEY, "pw", kdf="pbkdf2", iterations=1000)
    assert keystore.decrypt(scrypt_doc, "pw") == KEY
    assert keystore.decrypt(pbkdf2_doc, "pw") == KEY


def test_default_work_factor_is_geths_standard() -> None:
    assert keystore.DEFAULT_SCRYPT_N == 262144


def test_wrong_password_is_a_wrong_password_error() -> None:
    document = keystore.encrypt(KEY, "pw", scrypt_n=1024)
    with pytest.raises(WrongPassword):
        keystore.decrypt(document, "not the password")


def test_tampered_ciphertext_fails_the_mac() -> None:
    document = keystore.encrypt(KEY, "pw", scrypt_n=1024)
    bad = copy.deepcopy(document)
    text = bad["crypto"]["ciphertext"]
    bad["crypto"]["ciphertext"] = ("0" if text[0] != "0" else "1") + text[1:]
    with pytest.raises(WrongPassword):
        keystore.decrypt(bad, "pw")


def test_address_that_does_not_match_the_key_is_rejected() -> None:
    document = keystore.encrypt(KEY, "pw", scrypt_n=1024)
    document["address"] = "00" * 20
    with pytest.raises(KeystoreInvalid, match="says address"):
        keystore.decrypt(document, "pw")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=4), "version 3"),
        (lambda d: d["crypto"].update(cipher="aes-256-gcm"), "cipher"),
        (lambda d: d["crypto"].update(kdf="argon2"), "kdf"),
        (lambda d: d["crypto"].pop("mac"), "crypto.mac"),
        (lambda d: d["crypto"]["kdfparams"].update(n=1000), "power of two"),
        (lambda d: d["crypto"]["kdfparams"].update(salt="zz"), "not hex"),
        (lambda d: d["crypto"]["kdfparams"].pop("dklen"), "malformed"),
    ],
)
def test_malformed_keystores_name_the_problem(mutate, message) -> None:
    document = json.loads(json.dumps(keystore.encrypt(KEY, "pw", scrypt_n=1024)))
    mutate(document)
    with pytest.raises(KeystoreInvalid, match=message):
        keystore.decrypt(document, "pw")


def test_not_an_object() -> None:
    with pytest.raises(KeystoreInvalid):
        keystore.decrypt(["not", "a", "keystore"], "pw")


# -- bounds on what a keystore may ask for ------------------------------------------------

# The two test vectors of the Web3 Secret Storage definition (geth's accounts testdata).
SPEC_KEY = bytes.fromhex("7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d")
SPEC_PBKDF2 = {
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": "6087dab2f9fdbbfaddc31a909735c1e6"},
        "ciphertext": "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
        "kdf": "pbkdf2",
        "kdfparams": {
            "c": 262144,
            "dklen": 32,
            "prf": "hmac-sha256",
            "salt": "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd",
        },
        "mac": "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2",
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3,
}
SPEC_SCRYPT = {
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": "83dbcc02d8ccb40e466191a123791e0e"},
        "ciphertext": "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
        "kdf": "scrypt",
        "kdfparams": {
            "dklen": 32,
            "n": 262144,
            "r": 1,
            "p": 8,
            "salt": "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19",
        },
        "mac": "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097",
    },
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version": 3,
}


def test_the_spec_test_vectors_decrypt() -> None:
    assert keystore.decrypt(SPEC_PBKDF2, "testpassword") == SPEC_KEY
    assert keystore.decrypt(SPEC_SCRYPT, "testpassword") == SPEC_KEY


# What the wallets write by default (their sources): all must be accepted.
WALLET_PARAMS = {
    "geth/clef standard": {"kdf": "scrypt", "n": 1 << 18, "r": 8, "p": 1},
    "geth/clef --lightkdf": {"kdf": "scrypt", "n": 1 << 12, "r": 8, "p": 6},
    "eth-account scrypt": {"kdf": "scrypt", "n": 1 << 18, "r": 1, "p": 8},
    "eth-account pbkdf2": {"kdf": "pbkdf2", "c": 1_000_000},
    "MetaMask (ethereumjs-wallet) scrypt": {"kdf": "scrypt", "n": 1 << 18, "r": 8, "p": 1},
    "MetaMask (ethereumjs-wallet) pbkdf2": {"kdf": "pbkdf2", "c": 262144},
    "ethers": {"kdf": "scrypt", "n": 1 << 17, "r": 8, "p": 1},
    "web3.js": {"kdf": "scrypt", "n": 8192, "r": 8, "p": 1},
    "Parity": {"kdf": "pbkdf2", "c": 10240},
}


def _with_params(kdf: str, **params: object) -> dict:
    document = copy.deepcopy(SPEC_SCRYPT if kdf == "scrypt" else SPEC_PBKDF2)
    document["crypto"]["kdfparams"].update(params)
    return document


@pytest.mark.parametrize("writer", sorted(WALLET_PARAMS))
def test_keystores_that_wallets_write_are_within_bounds(writer: str) -> None:
    params = dict(WALLET_PARAMS[writer])
    kdf = str(params.pop("kdf"))
    checked = keystore.kdf_params(_with_params(kdf, **params))
    assert {k: checked[k] for k in params} == params


@pytest.mark.parametrize(
    ("kdf", "params", "message"),
    [
        ("scrypt", {"r": 1 << 20}, "r=1048576"),
        ("scrypt", {"p": 1 << 20}, "p=1048576"),
        ("scrypt", {"n": 1 << 30}, "n=1073741824"),
        ("scrypt", {"n": 1 << 20, "r": 8, "p": 2}, "n\\*r\\*p"),
        ("scrypt", {"dklen": 1 << 31}, "dklen=2147483648"),
        ("scrypt", {"dklen": 16}, "dklen=16"),
        ("scrypt", {"r": 0}, "r=0"),
        ("scrypt", {"r": "lots"}, "not an integer"),
        ("scrypt", {"salt": "ab" * 100_000}, "salt"),
        ("pbkdf2", {"c": 10**10}, "c=10000000000"),
        ("pbkdf2", {"c": 10**8}, "c=100000000"),
        ("pbkdf2", {"dklen": 10**9}, "dklen=1000000000"),
    ],
)
def test_crafted_kdf_params_fail_at_once_with_a_keystore_error(kdf, params, message) -> None:
    import time

    document = _with_params(kdf, **params)
    started = time.monotonic()
    with pytest.raises(KeystoreInvalid, match=message):
        keystore.decrypt(document, "testpassword")
    assert time.monotonic() - started < 1.0


def test_truncated_ciphertext_is_a_keystore_error_not_a_wrong_password() -> None:
    document = copy.deepcopy(SPEC_PBKDF2)
    document["crypto"]["ciphertext"] = document["crypto"]["ciphertext"][:40]
    with pytest.raises(KeystoreInvalid, match="ciphertext is 20 bytes"):
        keystore.decrypt(document, "testpassword")
