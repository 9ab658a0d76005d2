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

# Bounds on what a keystore may ask of us before we run its key derivation. A file
# outside them is refused at once (KeystoreInvalid), so a crafted keystore cannot make
# import or unlock hang or exhaust memory. They accept every keystore that geth and clef
# (scrypt n=2^18 r=8 p=1, or "light" n=2^12 r=8 p=6), eth-account/eth-keyfile (scrypt
# n=2^18 r=1 p=8, pbkdf2 c=10^6), MetaMask/ethereumjs-wallet (scrypt n=2^18 r=8 p=1,
# pbkdf2 c=262144), web3.js, ethers and Parity write, with room to spare.
MAX_SCRYPT_N = 1 << 20
MAX_SCRYPT_R = 16
MAX_SCRYPT_P = 16
#: n * r * p: the work (and, for n * r, memory: 128 bytes each) one derivation costs.
#: 2^23 is four times geth's default; at most 1 GiB of memory.
MAX_SCRYPT_WORK = 1 << 23
MAX_PBKDF2_C = 10_000_000
DKLEN_RANGE = (32, 64)
MAX_SALT_BYTES = 256


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


def _int_param(params: Any, name: str, low: int, high: int) -> int:
    if not isinstance(params, dict) or name not in params:
        raise KeystoreInvalid(f"keystore kdfparams are malformed: no '{name}'")
    value = params[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise KeystoreInvalid(f"keystore kdfparams are malformed: '{name}' is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise KeystoreInvalid(
            f"keystore kdfparams are malformed: '{name}' is not an integer"
        ) from None
    if not low <= number <= high:
        raise KeystoreInvalid(
            f"keystore kdf parameter {name}={number} is outside {low}..{high}",
            hint="sahara reads keystores within the limits listed in docs/identity.md.",
        )
    return number


def kdf_params(document: Any) -> dict[str, Any]:
    """The key-derivation parameters of ``document``, checked against the bounds above.

    Raises :class:`KeystoreInvalid` at once, before any slow work, for a keystore that
    asks for more than the bounds allow.
    """
    doc = validate(document)
    kdf = doc["crypto"]["kdf"]
    params = _field(doc, "crypto", "kdfparams")
    salt = _hex(doc, "crypto", "kdfparams", "salt")
    if len(salt) > MAX_SALT_BYTES:
        raise KeystoreInvalid(f"keystore salt is {len(salt)} bytes (at most {MAX_SALT_BYTES})")
    dklen = _int_param(params, "dklen", *DKLEN_RANGE)
    out: dict[str, Any] = {"kdf": kdf, "salt": salt, "dklen": dklen}
    if kdf == "scrypt":
        n = _int_param(params, "n", 2, MAX_SCRYPT_N)
        if n & (n - 1):
            raise KeystoreInvalid(f"keystore scrypt n={n} is not a power of two")
        r = _int_param(params, "r", 1, MAX_SCRYPT_R)
        p = _int_param(params, "p", 1, MAX_SCRYPT_P)
        if n * r * p > MAX_SCRYPT_WORK:
            raise KeystoreInvalid(
                f"keystore scrypt n*r*p = {n * r * p} is more than 2^23",
                hint="sahara reads keystores within the limits listed in docs/identity.md.",
            )
        out |= {"n": n, "r": r, "p": p}
    else:
        prf = params.get("prf", "hmac-sha256")
        if prf != "hmac-sha256":
            raise KeystoreInvalid(f"unsupported pbkdf2 prf {prf!r}")
        out["c"] = _int_param(params, "c", 1, MAX_PBKDF2_C)
    return out


def decrypt(document: Any, password: str) -> bytes:
    """The private key inside ``document``; :class:`WrongPassword` if the MAC disagrees."""
    doc = validate(document)
    params = kdf_params(doc)
    ciphertext = _hex(doc, "crypto", "ciphertext")
    if len(ciphertext) != 32:
        raise KeystoreInvalid(
            f"keystore ciphertext is {len(ciphertext)} bytes; a private key is 32"
        )
    mac = _hex(doc, "crypto", "mac")
    iv = _hex(doc, "crypto", "cipherparams", "iv")
    if len(iv) != 16:
        raise KeystoreInvalid(f"keystore iv is {len(iv)} bytes; aes-128-ctr needs 16")
    secret = password.encode("utf-8")
    salt, dklen = params["salt"], params["dklen"]
    if params["kdf"] == "scrypt":
        derived = _scrypt(secret, salt, params["n"], params["r"], params["p"], dklen)
    else:
        derived = hashlib.pbkdf2_hmac("sha256", secret, salt, params["c"], dklen)
    if not hmac.compare_digest(keccak256(derived[16:32] + ciphertext), mac):
        raise WrongPassword("wrong password for this keystore")
    key = _aes_ctr(derived[:16], iv, ciphertext)
    stated = str(doc.get("address", "")).lower().removeprefix("0x")
    actual = address_of_public_key(public_key_of(key))[2:].lower()
    if stated and stated != actual:
        raise KeystoreInvalid(f"keystore says address 0x{stated} but its key is for 0x{actual}")
    return key
