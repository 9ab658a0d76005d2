"""What the vault holds: list, status, remove, export and import items, typed.

``sahara vault ls|status|rm|export|import`` are these functions over an open
:class:`~sahara_cli.vault.core.Vault`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.vault.reporting import SILENT, Reporter

if TYPE_CHECKING:
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.results import (
        ExportResult,
        GarbageCollected,
        ImportResult,
        ItemList,
        RemoveResult,
        VaultStatus,
    )

__all__ = [
    "collect_garbage",
    "export_item",
    "import_items",
    "list_items",
    "remove_item",
    "status",
]


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


def remove_item(vault: Vault, item: Item, *, embedder: str = "onnx") -> RemoveResult:
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


def export_item(vault: Vault, ref: str, car: Path, report: Reporter = SILENT) -> ExportResult:
    """Write an item's blocks (ciphertext when encrypted) as a CAR v1 file.

    ``report`` shows the bytes written against the item's size (a close estimate)."""
    from sahara_cli.vault.results import ExportResult

    item = vault.find(ref)
    with report.progress("Exporting", item.size or None) as advance:
        written = vault.export_car(item, car, progress=advance)
    return ExportResult.model_validate(written)


def import_items(
    vault: Vault, car: Path, holder: str, name: str | None = None, report: Reporter = SILENT
) -> ImportResult:
    """Store the blocks of a CAR file; each root becomes an item held by ``holder``.

    ``report`` shows the bytes stored against the CAR file's size."""
    from sahara_cli.vault.core import Holder
    from sahara_cli.vault.results import ImportResult, VaultItem

    total = car.stat().st_size if car.is_file() else None
    with report.progress("Importing", total) as advance:
        items = vault.import_car(car, Holder(holder, b""), name, progress=advance)
    return ImportResult(items=[VaultItem.of(item) for item in items])


def collect_garbage(vault: Vault, *, dry_run: bool = False) -> GarbageCollected:
    """Remove every block no pin reaches: items removed, and what an interrupted add
    wrote. Takes the vault's writers' lock: while an add runs it raises ``vault.busy``
    and removes nothing. ``dry_run`` counts without removing."""
    from sahara_cli.vault.results import GarbageCollected

    result = vault.store.gc(dry_run=dry_run)
    after = vault.store.stat()
    return GarbageCollected(
        backend=vault.store.name,
        dry_run=dry_run,
        removed_blocks=result.removed_blocks,
        removed_bytes=result.removed_bytes,
        blocks=after.blocks,
        bytes=after.bytes,
    )
