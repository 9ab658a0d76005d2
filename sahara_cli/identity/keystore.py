"""Ethereum keystore v3 (Web3 Secret Storage) encode and decode.

Writes scrypt keystores (AES-128-CTR, keccak MAC), reads scrypt and pbkdf2 ones. The
format is the one geth, eth-account and MetaMask use; tests check both directions
against eth-account.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from typing import Any

from sahara_cli.errors import KeystoreInvalid, WrongPassword
from sahara_cli.identity.keys import address_of_public_key, keccak256, public_key_of

DEFAULT_SCRYPT_N = 262144
_MAX_SCRYPT_N = 1 << 22


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    from Crypto.Protocol.KDF import scrypt

    key = scrypt(password, salt, dklen, n, r, p)  # type: ignore[arg-type]  # str-typed stub
    assert isinstance(key, bytes)
    return key


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    from Crypto.Cipher import AES
    from Crypto.Util import Counter

    counter = Counter.new(128, initial_value=int.from_bytes(iv, "big"))
    return AES.new(key, AES.MODE_CTR, counter=counter).encrypt(data)


def encrypt(
    private_key: bytes, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N
) -> dict[str, Any]:
    """A keystore v3 document holding ``private_key`` under ``password``."""
    salt = os.urandom(32)
    iv = os.urandom(16)
    derived = _scrypt(password.encode("utf-8"), salt, scrypt_n, 8, 1, 32)
    ciphertext = _aes_ctr(derived[:16], iv, private_key)
    mac = keccak256(derived[16:32] + ciphertext)
    address = address_of_public_key(public_key_of(private_key))
    return {
        "address": address[2:].lower(),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": iv.hex()},
            "ciphertext": ciphertext.hex(),
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": scrypt_n, "p": 1, "r": 8, "salt": salt.hex()},
            "mac": mac.hex(),
        },
        "id": str(uuid.uuid4()),
        "version": 3,
    }


def _field(tree: dict[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise KeystoreInvalid(f"keystore has no '{'.'.join(path)}'")
        node = node[key]
    return node


def _hex(tree: dict[str, Any], *path: str) -> bytes:
    value = _field(tree, *path)
    try:
        return bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError as exc:
        raise KeystoreInvalid(f"keystore field '{'.'.join(path)}' is not hex") from exc


def validate(document: Any) -> dict[str, Any]:
    """Check the shape of a keystore v3 document without decrypting it."""
    if not isinstance(document, dict):
        raise KeystoreInvalid("keystore must be a JSON object")
    crypto = document.get("crypto", document.get("Crypto"))
    if document.get("version") != 3 or not isinstance(crypto, dict):
        raise KeystoreInvalid('not a version 3 keystore (needs "version": 3 and "crypto")')
    if crypto.get("cipher") != "aes-128-ctr":
        raise KeystoreInvalid(f"unsupported keystore cipher {crypto.get('cipher')!r}")
    if crypto.get("kdf") not in ("scrypt", "pbkdf2"):
        raise KeystoreInvalid(f"unsupported keystore kdf {crypto.get('kdf')!r}")
    for key in ("ciphertext", "mac", "cipherparams", "kdfparams"):
        if key not in crypto:
            raise KeystoreInvalid(f"keystore has no 'crypto.{key}'")
    return {**document, "crypto": crypto}


def decrypt(document: Any, password: str) -> bytes:
    """The private key inside ``document``; :class:`WrongPassword` if the MAC disagrees."""
    doc = validate(document)
    kdf = doc["crypto"]["kdf"]
    params = _field(doc, "crypto", "kdfparams")
    salt = _hex(doc, "crypto", "kdfparams", "salt")
    secret = password.encode("utf-8")
    try:
        dklen = int(params["dklen"])
        if kdf == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            if not 1 < n <= _MAX_SCRYPT_N or n & (n - 1):
                raise KeystoreInvalid(f"keystore scrypt n={n} is not a power of two up to 2^22")
            derived = _scrypt(secret, salt, n, r, p, dklen)
        else:
            if params.get("prf", "hmac-sha256") != "hmac-sha256":
                raise KeystoreInvalid(f"unsupported pbkdf2 prf {params.get('prf')!r}")
            derived = hashlib.pbkdf2_hmac("sha256", secret, salt, int(params["c"]), dklen)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreInvalid(f"keystore kdfparams are malformed: {exc}") from exc
    ciphertext = _hex(doc, "crypto", "ciphertext")
    mac = _hex(doc, "crypto", "mac")
    if len(derived) < 32 or not hmac.compare_digest(keccak256(derived[16:32] + ciphertext), mac):
        raise WrongPassword("wrong password for this keystore")
    iv = _hex(doc, "crypto", "cipherparams", "iv")
    key = _aes_ctr(derived[:16], iv, ciphertext)
    stated = str(doc.get("address", "")).lower().removeprefix("0x")
    actual = address_of_public_key(public_key_of(key))[2:].lower()
    if stated and stated != actual:
        raise KeystoreInvalid(f"keystore says address 0x{stated} but its key is for 0x{actual}")
    return key
