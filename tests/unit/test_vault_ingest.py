"""The add pipeline (sahara_cli.vault.ingest) makes the blocks the streaming importer
makes: the same CIDs for a public file, and for a private one a stream that decrypts
to the file, cut into the leaves FileImporter cuts.

Small chunks, segments and batches make every boundary case cheap: a file that ends
on a chunk, a segment or a batch, one byte either side, and the empty file.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import Future

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import VaultError
from sahara_cli.vault import crypto, unixfs
from sahara_cli.vault.cid import CID
from sahara_cli.vault.ingest import ingest

CHUNK = 1024
SEGMENT_LOG2 = 10  # 1 KiB segments: sealed, each is 16 bytes longer than a chunk
BATCH = 4096  # four segments a batch
SIZES = [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 8192, 3 * 4096 + 5, 40 * 1024 + 17]


class Sink:
    """Keeps a copy of every block put, checked against its CID, in order."""

    def __init__(self) -> None:
        self.blocks: dict[CID, bytes] = {}
        self.order: list[CID] = []
        self.checkpoints = 0

    def put(self, cid: CID, data: bytes) -> None:
        copy = bytes(data)
        assert cid.verify(copy), "a block's bytes changed under it, or its CID is wrong"
        self.blocks[cid] = copy
        self.order.append(cid)

    def checkpoint(self) -> Future[None] | None:
        self.checkpoints += 1
        return None


def data(size: int) -> bytes:
    return hashlib.shake_256(b"ingest").digest(size)


def run(payload: bytes, key: bytes | None, views: bool) -> tuple[Sink, unixfs.ImportResult, str]:
    sink = Sink()
    done = ingest(
        io.BytesIO(payload),
        sink,
        key=key,
        views=views,
        batch_bytes=BATCH,
        segment_log2=SEGMENT_LOG2,
        chunk_size=CHUNK,
    )
    assert done.size == len(payload)
    return sink, done.result, done.digest


@pytest.mark.parametrize("views", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_public_file_blocks_are_the_importers(size: int, views: bool) -> None:
    payload = data(size)
    expected: dict[CID, bytes] = {}
    want = unixfs.import_file(io.BytesIO(payload), expected.__setitem__, chunk_size=CHUNK)
    sink, result, digest = run(payload, None, views)
    assert result == want
    assert sink.blocks == expected
    assert digest == ""
    assert unixfs.read_file(result.cid, sink.blocks.__getitem__) == payload


@pytest.mark.parametrize("views", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_private_file_is_the_encryptors_stream_in_the_importers_leaves(
    size: int, views: bool
) -> None:
    payload = data(size)
    key = bytes(range(32))
    sink, result, digest = run(payload, key, views)
    assert digest == "0x" + hashlib.sha256(payload).hexdigest()
    stream = unixfs.read_file(result.cid, sink.blocks.__getitem__)
    assert len(stream) == crypto.ciphertext_size(size, SEGMENT_LOG2)
    assert crypto.decrypt_bytes(key, stream) == payload
    # The same stream through the streaming importer: the same leaves, DAG and root.
    again: dict[CID, bytes] = {}
    assert unixfs.import_file(io.BytesIO(stream), again.__setitem__, chunk_size=CHUNK) == result
    assert again == sink.blocks


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 12 * 1024), batch_segments=st.integers(1, 5))
def test_any_size_and_batch_round_trips(size: int, batch_segments: int) -> None:
    payload = data(size)
    key = bytes(32)
    sink = Sink()
    done = ingest(
        io.BytesIO(payload),
        sink,
        key=key,
        batch_bytes=batch_segments << SEGMENT_LOG2,
        segment_log2=SEGMENT_LOG2,
        chunk_size=CHUNK,
    )
    stream = unixfs.read_file(done.result.cid, sink.blocks.__getitem__)
    assert crypto.decrypt_bytes(key, stream) == payload


def test_a_file_read_in_short_pieces_gives_the_same_blocks() -> None:
    """A reader that returns fewer bytes than asked (a pipe, a network file system)."""

    class Trickle(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self.source = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            return self.source.readinto(memoryview(buffer)[:333])

    payload = data(9000)
    whole, result, _ = run(payload, None, True)
    sink = Sink()
    done = ingest(Trickle(payload), sink, batch_bytes=BATCH, chunk_size=CHUNK)
    assert done.result == result
    assert sink.blocks == whole.blocks


def test_link_leaf_refuses_what_is_not_a_whole_chunk() -> None:
    importer = unixfs.FileImporter(lambda _cid, _data: None, chunk_size=CHUNK)
    with pytest.raises(VaultError):
        importer.link_leaf(bytes(32), CHUNK + 1)
    importer.write(b"partial")
    with pytest.raises(VaultError):
        importer.link_leaf(bytes(32), CHUNK)


def test_seal_into_refuses_a_short_segment_before_the_last() -> None:
    encryptor = crypto.Encryptor(bytes(32), lambda _b: None, segment_log2=SEGMENT_LOG2)
    out = memoryview(bytearray(2048))
    with pytest.raises(ValueError, match="whole segments"):
        encryptor.seal_into(b"short", out[:21], last=False)
    encryptor.seal_into(b"short", out[:21], last=True)
    with pytest.raises(ValueError, match="after finish"):
        encryptor.seal_into(b"", out[:16], last=True)
