"""CAR v1 writing and reading (and CARv2 reading), against bytes Kubo v0.39 exported."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import VaultBlockCorrupt, VaultCarInvalid
from sahara_cli.vault import car, dagpb, unixfs
from sahara_cli.vault.cid import CID, DAG_PB, RAW, varint

# `ipfs dag export` of `ipfs add -r --cid-version=1 small/` where small/ holds
# a.txt ("hello\n") and an empty directory, emptydir/.
KUBO_SMALL_ROOT = "bafybeiam2gp7jguzieqq7f47xiqaxdwzzxt35kn7bvwp5polvrq3g3vfgy"
KUBO_SMALL_CAR = bytes.fromhex(
    "3aa265726f6f747381d82a582500017012200cd19ff49a9941210f979fba200b8ed9cde7bea9bf0d6c"
    "febdcbac61b36ea5366776657273696f6e018d01017012200cd19ff49a9941210f979fba200b8ed9cd"
    "e7bea9bf0d6cfebdcbac61b36ea536122f0a24015512205891b5b522d5df086d0ff0b110fbd9d21bb4"
    "fc7163af34d08286a2e846f6be031205612e747874180612320a240170122059948439065f29619ef4"
    "1280cbb932be52c56d99c5966b65e0111239f098bbef1208656d70747964697218040a0208012a0155"
    "12205891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be0368656c6c6f0a28"
    "0170122059948439065f29619ef41280cbb932be52c56d99c5966b65e0111239f098bbef0a020801"
)


def small_dag() -> tuple[CID, dict[CID, bytes]]:
    blocks: dict[CID, bytes] = {}
    leaf = unixfs.FileImporter(blocks.__setitem__)
    leaf.write(b"hello\n")
    file = leaf.finish()
    empty = unixfs.build_directory([], blocks.__setitem__)
    root = unixfs.build_directory(
        [
            dagpb.PBLink(file.cid, "a.txt", file.tsize),
            dagpb.PBLink(empty.cid, "emptydir", empty.tsize),
        ],
        blocks.__setitem__,
    )
    return root.cid, blocks


def file_dag(payload: bytes) -> tuple[CID, dict[CID, bytes]]:
    blocks: dict[CID, bytes] = {}
    importer = unixfs.FileImporter(blocks.__setitem__, chunk_size=64, max_links=3)
    importer.write(payload)
    return importer.finish().cid, blocks


def test_export_is_byte_identical_to_kubo() -> None:
    root, blocks = small_dag()
    assert root.encode() == KUBO_SMALL_ROOT
    out = io.BytesIO()
    written = car.export_dag(out, [root], blocks.__getitem__)
    assert out.getvalue() == KUBO_SMALL_CAR
    assert written == len(KUBO_SMALL_CAR)


def test_read_kubo_car() -> None:
    roots, sections = car.read_car(io.BytesIO(KUBO_SMALL_CAR))
    assert [r.encode() for r in roots] == [KUBO_SMALL_ROOT]
    got = list(sections)
    assert [cid.codec for cid, _ in got] == [DAG_PB, RAW, DAG_PB]
    assert dict(got)[got[1][0]] == b"hello\n"
    entries = unixfs.ls(roots[0], dict(got).__getitem__)
    assert [(e.name, e.type) for e in entries] == [("a.txt", "file"), ("emptydir", "directory")]


def test_header_is_canonical_dag_cbor() -> None:
    root = CID.decode(KUBO_SMALL_ROOT)
    header = car.encode_header([root])
    # {"roots": [42(h'00' + cid)], "version": 1}: "roots" sorts before "version".
    assert header == (b"\xa2\x65roots\x81\xd8\x2a\x58\x25\x00" + root.bytes + b"\x67version\x01")
    assert car.decode_header(header) == {"roots": [root], "version": 1}
    many = car.encode_header([root] * 30)
    assert many.startswith(b"\xa2\x65roots\x98\x1e")
    assert car.decode_header(many)["roots"] == [root] * 30


def test_round_trip_file_and_multiple_roots() -> None:
    payload = hashlib.shake_256(b"car").digest(5000)
    first, blocks = file_dag(payload)
    second, more = file_dag(payload[:100])
    blocks.update(more)
    out = io.BytesIO()
    car.export_dag(out, [first, second], blocks.__getitem__)
    roots, sections = car.read_car(io.BytesIO(out.getvalue()))
    assert roots == [first, second]
    got = list(sections)
    assert len(got) == len({cid for cid, _ in got}) == len(blocks)  # shared blocks once
    store = dict(got)
    assert unixfs.read_file(first, store.__getitem__) == payload
    assert unixfs.read_file(second, store.__getitem__) == payload[:100]


def test_write_car_header_then_sections() -> None:
    root, blocks = small_dag()
    whole = io.BytesIO()
    car.write_car(whole, [root], unixfs.walk(root, blocks.__getitem__))
    pieces = io.BytesIO()
    size = car.write_car(pieces, [root], [])
    for cid, block in unixfs.walk(root, blocks.__getitem__):
        size += car.write_section(pieces, cid, block)
    assert pieces.getvalue() == whole.getvalue() == KUBO_SMALL_CAR
    assert size == len(KUBO_SMALL_CAR)


def test_empty_roots_and_no_blocks() -> None:
    out = io.BytesIO()
    car.write_car(out, [], [])
    roots, sections = car.read_car(io.BytesIO(out.getvalue()))
    assert roots == []
    assert list(sections) == []


class Trickle:
    """A reader that returns at most 3 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(3 if size < 0 else min(size, 3))


