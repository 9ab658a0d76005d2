"""Append-only pack files: the local store's blocks, many to a file.

A pack (``packs/<ID>.pack``) starts with :data:`MAGIC`; then one record per block::

    length (4 bytes, big-endian) | sha2-256 digest (32 bytes) | the block's bytes

Each writing store appends to a pack of its own (a new ``ID`` per store, so two
processes never write one file); the index (a table next to the pins) maps a digest to
``(pack, offset, length)``. A record's header repeats its length and digest, so a pack
can be read without the index: gc counts what a killed writer left, and a lost index
can be rebuilt. Reads always hash the bytes against the CID asked for.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SAHPACK1"
SUFFIX = ".pack"
HEADER = struct.Struct(">I32s")
#: A store starts a new pack once its current one holds this many bytes.
PACK_MAX = 1 << 30
#: Appended bytes whose write-back a writer starts at once, without waiting for it.
WRITEBACK_BYTES = 16 << 20


def new_pack_name() -> str:
    """A name no other store picks: the time in ns, then random bits."""
    return f"{time.time_ns():016x}-{os.urandom(4).hex()}{SUFFIX}"


@dataclass(frozen=True)
class Record:
    digest: bytes
    offset: int  # of the block's bytes, after the record header
    length: int


def scan(path: Path) -> Iterator[Record]:
    """Every whole record of a pack, in order; a torn tail (a killed writer) ends it."""
    with path.open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            return
        size = os.fstat(handle.fileno()).st_size
        position = len(MAGIC)
        while position + HEADER.size <= size:
            handle.seek(position)
            length, digest = HEADER.unpack(handle.read(HEADER.size))
            start = position + HEADER.size
            if start + length > size:
                return
            yield Record(digest, start, length)
            position = start + length


def write_all(fd: int, parts: list[bytes | memoryview]) -> int:
    """Append ``parts`` with as few system calls as the kernel allows; returns bytes."""
    total = sum(len(p) for p in parts)
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        written = os.writev(fd, views[:1024])
        while written and views:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0
    return total


class PackWriter:
    """One open pack a store appends to (not thread-safe: the store serialises)."""

    def __init__(self, directory: Path) -> None:
        self.name = new_pack_name()
        self.path = directory / self.name
        self.fd = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self.size = write_all(self.fd, [MAGIC])
        self.dirty = True
        self._flushed = 0  # bytes whose write-back has been started

    def append(self, blocks: Sequence[tuple[bytes, bytes]]) -> list[Record]:
        """Append ``(digest, data)`` records; returns where each block's bytes are."""
        parts: list[bytes | memoryview] = []
        records = []
        position = self.size
        for digest, data in blocks:
            parts.append(HEADER.pack(len(data), digest))
            parts.append(data)
            records.append(Record(digest, position + HEADER.size, len(data)))
            position += HEADER.size + len(data)
        self.size += write_all(self.fd, parts)
        self.dirty = True
        if self.size - self._flushed >= WRITEBACK_BYTES and hasattr(os, "posix_fadvise"):
            # Start writing the new bytes back now (as PostgreSQL's pg_flush_data does
            # where sync_file_range is missing): the disk works while the add hashes on,
            # and the one sync before the add is recorded finds little left to do.
            os.posix_fadvise(
                self.fd, self._flushed, self.size - self._flushed, os.POSIX_FADV_DONTNEED
            )
            self._flushed = self.size
        return records

    def sync(self) -> None:
        if self.dirty:
            os.fdatasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        os.close(self.fd)
