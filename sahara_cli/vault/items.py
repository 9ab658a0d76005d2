"""What the vault holds: list, status, remove, export and import items, typed.

``sahara vault ls|status|rm|export|import`` are these functions over an open
:class:`~sahara_cli.vault.core.Vault`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.results import (
        ExportResult,
        ImportResult,
        ItemList,
        RemoveResult,
        VaultStatus,
    )

__all__ = ["export_item", "import_items", "list_items", "remove_item", "status"]


def list_items(vault: Vault) -> ItemList:
    from sahara_cli.vault.results import ItemList, VaultItem

    return ItemList(items=[VaultItem.of(item) for item in vault.items()])


def status(vault: Vault) -> VaultStatus:
    """Blocks, bytes and items in the vault, and its backend."""
    from sahara_cli.vault.results import VaultStatus

    stat = vault.store.stat()
    items = vault.items()
    return VaultStatus(
        backend=vault.store.name,
        location=stat.location,
        blocks=stat.blocks,
        bytes=stat.bytes,
        items=len(items),
        encrypted_items=sum(1 for i in items if i.encrypted),
        registered_items=sum(1 for i in items if i.asset_id is not None),
        pins=len(vault.store.pins()),
        indexed_chunks=sum(i.chunks for i in items),
    )


def remove_item(vault: Vault, item: Item, *, embedder: str = "onnx-int8") -> RemoveResult:
    """Forget an item: drop it from the search index, unpin it and collect its blocks.

    A registered asset stays on chain; licensees can no longer fetch it from here.
    """
    from sahara_cli.vault.results import RemoveResult

    if item.chunks:
        from sahara_cli.vault.search import open_index

        open_index(vault.root, embedder).remove(item.cid)
    freed = vault.remove(item)
    return RemoveResult(
        cid=item.cid,
        name=item.name,
        asset_id=item.asset_id,
        removed_blocks=freed["removed_blocks"],
        removed_bytes=freed["removed_bytes"],
    )


def export_item(vault: Vault, ref: str, car: Path) -> ExportResult:
    """Write an item's blocks (ciphertext when encrypted) as a CAR v1 file."""
    from sahara_cli.vault.results import ExportResult

    return ExportResult.model_validate(vault.export_car(vault.find(ref), car))


def import_items(vault: Vault, car: Path, holder: str, name: str | None = None) -> ImportResult:
    """Store the blocks of a CAR file; each root becomes an item held by ``holder``."""
    from sahara_cli.vault.core import Holder
    from sahara_cli.vault.results import ImportResult, VaultItem

    items = vault.import_car(car, Holder(holder, b""), name)
    return ImportResult(items=[VaultItem.of(item) for item in items])