def test_short_reads_are_retried() -> None:
    roots, sections = car.read_car(Trickle(KUBO_SMALL_CAR))
    assert [r.encode() for r in roots] == [KUBO_SMALL_ROOT]
    assert len(list(sections)) == 3


def test_cidv0_sections_are_read() -> None:
    block = b"\x0a\x02\x08\x01"  # the empty directory, addressed as Qm...
    v0 = CID(DAG_PB, hashlib.sha256(block).digest(), 0)
    out = io.BytesIO()
    car.write_car(out, [v0], [(v0, block)])
    roots, sections = car.read_car(io.BytesIO(out.getvalue()))
    assert roots == [v0]
    assert [(cid.v1().encode(), data) for cid, data in sections] == [(unixfs.EMPTY_DIR_CID, block)]


def carv2(payload: bytes, *, padding: int = 0, index: bytes = b"") -> bytes:
    """A CARv2 per the spec: pragma, 40-byte header, padding, the v1 payload, an index."""
    data_offset = len(car.CARV2_PRAGMA) + 40 + padding
    index_offset = data_offset + len(payload) if index else 0
    header = bytes(16) + struct.pack("<QQQ", data_offset, len(payload), index_offset)
    return car.CARV2_PRAGMA + header + bytes(padding) + payload + index


@pytest.mark.parametrize(("padding", "index"), [(0, b""), (7, b"\x80\x04not-a-real-index")])
def test_carv2_is_read(padding: int, index: bytes) -> None:
    roots, sections = car.read_car(io.BytesIO(carv2(KUBO_SMALL_CAR, padding=padding, index=index)))
    assert [r.encode() for r in roots] == [KUBO_SMALL_ROOT]
    assert len(list(sections)) == 3


