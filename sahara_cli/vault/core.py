"""The vault: add, read, remove, export and import items over one blockstore.

Data path of a private add (``Vault.add``; :mod:`sahara_cli.vault.ingest`)::

    file ──readinto reused 2 MiB buffers──┬─> sha256 (a thread)      -> digest -> commitment
                                          └─> AES-256-GCM segments sealed into one
                                              stream buffer -> 256 KiB leaves (views)
                                              -> sha256 (two threads) -> FileImporter
                                              (balanced DAG) -> blockstore (batched)

The commitment of a private item is salted with a salt derived from its data key
(``crypto.salted_commitment``), so the chain does not confirm a guessed plaintext; the
plain digest stays in the catalogue, where it finds a plaintext added twice.

then pin the root, then one catalogue row, then (text files) the search index. A public
add skips the encryption and the separate hash, so it is one pass of sha256 over the
file, and its CID is the one ``ipfs add --cid-version=1`` prints. A
private directory is packed as a deterministic tar stream first (sorted names, zero
times and owners), so its digest is reproducible from the same tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sahara_cli.errors import (
    FileUnreadable,
    UsageError,
    VaultCidInvalid,
    VaultDecryptFailed,
    VaultError,
    VaultExists,
    VaultExportTooLarge,
    VaultItemNotFound,
    VaultNotSetUp,
)
from sahara_cli.fsutil import fsync_dir
from sahara_cli.vault import crypto
from sahara_cli.vault.blockstore import Blockstore
from sahara_cli.vault.cid import CID, RAW
from sahara_cli.vault.db import Item, VaultDB

if TYPE_CHECKING:
    from sahara_cli.vault.unixfs import ImportResult

Progress = Callable[[int], None]
READ_SIZE = 1 << 20
BATCH_BYTES = 8 << 20


@dataclass(frozen=True)
class Holder:
    """The Sahara ID a data key is wrapped to."""

    address: str
    public_key: bytes


class _BlockSink:
    """Collects blocks from the importer and stores them in batches.

    Batches are written by a background thread while the importer hashes the next
    ones; at most two batches wait, so memory stays at a few batches.
    """

    def __init__(self, store: Blockstore) -> None:
        self.store = store
        self.pending: list[tuple[CID, bytes]] = []
        self.pending_bytes = 0
        self.blocks = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[Future[None]] = []

    def put(self, cid: CID, data: bytes) -> None:
        self.pending.append((cid, data))
        self.pending_bytes += len(data)
        self.blocks += 1
        if self.pending_bytes >= BATCH_BYTES:
            self._send()

    def _send(self) -> None:
        if not self.pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="vault-sink")
        while len(self._inflight) >= 2:
            self._inflight.pop(0).result()
        self._inflight.append(self._pool.submit(self.store.put_many, self.pending))
        self.pending = []
        self.pending_bytes = 0

    def checkpoint(self) -> Future[None] | None:
        """Send what was put; the future is done once all of it is written (None:
        it is)."""
        self._send()
        return self._inflight[-1] if self._inflight else None

    def abandon(self) -> None:
        """Stop after an error elsewhere: wait for writes under way, drop the rest."""
        self.pending = []
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._inflight = []

    def flush(self) -> None:
        """Store everything collected so far; raises what a background write raised."""
        self._send()
        try:
            while self._inflight:
                self._inflight.pop(0).result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class _TarWriter:
    """A write-only file object that feeds tarfile's output into a callback."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def write(self, data: bytes) -> int:
        self._write(bytes(data))
        return len(data)


