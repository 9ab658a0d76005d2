"""The add of one file, as a pipeline: read, encrypt, hash on threads, store in order.

::

    this thread: readinto reused plaintext buffers, a batch (2 MiB) at a time
        ├─> plaintext sha256, one thread, batches in order          (private adds)
        ├─> AES-256-GCM segments sealed straight into one stream buffer per batch
        │   (Encryptor.seal_into); the stream cut into 256 KiB leaves, each a view of
        │   that buffer: no copies                                    (private adds)
        └─> the batch's leaves hashed on HASH_THREADS threads (hashlib lets go of the
            GIL), while this thread reads and seals the next batches
    then, batch by batch in order: each leaf with its digest -> the sink (batched
    writes on the sink's thread) and FileImporter.link_leaf (the DAG)

A public add is the same without the encryption and the plaintext hash: the read
buffers are cut into leaves. The leaves and the DAG are those of ``FileImporter.write``
over the same stream (the CIDs ``ipfs add --cid-version=1`` prints for a public file),
and the stream is that of ``Encryptor.write``. Buffers are reused once the sink has
written what was cut from them: fresh memory for every batch costs a page fault per
4 KiB, as much as hashing it. The leaf's sha256 is its CID's digest and its pack
record's: nothing is hashed twice.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Protocol

from sahara_cli.vault import crypto, unixfs
from sahara_cli.vault.cid import CID

#: Plaintext bytes read, sealed and hashed as one batch (8 segments, 8 leaves).
BATCH_BYTES = 2 << 20
#: Threads that hash the leaves of an add (this thread reads, encrypts and links).
HASH_THREADS = 2
#: Batches whose leaves may be hashing while this thread reads on.
AHEAD = 3


class Sink(Protocol):
    """Where blocks go: ``put`` them, and ``checkpoint`` for when they are written."""

    def put(self, cid: CID, data: bytes) -> None: ...

    def checkpoint(self) -> Future[None] | None:
        """Send what was put; the future is done once all of it is written."""


@dataclass(frozen=True)
class Ingested:
    result: unixfs.ImportResult
    #: Plaintext bytes read.
    size: int
    #: ``0x`` + the plaintext's sha256 (private adds), else "".
    digest: str


def _digests(leaves: list[memoryview]) -> list[bytes]:
    return [hashlib.sha256(leaf).digest() for leaf in leaves]


def _fill(handle: IO[bytes], view: memoryview) -> int:
    """Read until ``view`` is full or the file ends; bytes read."""
    got = 0
    while got < len(view):
        count = handle.readinto(view[got:])  # type: ignore[attr-defined]
        if not count:
            break
        got += count
    return got


class _Pool:
    """Stream buffers, reused once the sink has written the leaves cut from them."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        self.free: list[bytearray] = []
        self.retiring: deque[tuple[bytearray, Future[None] | None]] = deque()
        self.made = 0

    def take(self) -> bytearray:
        while self.retiring and (self.retiring[0][1] is None or self.retiring[0][1].done()):
            self.free.append(self.retiring.popleft()[0])
        if not self.free and self.made >= self.limit and self.retiring:
            buffer, written = self.retiring.popleft()
            if written is not None:
                written.result()
            self.free.append(buffer)
        if self.free:
            return self.free.pop()
        self.made += 1
        return bytearray(self.size)

    def retire(self, buffer: bytearray, written: Future[None] | None) -> None:
        self.retiring.append((buffer, written))


class _Pipeline:
    """Leaves cut from stream buffers, hashed ahead, stored and linked in order."""

    def __init__(
        self,
        sink: Sink,
        importer: unixfs.FileImporter,
        hasher: Executor,
        pool: _Pool,
        chunk: int,
        copy: bool,
    ) -> None:
        self.sink = sink
        self.importer = importer
        self.hasher = hasher
        self.pool = pool
        self.chunk = chunk
        self.copy = copy
        self.pending: deque[tuple[bytearray, list[memoryview], Future[list[bytes]]]] = deque()

    def cut(self, buffer: bytearray, used: int, *, final: bool) -> int:
        """Hash the whole leaves of ``buffer[:used]`` (with ``final``, the short rest
        too) on the hasher; returns where the uncut rest starts."""
        chunk = self.chunk
        whole = used // chunk
        end = used if final else whole * chunk
        view = memoryview(buffer)
        leaves = [view[start : min(start + chunk, end)] for start in range(0, end, chunk)]
        self.pending.append((buffer, leaves, self.hasher.submit(_digests, leaves)))
        while len(self.pending) > AHEAD:
            self.settle()
        return end

    def settle(self) -> None:
        buffer, leaves, hashed = self.pending.popleft()
        for leaf, digest in zip(leaves, hashed.result(), strict=True):
            cid = self.importer.link_leaf(digest, len(leaf))
            # A store that copies the bytes out before put_many returns (the local
            # packs) takes the view; any other gets bytes of its own.
            self.sink.put(cid, bytes(leaf) if self.copy else leaf)  # type: ignore[arg-type]
        self.pool.retire(buffer, None if self.copy else self.sink.checkpoint())

    def finish(self) -> unixfs.ImportResult:
        while self.pending:
            self.settle()
        return self.importer.finish()


