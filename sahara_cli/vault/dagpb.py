"""The dag-pb codec and the UnixFS ``Data`` message, encoded and decoded by hand.

dag-pb blocks are protobuf ``PBNode`` messages::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

The canonical byte order (the one go-codec-dagpb, and so Kubo, writes and the one
this module writes) puts every ``Links`` entry before ``Data``, and inside a link
``Hash``, ``Name``, ``Tsize``. Kubo always writes ``Name`` (empty for file chunks) and
``Tsize``; :func:`encode_node` writes what the :class:`PBLink` holds, so a decoded
block re-encodes to the same bytes.

UnixFS puts its own protobuf message in ``PBNode.Data``::

    message Data {
      required DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
      repeated uint64 blocksizes = 4; optional uint64 hashType = 5; optional uint64 fanout = 6;
      optional uint32 mode = 7; optional UnixTime mtime = 8;
    }

Malformed input raises :class:`~sahara_cli.errors.VaultBlockCorrupt` (naming the CID
when the caller gives one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from sahara_cli.errors import VaultBlockCorrupt, VaultCidInvalid
from sahara_cli.vault.cid import CID, DAG_PB, RAW, read_varint, varint

# Wire types.
_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


class DataType(IntEnum):
    """UnixFS node types."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    """One dag-pb link. ``name``/``tsize`` of ``None`` are absent on the wire."""

    cid: CID
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    """A dag-pb node: ordered links and optional opaque data."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """The UnixFS message carried in ``PBNode.data``."""

    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default=())
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    #: ``(seconds, nanoseconds or None)`` when present.
    mtime: tuple[int, int | None] | None = None


class _Malformed(ValueError):
    """Internal: a parse error; turned into VaultBlockCorrupt at the API boundary."""


def _where(cid: CID | None) -> str:
    return f" in block {cid.encode()}" if cid is not None else ""


# -- protobuf primitives ------------------------------------------------------------


def _key(field_no: int, wire: int) -> bytes:
    return varint((field_no << 3) | wire)


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, _LEN) + varint(len(payload)) + payload


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    try:
        return read_varint(data, pos)
    except ValueError as exc:
        raise _Malformed(str(exc)) from None


def _read_key(data: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    key, pos = _read_varint(data, pos)
    field_no, wire = key >> 3, key & 7
    if field_no == 0:
        raise _Malformed("protobuf field number 0")
    return field_no, wire, pos


def _read_bytes(data: bytes | memoryview, pos: int) -> tuple[memoryview, int]:
    length, pos = _read_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise _Malformed("truncated length-delimited field")
    return memoryview(data)[pos:end], end


def _skip(data: bytes | memoryview, pos: int, wire: int) -> int:
    if wire == _VARINT:
        return _read_varint(data, pos)[1]
    if wire == _I64:
        pos += 8
    elif wire == _I32:
        pos += 4
    elif wire == _LEN:
        return _read_bytes(data, pos)[1]
    else:
        raise _Malformed(f"unsupported protobuf wire type {wire}")
    if pos > len(data):
        raise _Malformed("truncated fixed-width field")
    return pos


# -- dag-pb ---------------------------------------------------------------------------


def encode_link(link: PBLink) -> bytes:
    body = _len_field(1, link.cid.bytes)
    if link.name is not None:
        body += _len_field(2, link.name.encode("utf-8"))
    if link.tsize is not None:
        body += _key(3, _VARINT) + varint(link.tsize)
    return body


def encode_node(node: PBNode) -> bytes:
    """Canonical dag-pb bytes: links first (field 2), then data (field 1)."""
    parts = [_len_field(2, encode_link(link)) for link in node.links]
    if node.data is not None:
        parts.append(_len_field(1, node.data))
    return b"".join(parts)


def _decode_link(data: memoryview) -> PBLink:
    cid: CID | None = None
    name: str | None = None
    tsize: int | None = None
    pos = 0
    last = 0
    while pos < len(data):
        field_no, wire, pos = _read_key(data, pos)
        if field_no <= last:
            raise _Malformed("PBLink fields out of order or repeated")
        last = field_no
        if field_no == 1 and wire == _LEN:
            raw, pos = _read_bytes(data, pos)
            try:
                cid, end = CID.from_bytes(raw)
            except VaultCidInvalid as exc:
                raise _Malformed(f"link hash: {exc.message}") from None
            if end != len(raw):
                raise _Malformed("link hash has trailing bytes")
        elif field_no == 2 and wire == _LEN:
            raw, pos = _read_bytes(data, pos)
            try:
                name = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed("link name is not UTF-8") from None
        elif field_no == 3 and wire == _VARINT:
            tsize, pos = _read_varint(data, pos)
        else:
            raise _Malformed(f"unexpected PBLink field {field_no} (wire type {wire})")
    if cid is None:
        raise _Malformed("PBLink without Hash")
    return PBLink(cid, name, tsize)


def decode_node(block: bytes | memoryview, cid: CID | None = None) -> PBNode:
    """Parse dag-pb bytes. Raises VaultBlockCorrupt on anything malformed."""
    data = memoryview(block)
    links: list[PBLink] = []
    payload: bytes | None = None
    pos = 0
    try:
        while pos < len(data):
            field_no, wire, pos = _read_key(data, pos)
            if field_no == 2 and wire == _LEN:
                if payload is not None:
                    raise _Malformed("PBNode Links after Data")
                raw, pos = _read_bytes(data, pos)
                links.append(_decode_link(raw))
            elif field_no == 1 and wire == _LEN:
                if payload is not None:
                    raise _Malformed("PBNode has two Data fields")
                raw, pos = _read_bytes(data, pos)
                payload = bytes(raw)
            else:
                raise _Malformed(f"unexpected PBNode field {field_no} (wire type {wire})")
    except _Malformed as exc:
        raise VaultBlockCorrupt(f"malformed dag-pb{_where(cid)}: {exc}") from None
    return PBNode(tuple(links), payload)


def links(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to, in order: none for raw blocks, the PBNode links for
    dag-pb. Other codecs are refused (the vault stores only these two)."""
    if cid.codec == RAW:
        return []
    if cid.codec == DAG_PB:
        return [link.cid for link in decode_node(block, cid).links]
    raise VaultBlockCorrupt(
        f"block {cid.encode()} has codec {cid.codec_name}; the vault reads raw and dag-pb only"
    )