MALFORMED = [
    (b"", "empty"),
    (b"\x3a\xa2", "truncated CAR: the header ends after 1 of 58 bytes"),
    (b"\x80", "truncated CAR: header length"),
    (b"\x00", "bad CAR header: length 0"),
    (KUBO_SMALL_CAR[:100], "truncated CAR: the section at offset 59"),
    (KUBO_SMALL_CAR[:59] + b"\xff\xff\xff\x7f", "length 268435455"),
    (KUBO_SMALL_CAR[:59] + b"\xff" * 11, "not a varint"),
    (KUBO_SMALL_CAR[:59] + b"\x04\x01\x70\x12\x20", "bad CAR section at offset 59"),
    (varint(1) + b"\x01", "bad CAR header: not a map"),
    (varint(2) + b"\xa1\x61", "bad CAR header: truncated CBOR"),
    (varint(1) + b"\xbf", "bad CAR header: indefinite"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_cars(data: bytes, message: str) -> None:
    with pytest.raises(VaultCarInvalid) as info:
        _roots, sections = car.read_car(io.BytesIO(data))
        list(sections)
    assert message in info.value.message
    assert "\n" not in info.value.message


def _header(doc: bytes) -> bytes:
    return varint(len(doc)) + doc


BAD_HEADERS = [
    (b"\xa2\x65roots\x80\x67version\x03", "bad CAR version 3"),
    (b"\xa1\x65roots\x80", "bad CAR version None"),
    (b"\xa2\x65roots\x01\x67version\x01", "'roots' is not a list of CIDs"),
    (b"\xa2\x65roots\x81\xd8\x2b\x40\x67version\x01", "tag 43"),
    (b"\xa2\x65roots\x81\xd8\x2a\x41\x01\x67version\x01", "starting with 0x00"),
    (b"\xa2\x65roots\x80\x65roots\x80", "distinct"),
    (b"\xa2\x65roots\x80\x67version\x01\x00", "trailing bytes"),
]


@pytest.mark.parametrize(("header", "message"), BAD_HEADERS, ids=[m for _, m in BAD_HEADERS])
def test_bad_headers(header: bytes, message: str) -> None:
    with pytest.raises(VaultCarInvalid, match=message):
        car.read_car(io.BytesIO(_header(header)))


def test_bad_carv2() -> None:
    with pytest.raises(VaultCarInvalid, match="truncated CAR: the CARv2 header"):
        car.read_car(io.BytesIO(car.CARV2_PRAGMA + bytes(10)))
    inner = _header(b"\xa2\x65roots\x80\x67version\x02")
    with pytest.raises(VaultCarInvalid, match="payload is CAR version 2"):
        car.read_car(io.BytesIO(carv2(inner)))
    bad = car.CARV2_PRAGMA + bytes(16) + struct.pack("<QQQ", 3, 10, 0)
    with pytest.raises(VaultCarInvalid, match="data offset 3"):
        car.read_car(io.BytesIO(bad))
    truncated = carv2(KUBO_SMALL_CAR)[:-5]
    with pytest.raises(VaultCarInvalid, match="truncated"):
        list(car.read_car(io.BytesIO(truncated))[1])


def test_block_that_does_not_match_its_cid() -> None:
    tampered = bytearray(KUBO_SMALL_CAR)
    tampered[-1] ^= 1  # the empty directory block's last byte
    _roots, sections = car.read_car(io.BytesIO(bytes(tampered)))
    with pytest.raises(VaultBlockCorrupt, match=unixfs.EMPTY_DIR_CID):
        list(sections)


def test_oversized_section_is_refused() -> None:
    data = KUBO_SMALL_CAR[:59] + varint(car.MAX_SECTION_SIZE + 1)
    with pytest.raises(VaultCarInvalid, match="length"):
        list(car.read_car(io.BytesIO(data))[1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(min_value=0, max_value=3))
def test_round_trip_any_blocks(payloads: list[bytes], root_count: int) -> None:
    blocks = [(CID.of(RAW, p), p) for p in payloads]
    roots = [cid for cid, _ in blocks[:root_count]]
    out = io.BytesIO()
    size = car.write_car(out, roots, blocks)
    assert size == len(out.getvalue())
    got_roots, sections = car.read_car(io.BytesIO(out.getvalue()))
    assert got_roots == roots
    assert list(sections) == blocks
