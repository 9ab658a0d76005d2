"""The typed results of the vault's workflows (``sahara vault ...``, ``asset register``).

Light on purpose: pydantic and the result conventions only, so a command can name these
models without loading the vault.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field

from sahara_cli.protocol.assets import AssetRegistration
from sahara_cli.results import Address, Result, Timestamp

__all__ = [
    "AddResult",
    "AddedItem",
    "AssetRegistered",
    "CatResult",
    "DaemonStatus",
    "DaemonStopped",
    "ExportResult",
    "GarbageCollected",
    "GetResult",
    "ImportResult",
    "ItemList",
    "RemoveResult",
    "SearchHit",
    "SearchResult",
    "ServeResult",
    "ShareResult",
    "VaultItem",
    "VaultStatus",
]


class VaultItem(Result):
    """One thing the vault holds."""

    cid: str = Field(description="content id of the stored (maybe encrypted) DAG")
    name: str
    kind: Literal["file", "directory"]
    size: int = Field(description="plaintext bytes")
    stored_bytes: int = Field(description="bytes of the stored (maybe encrypted) content")
    encrypted: bool
    commitment: str = Field(description="what the chain holds for it (0x-hex, or empty)")
    owner: Address | None = Field(description="the owner (null: unknown, an import)")
    holder: Address | None = Field(description="the ID its data key is wrapped to")
    origin: str = Field(description="added, licensed, shared, imported or memory")
    asset_id: int | None = Field(description="the asset it is registered as (null: none)")
    state: Literal["ready", "registering"]
    source: str | None = Field(description="the vault server a fetched item came from")
    chunks: int = Field(description="entries in the search index")
    indexed: bool
    created_at: Timestamp
    shared_with: list[Address] = Field(description="addresses it was shared with")

    @classmethod
    def fields_of(cls, item: Any) -> dict[str, Any]:
        """The fields of a catalogue row (:class:`sahara_cli.vault.db.Item`)."""
        return {
            "cid": item.cid,
            "name": item.name,
            "kind": item.kind,
            "size": item.size,
            "stored_bytes": item.stored,
            "encrypted": bool(item.encrypted),
            "commitment": item.commitment,
            "owner": item.owner or None,
            "holder": item.holder or None,
            "origin": item.origin,
            "asset_id": item.asset_id,
            "state": item.state,
            "source": item.source,
            "chunks": item.chunks,
            "indexed": bool(item.indexed),
            "created_at": item.created_at,
            "shared_with": list(item.grants),
        }

    @classmethod
    def of(cls, item: Any, **extra: Any) -> Self:
        """The result of a catalogue row, with the fields a subclass adds."""
        return cls(**cls.fields_of(item), **extra)


class AddedItem(VaultItem):
    path: str = Field(description="the path it was added from")
    new: bool = Field(description="false when the vault held the same content already")


class AddResult(Result):
    """``vault add``: the items added (and indexed, and registered with --register)."""

    items: list[AddedItem]
    backend: str = Field(description="local or kubo")


class ItemList(Result):
    """``vault ls``: the items in the vault."""

    items: list[VaultItem]


class ImportResult(Result):
    """``vault import``: one item per root of the CAR file."""

    items: list[VaultItem]


class VaultStatus(Result):
    """``vault status``: blocks, bytes and items, and the backend."""

    backend: str
    location: str
    blocks: int
    bytes: int = Field(description="bytes the blockstore holds")
    items: int
    encrypted_items: int
    registered_items: int
    pins: int
    indexed_chunks: int


class GetResult(VaultItem):
    """``vault get``: where the plaintext was written, checked against its commitment."""

    path: str
    fetched: bool = Field(description="fetched from the owner's vault server first")
    verified: Literal[True] = True


class CatResult(VaultItem):
    """``vault cat --json``: the item and its plaintext."""

    encoding: Literal["utf-8", "base64"]
    content: str


class RemoveResult(Result):
    """``vault rm``: the item removed and the blocks collected."""

    cid: str
    name: str
    asset_id: int | None = Field(description="the asset stays registered on chain")
    removed_blocks: int
    removed_bytes: int


class GarbageCollected(Result):
    """``vault gc``: the blocks no pin reaches, removed (or, with ``--dry-run``, counted),
    and what the store holds after."""

    backend: str
    dry_run: bool
    removed_blocks: int = Field(
        description="blocks removed: unpinned, or written by an add that never finished"
    )
    removed_bytes: int
    blocks: int = Field(description="blocks the store holds after gc")
    bytes: int = Field(description="bytes of those blocks")


class ShareResult(Result):
    """``vault share``: the item and the address its key is released to."""

    cid: str
    name: str
    asset_id: int | None
    to: Address
    wrapped_key: str | None = Field(
        description="the data key wrapped to the recipient's public key (hex), when known"
    )


class ExportResult(Result):
    """``vault export``: the CAR file written."""

    path: str
    bytes: int
    root: str = Field(description="the item's CID, the CAR's root")


class SearchHit(Result):
    """One matching chunk; ``score`` is the cosine similarity of query and chunk."""

    asset_id: int | None
    cid: str
    name: str
    chunk: int
    start: int
    end: int
    score: float
    text: str | None = Field(description="null for a private hit not opened")
    sealed: bool = Field(description="the hit's text is sealed under its item's key")


class SearchResult(Result):
    """``vault search``: the top hits."""

    query: str
    hits: list[SearchHit]
    elapsed_ms: int = Field(description="time the search took, in milliseconds")


class ServeResult(Result):
    """``vault serve`` once stopped; with ``--detach``, the background server once it
    listens (``detached``, with its pid, URL and log)."""

    stopped: bool
    addr: str = Field(description="HOST:PORT it listened on")
    detached: bool = Field(False, description="--detach: it runs in the background")
    pid: int | None = None
    url: str | None = Field(None, description="--detach: where licensees reach it")
    log: str | None = Field(None, description="--detach: its log file")


class ServeStopped(Result):
    """``vault serve-stop``."""

    stopped: bool = Field(description="whether a server of this home was running")
    pid: int | None
    killed: bool = Field(description="it did not stop on SIGTERM in time and was killed")


class ServeStatus(Result):
    """``vault serve-status``: this home's background vault server."""

    running: bool
    pid: int | None = None
    url: str | None = None
    addr: str | None = None
    started_at: Timestamp | None = None
    uptime_s: float | None = None
    log: str = Field(description="its log file")


class DaemonStatus(Result):
    """``vault daemon start|status``: this home's Kubo daemon."""

    running: bool
    pid: int | None
    api_url: str | None
    peer_id: str | None
    version: str | None
    repo_size: int | None = Field(description="bytes in the IPFS repository")
    repo: str
    log: str


class DaemonStopped(Result):
    """``vault daemon stop``."""

    stopped: bool = Field(description="false when it was not running")


class AssetRegistered(AssetRegistration):
    """``asset register``: the new asset, its transaction, and the vault item of a file."""

    vault_item: VaultItem | None = Field(
        description="the vault item a registered file became (null for a bare CID)"
    )