def _walk_sorted(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        if base != root:
            yield base
        for name in sorted(filenames):
            yield base / name


def write_deterministic_tar(root: Path, write: Callable[[bytes], None], progress: Progress) -> None:
    """Pack ``root`` as a tar stream that depends only on names, modes and contents."""
    import tarfile  # only trees need it: a file's add does not load it

    with tarfile.open(fileobj=_TarWriter(write), mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path in _walk_sorted(root):
            rel = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_symlink():
                info.type = tarfile.SYMTYPE
                info.linkname = str(path.readlink())
                info.mode = 0o777
                tar.addfile(info)
            elif path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = path.stat().st_size
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, _CountingReader(handle, progress))


class _CountingReader:
    def __init__(self, handle: IO[bytes], progress: Progress) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._progress(len(data))
        return data


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class Vault:
    """Items over a blockstore, catalogued in ``<home>/vault/vault.db``."""

    def __init__(self, root: Path, store: Blockstore) -> None:
        self.root = root
        self.store = store
        self.db = VaultDB(root / "vault.db")
        # Data keys generated by this process, in memory only: indexing right after an
        # add seals snippets without asking for the password again.
        self._new_keys: dict[str, bytes] = {}

    def close(self) -> None:
        self.db.close()
        self.store.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adding ------------------------------------------------------------------------

    def add(
        self,
        source: Path,
        holder: Holder,
        *,
        public: bool = False,
        recursive: bool = False,
        name: str | None = None,
        hidden: bool = False,
        progress: Progress | None = None,
        origin: str = "added",
        salted: bool = True,
    ) -> tuple[Item, bool]:
        """Store ``source``; returns the item and whether it was new.

        Adding the same plaintext twice for the same holder returns the first item.
        ``origin`` is "added", or "memory" for an agent's long-term memory notes (kept
        out of what agents retrieve as data). A private item's commitment is salted
        (:func:`~sahara_cli.vault.crypto.salted_commitment`) unless ``salted=False``,
        which keeps the plain SHA-256 of the plaintext that anyone can recompute.
        """
        progress = progress or (lambda _n: None)
        if not source.exists():
            raise FileUnreadable(f"{source} does not exist")
        is_dir = source.is_dir()
        if is_dir and not recursive:
            raise UsageError(f"{source} is a directory", hint="Add directories with --recursive.")
        if not is_dir and not source.is_file():
            raise FileUnreadable(f"{source} is not a regular file or a directory")
        sink = _BlockSink(self.store)
        try:
            if public:
                result = self._add_public(source, is_dir, sink, hidden=hidden, progress=progress)
            else:
                result = self._add_private(
                    source, is_dir, sink, holder, progress=progress, salted=salted
                )
            sink.flush()
        except PermissionError as exc:
            sink.abandon()
            raise FileUnreadable(
                f"cannot read {exc.filename or source}: permission denied"
            ) from None
        except BaseException:
            sink.abandon()  # blocks written so far stay unpinned: the next gc takes them
            raise
        cid, size, stored, commitment, wrapped, digest = result
        known = self.db.by_cid(cid.encode())
        if known is not None:
            return known, False
        if not public:
            twin = self.db.by_digest(digest, holder.address, True)
            if twin is not None and twin.kind == ("directory" if is_dir else "file"):
                # Same plaintext, already encrypted under another key: keep the first.
                return twin, False
        self.store.pin(cid)
        item = self.db.insert(
            cid=cid.encode(),
            name=name or source.resolve().name,
            kind="directory" if is_dir else "file",
            size=size,
            stored=stored,
            encrypted=int(not public),
            commitment=commitment,
            holder=holder.address,
            owner=holder.address,
            origin=origin,
            wrapped_key=wrapped,
            digest=digest or None,
        )
        return item, True

    def _add_public(
        self, source: Path, is_dir: bool, sink: _BlockSink, *, hidden: bool, progress: Progress
    ) -> tuple[CID, int, int, str, bytes | None, str]:
        from sahara_cli.vault import unixfs
        from sahara_cli.vault.ingest import ingest

        if is_dir:
            result = unixfs.import_directory(
                source, sink.put, hidden=hidden, on_file=lambda _p, n: progress(n)
            )
            commitment = _commitment_of_cid(result.cid)
            return result.cid, result.size, result.size, commitment, None, ""
        # No separate plaintext hash here: the CID already commits to the content, and
        # the SHA-256 an asset registers is computed when it is registered
        # (ensure_commitment). A one-block file's CID digest is that SHA-256 already.
        with source.open("rb", buffering=0) as handle:
            result = ingest(handle, sink, progress=progress, views=self._views()).result
        commitment = "0x" + result.cid.digest.hex() if result.cid.codec == RAW else ""
        return result.cid, result.size, result.size, commitment, None, commitment

    def _add_private(
        self,
        source: Path,
        is_dir: bool,
        sink: _BlockSink,
        holder: Holder,
        *,
        progress: Progress,
        salted: bool,
    ) -> tuple[CID, int, int, str, bytes | None, str]:
        from sahara_cli.vault.ingest import ingest

        key = crypto.new_data_key()
        if not is_dir:
            with source.open("rb", buffering=0) as handle:
                done = ingest(handle, sink, key=key, progress=progress, views=self._views())
            result, plain_size, plain = done.result, done.size, done.digest
        else:
            result, plain_size, plain = _import_sealed_tree(source, sink, key, progress)
        wrapped = crypto.wrap_key(key, holder.public_key)
        self._new_keys[result.cid.encode()] = key
        commitment = crypto.salted_commitment(key, plain) if salted else plain
        return result.cid, plain_size, result.size, commitment, wrapped, plain

    def _views(self) -> bool:
        """Whether the store copies a block out before its write returns (the local
        packs do), so that an add may hand it views of buffers it reuses."""
        from sahara_cli.vault.local import LocalBlockstore

        return isinstance(self.store, LocalBlockstore)

    # -- finding -----------------------------------------------------------------------

    def items(self) -> list[Item]:
        return self.db.items()

    def find(self, ref: str) -> Item:
        """An item by CID, by asset id (``42`` or ``asset:42``), or by name."""
        text = ref.strip()
        number = text.removeprefix("asset:")
        if number.isdigit():
            item = self.db.by_asset(int(number))
            if item is None:
                raise VaultItemNotFound(
                    f"asset {number} is not in this vault",
                    hint="Fetch a licensed asset with 'sahara vault get ASSET -o PATH'.",
                )
            return item
        cid = None
        if text.startswith(("b", "Qm")) and len(text) > 40:
            with contextlib.suppress(VaultCidInvalid):  # a long name that is not a CID
                cid = CID.decode(text)
        if cid is not None:
            found = self.db.by_cid(cid.v1().encode()) or self.db.by_cid(text)
            if found is not None:
                return found
            raise VaultItemNotFound(f"no vault item with CID {text}")
        found = self.db.by_name(text)
        if found is None:
            raise VaultItemNotFound(f"no vault item named {text!r}")
        return found

    # -- reading -----------------------------------------------------------------------

    def _get(self, cid: CID) -> bytes:
        return self.store.get(cid)

    def data_key(self, item: Item, private_key: bytes) -> bytes | None:
        """The item's data key, opened with the holder's private key (None: public)."""
        if not item.encrypted:
            return None
        if item.wrapped_key is None:
            raise VaultNotSetUp(
                f"item {item.cid} is encrypted and this vault holds no key for it",
                code="vault.no_key",
                hint="Fetch it with 'sahara vault get ASSET' to obtain a key.",
            )
        return crypto.unwrap_key(item.wrapped_key, private_key)

    def ensure_commitment(self, item: Item) -> Item:
        """Fill in the plaintext SHA-256 of a public file added without it."""
        if item.commitment or item.kind != "file" or item.encrypted:
            return item
        digest = self.stream(item, None, lambda _data: None)
        self.db.update(item.id, commitment=digest)
        return self.db.by_id(item.id)

    def last_key(self, item: Item) -> bytes | None:
        """The data key of an item this process just added (None otherwise)."""
        return self._new_keys.get(item.cid)

    def stream(self, item: Item, key: bytes | None, sink: Callable[[bytes], object]) -> str:
        """Write the plaintext of a file item to ``sink``; returns its sha256 (0x hex).

        For encrypted items the whole stream is authenticated segment by segment.
        """
        from sahara_cli.vault import unixfs

        digest = hashlib.sha256()

        def out(data: bytes) -> None:
            digest.update(data)
            sink(data)

        if key is None:
            for piece in unixfs.iter_file(CID.decode(item.cid), self._get):
                out(piece)
        else:
            decryptor = crypto.Decryptor(key, out)
            for piece in unixfs.iter_file(CID.decode(item.cid), self._get):
                decryptor.write(piece)
            decryptor.finish()
        return "0x" + digest.hexdigest()

    def write_out(
        self, item: Item, key: bytes | None, dest: Path, *, progress: Progress | None = None
    ) -> Path:
        """Write the item's plaintext to ``dest`` (a file or a directory tree).

        Nothing appears at ``dest`` unless every block and segment checks out and the
        plaintext matches the commitment: output goes to a temporary sibling first.
        """
        progress = progress or (lambda _n: None)
        dest = dest.absolute()
        if dest.exists():
            raise VaultExists(f"{dest} already exists", hint="Choose another path with -o.")
        parent = dest.parent
        parent.mkdir(parents=True, exist_ok=True)
        from sahara_cli.vault import unixfs

        budget = unixfs.disk_budget(parent)
        if item.size > budget:
            raise VaultExportTooLarge(
                f"{item.cid} holds {item.size} bytes; the file system of {parent} can spare "
                f"{budget} (its free space less {unixfs.DISK_RESERVE:.0%} of its size)",
                hint="Free some space or write it elsewhere with -o.",
            )
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=parent))
        try:
            staged = tmp_dir / "out"
            if item.kind == "directory" and not item.encrypted:
                # An item added here knows its file bytes: the tree may not expand past
                # them (an imported one records 0, and the disk budget alone holds).
                unixfs.export_to_path(
                    CID.decode(item.cid), self._get, staged, max_bytes=item.size or None
                )
                progress(item.size)
            else:
                written = 0
                with staged.open("wb") as handle:

                    def write(data: bytes) -> None:
                        nonlocal written
                        written += len(data)
                        if written > budget:
                            raise VaultExportTooLarge(
                                f"{item.cid} expands to more than {budget} bytes, what the "
                                f"file system of {parent} can spare"
                            )
                        handle.write(data)
                        progress(len(data))

                    digest = self.stream(item, key, write)
                if item.commitment and not crypto.matches_commitment(item.commitment, digest, key):
                    raise VaultDecryptFailed(
                        f"content of {item.cid} does not match its commitment "
                        f"({digest} != {item.commitment})",
                        hint="The item was altered; fetch it again from its owner.",
                    )
                if item.kind == "directory":
                    tree = tmp_dir / "tree"
                    tree.mkdir()
                    import tarfile

                    with tarfile.open(staged, "r:") as tar:
                        tar.extractall(tree, filter="data")
                    staged.unlink()
                    staged = tree
            staged.rename(dest)
        finally:
            _remove_tree(tmp_dir)
        return dest

    # -- removing ----------------------------------------------------------------------

    def remove(self, item: Item) -> dict[str, int]:
        """Forget the item, unpin it and collect its blocks (shared blocks stay)."""
        self.db.delete(item.id)
        cid = CID.decode(item.cid)
        if item.cid not in self.db.roots():
            self.store.unpin(cid)
        result = self.store.gc()
        return {"removed_blocks": result.removed_blocks, "removed_bytes": result.removed_bytes}

    # -- CAR ---------------------------------------------------------------------------

    def export_car(
        self, item: Item, out: Path, *, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Write the item's blocks as a CAR v1 file; ``progress(n)`` counts block bytes."""
        from sahara_cli.vault import car, unixfs

        cid = CID.decode(item.cid)
        tmp, fd = _create_partial(out)
        blocks = _counted(unixfs.walk(cid, self._get), progress)
        try:
            with os.fdopen(fd, "wb") as handle:
                written = car.write_car(handle, [cid], blocks)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(out)
            fsync_dir(out.parent)
        except OSError as exc:
            raise VaultError(
                f"cannot write {exc.filename or out}: {exc.strerror or exc}",
                code="vault.write_failed",
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)  # ours: made with O_EXCL (gone once renamed)
        return {"path": str(out), "bytes": written, "root": item.cid}

    def import_car(
        self,
        path: Path,
        holder: Holder,
        name: str | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Item]:
        """Store every block of a CAR file and add each root as a public item.

        Encrypted exports import as blocks only: their keys travel separately.
        ``progress(n)`` counts the bytes of the blocks stored.
        """
        from sahara_cli.vault import car, unixfs

        sink = _BlockSink(self.store)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise FileUnreadable(f"cannot read {path}: {exc.strerror}") from None
        with handle:
            try:
                roots, blocks = car.read_car(handle)
                for cid, data in _counted(blocks, progress):
                    sink.put(cid.v1() if cid.version == 0 else cid, data)
                sink.flush()
            except BaseException:
                sink.abandon()
                raise
        items: list[Item] = []
        for root in roots:
            known = self.db.by_cid(root.encode())
            if known is not None:
                items.append(known)
                continue
            self.store.pin(root)
            info = unixfs.stat(root, self._get)
            encrypted = _looks_encrypted(root, self._get) if info.type == "file" else False
            # Encrypted: known only to the owner (and on chain, once registered). Public
            # files: filled in when registered (ensure_commitment).
            commitment = _commitment_of_cid(root) if info.type != "file" else ""
            # A directory's size is what its root declares (the Tsize of its links): an
            # export of it may not write more (a crafted DAG may repeat blocks).
            size = info.cumulative_size if info.type == "directory" else info.size
            items.append(
                self.db.insert(
                    cid=root.encode(),
                    name=name or path.stem,
                    kind="directory" if info.type == "directory" else "file",
                    size=size,
                    stored=size,
                    encrypted=int(encrypted),
                    commitment=commitment,
                    holder=holder.address,
                    owner="",
                    origin="imported",
                    wrapped_key=None,
                )
            )
        return items


def _import_sealed_tree(
    source: Path, sink: _BlockSink, key: bytes, progress: Progress
) -> tuple[ImportResult, int, str]:
    """A directory's deterministic tar stream, encrypted under ``key`` and imported;
    returns the import, the tar's bytes and its sha256 (``0x`` hex)."""
    from sahara_cli.vault import unixfs
    from sahara_cli.vault.ingest import HASH_THREADS

    digest = hashlib.sha256()
    plain_size = 0
    # The plaintext hash runs on a thread of its own and the ciphertext leaves are
    # hashed on others (hashlib releases the GIL) while this thread packs, encrypts
    # and builds the DAG; the plaintext's order is kept by waiting each time.
    with (
        ThreadPoolExecutor(1, thread_name_prefix="vault-digest") as pool,
        ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="vault-hash") as hasher,
    ):
        importer = unixfs.FileImporter(sink.put, hasher=hasher)
        encryptor = crypto.Encryptor(key, importer.write)
        pending: list[Future[None]] = []

        def feed(chunk: bytes) -> None:
            nonlocal plain_size
            if pending:
                pending.pop().result()
            pending.append(pool.submit(digest.update, chunk))
            encryptor.write(chunk)
            plain_size += len(chunk)

        buffer = bytearray()

        def feed_tar(data: bytes) -> None:
            buffer.extend(data)
            if len(buffer) >= READ_SIZE:
                feed(bytes(buffer))
                buffer.clear()

        write_deterministic_tar(source, feed_tar, progress)
        if buffer:
            feed(bytes(buffer))
        if pending:
            pending.pop().result()
        encryptor.finish()
        result = importer.finish()
    return result, plain_size, "0x" + digest.hexdigest()


