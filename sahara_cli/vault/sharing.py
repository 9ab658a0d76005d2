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
    from sahara_cli.identity.keys import address_of_public_key, looks_like_address, parse_address

    text = text.strip()
    digits = len(text.removeprefix("0x"))
    if looks_like_address(text) and digits not in (66, 130):
        address = parse_address(text, "--to")
        known = keystore.find_address(address)
        if known is not None and known.public_key:
            return Recipient(address, bytes.fromhex(known.public_key.removeprefix("0x")))
        return Recipient(address)
    if digits in (66, 130):
        public_key = bytes.fromhex(text.removeprefix("0x"))
        return Recipient(address_of_public_key(public_key), public_key)
    info = keystore.get(text)
    key = bytes.fromhex(info.public_key.removeprefix("0x")) if info.public_key else None
    return Recipient(info.address, key)


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
