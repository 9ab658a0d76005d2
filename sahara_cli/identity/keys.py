"""secp256k1 keys, Ethereum addresses and EIP-191 / EIP-712 signatures (coincurve).

Kept free of eth-account on purpose: importing it costs close to a second, and the
everyday commands (list, show, sign) need only keccak, coincurve and EIP-55.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sahara_cli.errors import AddressInvalid, SecretInvalid, SignatureInvalid

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def keccak256(data: bytes) -> bytes:
    try:
        import sha3  # safe-pysha3: a C keccak, ~5x faster than pycryptodome's
    except ImportError:  # pragma: no cover - the dependency is pinned
        from Crypto.Hash import keccak

        return keccak.new(data=data, digest_bits=256).digest()
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def to_checksum_address(address: bytes | str) -> str:
    """EIP-55 mixed-case form of a 20-byte address."""
    if isinstance(address, str):
        if not _HEX_ADDRESS.match(address):
            raise SignatureInvalid(f"not an address: {address!r}")
        raw = address[2:].lower()
    else:
        raw = address.hex()
    digest = keccak256(raw.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(raw))


def is_address(value: str) -> bool:
    """Whether ``value`` has the shape of an address (0x and 40 hex digits); no checksum."""
    return bool(_HEX_ADDRESS.match(value))


def looks_like_address(text: str) -> bool:
    """Whether ``text`` is meant as an address (``0x...``), well formed or not."""
    return text.strip()[:2] in ("0x", "0X")


def parse_address(text: str, what: str = "address") -> str:
    """The EIP-55 form of an address that a person typed or pasted.

    ``0x`` and 40 hex digits, surrounding spaces ignored. All-lowercase and all-uppercase
    digits carry no checksum and are taken as they are; mixed case must be the address's
    EIP-55 checksum, so a mistyped or altered digit is caught before anything is signed or
    sent to it. ``what`` names the input in the error (``--to``, ``--meter``...).
    Raises :class:`AddressInvalid` (``identity.bad_address``).
    """
    value = text.strip() if isinstance(text, str) else ""
    if value[:2] == "0X":
        value = "0x" + value[2:]
    if not _HEX_ADDRESS.match(value):
        raise AddressInvalid(f"{what} {text!r} is not an address (0x and 40 hex digits)")
    digits = value[2:]
    checksummed = to_checksum_address(value)
    if digits not in (digits.lower(), digits.upper()) and value != checksummed:
        raise AddressInvalid(
            f"{what} {value} fails its EIP-55 checksum: a digit or its case is wrong",
            details={"value": value},
        )
    return checksummed


def parse_private_key(text: str) -> bytes:
    """A 32-byte private key from hex text (``0x`` optional, whitespace ignored)."""
    cleaned = text.strip()
    if not _HEX_KEY.match(cleaned):
        raise SecretInvalid(
            "private key must be 32 bytes of hex (64 hex digits, 0x optional)",
            hint="The file should hold the key and nothing else.",
        )
    key = bytes.fromhex(cleaned.removeprefix("0x"))
    check_private_key(key)
    return key


def check_private_key(key: bytes) -> None:
    value = int.from_bytes(key, "big")
    if len(key) != 32 or not 0 < value < SECP256K1_N:
        raise SecretInvalid("private key is out of range for secp256k1")


def public_key_of(private_key: bytes) -> bytes:
    """Uncompressed public key (65 bytes, 0x04 prefix)."""
    from coincurve import PrivateKey

    return PrivateKey(private_key).public_key.format(compressed=False)


def address_of_public_key(public_key: bytes) -> str:
    if len(public_key) == 33:
        from coincurve import PublicKey

        public_key = PublicKey(public_key).format(compressed=False)
    if len(public_key) != 65 or public_key[0] != 4:
        raise SecretInvalid("public key must be 33 or 65 bytes (SEC1)")
    return to_checksum_address(keccak256(public_key[1:])[-20:])


def personal_message_hash(message: bytes) -> bytes:
    """EIP-191 version 0x45 ("personal_sign") hash of ``message``."""
    prefix = b"\x19Ethereum Signed Message:\n" + str(len(message)).encode("ascii")
    return keccak256(prefix + message)


def typed_data_hash(typed_data: dict[str, Any]) -> bytes:
    """EIP-712 hash of a full typed-data document (``types``, ``domain``, ``message``)."""
    try:
        from eth_account.messages import encode_typed_data

        signable = encode_typed_data(full_message=typed_data)
    except Exception as exc:  # eth-account raises many types for bad documents
        raise SignatureInvalid(f"not a valid EIP-712 document: {exc}") from exc
    return keccak256(b"\x19" + signable.version + signable.header + signable.body)


def sign_hash(private_key: bytes, digest: bytes) -> bytes:
    """65-byte Ethereum signature r || s || v with v in {27, 28}."""
    from coincurve import PrivateKey

    sig = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def parse_signature(signature: str | bytes) -> bytes:
    if isinstance(signature, str):
        text = signature.strip().removeprefix("0x")
        try:
            signature = bytes.fromhex(text)
        except ValueError as exc:
            raise SignatureInvalid("signature is not hex") from exc
    if len(signature) != 65:
        raise SignatureInvalid(f"signature must be 65 bytes, got {len(signature)}")
    return signature


def recover_hash(digest: bytes, signature: str | bytes) -> str:
    """The checksummed address that signed ``digest``."""
    return address_of_public_key(recover_public_key(digest, signature))


def recover_public_key(digest: bytes, signature: str | bytes) -> bytes:
    """The uncompressed public key (65 bytes) that signed ``digest``."""
    from coincurve import PublicKey

    sig = parse_signature(signature)
    v = sig[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        raise SignatureInvalid(f"signature has an invalid recovery id {sig[64]}")
    if int.from_bytes(sig[32:64], "big") > SECP256K1_N // 2:
        raise SignatureInvalid("signature is malleable (high s), as EIP-2 forbids")
    try:
        public = PublicKey.from_signature_and_message(sig[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # coincurve raises ValueError / Exception on bad points
        raise SignatureInvalid("signature does not recover to a public key") from exc
    return bytes(public.format(compressed=False))


@dataclass(frozen=True)
class Signer:
    """An unlocked Sahara ID: the private key and what follows from it."""

    private_key: bytes

    @property
    def public_key(self) -> bytes:
        return public_key_of(self.private_key)

    @property
    def address(self) -> str:
        return address_of_public_key(self.public_key)

    def sign_message(self, message: bytes) -> bytes:
        return sign_hash(self.private_key, personal_message_hash(message))

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        return sign_hash(self.private_key, typed_data_hash(typed_data))

    def __repr__(self) -> str:  # never print the key by accident
        return f"Signer(address={self.address})"