def ingest(
    handle: IO[bytes],
    sink: Sink,
    *,
    key: bytes | None = None,
    progress: Callable[[int], None] = lambda _n: None,
    views: bool = True,
    batch_bytes: int = BATCH_BYTES,
    segment_log2: int = crypto.DEFAULT_SEGMENT_LOG2,
    chunk_size: int = unixfs.CHUNK_SIZE,
) -> Ingested:
    """Import the file open as ``handle`` (unbuffered) into ``sink``; with ``key``,
    encrypted under it (:class:`~sahara_cli.vault.crypto.Encryptor`'s stream).

    ``views``: the sink's store copies each block before its write returns, so it may
    get views of buffers that are reused after ``sink.checkpoint()``'s future is done.
    """
    importer = unixfs.FileImporter(sink.put, chunk_size=chunk_size)
    segment = 1 << segment_log2
    segments = max(1, batch_bytes // segment)
    batch = segments * segment
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="vault-hash") as hasher:
        if key is None:
            pool = _Pool(batch, AHEAD + 4)
            pipe = _Pipeline(sink, importer, hasher, pool, chunk_size, not views)
            size = _plain(handle, pipe, pool, batch, progress)
            return Ingested(pipe.finish(), size, "")
        # A batch's stream: what the last one left uncut, then its sealed segments.
        room = chunk_size + crypto.HEADER_SIZE + (segments + 1) * (segment + crypto.TAG_SIZE)
        pool = _Pool(room, AHEAD + 4)
        pipe = _Pipeline(sink, importer, hasher, pool, chunk_size, not views)
        with ThreadPoolExecutor(1, thread_name_prefix="vault-digest") as digester:
            size, digest = _sealed(
                handle, pipe, pool, digester, key, segment_log2, segments, progress
            )
            return Ingested(pipe.finish(), size, digest)


def _plain(
    handle: IO[bytes], pipe: _Pipeline, pool: _Pool, batch: int, progress: Callable[[int], None]
) -> int:
    size = 0
    while True:
        buffer = pool.take()
        count = _fill(handle, memoryview(buffer)[:batch])
        size += count
        progress(count)
        if count:
            pipe.cut(buffer, count, final=count < batch)
        else:
            pool.retire(buffer, None)
        if count < batch:
            return size


def _sealed(
    handle: IO[bytes],
    pipe: _Pipeline,
    pool: _Pool,
    digester: Executor,
    key: bytes,
    segment_log2: int,
    segments: int,
    progress: Callable[[int], None],
) -> tuple[int, str]:
    encryptor = crypto.Encryptor(key, lambda _header: None, segment_log2=segment_log2)
    segment = 1 << segment_log2
    batch = segments * segment
    digest = hashlib.sha256()
    # Plaintext buffers in turn; each waits for its hash before it is read into again.
    plains = [bytearray(batch) for _ in range(3)]
    hashing: list[Future[None] | None] = [None] * len(plains)
    rest = bytes(encryptor.header)  # stream bytes not cut into leaves yet
    # A full batch's last segment waits for the next read: it is the stream's last
    # segment if nothing follows.
    held: memoryview | None = None
    size = 0
    turn = 0
    while True:
        slot = turn % len(plains)
        turn += 1
        waiting = hashing[slot]
        if waiting is not None:
            waiting.result()
        view = memoryview(plains[slot])
        count = _fill(handle, view)
        size += count
        end = count < batch
        if count:
            hashing[slot] = digester.submit(digest.update, view[:count])
        todo: list[tuple[memoryview, bool]] = []
        if held is not None:
            todo.append((held, count == 0))
            held = None
        pieces = [view[start : min(start + segment, count)] for start in range(0, count, segment)]
        if pieces and not end:
            held = pieces.pop()
        todo += [(piece, end and i == len(pieces) - 1) for i, piece in enumerate(pieces)]
        if end and not todo:
            todo.append((view[:0], True))  # empty content: one empty final segment
        stream = pool.take()
        out = memoryview(stream)
        out[: len(rest)] = rest
        position = len(rest)
        for piece, last in todo:
            length = len(piece) + crypto.TAG_SIZE
            encryptor.seal_into(piece, out[position : position + length], last=last)
            position += length
        out.release()
        cut = pipe.cut(stream, position, final=end)
        rest = bytes(memoryview(stream)[cut:position])
        progress(count)
        if end:
            for waiting in hashing:
                if waiting is not None:
                    waiting.result()
            return size, "0x" + digest.hexdigest()
