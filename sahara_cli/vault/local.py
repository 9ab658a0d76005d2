"""The default block store: files under the home, no daemon.

Layout (``root`` is the vault's store directory)::

    root/blocks/SHARDING              "/repo/flatfs/shard/v1/next-to-last/2"
    root/blocks/<XY>/<KEY>.data       one block; KEY = base32 of its multihash, XY = KEY[-3:-1]
    root/pins.sqlite                  the pinned roots (SQLite, WAL)
    root/writers.lock                 the advisory lock that keeps gc away from writers

The block files are laid out exactly as Kubo's flatfs datastore lays them out, so a
block is found by its multihash whatever the codec of the CID that names it (as in
Kubo, :meth:`LocalBlockstore.cids` yields CIDv1 ``raw`` for every block).

Writes: the bytes go to a temporary file ``.tmp-…`` in the block's directory, which is
renamed over ``<KEY>.data``. Readers see the whole block or no block; a writer killed
half-way leaves a temporary file that every listing ignores and ``gc`` removes.

Durability is batched: ``put`` does not fsync, it remembers the block. :meth:`sync`
fsyncs every block remembered (a few threads at once, so the file system commits them
together), then each shard directory that gained an entry, then ``blocks/`` when a
shard was created; :meth:`~LocalBlockstore.pin` calls it before it records the pin, and
the vault catalogues an item only after the pin. So a power cut never leaves a pinned
or catalogued item with a block that was not on disk. A block that is on disk already
when it is put again is read and hashed: a file left torn or zeroed by a power cut is
rewritten rather than kept (and an intact one is fsynced at the next sync all the same,
since the process that wrote it may have died before it synced). ``fsync=False`` turns
the syncing off (for throw-away stores); ``get`` checks every block's hash either way.

Pins live in SQLite rather than a JSON file: two ``sahara`` processes pinning at the
same time each change one row in a transaction, where a JSON file rewritten whole would
need a lock of its own to keep one process from dropping the other's pin.

Two processes at once (:class:`WriterLock`): every store that writes (``put``,
``put_many``, ``pin``) takes a *shared* ``flock`` on ``writers.lock`` at its first write
and keeps it until :meth:`~LocalBlockstore.close`; ``gc`` takes it *exclusive*. So gc
never runs while another store holds blocks that it has written but not pinned yet
(a ``vault add`` between its puts and its pin), however long that add takes, and a
writer that starts during gc waits for it. The kernel drops the lock of a killed
process, so a crash never blocks gc for good. Because no writer can be active while gc
holds the lock, every temporary file gc sees is stale and removed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sahara_cli.errors import VaultBackendError, VaultBlockCorrupt, VaultBlockNotFound, VaultBusy
from sahara_cli.fsutil import atomic_write, ensure_private_dir, fsync_dir
from sahara_cli.vault.blockstore import Blockstore, GCResult, StoreStat
from sahara_cli.vault.cid import CID, RAW, SHA2_256
from sahara_cli.vault.db import setup_sqlite

SHARDING = "/repo/flatfs/shard/v1/next-to-last/2\n"
BLOCK_SUFFIX = ".data"
TEMP_PREFIX = ".tmp-"
_MH_PREFIX = bytes((SHA2_256, 32))


def block_key(cid: CID) -> str:
    """The flatfs key of a block: base32 (upper case, no padding) of its multihash."""
    return base64.b32encode(cid.multihash).decode("ascii").rstrip("=")


def block_path(blocks_dir: Path, cid: CID) -> Path:
    """Where flatfs (``next-to-last/2``) keeps ``cid``: ``blocks/<KEY[-3:-1]>/<KEY>.data``."""
    key = block_key(cid)
    return blocks_dir / key[-3:-1] / (key + BLOCK_SUFFIX)


def cid_from_key(key: str) -> CID | None:
    """The CIDv1 raw of a flatfs key, or None for a name that is not a sha2-256 key."""
    try:
        multihash = base64.b32decode(key + "=" * (-len(key) % 8))
    except ValueError:
        return None
    if len(multihash) != 34 or not multihash.startswith(_MH_PREFIX):
        return None
    return CID(RAW, multihash[2:])


class WriterLock:
    """Shared by writers for the life of a store, exclusive for gc (``flock`` on a file).

    Locks belong to the open file, so two stores in one process exclude each other just
    as two processes do.
    """

    def __init__(self, path: Path, *, gc_wait: float = 10.0, write_wait: float = 600.0) -> None:
        self.path = path
        self.gc_wait = gc_wait
        self.write_wait = write_wait
        self._fd: int | None = None
        self._shared = False
        self._mutex = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise _os_error(f"cannot open the lock file {self.path}", exc) from exc
        return self._fd

    def _acquire(self, fd: int, mode: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def shared(self) -> None:
        """Hold the lock shared (a no-op when this store holds it already)."""
        with self._mutex:
            if self._shared:
                return
            if not self._acquire(self._open(), fcntl.LOCK_SH, self.write_wait):
                raise VaultBusy(
                    f"the vault store {self.path.parent} is being garbage-collected "
                    f"for more than {self.write_wait:g} s",
                    hint="Wait for the other 'sahara vault gc' to finish, then try again.",
                    code="vault.busy",
                )
            self._shared = True

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone: no other store is between its puts and its pin."""
        with self._mutex:
            fd = self._open()
            if not self._acquire(fd, fcntl.LOCK_EX, self.gc_wait):
                if self._shared:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                raise VaultBusy(
                    f"another sahara process is writing to the vault store {self.path.parent}; "
                    "gc did not run",
                    hint="Run gc again when the other 'vault add' or 'vault pin' has finished.",
                    code="vault.busy",
                )
            try:
                yield
            finally:
                # Back to what this store held before: shared if it had written.
                fcntl.flock(fd, fcntl.LOCK_SH if self._shared else fcntl.LOCK_UN)

    def release(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)  # closing the file drops the lock
                self._fd = None
            self._shared = False


