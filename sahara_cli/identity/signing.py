"""Signing and checking messages with a Sahara ID (EIP-191 and EIP-712), as library calls.

The input helpers read what a person gives (text, hex, a file, a JSON document) and check
it before any password is asked; the signing functions take an unlocked
:class:`~sahara_cli.identity.keys.Signer` and return typed results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import FileUnreadable, SignatureInvalid, SignatureMismatch, UsageError
from sahara_cli.identity.keys import (
    Signer,
    parse_address,
    personal_message_hash,
    recover_hash,
    typed_data_hash,
)
from sahara_cli.identity.results import MessageSignature, SignatureCheck, TypedDataSignature

if TYPE_CHECKING:
    from sahara_cli.identity.store import KeyStore


def message_bytes(message: str | None, file: Path | None = None, *, hex_: bool = False) -> bytes:
    """The bytes of exactly one of ``message`` (UTF-8 text, or hex with ``hex_``) or ``file``."""
    if (message is None) == (file is None):
        raise UsageError("give either MESSAGE or --file, not both or neither")
    if file is not None:
        try:
            return file.read_bytes()
        except OSError as exc:
            raise FileUnreadable(f"cannot read {file}: {exc.strerror or exc}") from exc
    assert message is not None
    if hex_:
        try:
            return bytes.fromhex(message.removeprefix("0x"))
        except ValueError as exc:
            raise UsageError("--hex given but MESSAGE is not hex") from exc
    return message.encode("utf-8")


def sign_message(signer: Signer, message: bytes) -> MessageSignature:
    """An EIP-191 ``personal_sign`` signature of ``message``."""
    return MessageSignature(
        address=signer.address,
        message_hash="0x" + personal_message_hash(message).hex(),
        signature="0x" + signer.sign_message(message).hex(),
    )


def verify_message(
    message: bytes,
    signature: str,
    expected: str | None = None,
    *,
    keystore: KeyStore | None = None,
) -> SignatureCheck:
    """Recover the signer of an EIP-191 signature of ``message``.

    With ``expected``, a valid signature by another address raises
    :class:`SignatureMismatch` (``details.recovered`` holds the signer). With
    ``keystore``, ``signer_name`` is the local ID whose address signed, if any.
    """
    if expected is not None:
        expected = parse_address(expected, "expected signer")
    recovered = recover_hash(personal_message_hash(message), signature)
    if expected is not None and recovered.lower() != expected.lower():
        raise SignatureMismatch(
            f"signed by {recovered}, not by {expected}", details={"recovered": recovered}
        )
    known = keystore.find_address(recovered) if keystore is not None else None
    return SignatureCheck(
        recovered=recovered,
        valid=True,
        expected=expected,
        signer_name=known.name if known is not None else None,
    )


def read_typed_data(file: Path) -> dict[str, Any]:
    """An EIP-712 document from a JSON file, checked (hashed) before anything is signed."""
    from sahara_cli.identity.manage import read_json_file

    document = read_json_file(file, "typed-data file")
    if not isinstance(document, dict):
        raise SignatureInvalid(f"not a valid EIP-712 document: {file} holds no JSON object")
    typed_data_hash(document)  # raises identity.bad_signature on a malformed document
    return document


def sign_typed_data(signer: Signer, document: dict[str, Any]) -> TypedDataSignature:
    """An EIP-712 ``eth_signTypedData_v4`` signature of ``document``."""
    return TypedDataSignature(
        address=signer.address,
        hash="0x" + typed_data_hash(document).hex(),
        signature="0x" + signer.sign_typed_data(document).hex(),
    )
