"""UnixFS: files and directories as dag-pb/raw block DAGs, the same CIDs Kubo makes.

Writing mirrors ``ipfs add --cid-version=1`` (Kubo v0.39, boxo's importer):

- files are cut into fixed 256 KiB chunks, each a *raw* block (codec ``raw``);
- a file of one chunk (or of none: the empty file) is that raw block alone;
- bigger files get the *balanced* layout: every leaf at the same depth, internal
  UnixFS ``File`` nodes of at most 174 links with ``filesize`` and ``blocksizes``,
  link ``Tsize`` the cumulative bytes of the child's DAG;
- directories (``ipfs add -r``) are UnixFS ``Directory`` nodes whose links are sorted
  by name bytes, each link's ``Tsize`` the child's cumulative size. A directory whose
  links add up (name bytes + CID bytes) to 256 KiB or more becomes a HAMT-sharded
  directory (fanout 256, murmur3-x64-64), exactly as Kubo's threshold switch does.

What ``ipfs add -r`` does with special entries, mirrored here:

- names starting with ``.`` inside the tree are skipped unless ``hidden=True``
  (``--hidden``); the top path itself is always added;
- symbolic links are not followed: each becomes a UnixFS ``Symlink`` node holding
  the link target (a symlink given as the top path is stored as a symlink too);
- sockets, FIFOs and devices are refused, as Kubo refuses them.

Reading works over any ``get(cid) -> bytes`` (a blockstore's ``get``): files stream
chunk by chunk in order, directories (basic or HAMT) list and export.

Exporting treats the DAG as untrusted (it may come from a CAR file or another node):

- entry names are single path components, so nothing is written outside the output;
- a symlink whose target is absolute, or leads out of the output directory (counting
  ``..`` from where the link sits, and again through other links once the tree is
  written), is refused (``vault.unsafe_symlink``);
- an output budget bounds what is written: file bytes (``max_bytes``, and never more
  than the output's file system can spare: its free space less 1 % of its size) and
  entries (``max_entries``, default 1,000,000), so a small DAG that links the same
  blocks over and over (a "zip bomb") stops with ``vault.export_too_large``; a file
  node that yields more bytes than it declares stops at once;
- on any error the output path is removed again: it did not exist before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat as stat_mod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from sahara_cli.errors import (
    FileUnreadable,
    VaultBlockCorrupt,
    VaultError,
    VaultExists,
    VaultExportTooLarge,
    VaultUnsafeSymlink,
    VaultUnsupportedInput,
)
from sahara_cli.vault import dagpb
from sahara_cli.vault.cid import CID, DAG_PB, RAW
from sahara_cli.vault.dagpb import DataType, PBLink, PBNode, UnixFSData

Put = Callable[[CID, bytes], None]
Get = Callable[[CID], bytes]

#: Kubo's default chunker (``size-262144``).
CHUNK_SIZE = 262144
#: Kubo's default (and maximum) links per file node.
MAX_LINKS = 174
#: The largest chunk Kubo's chunker accepts.
MAX_CHUNK_SIZE = 1048576
#: Directories whose estimated size (name + CID bytes of every link) reaches this are
#: HAMT-sharded (Kubo's ``Import.UnixFSHAMTDirectorySizeThreshold``).
HAMT_THRESHOLD = 262144
#: Entries per HAMT shard (Kubo's ``Import.UnixFSHAMTDirectoryMaxFanout``).
HAMT_FANOUT = 256
#: Multicodec of the HAMT hash: murmur3-x64-64.
HAMT_HASH_MURMUR3 = 0x22

#: CID of the empty file (a raw block of no bytes).
EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
#: CID of the empty directory.
EMPTY_DIR_CID = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"

#: Entries (files, directories, symlinks) one export may create by default.
MAX_EXPORT_ENTRIES = 1_000_000
#: Share of the output's file system an export leaves free.
DISK_RESERVE = 0.01

EntryType = Literal["file", "directory", "symlink"]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import made.

    ``size`` is the file bytes (for a directory: of every file below it), ``blocks`` the
    number of blocks handed to ``put`` (a repeated identical chunk is put, and counted,
    again) and ``tsize`` the cumulative DAG bytes: what a parent link's Tsize holds.
    """

    cid: CID
    size: int
    blocks: int
    tsize: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    cid: CID
    #: File bytes, symlink target bytes, or 0 for a directory.
    size: int
    type: EntryType


