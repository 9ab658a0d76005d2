"""The default block store: pack files under the home, no daemon.

Layout (``root`` is the vault's store directory)::

    root/packs/<ID>.pack      append-only pack files of blocks (sahara_cli.vault.packs)
    root/pins.sqlite          the index (digest -> pack, offset, length) and the pinned
                              roots (SQLite, WAL)
    root/writers.lock         the advisory lock that keeps gc away from writers
    root/blocks/              the first layout, one file per block (flatfs): read, and
                              emptied by gc (sahara_cli.vault.flatfs)

A block costs an append, not a file: each store that writes opens a pack of its own
and appends every new block to it (one ``writev`` per batch). Blocks are found by their
sha2-256 digest whatever the codec of the CID that names them (as in Kubo;
:meth:`LocalBlockstore.cids` yields CIDv1 ``raw`` for every block).

Recording is what makes a block exist for others: until :meth:`~LocalBlockstore.sync`
or :meth:`~LocalBlockstore.pin`, the blocks a store put are known to that store only
(it reads them back from its pack). ``sync`` fdatasyncs the store's packs (and the
``packs/`` directory for a new one), then commits their index rows in one SQLite
transaction (``synchronous=FULL``: the commit is fsynced); ``pin`` does the same with
the pin in that transaction. So an add costs one data sync and one index commit, not a
sync per block, a power cut never leaves an index row (and so a pin or an item) whose
bytes were not on disk, and an add that is killed leaves bytes in a pack that no row
names: ``stat`` does not count them and ``gc`` reclaims them. Putting a block the index
has already writes nothing.

Two processes at once (:class:`WriterLock`): every store that writes (``put``,
``put_many``, ``pin``) takes a *shared* ``flock`` on ``writers.lock`` at its first write
and keeps it until :meth:`~LocalBlockstore.close`; ``gc`` takes it *exclusive*. So gc
never runs while another store holds blocks that it has written but not recorded yet
(a ``vault add`` between its puts and its pin), however long that add takes, and a
writer that starts during gc waits for it. The kernel drops the lock of a killed
process, so a crash never blocks gc for good. Because no writer is active while gc
holds the lock, every pack byte that no index row names is garbage
(:mod:`sahara_cli.vault.localgc`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sahara_cli.errors import VaultBackendError, VaultBlockCorrupt, VaultBlockNotFound
from sahara_cli.fsutil import ensure_private_dir
from sahara_cli.vault import flatfs, packs
from sahara_cli.vault.blockstore import Blockstore, GCResult, StoreStat
from sahara_cli.vault.cid import CID, RAW
from sahara_cli.vault.db import setup_sqlite
from sahara_cli.vault.flatfs import SHARDING, block_key, block_path, cid_from_key
from sahara_cli.vault.locking import WriterLock
from sahara_cli.vault.locking import os_error as _os_error

__all__ = [
    "SHARDING",
    "LocalBlockstore",
    "WriterLock",
    "block_key",
    "block_path",
    "cid_from_key",
]

#: Where a block lies: (pack name, offset of its bytes, length).
Location = tuple[str, int, int]


class LocalBlockstore(Blockstore):
    """Blocks in ``root/packs``, their index and the pins in ``root/pins.sqlite``."""

    name = "local"

    def __init__(self, root: Path, *, fsync: bool = True, gc_wait: float = 10.0) -> None:
        self.root = Path(root)
        self.packs_dir = self.root / "packs"
        self.blocks_dir = self.root / "blocks"  # the first layout, read only
        self.pins_file = self.root / "pins.sqlite"
        self.fsync = fsync
        self.lock = WriterLock(self.root / "writers.lock", gc_wait=gc_wait)
        # Guards the pack being written, the blocks not recorded yet and the readers.
        self._mutex = threading.RLock()
        self._writer: packs.PackWriter | None = None
        self._full: list[packs.PackWriter] = []  # packs rotated out, not synced yet
        self._new_packs = False  # a pack was created since packs/ was last synced
        self._pending: dict[bytes, Location] = {}
        self._readers: dict[str, int] = {}
        self._db: sqlite3.Connection | None = None
        self._db_mutex = threading.Lock()
        self._ready = False

    # -- writing ----------------------------------------------------------------------

    def path(self, cid: CID) -> Path:
        """Where the first layout (one file per block) keeps ``cid``."""
        return block_path(self.blocks_dir, cid)

    def _prepare(self) -> None:
        """Create the store on its first write, then hold the writers' lock."""
        if not self._ready:
            try:
                fresh = not self.packs_dir.is_dir()
                ensure_private_dir(self.root)
                self.packs_dir.mkdir(mode=0o700, exist_ok=True)
                if fresh and self.fsync:  # a new store: its own entry and packs/ are durable
                    _fsync_path(self.root, os.O_RDONLY | os.O_DIRECTORY)
                    _fsync_path(self.root.parent, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise _os_error(f"cannot create the vault store {self.root}", exc) from exc
            self._ready = True
        self.lock.shared()

    def put(self, cid: CID, data: bytes) -> None:
        if not cid.verify(data):
            raise VaultBlockCorrupt(
                f"refusing to store block {cid}: the bytes given do not hash to it",
                hint="This is a bug in the caller: compute the CID from the bytes.",
            )
        self.put_many([(cid, data)])

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Append many blocks whose CIDs the caller computed from their bytes (the
        importer, or a CAR reader that checked each one): they are not hashed again.
        Blocks the index or this store already has are skipped."""
        batch = list(blocks)
        if not batch:
            return
        self._prepare()
        with self._mutex:
            known = self._recorded([cid.digest for cid, _ in batch])
            fresh: dict[bytes, bytes] = {}
            for cid, data in batch:
                digest = cid.digest
                if digest not in known and digest not in self._pending:
                    fresh.setdefault(digest, data)
            if not fresh:
                return
            writer = self._pack()
            try:
                records = writer.append(list(fresh.items()))
            except OSError as exc:
                raise _os_error(f"cannot write to the pack {writer.path}", exc) from exc
            for record in records:
                self._pending[record.digest] = (writer.name, record.offset, record.length)
            if writer.size >= packs.PACK_MAX:
                self._full.append(writer)
                self._writer = None

    def _pack(self) -> packs.PackWriter:
        if self._writer is None:
            try:
                self._writer = packs.PackWriter(self.packs_dir)
            except OSError as exc:
                raise _os_error(f"cannot create a pack in {self.packs_dir}", exc) from exc
            self._new_packs = True
        return self._writer

    def sync(self) -> None:
        """Make every block put so far durable, then record it: the packs' data, then
        ``packs/`` when it gained a pack, then the index rows (one fsynced commit)."""
        self._record(None)

    def _record(self, pin: CID | None) -> None:
        with self._mutex:
            writers = [w for w in [*self._full, self._writer] if w is not None]
            if not self._pending and pin is None:
                return
            try:
                if self.fsync:
                    for writer in writers:
                        writer.sync()
                    if self._new_packs:
                        _fsync_path(self.packs_dir, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise _os_error(f"cannot sync the packs in {self.packs_dir} to disk", exc) from exc
            self._new_packs = False
            rows = [(digest, *where) for digest, where in self._pending.items()]
            with self._db_mutex:
                db = self._connect(create=True)
                assert db is not None
                try:
                    with db:
                        db.executemany(
                            "INSERT OR IGNORE INTO blocks (digest, pack, offset, length) "
                            "VALUES (?, ?, ?, ?)",
                            rows,
                        )
                        if pin is not None:
                            db.execute(
                                "INSERT OR IGNORE INTO pins (cid, pinned_at) VALUES (?, ?)",
                                (pin.encode(), time.time()),
                            )
                except sqlite3.Error as exc:
                    raise _db_error(self.pins_file, exc) from exc
            self._pending.clear()
            for writer in self._full:
                writer.close()
            self._full = []

    # -- reading ----------------------------------------------------------------------

    def _recorded(self, digests: list[bytes]) -> set[bytes]:
        """Which of ``digests`` the index holds."""
        with self._db_mutex:
            db = self._connect(create=False)
            if db is None:
                return set()
            found: set[bytes] = set()
            try:
                for start in range(0, len(digests), 500):
                    part = digests[start : start + 500]
                    marks = ",".join("?" * len(part))
                    found.update(
                        row[0]
                        for row in db.execute(
                            f"SELECT digest FROM blocks WHERE digest IN ({marks})",  # noqa: S608
                            part,
                        )
                    )
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc
            return found

    def locate(self, cid: CID) -> Location | None:
        """Where ``cid``'s bytes lie in a pack (None: not in a pack)."""
        with self._mutex:
            where = self._pending.get(cid.digest)
        if where is not None:
            return where
        with self._db_mutex:
            db = self._connect(create=False)
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT pack, offset, length FROM blocks WHERE digest = ?", (cid.digest,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc
        return None if row is None else (row[0], row[1], row[2])

    def read_at(self, where: Location) -> bytes:
        """The bytes at ``where`` (short when the pack was cut)."""
        name, offset, length = where
        with self._mutex:
            fd = self._readers.get(name)
            if fd is None:
                fd = os.open(self.packs_dir / name, os.O_RDONLY | os.O_CLOEXEC)
                self._readers[name] = fd
        return os.pread(fd, length, offset)

    def get(self, cid: CID) -> bytes:
        where = self.locate(cid)
        if where is not None:
            try:
                try:
                    data = self.read_at(where)
                except FileNotFoundError:
                    # A gc in another process moved the block between the look-up and
                    # the read (a reader holds no lock): look again.
                    moved = self.locate(cid)
                    if moved is None:
                        return self.get(cid)
                    where = moved
                    data = self.read_at(where)
            except OSError as exc:
                raise _os_error(f"cannot read block {cid} from the pack {where[0]}", exc) from exc
            if not cid.verify(data):
                raise VaultBlockCorrupt(
                    f"block {cid} in the pack {self.packs_dir / where[0]} does not match its CID"
                )
            return data
        path = self.path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise VaultBlockNotFound(f"block {cid} is not in the vault store {self.root}") from None
        except OSError as exc:
            raise _os_error(f"cannot read block {cid} from {path}", exc) from exc
        if not cid.verify(data):
            raise VaultBlockCorrupt(f"block {cid} in {path} does not match its CID")
        return data

    def has(self, cid: CID) -> bool:
        return self.locate(cid) is not None or self.path(cid).is_file()

    def delete(self, cid: CID) -> None:
        """Forget one block: its row (its bytes become garbage for gc), or its file."""
        with self._mutex:
            self._pending.pop(cid.digest, None)
        with self._db_mutex:
            db = self._connect(create=False)
            if db is not None:
                try:
                    with db:
                        db.execute("DELETE FROM blocks WHERE digest = ?", (cid.digest,))
                except sqlite3.Error as exc:
                    raise _db_error(self.pins_file, exc) from exc
        path = self.path(cid)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(f"cannot delete block {cid} ({path})", exc) from exc

    def index(self) -> dict[bytes, Location]:
        """Every recorded block (and this store's own, not recorded yet): digest -> where."""
        found: dict[bytes, Location] = {}
        with self._db_mutex:
            db = self._connect(create=False)
            if db is not None:
                try:
                    for digest, pack, offset, length in db.execute(
                        "SELECT digest, pack, offset, length FROM blocks"
                    ):
                        found[digest] = (pack, offset, length)
                except sqlite3.Error as exc:
                    raise _db_error(self.pins_file, exc) from exc
        with self._mutex:
            found.update(self._pending)
        return found

    def _sizes(self) -> dict[bytes, int]:
        sizes = {digest: where[2] for digest, where in self.index().items()}
        for entry, cid in flatfs.entries(self.blocks_dir):
            if cid is not None and cid.digest not in sizes:
                with contextlib.suppress(FileNotFoundError):
                    sizes[cid.digest] = entry.stat(follow_symlinks=False).st_size
        return sizes

    def cids(self) -> Iterator[CID]:
        for digest in self._sizes():
            yield CID(RAW, digest)

    def stat(self) -> StoreStat:
        """Recorded blocks (and this store's own): bytes a killed add left are not counted."""
        sizes = self._sizes()
        return StoreStat(blocks=len(sizes), bytes=sum(sizes.values()), location=str(self.root))

    # -- pins -------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if not create and not self.pins_file.exists():
            return None
        try:
            if create:
                ensure_private_dir(self.root)
            db = sqlite3.connect(self.pins_file, timeout=30.0, check_same_thread=False)
            setup_sqlite(
                db,
                "PRAGMA journal_mode=WAL",
                # Every commit is fsynced: a row names bytes that are on disk, and stays.
                "PRAGMA synchronous=FULL" if self.fsync else "PRAGMA synchronous=OFF",
                "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pinned_at REAL NOT NULL)",
                "CREATE TABLE IF NOT EXISTS blocks (digest BLOB PRIMARY KEY, pack TEXT NOT NULL,"
                " offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID",
            )
        except sqlite3.Error as exc:
            raise _db_error(self.pins_file, exc) from exc
        with contextlib.suppress(OSError):
            self.pins_file.chmod(0o600)
        self._db = db
        return db

    def walk(self, root: CID, *, missing_ok: bool = False) -> Iterator[CID]:
        """``root`` and every block below it, each once (raw leaves are not read).

        Raises VaultBlockNotFound for a missing block unless ``missing_ok``, and
        VaultBlockCorrupt for a dag-pb block that does not match its CID or parse.
        """
        from sahara_cli.vault import dagpb

        seen: set[bytes] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid.digest in seen:
                continue
            seen.add(cid.digest)
            if cid.codec == RAW:
                if not self.has(cid):
                    if missing_ok:
                        continue
                    raise self._missing(root, cid)
                yield cid
                continue
            try:
                block = self.get(cid)
            except VaultBlockNotFound:
                if missing_ok:
                    continue
                raise self._missing(root, cid) from None
            yield cid
            stack.extend(reversed(dagpb.links(cid, block)))

    @staticmethod
    def _missing(root: CID, cid: CID) -> VaultBlockNotFound:
        if cid.digest == root.digest:
            return VaultBlockNotFound(f"cannot pin {root}: it is not in the vault store")
        return VaultBlockNotFound(f"cannot pin {root}: block {cid} below it is missing")

    def pin(self, root: CID) -> None:
        """Check every block below ``root``, then record them and the pin in one commit,
        after their bytes are on disk."""
        self._prepare()
        for _ in self.walk(root):
            pass
        self._record(root)

    def unpin(self, root: CID) -> None:
        with self._db_mutex:
            db = self._connect(create=False)
            if db is None:
                return
            try:
                with db:
                    db.execute("DELETE FROM pins WHERE cid = ?", (root.encode(),))
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc

    def pins(self) -> list[CID]:
        with self._db_mutex:
            db = self._connect(create=False)
            if db is None:
                return []
            try:
                rows = db.execute("SELECT cid FROM pins ORDER BY pinned_at, cid").fetchall()
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc
        return [CID.decode(row[0]) for row in rows]

    # -- gc ---------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False) -> GCResult:
        """Delete every block no pin reaches, and what killed writers left; rewrite the
        packs that hold garbage and move the first layout's live blocks into a pack."""
        from sahara_cli.vault.localgc import collect

        if not self.root.is_dir():
            return GCResult(removed_blocks=0, removed_bytes=0)
        with self.lock.exclusive():
            return collect(self, dry_run=dry_run)

    def replace_rows(self, drop: list[bytes], moved: dict[bytes, Location]) -> None:
        """gc's one commit: forget ``drop`` and point ``moved`` at their new places."""
        with self._db_mutex:
            db = self._connect(create=True)
            assert db is not None
            try:
                with db:
                    db.executemany("DELETE FROM blocks WHERE digest = ?", [(d,) for d in drop])
                    db.executemany(
                        "INSERT OR REPLACE INTO blocks (digest, pack, offset, length) "
                        "VALUES (?, ?, ?, ?)",
                        [(digest, *where) for digest, where in moved.items()],
                    )
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc

    def retire_writer(self) -> None:
        """Record what this store put, and start a new pack at its next write (gc may
        rewrite or delete every pack there is)."""
        self.sync()
        with self._mutex:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()

    def close(self) -> None:
        """Close files; blocks put and not recorded (no sync, no pin) stay garbage."""
        with self._mutex:
            for writer in [*self._full, self._writer]:
                if writer is not None:
                    writer.close()
            self._full = []
            self._writer = None
            self._pending.clear()
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
        with self._db_mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
        self.lock.release()


def _fsync_path(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # deleted since (gc took a block no pin holds): nothing to keep
    except OSError as exc:
        raise _os_error(f"cannot open {path} to sync it", exc) from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise _os_error(f"cannot sync {path} to disk", exc) from exc
    finally:
        os.close(fd)


def _db_error(path: Path, exc: sqlite3.Error) -> VaultBackendError:
    return VaultBackendError(
        f"cannot use the pin database {path}: {exc}",
        hint="If another sahara process holds it, retry; if the file is damaged, move it "
        "away (pins are lost, blocks stay) and pin again.",
    )
