"""Reading the vault: open an item's key, fetch an asset under a license, write or print it.

``sahara vault get`` and ``vault cat`` are these functions. An item the vault does not
hold is fetched from its owner's ``vault serve`` (which checks the license on chain
before it wraps the key to the reader); a licensed item read later is checked against
the chain again, so an expired license stops reading it.

The reader's ID is unlocked only when a key is needed, through the ``unlock`` callback
(a password prompt in the CLI); the node only when the chain is asked, through
``protocol``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import UsageError, VaultItemNotFound
from sahara_cli.vault.reporting import SILENT, Reporter

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.cid import CID
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.results import CatResult, GetResult

__all__ = [
    "CAT_JSON_LIMIT",
    "cat_content",
    "cat_stream",
    "check_still_licensed",
    "fetch_licensed",
    "get",
    "open_key",
]

Unlock = Callable[[], "Signer"]
ProtocolFactory = Callable[[], "Protocol"]
#: The most plaintext ``vault cat --json`` prints.
CAT_JSON_LIMIT = 16 << 20


def _chain(protocol: ProtocolFactory | None) -> Protocol:
    """The protocol on chain, for the reads that need it (a licensed item, a fetch)."""
    if protocol is None:
        raise UsageError(
            "reading a licensed asset asks the chain, and no node was given",
            hint="Pass protocol=... (a callable that returns a Protocol).",
        )
    return protocol()


def open_key(vault: Vault, item: Item, unlock: Unlock) -> bytes | None:
    """The data key of ``item`` (None for a public item), opened with the holder's ID.

    Raises ``vault.wrong_key`` when the ID ``unlock`` gives is not the item's holder.
    """
    if not item.encrypted:
        return None
    who = unlock()
    if item.holder.lower() != who.address.lower():
        from sahara_cli.errors import VaultWrongKey

        raise VaultWrongKey(
            f"{item.cid} is encrypted to {item.holder}, not to {who.address}",
            hint="Use the ID that added or fetched it (--id NAME).",
        )
    return vault.data_key(item, who.private_key)


def check_still_licensed(proto: Protocol, item: Item) -> None:
    """A licensed item's holder still holds a data license to its asset (else
    ``vault.license_expired`` or ``vault.no_license``)."""
    from sahara_cli.vault.access import check_access

    if item.asset_id is None:
        return
    asset = proto.asset(item.asset_id)
    check_access(proto, item.asset_id, item.holder, asset.owner)


def _have_dag(vault: Vault, root: CID) -> bool:
    from sahara_cli.errors import VaultBlockNotFound
    from sahara_cli.vault import unixfs

    try:
        for _ in unixfs.walk(root, vault.store.get):
            pass
    except VaultBlockNotFound:
        return False
    return True


def fetch_licensed(
    vault: Vault,
    proto: Protocol,
    asset_id: int,
    who: Signer,
    *,
    source: str | None = None,
    report: Reporter = SILENT,
) -> Item:
    """Ask the owner's vault server for the key (license-gated), then the blocks.

    ``source`` is the server's URL (default: the asset's URI). The key must open with
    ``who``'s private key and the server must offer the CID the chain holds; the item is
    catalogued as 'licensed' (a key with an expiry) or 'shared'.
    """
    from sahara_cli.vault import crypto, unixfs
    from sahara_cli.vault.access import KeyClient
    from sahara_cli.vault.cid import CID

    asset = proto.asset(asset_id)
    url = source or asset.uri
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"asset {asset_id} names no vault server (uri {asset.uri!r})",
            hint="Pass the owner's server with --from http://HOST:PORT.",
        )
    # The server decides (the owner may have shared the asset without a license).
    client = KeyClient(url)
    try:
        with report.status(f"Asking {url} for the key of asset #{asset_id}"):
            answer = client.ask_key(who, asset_id, asset.cid, proto.node.chain_id())
        wrapped = bytes.fromhex(answer["wrapped_key"])
        crypto.unwrap_key(wrapped, who.private_key)  # a key not for us: fail now
        if answer["cid"] != asset.cid:
            from sahara_cli.errors import VaultRequestInvalid

            raise VaultRequestInvalid(f"server offered {answer['cid']}, chain says {asset.cid}")
        root = CID.decode(asset.cid)
        if not _have_dag(vault, root):
            with report.status(f"Fetching the blocks of {asset.cid}"):
                vault.store.put_many(client.blocks(asset.cid))
        vault.store.pin(root)
    finally:
        client.close()
    stored = unixfs.stat(root, vault.store.get).size
    return vault.db.insert(
        cid=asset.cid,
        name=str(answer.get("name") or asset.name),
        kind=str(answer.get("kind") or "file"),
        size=int(answer.get("size") or 0),
        stored=stored,
        encrypted=1,
        commitment=asset.commitment,
        holder=who.address,
        owner=asset.owner,
        # A key released through 'vault share' has no expiry; a licensed one is checked
        # against the chain again on every later read.
        origin="licensed" if int(answer.get("access_until") or 0) else "shared",
        wrapped_key=wrapped,
        asset_id=asset_id,
        source=url,
    )


def get(
    vault: Vault,
    ref: str,
    output: Path,
    *,
    unlock: Unlock,
    protocol: ProtocolFactory | None = None,
    source: str | None = None,
    embedder: str | None = None,
    report: Reporter = SILENT,
) -> GetResult:
    """``vault get``: write an item's plaintext to ``output``, checked against its
    commitment; an asset this vault lacks is fetched from its owner first (and its text
    indexed with ``embedder``, when given).

    ``output`` must not exist (``vault.exists``); nothing appears there unless every
    block and segment checks out.
    """
    from sahara_cli.errors import VaultExists
    from sahara_cli.vault.results import GetResult

    dest = output.absolute()
    if dest.exists():
        raise VaultExists(f"{dest} already exists", hint="Choose another path with -o.")
    try:
        item = vault.find(ref)
        fetched = False
    except VaultItemNotFound:
        number = ref.strip().removeprefix("asset:").removeprefix("#")
        if not number.isdigit():
            raise
        item = fetch_licensed(
            vault, _chain(protocol), int(number), unlock(), source=source, report=report
        )
        fetched = True
    if item.origin == "licensed" and not fetched:
        check_still_licensed(_chain(protocol), item)
    key = open_key(vault, item, unlock)
    with report.progress(f"Writing {item.name}", item.size) as advance:
        written = vault.write_out(item, key, dest, progress=advance)
    if fetched and embedder is not None:
        from sahara_cli.vault.publish import index_plaintext

        item = index_plaintext(vault, item, written, key, embedder, report)
    return GetResult.of(item, path=str(written), fetched=fetched)


def _readable(vault: Vault, ref: str, protocol: ProtocolFactory | None) -> Item:
    item = vault.find(ref)
    if item.kind != "file":
        raise UsageError(f"{item.name} is a directory", hint="Use 'sahara vault get -o DIR'.")
    if item.origin == "licensed":
        check_still_licensed(_chain(protocol), item)
    return item


def cat_stream(
    vault: Vault,
    ref: str,
    sink: Callable[[bytes], object],
    *,
    unlock: Unlock,
    protocol: ProtocolFactory | None = None,
) -> Item:
    """``vault cat``: stream a file item's plaintext to ``sink``; the item it was."""
    item = _readable(vault, ref, protocol)
    vault.stream(item, open_key(vault, item, unlock), sink)
    return item


def cat_content(
    vault: Vault,
    ref: str,
    *,
    unlock: Unlock,
    protocol: ProtocolFactory | None = None,
    limit: int = CAT_JSON_LIMIT,
) -> CatResult:
    """``vault cat --json``: a file item and its plaintext (UTF-8, else base64), up to
    ``limit`` bytes."""
    import base64

    from sahara_cli.units import human_size
    from sahara_cli.vault.results import CatResult

    item = _readable(vault, ref, protocol)
    key = open_key(vault, item, unlock)
    if item.size > limit:
        raise UsageError(
            f"{item.name} is {human_size(item.size)}; --json prints at most {human_size(limit)}",
            hint="Write it to a file with 'sahara vault get REF -o PATH'.",
        )
    parts: list[bytes] = []
    vault.stream(item, key, parts.append)
    data = b"".join(parts)
    try:
        return CatResult.of(item, encoding="utf-8", content=data.decode("utf-8"))
    except UnicodeDecodeError:
        return CatResult.of(item, encoding="base64", content=base64.b64encode(data).decode("ascii"))