# -- UnixFS Data ----------------------------------------------------------------------


def encode_unixfs(msg: UnixFSData) -> bytes:
    """Bytes in field order, as Go's protobuf writes them (blocksizes not packed)."""
    out = bytearray(_key(1, _VARINT) + varint(int(msg.type)))
    if msg.data is not None:
        out += _len_field(2, msg.data)
    if msg.filesize is not None:
        out += _key(3, _VARINT) + varint(msg.filesize)
    for size in msg.blocksizes:
        out += _key(4, _VARINT) + varint(size)
    if msg.hash_type is not None:
        out += _key(5, _VARINT) + varint(msg.hash_type)
    if msg.fanout is not None:
        out += _key(6, _VARINT) + varint(msg.fanout)
    if msg.mode is not None:
        out += _key(7, _VARINT) + varint(msg.mode)
    if msg.mtime is not None:
        seconds, nanos = msg.mtime
        body = _key(1, _VARINT) + varint(seconds & 0xFFFFFFFFFFFFFFFF)
        if nanos is not None:
            body += _key(2, _I32) + nanos.to_bytes(4, "little")
        out += _len_field(8, body)
    return bytes(out)


def _decode_mtime(data: memoryview) -> tuple[int, int | None]:
    seconds = 0
    nanos: int | None = None
    pos = 0
    while pos < len(data):
        field_no, wire, pos = _read_key(data, pos)
        if field_no == 1 and wire == _VARINT:
            seconds, pos = _read_varint(data, pos)
            if seconds >= 1 << 63:
                seconds -= 1 << 64
        elif field_no == 2 and wire == _I32:
            if pos + 4 > len(data):
                raise _Malformed("truncated mtime nanoseconds")
            nanos = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            pos = _skip(data, pos, wire)
    return seconds, nanos


def _unixfs_fields(
    view: memoryview,
) -> tuple[dict[int, int], bytes | None, list[int], memoryview | None]:
    """Scalar varint fields by number, Data, blocksizes and the raw mtime message."""
    scalars: dict[int, int] = {}
    payload: bytes | None = None
    blocksizes: list[int] = []
    mtime: memoryview | None = None
    pos = 0
    while pos < len(view):
        field_no, wire, pos = _read_key(view, pos)
        if wire == _VARINT and field_no in (1, 3, 4, 5, 6, 7):
            value, pos = _read_varint(view, pos)
            if field_no == 4:
                blocksizes.append(value)
            else:
                scalars[field_no] = value
        elif wire == _LEN and field_no in (2, 4, 8):
            raw, pos = _read_bytes(view, pos)
            if field_no == 2:
                payload = bytes(raw)
            elif field_no == 8:
                mtime = raw
            else:  # packed blocksizes, accepted on read
                inner = 0
                while inner < len(raw):
                    value, inner = _read_varint(raw, inner)
                    blocksizes.append(value)
        else:
            pos = _skip(view, pos, wire)
    return scalars, payload, blocksizes, mtime


def decode_unixfs(data: bytes | memoryview, cid: CID | None = None) -> UnixFSData:
    """Parse a UnixFS ``Data`` message. Unknown fields are skipped."""
    try:
        scalars, payload, blocksizes, raw_mtime = _unixfs_fields(memoryview(data))
        if 1 not in scalars:
            raise _Malformed("UnixFS Data without Type")
        try:
            data_type = DataType(scalars[1])
        except ValueError:
            raise _Malformed(f"unknown UnixFS type {scalars[1]}") from None
        mtime = _decode_mtime(raw_mtime) if raw_mtime is not None else None
    except _Malformed as exc:
        raise VaultBlockCorrupt(f"malformed UnixFS data{_where(cid)}: {exc}") from None
    return UnixFSData(
        data_type,
        payload,
        filesize=scalars.get(3),
        blocksizes=tuple(blocksizes),
        hash_type=scalars.get(5),
        fanout=scalars.get(6),
        mode=scalars.get(7),
        mtime=mtime,
    )


def node_unixfs(node: PBNode, cid: CID | None = None) -> UnixFSData:
    """The UnixFS message of a dag-pb node (VaultBlockCorrupt if it has none)."""
    if node.data is None:
        raise VaultBlockCorrupt(f"dag-pb node{_where(cid)} carries no UnixFS data")
    return decode_unixfs(node.data, cid)
