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
