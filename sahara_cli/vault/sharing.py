"""Share a vault item with another ID without a license: ``sahara vault share``.

The owner's ``vault serve`` releases the key of a shared item to the addresses it was
shared with; when the recipient's public key is known, the data key is wrapped to it
here too, so it can travel by other means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.identity.store import KeyStore
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.licensed import Unlock
    from sahara_cli.vault.results import ShareResult

__all__ = ["Recipient", "recipient", "share"]


@dataclass(frozen=True)
class Recipient:
    """Whom an item is shared with: an address, and its public key when known."""

    address: str
    public_key: bytes | None = None


def recipient(text: str, keystore: KeyStore) -> Recipient:
    """``--to``: an address (its public key from the keystore, when an ID there has it),
    a public key (hex, compressed or not) or an ID name."""
    from sahara_cli.identity.addresses import resolve_address
    from sahara_cli.identity.keys import address_of_public_key, looks_like_address

    text = text.strip()
    if looks_like_address(text) and len(text) - 2 in (66, 130):
        try:
            public_key = bytes.fromhex(text[2:])
        except ValueError:
            public_key = b""
        if public_key:
            return Recipient(address_of_public_key(public_key), public_key)
    elif len(text) in (66, 130) and all(c in "0123456789abcdefABCDEF" for c in text):
        public_key = bytes.fromhex(text)
        return Recipient(address_of_public_key(public_key), public_key)
    address = resolve_address(text, "--to", keystore=lambda: keystore)
    known = keystore.find_address(address)
    if known is not None and known.public_key:
        return Recipient(address, bytes.fromhex(known.public_key.removeprefix("0x")))
    return Recipient(address)


def share(vault: Vault, ref: str, to: Recipient, *, unlock: Unlock) -> ShareResult:
    """Grant ``to`` the key of an item this vault added; wrap it to their key if known."""
    from sahara_cli.vault import crypto
    from sahara_cli.vault.licensed import open_key
    from sahara_cli.vault.results import ShareResult

    item = vault.find(ref)
    if item.origin != "added":
        raise UsageError(f"{item.name} is not yours to share (it is {item.origin})")
    wrapped = None
    if item.encrypted and to.public_key is not None:
        key = open_key(vault, item, unlock)
        assert key is not None
        wrapped = crypto.wrap_key(key, to.public_key).hex()
    vault.db.grant(item.id, to.address)
    return ShareResult(
        cid=item.cid, name=item.name, asset_id=item.asset_id, to=to.address, wrapped_key=wrapped
    )