def _looks_encrypted(root: CID, get: Callable[[CID], bytes]) -> bool:
    from sahara_cli.vault import unixfs

    for piece in unixfs.iter_file(root, get):
        return piece[:4] == crypto.MAGIC
    return False


def _commitment_of_cid(cid: CID) -> str:
    """Commitment of public DAGs other than single files: the root's sha256 digest."""
    return "0x" + cid.digest.hex()


def _create_partial(out: Path) -> tuple[Path, int]:
    """A new hidden file beside ``out`` to write into, then rename over it.

    ``O_CREAT | O_EXCL`` with an unguessable name: a file or symlink someone planted
    at a partial path is never opened, followed or overwritten (nor removed after).
    """
    import secrets

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(8):
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(8)}.partial")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise VaultError(
                f"cannot write {out}: {exc.strerror or exc}", code="vault.write_failed"
            ) from exc
    raise VaultExists(f"cannot create a partial file beside {out}: every name tried exists")


def _remove_tree(path: Path) -> None:
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def _counted(
    blocks: Iterable[tuple[CID, bytes]], progress: Progress | None
) -> Iterator[tuple[CID, bytes]]:
    """``blocks`` as they are, each block's size counted with ``progress``."""
    for cid, data in blocks:
        if progress is not None:
            progress(len(data))
        yield cid, data
