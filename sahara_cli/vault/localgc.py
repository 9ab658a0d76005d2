"""Garbage collection of the local store (:meth:`LocalBlockstore.gc`), under the
writers' lock held exclusive, so no other store has bytes in flight.

1. Walk every pin: the blocks to keep.
2. Index rows of other blocks are dropped: those blocks are removed.
3. Every pack is read record by record. A record is live when a kept block's row points
   at it; every other record is garbage: a removed block, a second copy, or what a
   killed add wrote and never recorded (those count as removed blocks too). A pack
   without garbage stays; one without live records is deleted; the others have their
   live records copied to a new pack and are deleted. Small packs (one per small add)
   are merged the same way.
4. The first layout's files (``blocks/``): a kept block moves into the new pack (read
   and hashed first; a damaged file stays where ``get`` reports it); the others, and
   temporary files of killed writers, are deleted.

The new pack is fsynced (with ``packs/``) before the index changes in one commit, and
old files are deleted only after that commit: a crash at any point leaves every kept
block readable, and the next gc finishes the job.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import VaultBlockCorrupt
from sahara_cli.vault import flatfs, packs
from sahara_cli.vault.blockstore import GCResult

if TYPE_CHECKING:
    from sahara_cli.vault.cid import CID
    from sahara_cli.vault.local import LocalBlockstore, Location

#: Live bytes copied per batch while a pack is rewritten.
COPY_BATCH = 8 << 20
#: Packs under this size, all garbage-free, are merged into one when there are several.
SMALL_PACK = 4 << 20


@dataclass
class Plan:
    """What a gc removes (``removed``: digest -> bytes), rewrites and deletes."""

    index: dict[bytes, Location]
    removed: dict[bytes, int] = field(default_factory=dict)
    rewrite: list[tuple[Path, list[packs.Record]]] = field(default_factory=list)
    migrate: list[tuple[Path, CID]] = field(default_factory=list)
    drop: list[Path] = field(default_factory=list)


def collect(store: LocalBlockstore, *, dry_run: bool = False) -> GCResult:
    if not dry_run:
        store.retire_writer()
    plan = _plan(store, _reachable(store))
    result = GCResult(removed_blocks=len(plan.removed), removed_bytes=sum(plan.removed.values()))
    if not dry_run:
        _apply(store, plan)
    return result


def _reachable(store: LocalBlockstore) -> set[bytes]:
    keep: set[bytes] = set()
    for root in store.pins():
        try:
            keep.update(cid.digest for cid in store.walk(root, missing_ok=True))
        except VaultBlockCorrupt as exc:
            raise VaultBlockCorrupt(
                f"gc stopped, nothing was removed: {exc.message} (under pin {root})",
                hint="Remove that item and add it again, then run gc.",
            ) from None
    return keep


def _plan(store: LocalBlockstore, keep: set[bytes]) -> Plan:
    index = store.index()
    plan = Plan(index, {d: where[2] for d, where in index.items() if d not in keep})
    _plan_packs(store, keep, plan)
    _plan_first_layout(store, keep, plan)
    return plan


def _plan_packs(store: LocalBlockstore, keep: set[bytes], plan: Plan) -> None:
    index = plan.index
    live: dict[str, dict[int, bytes]] = {}  # pack -> offset -> digest, of kept blocks
    for digest, (name, offset, _) in index.items():
        if digest in keep:
            live.setdefault(name, {})[offset] = digest
    try:
        names = sorted(e.name for e in os.scandir(store.packs_dir) if e.name.endswith(packs.SUFFIX))
    except FileNotFoundError:
        names = []
    small: list[tuple[Path, list[packs.Record]]] = []
    for name in names:
        path = store.packs_dir / name
        mine = live.get(name, {})
        records = list(packs.scan(path))
        kept = [r for r in records if mine.get(r.offset) == r.digest]
        for record in records:
            if record.digest not in keep:
                plan.removed.setdefault(record.digest, record.length)
        end = records[-1].offset + records[-1].length if records else len(packs.MAGIC)
        if len(kept) < len(records) or path.stat().st_size != end or not records:
            plan.rewrite.append((path, kept))
        elif end < SMALL_PACK:
            small.append((path, kept))
    if len(small) > 1:  # many small adds: their packs become one
        plan.rewrite.extend(small)


def _plan_first_layout(store: LocalBlockstore, keep: set[bytes], plan: Plan) -> None:
    for entry, cid in flatfs.entries(store.blocks_dir):
        if cid is None:
            if entry.name.startswith(flatfs.TEMP_PREFIX):
                plan.drop.append(Path(entry.path))
            continue
        if cid.digest in keep and cid.digest not in plan.index:
            plan.migrate.append((Path(entry.path), cid))
            continue
        with contextlib.suppress(FileNotFoundError):
            if cid.digest not in keep:
                plan.removed.setdefault(cid.digest, entry.stat(follow_symlinks=False).st_size)
            plan.drop.append(Path(entry.path))


class _Copier:
    """Appends the blocks that stay to one new pack, in batches."""

    def __init__(self, store: LocalBlockstore) -> None:
        self.store = store
        self.writer: packs.PackWriter | None = None
        self.batch: list[tuple[bytes, bytes]] = []
        self.moved: dict[bytes, Location] = {}

    def add(self, digest: bytes, data: bytes) -> None:
        if digest in self.moved or any(d == digest for d, _ in self.batch):
            return
        self.batch.append((digest, data))
        if sum(len(d) for _, d in self.batch) >= COPY_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        if self.writer is None:
            self.store.packs_dir.mkdir(mode=0o700, exist_ok=True)  # a home of the first layout
            self.writer = packs.PackWriter(self.store.packs_dir)
        for record in self.writer.append(self.batch):
            self.moved[record.digest] = (self.writer.name, record.offset, record.length)
        self.batch.clear()


def _apply(store: LocalBlockstore, plan: Plan) -> None:
    from sahara_cli.vault.local import _fsync_path
    from sahara_cli.vault.locking import os_error as _os_error

    copier = _Copier(store)
    migrated: list[Path] = []
    try:
        for path, kept in plan.rewrite:
            for record in kept:
                copier.add(record.digest, store.read_at((path.name, record.offset, record.length)))
        for path, cid in plan.migrate:
            data = path.read_bytes()
            if cid.verify(data):  # a damaged file stays, for get to report
                copier.add(cid.digest, data)
                migrated.append(path)
        copier.flush()
        if copier.writer is not None and store.fsync:
            copier.writer.sync()
            _fsync_path(store.packs_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _os_error(f"gc cannot rewrite the packs in {store.packs_dir}", exc) from exc
    finally:
        if copier.writer is not None:
            copier.writer.close()
    store.replace_rows([d for d in plan.removed if d in plan.index], copier.moved)
    store.retire_writer()  # closes the readers of the packs about to go
    gone = [path for path, _ in plan.rewrite] + plan.drop + migrated
    try:
        for path in gone:
            path.unlink(missing_ok=True)
        if store.fsync and gone:
            _fsync_path(store.packs_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _os_error("gc cannot delete an old file", exc) from exc