@dataclass(frozen=True, slots=True)
class Stat:
    cid: CID
    type: EntryType
    #: File bytes, symlink target bytes, or 0 for a directory.
    size: int
    #: Bytes of the whole DAG as its links declare them (Kubo's CumulativeSize).
    cumulative_size: int


def _option_error(message: str) -> VaultError:
    return VaultError(message, code="vault.invalid_option")


# -- files --------------------------------------------------------------------------


#: Leaves a hasher may have in flight (bytes held: this many chunks).
HASH_AHEAD = 8


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class FileImporter:
    """Push-style streaming importer of one file.

    Call :meth:`write` with pieces of any size, then :meth:`finish` once. Blocks reach
    ``put`` as soon as they are complete (leaves first, each parent after its
    children). Memory stays at one chunk plus at most ``max_links`` pending links per
    tree level.
    """

    def __init__(
        self,
        put: Put,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
        hasher: Executor | None = None,
    ):
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise _option_error(f"chunk size must be 1 to {MAX_CHUNK_SIZE} bytes, not {chunk_size}")
        if max_links < 2:
            raise _option_error(f"a file node needs at least 2 links, not {max_links}")
        self._put = put
        self._chunk = chunk_size
        self._max_links = max_links
        # One chunk of pending bytes, filled in place (no regrowth between chunks).
        self._buf = bytearray(chunk_size)
        self._fill = 0
        # _levels[0] holds pending leaf links, _levels[1] pending links to nodes over
        # leaves, and so on. A link is (cid, tsize, file bytes).
        self._levels: list[list[tuple[CID, int, int]]] = [[]]
        self._size = 0
        self._blocks = 0
        self._result: ImportResult | None = None
        # With a hasher, leaves are hashed on its threads (hashlib lets go of the GIL),
        # a few at a time, and handed on in order as their digests come back.
        self._hasher = hasher
        self._hashing: deque[tuple[Future[bytes], bytes]] = deque()
        self._hashing_bytes = 0

    @property
    def size(self) -> int:
        """File bytes written so far."""
        return self._size + self._hashing_bytes + self._fill

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._result is not None:
            raise VaultError("write() after finish()", code="vault.importer_finished")
        chunk = self._chunk
        if not self._fill and type(data) is bytes and len(data) == chunk:
            self._leaf(data)  # a whole chunk that nobody can change: no copy
            return
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        total = len(view)
        if not total:
            return
        pos = 0
        fill = self._fill
        if fill:
            take = min(chunk - fill, total)
            self._buf[fill : fill + take] = view[:take]
            pos = take
            self._fill = fill = fill + take
            if fill < chunk:
                return
            self._leaf(bytes(self._buf))
            self._fill = 0
        while total - pos >= chunk:
            self._leaf(bytes(view[pos : pos + chunk]))
            pos += chunk
        if pos < total:
            rest = total - pos
            self._buf[:rest] = view[pos:]
            self._fill = rest

    def link_leaf(self, digest: bytes, size: int) -> CID:
        """Link a leaf of ``size`` bytes that the caller cut, hashed (``digest``, its
        sha2-256) and stored itself: a whole chunk, or the file's last, shorter one
        (:mod:`sahara_cli.vault.ingest`). Not to be mixed with :meth:`write`."""
        if self._result is not None:
            raise VaultError("link_leaf() after finish()", code="vault.importer_finished")
        if self._fill or self._hashing or size > self._chunk:
            raise VaultError("link_leaf() takes whole chunks only", code="vault.importer_misuse")
        cid = CID(RAW, digest)
        self._link(cid, size)
        return cid

    def finish(self) -> ImportResult:
        """Flush the last chunk, close every level and return the root."""
        if self._result is not None:
            return self._result
        if self._fill or self.size == 0:
            self._leaf(bytes(self._buf[: self._fill]))
            self._fill = 0
        while self._hashing:
            self._settle()
        levels = self._levels
        height = 0
        while height < len(levels) - 1:
            self._push(height + 1, self._node(levels[height]))
            levels[height] = []
            height += 1
        top = levels[-1]
        root = top[0] if len(levels) == 1 and len(top) == 1 else self._node(top)
        self._result = ImportResult(root[0], self._size, self._blocks, root[1])
        return self._result

    def _leaf(self, chunk: bytes) -> None:
        if self._hasher is not None:
            self._hashing.append((self._hasher.submit(_sha256, chunk), chunk))
            self._hashing_bytes += len(chunk)
            if len(self._hashing) > HASH_AHEAD:
                self._settle()
            return
        self._linked(chunk, hashlib.sha256(chunk).digest())

    def _settle(self) -> None:
        future, chunk = self._hashing.popleft()
        self._hashing_bytes -= len(chunk)
        self._linked(chunk, future.result())

    def _linked(self, chunk: bytes, digest: bytes) -> None:
        cid = CID(RAW, digest)
        self._put(cid, chunk)
        self._link(cid, len(chunk))

    def _link(self, cid: CID, size: int) -> None:
        self._blocks += 1
        self._size += size
        self._push(0, (cid, size, size))

    def _push(self, height: int, link: tuple[CID, int, int]) -> None:
        levels = self._levels
        if height == len(levels):
            levels.append([])
        pending = levels[height]
        if len(pending) == self._max_links:
            # Full, and more follows: close it into a node one level up.
            self._push(height + 1, self._node(pending))
            pending = levels[height] = []
        pending.append(link)

    def _node(self, children: list[tuple[CID, int, int]]) -> tuple[CID, int, int]:
        data = dagpb.encode_unixfs(
            UnixFSData(
                DataType.FILE,
                filesize=sum(c[2] for c in children),
                blocksizes=tuple(c[2] for c in children),
            )
        )
        block = dagpb.encode_node(PBNode(tuple(PBLink(c[0], "", c[1]) for c in children), data))
        cid = CID(DAG_PB, hashlib.sha256(block).digest())
        self._put(cid, block)
        self._blocks += 1
        return cid, len(block) + sum(c[1] for c in children), sum(c[2] for c in children)


