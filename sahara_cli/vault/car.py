"""CAR (Content Addressable aRchive) files: v1 written and read, v2 read.

A CARv1 is ``varint(len(header)) header`` followed by sections
``varint(len(cid) + len(block)) cid block``. The header is the dag-cbor map
``{"roots": [CID, ...], "version": 1}`` (keys in dag-cbor's canonical order, CIDs as
tag 42 over the bytes ``0x00 || cid``); it is encoded and decoded here by hand.

A CARv2 starts with the 11-byte pragma ``0a a1 67 "version" 02``, then a 40-byte
header (characteristics, then little-endian data offset, data size and index
offset) and carries a CARv1 at the data offset; :func:`read_car` reads that payload
and ignores the index.

:func:`export_dag` writes blocks depth-first in pre-order, each once: the order and
bytes of ``ipfs dag export`` for the same DAG.

Reading streams: blocks are yielded as they are read, each checked against its CID
(:class:`~sahara_cli.errors.VaultBlockCorrupt`); a malformed file raises
:class:`~sahara_cli.errors.VaultCarInvalid` with one line saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, Protocol

from sahara_cli.errors import VaultBlockCorrupt, VaultCarInvalid, VaultCidInvalid
from sahara_cli.vault.cid import CID, varint

#: go-car's default limits: a header or a section above these is refused.
MAX_HEADER_SIZE = 32 << 20
MAX_SECTION_SIZE = 8 << 20

CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")
_V2_HEADER_SIZE = 40
_CID_TAG = 42


class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# -- dag-cbor, just what a CAR header needs -------------------------------------------


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes((major << 5 | extra,)) + value.to_bytes(width, "big")
    raise ValueError("CBOR value too large")


def _cbor_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _cbor_head(3, len(raw)) + raw


def encode_header(roots: Sequence[CID], version: int = 1) -> bytes:
    """The dag-cbor CARv1 header (without its length prefix)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_text("roots") + _cbor_head(4, len(roots))
    for root in roots:
        link = b"\x00" + root.bytes
        out += _cbor_head(6, _CID_TAG) + _cbor_head(2, len(link)) + link
    out += _cbor_text("version") + _cbor_head(0, version)
    return bytes(out)


class _CborError(ValueError):
    pass


class _Cbor:
    """A strict little decoder: unsigned ints, bytes, text, arrays, maps, tag 42,
    booleans and null; definite lengths only (dag-cbor's rules)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise _CborError("truncated CBOR")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        if info > 27:
            raise _CborError("indefinite length or reserved CBOR item")
        return major, int.from_bytes(self._take(1 << (info - 24)), "big")

    def item(self, depth: int = 0) -> object:
        if depth > 16:
            raise _CborError("CBOR nested too deep")
        start = self.pos
        major, value = self._head()
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self._take(value)
        if major == 3:
            try:
                return self._take(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _CborError("CBOR text is not UTF-8") from None
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            return self._map(value, depth)
        if major == 6:
            return self._link(value, depth)
        simple = {20: False, 21: True, 22: None}
        if self.pos == start + 1 and value in simple:  # false, true, null: one byte each
            return simple[value]
        raise _CborError("unsupported CBOR item (floats and undefined are not in a header)")

    def _map(self, count: int, depth: int) -> dict[object, object]:
        out: dict[object, object] = {}
        for _ in range(count):
            key = self.item(depth + 1)
            if not isinstance(key, str) or key in out:
                raise _CborError("CBOR map keys must be distinct strings")
            out[key] = self.item(depth + 1)
        return out

    def _link(self, tag: int, depth: int) -> CID:
        if tag != _CID_TAG:
            raise _CborError(f"CBOR tag {tag} (dag-cbor allows only 42)")
        raw = self.item(depth + 1)
        if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
            raise _CborError("tag 42 must hold bytes starting with 0x00")
        try:
            cid, end = CID.from_bytes(raw, 1)
        except VaultCidInvalid as exc:
            raise _CborError(exc.message) from None
        if end != len(raw):
            raise _CborError("CID with trailing bytes")
        return cid


def decode_header(data: bytes) -> dict[object, object]:
    """Decode a CAR header's dag-cbor map. Raises VaultCarInvalid."""
    reader = _Cbor(data)
    try:
        doc = reader.item()
    except _CborError as exc:
        raise VaultCarInvalid(f"bad CAR header: {exc}") from None
    if reader.pos != len(data):
        raise VaultCarInvalid("bad CAR header: trailing bytes after the header map")
    if not isinstance(doc, dict):
        raise VaultCarInvalid("bad CAR header: not a map")
    return doc


# -- writing ---------------------------------------------------------------------------


def write_header(out: _Writable, roots: Sequence[CID]) -> int:
    """Write the CARv1 header; returns the bytes written."""
    header = encode_header(roots)
    prefix = varint(len(header))
    out.write(prefix + header)
    return len(prefix) + len(header)


def write_section(out: _Writable, cid: CID, block: bytes) -> int:
    """Write one block section; returns the bytes written."""
    raw = cid.bytes
    prefix = varint(len(raw) + len(block))
    out.write(prefix + raw)
    out.write(block)
    return len(prefix) + len(raw) + len(block)


