"""The node's storage: one LMDB environment, one write transaction per block.

py-evm keeps state trie nodes, code, headers, bodies, receipts and its indexes in one
key-value database. :class:`BlockStore` gives it that database with a twist: writes go
to an in-memory overlay until :meth:`BlockStore.commit`, which writes the overlay and the
node's own records (block signatures, metadata) in a single LMDB transaction. A process
killed at any moment therefore restarts at the last committed block, with nothing
half-written: LMDB's copy-on-write B-tree makes each transaction atomic and durable.

Readers that must only see committed data (the RPC server) use :meth:`committed_view`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb
from eth.abc import AtomicWriteBatchAPI
from eth.db.atomic import AtomicDBWriteBatch
from eth.db.backends.base import BaseAtomicDB

from sahara_cli.errors import ChainStoreError

MAP_SIZE = 1 << 38  # 256 GiB of address space; the file grows only as data is written
_DELETED = None


#: Entries of the read cache of content-addressed records (about 300 bytes each).
CACHE_ENTRIES = 50_000


class NodeCache:
    """Cache of 32-byte keys: trie nodes, code and headers, addressed by their hash.

    Their values never change, so a cached copy is never stale (a deletion, which only a
    dev revert might do, drops the entry). Keys of other lengths (canonical head, number
    to hash, transaction lookups) change and are always read from LMDB.
    """

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self.data: dict[bytes, bytes] = {}

    def put(self, key: bytes, value: bytes) -> None:
        if len(self.data) >= self.entries:
            self.data.clear()  # cheap and good enough: hot nodes come back at once
        self.data[key] = value


class _LMDBReader:
    """Point reads from one named LMDB database, each in its own short read txn."""

    def __init__(self, env: lmdb.Environment, db: Any, cache: NodeCache) -> None:
        self._env = env
        self._db = db
        self._cache = cache

    def get(self, key: bytes) -> bytes | None:
        if len(key) == 32:
            cached = self._cache.data.get(key)
            if cached is not None:
                return cached
        with self._env.begin(db=self._db, buffers=False) as txn:
            value = txn.get(key)
        if value is None:
            return None
        value = bytes(value)
        if len(key) == 32:
            self._cache.put(key, value)
        return value


class OverlayDB(BaseAtomicDB):
    """py-evm's database: an in-memory overlay of pending writes over committed LMDB."""

    def __init__(self, reader: _LMDBReader) -> None:
        self._reader = reader
        self.pending: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self.pending:
            value = self.pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        value = self._reader.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED

    def _exists(self, key: bytes) -> bool:
        if key in self.pending:
            return self.pending[key] is not _DELETED
        return self._reader.get(key) is not None

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        with AtomicDBWriteBatch._commit_unless_raises(self) as batch:
            yield batch


class ReadOnlyDB(OverlayDB):
    """The committed data only; writes stay in a private overlay that is thrown away.

    py-evm writes scratch state while it executes ``eth_call``; those writes land in this
    view's overlay and never reach the disk.
    """


class BlockStore:
    """The LMDB environment of a node's data directory."""

    def __init__(self, path: Path, *, map_size: int = MAP_SIZE, readonly: bool = False) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChainStoreError(
                f"cannot use {path} for the chain database: {exc.strerror or exc}",
                hint="It must be a directory: move the file away or pick another --home.",
            ) from exc
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=4,
                subdir=True,
                readonly=readonly,
                lock=True,
                sync=True,
                metasync=True,
                max_readers=512,
                # Random reads of trie nodes: readahead only fills memory with pages
                # nobody asked for (LMDB's MDB_NORDAHEAD).
                readahead=False,
            )
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as exc:
            raise ChainStoreError(
                f"the chain database in {path} is damaged or not an LMDB database: {exc}",
                hint="Move it away to keep it, or delete it with 'sahara node reset'.",
            ) from exc
        except lmdb.Error as exc:
            raise ChainStoreError(
                f"cannot open the chain database in {path}: {exc}",
                hint="Is another program using this home? Stop it, or use another --home.",
            ) from exc
        self._evm = self.env.open_db(b"evm")
        self._meta = self.env.open_db(b"meta")
        self._write_lock = threading.Lock()
        self.cache = NodeCache()
        self.db = OverlayDB(_LMDBReader(self.env, self._evm, self.cache))
        #: Incremented by every commit: readers cache per generation.
        self.generation = 0

    def committed_view(self) -> ReadOnlyDB:
        """A database that sees only committed blocks (for readers on other threads)."""
        return ReadOnlyDB(_LMDBReader(self.env, self._evm, self.cache))

    def get_meta(self, key: bytes) -> bytes | None:
        with self.env.begin(db=self._meta, buffers=False) as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def commit(self, meta: Mapping[bytes, bytes | None] | None = None) -> int:
        """Write the overlay and ``meta`` in one LMDB transaction; returns keys written."""
        with self._write_lock:
            pending = self.db.pending
            count = 0
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in pending.items():
                        if value is _DELETED:
                            txn.delete(key, db=self._evm)
                            self.cache.data.pop(key, None)
                        else:
                            txn.put(key, value, db=self._evm)
                        count += 1
                    for key, meta_value in (meta or {}).items():
                        if meta_value is None:
                            txn.delete(key, db=self._meta)
                        else:
                            txn.put(key, meta_value, db=self._meta)
                        count += 1
            except lmdb.MapFullError as exc:
                raise ChainStoreError(
                    "the chain database is full", hint="Free disk space or raise the map size."
                ) from exc
            self.db.pending = {}
            self.generation += 1
            return count

    def discard(self) -> None:
        """Drop everything written since the last commit."""
        self.db.pending = {}

    def stats(self) -> dict[str, int]:
        info = self.env.info()
        stat = self.env.stat()
        return {"map_size": info["map_size"], "pages": stat["leaf_pages"] + stat["branch_pages"]}

    def close(self) -> None:
        self.env.close()