WRITE_THREADS = 4
#: A put_many batch of at least this many bytes is fsynced as soon as it is written.
EARLY_SYNC_BYTES = 4 << 20


class LocalBlockstore(Blockstore):
    """Blocks as files under ``root/blocks`` (flatfs layout), pins in ``root/pins.sqlite``."""

    name = "local"

    def __init__(self, root: Path, *, fsync: bool = True, gc_wait: float = 10.0) -> None:
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.pins_file = self.root / "pins.sqlite"
        self.fsync = fsync
        self.lock = WriterLock(self.root / "writers.lock", gc_wait=gc_wait)
        self._dirs: set[str] = set()
        # Written (or found) since the last sync: block files, and directories that
        # gained an entry. Guarded by _sync_mutex (the writer threads add to them).
        self._unsynced_files: set[Path] = set()
        self._unsynced_dirs: set[Path] = set()
        self._sync_mutex = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._db_mutex = threading.Lock()
        self._ready = False

    # -- files ------------------------------------------------------------------------

    def path(self, cid: CID) -> Path:
        return block_path(self.blocks_dir, cid)

    def _prepare(self) -> None:
        """Create the store on its first write, then hold the writers' lock."""
        if not self._ready:
            try:
                ensure_private_dir(self.root)
                self.blocks_dir.mkdir(mode=0o700, exist_ok=True)
                sharding = self.blocks_dir / "SHARDING"
                if not sharding.exists():
                    atomic_write(sharding, SHARDING.encode(), mode=0o644)
                    if self.fsync:  # a new store: its own entry and blocks/ are durable
                        fsync_dir(self.root)
                        fsync_dir(self.root.parent)
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
        self._prepare()
        self._store(cid, data)

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Store many blocks whose CIDs the caller computed from their bytes (the importer,
        or a CAR reader that checked each one): they are not hashed a second time.

        Files are written by a few threads: creating a file costs more than hashing
        256 KiB, and the system calls run without the GIL. A batch of many bytes is
        fsynced at once, by the same threads: the vault writes batches from a thread of
        their own, so the disk works while the next batch is hashed (and encrypted),
        and the sync before the pin finds little left to do.
        """
        batch = list(blocks)
        if not batch:
            return
        self._prepare()
        if len(batch) < 4:
            for cid, data in batch:
                self._store(cid, data)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="vault-write")
        for future in [self._pool.submit(self._store, cid, data) for cid, data in batch]:
            future.result()
        if self.fsync and sum(len(data) for _, data in batch) >= EARLY_SYNC_BYTES:
            paths = {self.path(cid) for cid, _ in batch}
            list(self._pool.map(lambda p: _fsync_path(p, os.O_RDONLY), paths))
            with self._sync_mutex:
                self._unsynced_files -= paths

    def _store(self, cid: CID, data: bytes) -> None:
        key = block_key(cid)
        shard = key[-3:-1]
        directory = self.blocks_dir / shard
        path = directory / (key + BLOCK_SUFFIX)
        if self._intact(cid, path, len(data)):
            # Content-addressed: the same bytes are there already. Sync them all the
            # same: the process that wrote them may have died before its own sync.
            self._written(path)
            return
        tmp: Path | None = None
        try:
            if shard not in self._dirs:
                directory.mkdir(mode=0o700, exist_ok=True)
                self._dirs.add(shard)
            tmp = directory / f"{TEMP_PREFIX}{key}-{secrets.token_hex(6)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            tmp.replace(path)
            self._written(path)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            if isinstance(exc, OSError):
                raise _os_error(f"cannot write block {cid} to {path}", exc) from exc
            raise

    @staticmethod
    def _intact(cid: CID, path: Path, size: int) -> bool:
        """Whether ``path`` holds exactly the block ``cid`` (read and hashed: a file of
        the right size may still be torn, or zeros, after a power cut)."""
        try:
            with path.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size != size:
                    return False
                return cid.verify(fh.read())
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _os_error(f"cannot read block {cid} from {path}", exc) from exc

    def _written(self, path: Path) -> None:
        if not self.fsync:
            return
        with self._sync_mutex:
            self._unsynced_files.add(path)
            self._unsynced_dirs.add(path.parent)

    def sync(self) -> None:
        """Make every block put since the last sync durable: the files, then the shard
        directories that name them, then ``blocks/`` (which names the shards; a shard
        may have been made by a process that died before it synced)."""
        with self._sync_mutex:
            files, self._unsynced_files = self._unsynced_files, set()
            dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        if not files and not dirs:
            return
        dirs.add(self.blocks_dir)
        try:
            if len(files) < 4:
                for path in files:
                    _fsync_path(path, os.O_RDONLY)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="vault-write")
                list(self._pool.map(lambda p: _fsync_path(p, os.O_RDONLY), files))
            # Shard directories first, blocks/ last.
            for directory in sorted(dirs, key=lambda d: d == self.blocks_dir):
                _fsync_path(directory, os.O_RDONLY | os.O_DIRECTORY)
        except BaseException:
            with self._sync_mutex:  # not synced: try again at the next sync
                self._unsynced_files.update(files)
                self._unsynced_dirs.update(dirs)
            raise

    def get(self, cid: CID) -> bytes:
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
        return self.path(cid).is_file()

    def delete(self, cid: CID) -> None:
        path = self.path(cid)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(f"cannot delete block {cid} ({path})", exc) from exc

    def _entries(self) -> Iterator[tuple[os.DirEntry[str], CID | None]]:
        """Every file in the shard folders: ``(entry, cid)``, cid None for non-blocks."""
        try:
            shards = [e for e in os.scandir(self.blocks_dir) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        for shard in shards:
            try:
                entries = list(os.scandir(shard.path))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry.name
                cid = None
                if name.endswith(BLOCK_SUFFIX) and not name.startswith("."):
                    cid = cid_from_key(name[: -len(BLOCK_SUFFIX)])
                yield entry, cid

    def cids(self) -> Iterator[CID]:
        for _, cid in self._entries():
            if cid is not None:
                yield cid

    def stat(self) -> StoreStat:
        blocks = size = 0
        for entry, cid in self._entries():
            if cid is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                size += entry.stat(follow_symlinks=False).st_size
                blocks += 1
        return StoreStat(blocks=blocks, bytes=size, location=str(self.root))

    # -- pins -------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if not create and not self.pins_file.exists():
            return None
        try:
            db = sqlite3.connect(self.pins_file, timeout=30.0, check_same_thread=False)
            setup_sqlite(
                db,
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pinned_at REAL NOT NULL)",
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
        self._prepare()
        for _ in self.walk(root):
            pass
        self.sync()  # the blocks are on disk before the pin (and the item) is recorded
        with self._db_mutex:
            db = self._connect(create=True)
            assert db is not None
            try:
                with db:
                    db.execute(
                        "INSERT OR IGNORE INTO pins (cid, pinned_at) VALUES (?, ?)",
                        (root.encode(), time.time()),
                    )
            except sqlite3.Error as exc:
                raise _db_error(self.pins_file, exc) from exc

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

    def gc(self) -> GCResult:
        if not self.blocks_dir.is_dir():
            return GCResult(removed_blocks=0, removed_bytes=0)
        with self.lock.exclusive():
            keep: set[bytes] = set()
            for root in self.pins():
                try:
                    keep.update(cid.digest for cid in self.walk(root, missing_ok=True))
                except VaultBlockCorrupt as exc:
                    raise VaultBlockCorrupt(
                        f"gc stopped, nothing was removed: {exc.message} (under pin {root})",
                        hint="Remove that item and add it again, then run gc.",
                    ) from None
            removed = removed_bytes = 0
            for entry, cid in self._entries():
                if cid is None:
                    if entry.name.startswith(TEMP_PREFIX):
                        # No writer holds the lock now: this is a killed writer's leftover.
                        with contextlib.suppress(FileNotFoundError):
                            Path(entry.path).unlink()
                    continue
                if cid.digest in keep:
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                    Path(entry.path).unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _os_error(f"gc cannot delete {entry.path}", exc) from exc
                removed += 1
                removed_bytes += size
        return GCResult(removed_blocks=removed, removed_bytes=removed_bytes)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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


def _os_error(what: str, exc: OSError) -> VaultBackendError:
    reason = exc.strerror or str(exc)
    hint = None
    if exc.errno == errno.ENOSPC:
        hint = "Free some disk space, then run the command again."
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "Check the owner and mode of the sahara home (it should be yours, 0700)."
    return VaultBackendError(f"{what}: {reason}", hint=hint)


def _db_error(path: Path, exc: sqlite3.Error) -> VaultBackendError:
    return VaultBackendError(
        f"cannot use the pin database {path}: {exc}",
        hint="If another sahara process holds it, retry; if the file is damaged, move it "
        "away (pins are lost, blocks stay) and pin again.",
    )
