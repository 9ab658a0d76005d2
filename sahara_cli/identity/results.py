"""The typed results of the Sahara ID workflows (``sahara id ...`` and ``sahara init``).

Light on purpose: pydantic and :mod:`sahara_cli.results` only, so that naming a model for a
command's schema loads no keys, keystores or node clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sahara_cli.results import Address, Hash32, Result, Timestamp

__all__ = [
    "ChainReceipt",
    "ChainStanding",
    "CreatedIdentity",
    "DeletedIdentity",
    "ErrorInfo",
    "Identity",
    "IdentityDetails",
    "IdentityExport",
    "IdentityList",
    "InitReport",
    "KeystoreProblem",
    "MessageSignature",
    "RenamedIdentity",
    "SignatureCheck",
    "TypedDataSignature",
]

Origin = Literal["generated", "mnemonic", "private-key", "keystore", "unknown"]


class Identity(Result):
    """A Sahara ID as it can be shown without its password."""

    name: str
    address: Address
    public_key: str | None = Field(
        description="uncompressed secp256k1 public key (0x04...); null when the keystore "
        "was copied in without sahara's metadata"
    )
    created_at: Timestamp | None = Field(description="when the ID was made or imported")
    origin: Origin = Field(description="how the key came to be")
    hd_path: str | None = Field(description="BIP-32 path, for IDs from a mnemonic")
    path: Path = Field(description="the keystore file")
    is_default: bool


class CreatedIdentity(Identity):
    """``id create``: the new ID, and its mnemonic when it was made from one (shown once)."""

    mnemonic: str | None = None


class RenamedIdentity(Identity):
    """``id rename``: the ID under its new name."""

    old: str = Field(description="the name it had")


class ErrorInfo(Result):
    """An error as ``--json`` reports it."""

    code: str
    message: str
    hint: str | None = None


class KeystoreProblem(Result):
    """A keystore file of the home that cannot be read (listed, not fatal)."""

    name: str
    error: ErrorInfo


class IdentityList(Result):
    """``id list``: every ID of the home in name order; a broken keystore as its error."""

    ids: list[Identity | KeystoreProblem]


class IdentityExport(Result):
    """``id export``: the keystore v3 document, or the raw key, or where it was written."""

    name: str
    address: Address
    keystore: dict[str, Any] | None = Field(
        None, description="keystore v3 document (null with --private-key or --output)"
    )
    private_key: str | None = Field(
        None, description="0x-hex private key (--private-key without --output only)"
    )
    output: Path | None = Field(None, description="the file written with --output")


class DeletedIdentity(Result):
    """``id delete``: the ID removed and where its keystore was moved."""

    name: str
    address: Address | None = Field(description="null when the keystore could not be read")
    moved_to: Path | None = Field(description="the backup of the keystore; null if unlinked")


class ChainReceipt(Result):
    """A non-transferable receipt the ID holds: ownership of or contribution to an asset."""

    receipt_id: int
    asset_id: int
    holder: Address
    role: str = Field(description="owner or contributor")
    share_bps: int = Field(description="share of the asset in basis points")
    minted_at: Timestamp


class ChainStanding(Result):
    """What the chain knows of an ID: its receipts and reputation."""

    rpc_url: str
    reputation: int = Field(description="bps of contribution held; 10000 = one whole asset")
    receipts: list[ChainReceipt]


class IdentityDetails(Identity):
    """``id show``: the ID, with its standing on the chain when a node answered."""

    chain: ChainStanding | None = Field(
        None, description="null with --no-chain, or when no sahara node answered"
    )


class MessageSignature(Result):
    """``id sign-message``: an EIP-191 (personal_sign) signature."""

    address: Address
    message_hash: Hash32
    signature: str = Field(description="65 bytes as 0x-hex: r, s, v (27 or 28)")


class TypedDataSignature(Result):
    """``id sign-typed-data``: an EIP-712 (eth_signTypedData_v4) signature."""

    address: Address
    hash: Hash32 = Field(description="the EIP-712 digest that was signed")
    signature: str = Field(description="65 bytes as 0x-hex: r, s, v (27 or 28)")


class SignatureCheck(Result):
    """``id verify-message``: who signed (a signature by someone else is an error)."""

    recovered: Address
    valid: bool
    expected: Address | None = Field(description="the --address checked against, if given")
    signer_name: str | None = Field(
        default=None, description="the local Sahara ID with the recovered address, if any"
    )


class InitReport(Result):
    """``sahara init``: the home, its config file and its first ID."""

    home: Path
    created: bool = Field(description="false when the home was initialised already")
    config_file: Path
    address: Address | None = Field(description="the first ID's address")
    identity: Identity | None = Field(description="the first ID (null with --no-id)")
    mnemonic: str | None = Field(description="with --mnemonic: the words, shown once")
    backup: Path | None = Field(description="with --force: where the old home went")
    notes: list[str]