_READ_SIZE = 1 << 20


def import_file(
    source: str | os.PathLike[str] | BinaryIO,
    put: Put,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> ImportResult:
    """Import a file given by path or as an open binary file (read to its end)."""
    importer = FileImporter(put, chunk_size=chunk_size, max_links=max_links)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            with path.open("rb") as fh:
                _pump(fh, importer)
        except OSError as exc:
            raise FileUnreadable(f"cannot read {path}: {exc.strerror or exc}") from exc
    else:
        _pump(source, importer)
    return importer.finish()


def _pump(fh: BinaryIO, importer: FileImporter) -> None:
    buffer = bytearray(_READ_SIZE)
    view = memoryview(buffer)
    readinto = getattr(fh, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(buffer)
            if not count:
                return
            importer.write(view[:count])
        else:
            piece = fh.read(_READ_SIZE)
            if not piece:
                return
            importer.write(piece)


# -- directories ---------------------------------------------------------------------


def _encode_dir(links: list[PBLink]) -> bytes:
    return dagpb.encode_node(
        PBNode(tuple(links), dagpb.encode_unixfs(UnixFSData(DataType.DIRECTORY)))
    )


@dataclass
class _Tally:
    put: Put
    size: int = 0
    blocks: int = 0

    def block(self, data: bytes) -> tuple[CID, int]:
        cid = CID(DAG_PB, hashlib.sha256(data).digest())
        self.put(cid, data)
        self.blocks += 1
        return cid, len(data)


def symlink_block(target: str | bytes) -> bytes:
    """The dag-pb block of a UnixFS symlink to ``target``."""
    raw = target if isinstance(target, bytes) else os.fsencode(target)
    return dagpb.encode_node(PBNode((), dagpb.encode_unixfs(UnixFSData(DataType.SYMLINK, raw))))


def import_directory(
    path: str | os.PathLike[str],
    put: Put,
    *,
    hidden: bool = False,
    on_file: Callable[[str, int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
    hamt_threshold: int = HAMT_THRESHOLD,
) -> ImportResult:
    """Import a directory tree as ``ipfs add -r --cid-version=1`` does.

    ``on_file(relative_path, size)`` is called after each file (its bytes) and symlink
    (0), paths relative to ``path`` with ``/``. A regular file or symlink given as ``path`` is
    imported as itself. ``hamt_threshold=0`` never shards (Kubo's switch turned off).
    """
    FileImporter(put, chunk_size=chunk_size, max_links=max_links)  # validates options
    root = Path(path)
    try:
        info = root.lstat()
    except OSError as exc:
        raise FileUnreadable(f"cannot read {root}: {exc.strerror or exc}") from exc
    walker = _TreeImporter(_Tally(put), hidden, on_file, chunk_size, max_links, hamt_threshold)
    try:
        cid, tsize = walker.entry(root, info, "")
    except RecursionError:
        raise VaultUnsupportedInput(
            f"{root} nests directories too deep to add", code="vault.too_deep"
        ) from None
    return ImportResult(cid, walker.tally.size, walker.tally.blocks, tsize)


@dataclass
class _TreeImporter:
    tally: _Tally
    hidden: bool
    on_file: Callable[[str, int], None] | None
    chunk_size: int
    max_links: int
    hamt_threshold: int

    def entry(self, path: Path, info: os.stat_result, rel: str) -> tuple[CID, int]:
        """Import one file system entry; returns its ``(cid, tsize)``."""
        mode = info.st_mode
        if stat_mod.S_ISDIR(mode):
            return self.directory(path, rel)
        if stat_mod.S_ISREG(mode):
            result = import_file(
                path, self.tally.put, chunk_size=self.chunk_size, max_links=self.max_links
            )
            self.tally.size += result.size
            self.tally.blocks += result.blocks
            if self.on_file is not None:
                self.on_file(rel or path.name, result.size)
            return result.cid, result.tsize
        if stat_mod.S_ISLNK(mode):
            try:
                target = os.fsencode(path.readlink())
            except OSError as exc:
                raise FileUnreadable(f"cannot read link {path}: {exc.strerror or exc}") from exc
            cid, tsize = self.tally.block(symlink_block(target))
            if self.on_file is not None:
                self.on_file(rel or path.name, 0)
            return cid, tsize
        raise VaultUnsupportedInput(
            f"{path} is not a file, directory or symlink; it cannot be added",
            code="vault.unsupported_file",
            hint="Leave sockets, FIFOs and devices out of what you add.",
        )

    def directory(self, path: Path, rel: str) -> tuple[CID, int]:
        try:
            with os.scandir(path) as it:
                entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
        except OSError as exc:
            raise FileUnreadable(f"cannot read directory {path}: {exc.strerror or exc}") from exc
        links: list[PBLink] = []
        for name, info in entries:
            # Kubo's filter: a name starting with "." is hidden (the top path never is).
            if not self.hidden and name.startswith("."):
                continue
            link_name = _link_name(name, path / name)
            cid, tsize = self.entry(path / name, info, f"{rel}/{link_name}" if rel else link_name)
            links.append(PBLink(cid, link_name, tsize))
        return _build_directory(links, self.tally, self.hamt_threshold)


def _link_name(name: str, path: Path) -> str:
    raw = os.fsencode(name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise VaultUnsupportedInput(
            f"the name of {path!s} is not valid UTF-8",
            code="vault.bad_name",
            hint="Rename the file: UnixFS names are UTF-8.",
        ) from None


def build_directory(
    links: list[PBLink], put: Put, *, hamt_threshold: int = HAMT_THRESHOLD
) -> ImportResult:
    """Write the directory holding ``links`` (name, CID, Tsize each), basic or HAMT as
    Kubo would. The result's ``size`` is 0: the links do not tell file sizes."""
    tally = _Tally(put)
    cid, tsize = _build_directory(links, tally, hamt_threshold)
    return ImportResult(cid, 0, tally.blocks, tsize)


def _build_directory(links: list[PBLink], tally: _Tally, hamt_threshold: int) -> tuple[CID, int]:
    names = [link.name or "" for link in links]
    if len(set(names)) != len(names):
        raise VaultUnsupportedInput(
            "a directory cannot hold two entries of the same name", code="vault.duplicate_name"
        )
    estimated = sum(
        len(n.encode("utf-8")) + len(link.cid.bytes) for n, link in zip(names, links, strict=True)
    )
    if hamt_threshold and estimated >= hamt_threshold:
        return _hamt_shard(
            [
                (_murmur3_64(n.encode("utf-8")), n, link)
                for n, link in zip(names, links, strict=True)
            ],
            0,
            tally,
        )
    ordered = sorted(links, key=lambda link: (link.name or "").encode("utf-8"))
    cid, size = tally.block(_encode_dir(ordered))
    return cid, size + sum(link.tsize or 0 for link in ordered)


# -- HAMT ------------------------------------------------------------------------------

_M64 = 0xFFFFFFFFFFFFFFFF
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


def _murmur3_64(data: bytes) -> bytes:
    """murmur3 x64 128 (seed 0), first 64 bits big-endian: the HAMT hash of a name."""
    h1 = h2 = 0
    length = len(data)
    blocks = length // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        k2 = (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[16 * blocks :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _M64
    return h1.to_bytes(8, "big")


def _hamt_shard(
    entries: list[tuple[bytes, str, PBLink]], depth: int, tally: _Tally
) -> tuple[CID, int]:
    """One shard over ``entries`` (hash, name, link) that agree on ``depth`` hash bytes.

    Without deletions boxo's trie is canonical: at each level entries are grouped by
    the next hash byte; a group of one is a value link ``XXname``, a bigger group a
    child shard linked as ``XX``.
    """
    if depth >= 8:
        raise VaultUnsupportedInput(
            "HAMT directory too deep (names with colliding hashes)", code="vault.hamt_too_deep"
        )
    groups: dict[int, list[tuple[bytes, str, PBLink]]] = {}
    for entry in entries:
        groups.setdefault(entry[0][depth], []).append(entry)
    links: list[PBLink] = []
    bitfield = 0
    for index in sorted(groups):
        group = groups[index]
        bitfield |= 1 << index
        prefix = f"{index:02X}"
        if len(group) == 1:
            _, name, link = group[0]
            links.append(PBLink(link.cid, prefix + name, link.tsize))
        else:
            cid, tsize = _hamt_shard(group, depth + 1, tally)
            links.append(PBLink(cid, prefix, tsize))
    data = dagpb.encode_unixfs(
        UnixFSData(
            DataType.HAMT_SHARD,
            bitfield.to_bytes(HAMT_FANOUT // 8, "big").lstrip(b"\0"),
            hash_type=HAMT_HASH_MURMUR3,
            fanout=HAMT_FANOUT,
        )
    )
    # boxo sorts links by name bytes on encode; fixed-width upper-case hex keeps that
    # the index order, then the name order.
    links.sort(key=lambda link: (link.name or "").encode("utf-8"))
    cid, size = tally.block(dagpb.encode_node(PBNode(tuple(links), data)))
    return cid, size + sum(link.tsize or 0 for link in links)


# -- reading ---------------------------------------------------------------------------


def _decode(cid: CID, block: bytes) -> tuple[PBNode, UnixFSData]:
    if cid.codec != DAG_PB:
        raise VaultBlockCorrupt(f"block {cid.encode()} has codec {cid.codec_name}, not dag-pb")
    node = dagpb.decode_node(block, cid)
    return node, dagpb.node_unixfs(node, cid)


def _not_a(cid: CID, what: str, kind: DataType) -> VaultError:
    names = {
        DataType.DIRECTORY: "a directory",
        DataType.HAMT_SHARD: "a directory",
        DataType.SYMLINK: "a symlink",
        DataType.FILE: "a file",
        DataType.RAW: "a file",
        DataType.METADATA: "a metadata node",
    }
    return VaultError(
        f"{cid.encode()} is {names[kind]}, not {what}",
        code=f"vault.not_a_{what.rsplit(maxsplit=1)[-1]}",
    )


def iter_file(cid: CID, get: Get) -> Iterator[bytes]:
    """The bytes of the file at ``cid``, chunk by chunk, in order.

    Memory: one block per tree level (a depth-first walk with an explicit stack).
    """
    if cid.codec == RAW:
        yield get(cid)
        return
    node, fs = _decode(cid, get(cid))
    if fs.type not in (DataType.FILE, DataType.RAW):
        raise _not_a(cid, "a file", fs.type)
    expected = fs.filesize
    produced = 0
    if fs.data:
        produced += len(fs.data)
        yield fs.data
    # Each level: the links of one node and the index of the next one to read.
    stack: list[tuple[tuple[PBLink, ...], int]] = [(node.links, 0)]
    while stack:
        links, index = stack[-1]
        if index >= len(links):
            stack.pop()
            continue
        stack[-1] = (links, index + 1)
        child = links[index].cid
        block = get(child)
        if child.codec == RAW:
            produced += len(block)
            _check_declared(cid, expected, produced)
            yield block
            continue
        cnode, cfs = _decode(child, block)
        if cfs.type not in (DataType.FILE, DataType.RAW):
            raise VaultBlockCorrupt(
                f"file {cid.encode()} links to {child.encode()}, a UnixFS {cfs.type.name.lower()}"
            )
        if cfs.data:
            produced += len(cfs.data)
            _check_declared(cid, expected, produced)
            yield cfs.data
        stack.append((cnode.links, 0))
    if expected is not None and produced != expected:
        raise VaultBlockCorrupt(
            f"file {cid.encode()} declares {expected} bytes but its blocks hold {produced}"
        )


def _check_declared(cid: CID, expected: int | None, produced: int) -> None:
    # Stop a file that yields more than it declares before the excess is written.
    if expected is not None and produced > expected:
        raise VaultBlockCorrupt(
            f"file {cid.encode()} declares {expected} bytes but its blocks hold more"
        )


def read_file(cid: CID, get: Get) -> bytes:
    """The whole file in memory (for small files)."""
    return b"".join(iter_file(cid, get))


def walk(cid: CID, get: Get, *, seen: set[CID] | None = None) -> Iterator[tuple[CID, bytes]]:
    """Every block of the DAG under ``cid`` once, depth-first pre-order (parents before
    children, links in order): the order ``ipfs dag export`` writes. ``seen`` lets
    several walks share one de-duplication set."""
    seen = set() if seen is None else seen
    if cid in seen:
        return
    seen.add(cid)
    block = get(cid)
    yield cid, block
    stack: list[Iterator[CID]] = [iter(dagpb.links(cid, block))]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        if child in seen:
            continue
        seen.add(child)
        block = get(child)
        yield child, block
        children = dagpb.links(child, block)
        if children:
            stack.append(iter(children))


def _entry_type(fs_type: DataType) -> EntryType:
    if fs_type in (DataType.DIRECTORY, DataType.HAMT_SHARD):
        return "directory"
    if fs_type == DataType.SYMLINK:
        return "symlink"
    return "file"


def stat(cid: CID, get: Get) -> Stat:
    """Type and size of the node at ``cid`` (one block read)."""
    block = get(cid)
    if cid.codec == RAW:
        return Stat(cid, "file", len(block), len(block))
    node, fs = _decode(cid, block)
    kind = _entry_type(fs.type)
    cumulative = len(block) + sum(link.tsize or 0 for link in node.links)
    if kind == "directory":
        size = 0
    elif kind == "symlink":
        size = len(fs.data or b"")
    elif fs.filesize is not None:
        size = fs.filesize
    else:
        size = len(fs.data or b"") + sum(fs.blocksizes)
    return Stat(cid, kind, size, cumulative)


def _dir_links(cid: CID, node: PBNode, fs: UnixFSData, get: Get) -> Iterator[PBLink]:
    """Links of a directory (basic, or every value of a HAMT), with their real names."""
    if fs.type == DataType.DIRECTORY:
        yield from node.links
        return
    if fs.type != DataType.HAMT_SHARD:
        raise _not_a(cid, "a directory", fs.type)
    fanout = fs.fanout or HAMT_FANOUT
    pad = len(f"{fanout - 1:X}")
    stack: list[tuple[CID, Iterator[PBLink]]] = [(cid, iter(node.links))]
    while stack:
        shard, links = stack[-1]
        link = next(links, None)
        if link is None:
            stack.pop()
            continue
        name = link.name or ""
        if len(name) < pad:
            raise VaultBlockCorrupt(f"HAMT shard {shard.encode()} has a link named {name!r}")
        if len(name) > pad:
            yield PBLink(link.cid, name[pad:], link.tsize)
            continue
        child_node, child_fs = _decode(link.cid, get(link.cid))
        if child_fs.type != DataType.HAMT_SHARD:
            raise VaultBlockCorrupt(f"HAMT shard {shard.encode()} links to a non-shard {link.cid}")
        stack.append((link.cid, iter(child_node.links)))


def ls(cid: CID, get: Get) -> list[DirEntry]:
    """Entries of the directory at ``cid``, in name order, each with type and size."""
    if cid.codec == RAW:
        raise _not_a(cid, "a directory", DataType.RAW)
    node, fs = _decode(cid, get(cid))
    entries = []
    for link in _dir_links(cid, node, fs, get):
        info = stat(link.cid, get)
        entries.append(DirEntry(link.name or "", link.cid, info.size, info.type))
    entries.sort(key=lambda e: e.name.encode("utf-8"))
    return entries


def _safe_name(name: str, parent: CID) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise VaultBlockCorrupt(
            f"directory {parent.encode()} holds an unsafe entry name {name!r}",
            hint="The DAG was crafted or damaged; it is not exported.",
        )
    return name


def disk_budget(directory: str | os.PathLike[str]) -> int:
    """Bytes an export may write under ``directory``: its file system's free space less
    :data:`DISK_RESERVE` of its size."""
    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return 1 << 62  # no figure: the other limits still hold
    return max(0, usage.free - int(usage.total * DISK_RESERVE))


def export_to_path(
    cid: CID,
    get: Get,
    dest: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    max_entries: int = MAX_EXPORT_ENTRIES,
) -> None:
    """Write the file, directory tree or symlink at ``cid`` to ``dest``, which must not
    exist yet. Entry names are checked: nothing is written outside ``dest``, and no
    symlink that leads out of it is made. At most ``max_bytes`` file bytes (and never
    more than :func:`disk_budget`) and ``max_entries`` entries are written; on any
    error ``dest`` is removed again."""
    target = Path(dest)
    if target.exists() or target.is_symlink():
        raise VaultExists(
            f"{target} exists already",
            code="vault.exists",
            hint="Choose a new output path or remove the old one.",
        )
    byte_limit = disk_budget(target.parent)
    if max_bytes is not None:
        byte_limit = min(byte_limit, max_bytes)
    export = _Export(get, target, _Budget(cid, byte_limit, max_entries, target.parent))
    try:
        export.node(cid, target, 0)
        export.check_links()
    except BaseException as exc:
        _remove(target)
        if isinstance(exc, RecursionError):
            raise VaultBlockCorrupt(
                f"{cid.encode()} nests directories too deep to export"
            ) from None
        if isinstance(exc, OSError):
            raise VaultError(
                f"cannot write {exc.filename or target}: {exc.strerror or exc}",
                code="vault.write_failed",
            ) from exc
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@dataclass
class _Budget:
    root: CID
    max_bytes: int
    max_entries: int
    where: Path
    bytes: int = 0
    entries: int = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise VaultExportTooLarge(
                f"{self.root.encode()} expands to more than {self.max_entries} entries",
                details={"limit_entries": self.max_entries},
            )

    def data(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise VaultExportTooLarge(
                f"{self.root.encode()} expands to more than {self.max_bytes} bytes "
                f"(the most this export may write under {self.where})",
                details={"limit_bytes": self.max_bytes},
            )


@dataclass
class _Export:
    get: Get
    top: Path
    budget: _Budget
    links: list[Path] = field(default_factory=list)

    def node(self, cid: CID, target: Path, depth: int) -> None:
        """Write ``cid`` at ``target``, whose folder is ``depth`` directories below the
        output directory (the top path itself for a tree, the folder holding the top
        path for a file or symlink)."""
        get = self.get
        self.budget.entry()
        if cid.codec == RAW:
            block = get(cid)
            self.budget.data(len(block))
            with target.open("xb") as fh:
                fh.write(block)
            return
        node, fs = _decode(cid, get(cid))
        if fs.type in (DataType.FILE, DataType.RAW):
            with target.open("xb") as fh:
                for piece in iter_file(cid, get):
                    self.budget.data(len(piece))
                    fh.write(piece)
        elif fs.type == DataType.SYMLINK:
            points_to = fs.data or b""
            _check_link_target(cid, points_to, depth)
            target.symlink_to(os.fsdecode(points_to))
            self.links.append(target)
        elif fs.type in (DataType.DIRECTORY, DataType.HAMT_SHARD):
            target.mkdir()
            # The top directory is the output directory: its entries sit at depth 0.
            inner = 0 if target == self.top else depth + 1
            for link in _dir_links(cid, node, fs, get):
                self.node(link.cid, target / _safe_name(link.name or "", cid), inner)
        else:
            raise VaultBlockCorrupt(f"{cid.encode()} is a UnixFS {fs.type.name.lower()} node")

    def check_links(self) -> None:
        """Links may each stay inside yet lead out together (``d -> ..`` beside
        ``e -> d/..``): resolve every one in the finished tree."""
        if not self.links:
            return
        base = self.top if self.top.is_dir() and not self.top.is_symlink() else self.top.parent
        root = os.path.realpath(base)
        for link in self.links:
            real = os.path.realpath(link)
            if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
                raise VaultUnsafeSymlink(
                    f"the symlink {link.relative_to(base)} -> {link.readlink()} leads out of "
                    "the output directory (through other links of the same DAG)"
                )


def _check_link_target(cid: CID, target: bytes, depth: int) -> None:
    """Refuse a symlink target that is absolute or climbs above the output directory
    from a link ``depth`` directories below it."""
    text = os.fsdecode(target)
    if not target or "\0" in text or text.startswith("/"):
        raise VaultUnsafeSymlink(
            f"symlink {cid.encode()} points to {text!r}: an absolute (or empty) target"
        )
    level = depth
    for part in text.split("/"):
        if part in ("", "."):
            continue
        level = level - 1 if part == ".." else level + 1
        if level < 0:
            raise VaultUnsafeSymlink(
                f"symlink {cid.encode()} points to {text!r}, out of the output directory"
            )