def write_car(
    out: BinaryIO | _Writable, roots: Sequence[CID], blocks: Iterable[tuple[CID, bytes]]
) -> int:
    """Write a CARv1 of ``roots`` and ``blocks`` (in the order given); returns its size."""
    written = write_header(out, roots)
    for cid, block in blocks:
        written += write_section(out, cid, block)
    return written


def export_dag(out: BinaryIO | _Writable, roots: Sequence[CID], get: Callable[[CID], bytes]) -> int:
    """Write the whole DAG under each root, depth-first pre-order, each block once:
    byte for byte what ``ipfs dag export`` writes for one root."""
    from sahara_cli.vault.unixfs import walk

    seen: set[CID] = set()

    def blocks() -> Iterator[tuple[CID, bytes]]:
        for root in roots:
            yield from walk(root, get, seen=seen)

    return write_car(out, roots, blocks())


# -- reading ---------------------------------------------------------------------------


class _Source:
    """Reads exact byte counts from a file-like object (short reads are retried) and
    counts the bytes taken, optionally up to a limit (a CARv2's data size)."""

    def __init__(self, inp: _Readable) -> None:
        self.inp = inp
        self.offset = 0
        self.limit: int | None = None

    def read(self, count: int) -> bytes:
        if self.limit is not None:
            count = min(count, self.limit - self.offset)
        parts = []
        need = count
        while need > 0:
            piece = self.inp.read(need)
            if not piece:
                break
            parts.append(piece)
            need -= len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.offset += len(data)
        return data

    def exact(self, count: int, what: str) -> bytes:
        data = self.read(count)
        if len(data) != count:
            raise VaultCarInvalid(
                f"truncated CAR: {what} ends after {len(data)} of {count} bytes "
                f"(at offset {self.offset})"
            )
        return data

    def varint(self, what: str) -> int | None:
        """A varint, or None at a clean end of input."""
        value = 0
        shift = 0
        for index in range(10):
            byte = self.read(1)
            if not byte:
                if index == 0:
                    return None
                raise VaultCarInvalid(f"truncated CAR: {what} length cut short")
            value |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return value
            shift += 7
        raise VaultCarInvalid(f"bad CAR: {what} length is not a varint")


def _read_header(src: _Source) -> dict[object, object]:
    length = src.varint("header")
    if length is None:
        raise VaultCarInvalid("not a CAR: the file is empty")
    if length == 0 or length > MAX_HEADER_SIZE:
        raise VaultCarInvalid(f"bad CAR header: length {length}")
    return decode_header(src.exact(length, "the header"))


def _roots(header: dict[object, object]) -> list[CID]:
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise VaultCarInvalid("bad CAR header: 'roots' is not a list of CIDs")
    return [r for r in roots if isinstance(r, CID)]


def read_car(inp: BinaryIO | _Readable) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Open a CAR (v1, or v2 wrapping a v1): its roots now, its blocks as an iterator.

    The iterator reads ``inp`` as it goes; every block is checked against its CID.
    CIDv0 sections come back as CIDv0 (``cid.v1()`` converts).
    """
    src = _Source(inp)
    header = _read_header(src)
    version = header.get("version")
    if version == 2:
        if src.offset != len(CARV2_PRAGMA):
            raise VaultCarInvalid("bad CARv2: the pragma is not the canonical 11 bytes")
        fixed = src.exact(_V2_HEADER_SIZE, "the CARv2 header")
        data_offset = int.from_bytes(fixed[16:24], "little")
        data_size = int.from_bytes(fixed[24:32], "little")
        if data_offset < src.offset or data_size == 0:
            raise VaultCarInvalid(
                f"bad CARv2 header: data offset {data_offset}, data size {data_size}"
            )
        while src.offset < data_offset:  # padding before the payload
            src.exact(min(data_offset - src.offset, 1 << 16), "the CARv2 padding")
        src.limit = data_offset + data_size
        header = _read_header(src)
        version = header.get("version")
        if version != 1:
            raise VaultCarInvalid(f"bad CARv2: its payload is CAR version {version!r}, not 1")
    elif version != 1:
        raise VaultCarInvalid(f"bad CAR version {version!r}: only versions 1 and 2 are read")
    roots = _roots(header)
    return roots, _sections(src)


def _sections(src: _Source) -> Iterator[tuple[CID, bytes]]:
    while True:
        start = src.offset
        length = src.varint("section")
        if length is None:
            return
        if length == 0 and src.limit is not None:
            # go-car pads CARv2 payloads with zero bytes; treat zeros as the end.
            return
        if length == 0 or length > MAX_SECTION_SIZE:
            raise VaultCarInvalid(f"bad CAR section at offset {start}: length {length}")
        section = src.exact(length, f"the section at offset {start}")
        try:
            cid, pos = CID.from_bytes(section)
        except VaultCidInvalid as exc:
            raise VaultCarInvalid(f"bad CAR section at offset {start}: {exc.message}") from None
        block = section[pos:]
        if not cid.verify(block):
            raise VaultBlockCorrupt(
                f"block {cid.encode()} in the CAR (offset {start}) does not match its CID"
            )
        yield cid, block
