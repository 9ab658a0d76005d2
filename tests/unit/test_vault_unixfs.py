"""UnixFS import and read, and the dag-pb codec, against CIDs computed with Kubo v0.39.

Every hard-coded CID below is what ``ipfs add --cid-version=1`` (``-r`` for trees)
printed for the same bytes; tests/e2e/test_vault_kubo_cids.py checks many more against
the live binary. Data comes from SHAKE-256 so that it is the same everywhere.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.errors import FileUnreadable, VaultBlockCorrupt, VaultError
from sahara_cli.vault import dagpb, unixfs
from sahara_cli.vault.cid import CID, DAG_PB, RAW
from sahara_cli.vault.dagpb import DataType, PBLink, PBNode, UnixFSData
from sahara_cli.vault.unixfs import FileImporter, ImportResult

C = 262144


def data(size: int, seed: bytes = b"sahara") -> bytes:
    return hashlib.shake_256(seed).digest(size)


def repetitive(size: int) -> bytes:
    return b"sahara!\n" * (size // 8) + b"s" * (size % 8)


class Store(dict[CID, bytes]):
    """A dict blockstore that counts puts and checks each block against its CID."""

    puts = 0

    def put(self, cid: CID, block: bytes) -> None:
        assert isinstance(block, bytes)
        assert cid.verify(block)
        self.puts += 1
        self[cid] = block

    def read(self, cid: CID) -> bytes:
        return self[cid]


def add_bytes(
    payload: bytes, store: Store | None = None, **options: int
) -> tuple[ImportResult, Store]:
    store = store if store is not None else Store()
    importer = FileImporter(store.put, **options)
    importer.write(payload)
    return importer.finish(), store


# -- files: known CIDs -------------------------------------------------------------------

KUBO_FILES = [
    ("rand", 0, unixfs.EMPTY_FILE_CID),
    ("rand", 1, "bafkreiagaxivgtvytfp6r7d5z4p2yas6uxrg7qtnnmp4fr42udyecwppie"),
    ("rand", 1000, "bafkreigc2hwbatmhno63sd73bx6rcfkzkr7dqutcnibytwauplwd6bie3a"),
    ("rand", C - 1, "bafkreidkd5ouqhm2zdmnsirxc3u557ruvfpz5diiwaigoxjnfcysvvmxpe"),
    ("rand", C, "bafkreia2r2rl43gwybbwgnzi5773b6nhx2vacl63laycvvh53vr4vhbx2u"),
    ("rand", C + 1, "bafybeicghmkiptydnr7kw56k75wmmz2g2bbvn475kpgpdlhjua5l7o4tsa"),
    ("rand", 2 * C, "bafybeidoixoapmxzyhjnmqbysjb5jotix7mqh2iinz5oedzhmgskpenpve"),
    ("rand", 174 * C, "bafybeicij2g4lhxnqmcr53mu46a5umacv5ddk4a4dftgjn3f3i4zliwavm"),
    ("rand", 174 * C + 1, "bafybeidawhgm4uymjaowhrope2ahiana62umkc5i2g6gl6yhq3qxacjnbe"),
    ("rand", 175 * C, "bafybeifujzwarm3uj33jvdgu62jcbcyybr7nstnpkq27p7pwbk5mrtlwba"),
    ("rep", C + 1, "bafybeifywejji7nr5sok2ovslnme4diuvukif4jojvjy5uk73iwcgnjmpq"),
    ("rep", 174 * C + 5, "bafybeigyo4vpn5fwpuoy4vgks6smyixywthh2m2ex2vvyz5xd5umyznco4"),
    ("rep", 175 * C, "bafybeia6ssaiwe7544anuvehvyog3u6puzv7uhnz7xv6ae6oc3fku33f7m"),
]


@pytest.mark.parametrize(("kind", "size", "expected"), KUBO_FILES)
def test_file_cid_matches_kubo(kind: str, size: int, expected: str) -> None:
    payload = data(size) if kind == "rand" else repetitive(size)
    result, store = add_bytes(payload)
    assert result.cid.encode() == expected
    assert result.size == size
    assert result.blocks == store.puts
    # Tsize is the DAG's bytes: every block counted as often as it is linked.
    if kind == "rand":
        assert result.tsize == sum(len(b) for b in store.values())
    assert unixfs.read_file(result.cid, store.read) == payload


@pytest.mark.parametrize(("kind", "size", "expected"), KUBO_FILES[::2] + KUBO_FILES[-2:])
def test_leaves_hashed_on_other_threads_give_kubo_cids(kind: str, size: int, expected: str) -> None:
    """With a hasher, leaves are hashed a few at a time on its threads and linked in
    order: the same CIDs, the same blocks, and ``size`` counts bytes still hashing."""
    payload = data(size) if kind == "rand" else repetitive(size)
    store = Store()
    with ThreadPoolExecutor(2) as hasher:
        importer = FileImporter(store.put, hasher=hasher)
        view = memoryview(payload)
        for start in range(0, len(payload), C):
            importer.write(bytes(view[start : start + C]))
        assert importer.size == size
        result = importer.finish()
    assert result.cid.encode() == expected
    assert result.blocks == store.puts
    assert unixfs.read_file(result.cid, store.read) == payload


def test_single_chunk_is_one_raw_block_and_empty_file_too() -> None:
    for size in (0, 1, C):
        result, store = add_bytes(data(size))
        assert result.cid.codec == RAW
        assert result.blocks == 1
        assert result.tsize == size
        assert store[result.cid] == data(size)
    assert add_bytes(b"")[0].cid.encode() == unixfs.EMPTY_FILE_CID


def test_two_chunks_root_is_dag_pb_with_filesize_and_blocksizes() -> None:
    result, store = add_bytes(data(C + 1))
    assert result.cid.codec == DAG_PB
    node = dagpb.decode_node(store[result.cid])
    fs = dagpb.node_unixfs(node)
    assert fs == UnixFSData(DataType.FILE, filesize=C + 1, blocksizes=(C, 1))
    assert [(link.name, link.tsize) for link in node.links] == [("", C), ("", 1)]
    assert all(link.cid.codec == RAW for link in node.links)


# Chunks of 16 bytes and 3 links per node, as `ipfs add --chunker=size-16` makes with
# Import.UnixFSFileMaxLinks=3: trees of height 2 to 4 at small sizes.
KUBO_DEEP = [
    (48, "bafybeibwcjdmflmcmo2dy5jjprteyzolawctgow7ihca23uaid7kqu5l74"),
    (49, "bafybeiczod3tgnidddryk6qlhy6n4jy6az3my6l5wfwzu4sso5hhodtlly"),
    (144, "bafybeigrllx6sihka2qb3lvk73x6ej6nuabmgg6gykw2ziepfpbghyp6ni"),
    (145, "bafybeibo2ueqlt5veoshldrhgggxpgguwgdldxseg3e2qsyydf6wjzhgjm"),
    (1000, "bafybeigrk42twrrsbwotlgdhhk46lzvetrdddiu4h2oayidomnfsi5efwe"),
]


@pytest.mark.parametrize(("size", "expected"), KUBO_DEEP)
def test_deep_balanced_tree_matches_kubo(size: int, expected: str) -> None:
    result, store = add_bytes(data(size), chunk_size=16, max_links=3)
    assert result.cid.encode() == expected
    assert unixfs.read_file(result.cid, store.read) == data(size)


def _depths(cid: CID, store: Store, depth: int = 0) -> list[int]:
    if cid.codec == RAW:
        return [depth]
    node = dagpb.decode_node(store[cid])
    assert 0 < len(node.links) <= 3
    return [d for link in node.links for d in _depths(link.cid, store, depth + 1)]


@pytest.mark.parametrize("chunks", [2, 3, 4, 9, 10, 27, 28, 30])
def test_balanced_layout_all_leaves_at_one_depth(chunks: int) -> None:
    result, store = add_bytes(data(16 * chunks), chunk_size=16, max_links=3)
    depths = _depths(result.cid, store)
    assert len(depths) == chunks
    height = 1
    while 3**height < chunks:
        height += 1
    assert set(depths) == {height}
    root = dagpb.decode_node(store[result.cid])
    if chunks == 4:  # the last subtree keeps its single leaf under its own node
        assert [len(dagpb.decode_node(store[link.cid]).links) for link in root.links] == [3, 1]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=4000),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    chunk_size=st.sampled_from([3, 7, 64, 100]),
    max_links=st.sampled_from([2, 3, 174]),
)
def test_any_write_split_gives_the_same_cid(
    size: int, cuts: list[int], chunk_size: int, max_links: int
) -> None:
    payload = data(size, b"split")
    whole, _ = add_bytes(payload, chunk_size=chunk_size, max_links=max_links)
    store = Store()
    importer = FileImporter(store.put, chunk_size=chunk_size, max_links=max_links)
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    for start, end in itertools.pairwise(bounds):
        importer.write(memoryview(payload)[start:end])
        importer.write(b"")
    assert importer.size == size
    pieces = importer.finish()
    assert pieces == whole
    assert b"".join(unixfs.iter_file(pieces.cid, store.read)) == payload


def test_default_chunking_with_odd_write_pieces() -> None:
    payload = data(3 * C + 12345, b"odd")
    store = Store()
    importer = FileImporter(store.put)
    view = memoryview(payload)
    for start in range(0, len(payload), 100_003):
        importer.write(bytearray(view[start : start + 100_003]))
    assert importer.finish() == add_bytes(payload)[0]


def test_blocks_leave_as_soon_as_complete_and_buffers_are_copied() -> None:
    store = Store()
    importer = FileImporter(store.put, chunk_size=16, max_links=4)
    buffer = bytearray(b"a" * 40)
    importer.write(buffer)
    assert store.puts == 2  # two full chunks out, 8 bytes pending
    buffer[:] = b"b" * 40  # the caller reuses its buffer: nothing already written changes
    importer.write(buffer[:24])
    assert store.puts == 4
    result = importer.finish()
    assert unixfs.read_file(result.cid, store.read) == b"a" * 40 + b"b" * 24


def test_finish_twice_and_write_after_finish() -> None:
    importer = FileImporter(Store().put)
    importer.write(b"abc")
    first = importer.finish()
    assert importer.finish() == first
    with pytest.raises(VaultError):
        importer.write(b"more")


@pytest.mark.parametrize(("chunk_size", "max_links"), [(0, 174), (C, 1), (1 << 21, 174)])
def test_bad_options_are_refused(chunk_size: int, max_links: int) -> None:
    with pytest.raises(VaultError, match=r"chunk size|links"):
        FileImporter(Store().put, chunk_size=chunk_size, max_links=max_links)


def test_import_file_from_path_and_binary_file(tmp_path: Path) -> None:
    payload = data(2 * C + 7)
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    expected = add_bytes(payload)[0]
    assert unixfs.import_file(path, Store().put) == expected
    assert unixfs.import_file(str(path), Store().put) == expected
    with path.open("rb") as fh:
        assert unixfs.import_file(fh, Store().put) == expected
    assert unixfs.import_file(io.BytesIO(payload), Store().put) == expected

    class ReadOnly:  # no readinto: read() is used
        def __init__(self) -> None:
            self.inner = io.BytesIO(payload)

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(min(size, 1000))

    assert unixfs.import_file(ReadOnly(), Store().put) == expected  # type: ignore[arg-type]
    with pytest.raises(FileUnreadable, match="missing"):
        unixfs.import_file(tmp_path / "missing", Store().put)


# -- reading files -------------------------------------------------------------------------


def test_iter_file_streams_in_chunks() -> None:
    payload = data(5 * C + 3)
    result, store = add_bytes(payload)
    pieces = list(unixfs.iter_file(result.cid, store.read))
    assert [len(p) for p in pieces] == [C] * 5 + [3]
    assert b"".join(pieces) == payload


def test_walk_visits_each_block_once_parents_first() -> None:
    result, store = add_bytes(repetitive(175 * C))  # every leaf is the same block
    order = [cid for cid, _ in unixfs.walk(result.cid, store.read)]
    assert len(order) == len(set(order)) == len(store) == 4

    def preorder(cid: CID, seen: list[CID]) -> list[CID]:
        if cid not in seen:
            seen.append(cid)
            for child in dagpb.links(cid, store[cid]):
                preorder(child, seen)
        return seen

    assert order == preorder(result.cid, [])
    shared: set[CID] = set()
    assert len(list(unixfs.walk(result.cid, store.read, seen=shared))) == 4
    assert list(unixfs.walk(result.cid, store.read, seen=shared)) == []


def test_stat_of_files() -> None:
    small, store = add_bytes(b"hello")
    assert unixfs.stat(small.cid, store.read) == unixfs.Stat(small.cid, "file", 5, 5)
    big, store = add_bytes(data(C + 1))
    info = unixfs.stat(big.cid, store.read)
    assert (info.type, info.size, info.cumulative_size) == ("file", C + 1, big.tsize)


def test_corrupt_blocks_name_the_cid() -> None:
    result, store = add_bytes(data(2 * C))
    store[result.cid] = b"\x12\xff\xff"  # a link whose length runs past the end
    with pytest.raises(VaultBlockCorrupt, match=result.cid.encode()):
        list(unixfs.iter_file(result.cid, store.read))
    with pytest.raises(VaultBlockCorrupt, match=result.cid.encode()):
        unixfs.stat(result.cid, store.read)


def test_filesize_that_lies_is_corrupt() -> None:
    leaf, store = add_bytes(b"abc")
    node = PBNode(
        (PBLink(leaf.cid, "", 3),),
        dagpb.encode_unixfs(UnixFSData(DataType.FILE, filesize=4, blocksizes=(4,))),
    )
    block = dagpb.encode_node(node)
    cid = CID.of(DAG_PB, block)
    store[cid] = block
    with pytest.raises(VaultBlockCorrupt, match="declares 4 bytes"):
        unixfs.read_file(cid, store.read)


def test_reading_a_directory_as_a_file_fails() -> None:
    store = Store()
    empty_dir = unixfs.build_directory([], store.put)
    assert empty_dir.cid.encode() == unixfs.EMPTY_DIR_CID
    with pytest.raises(VaultError, match="is a directory, not a file") as info:
        list(unixfs.iter_file(empty_dir.cid, store.read))
    assert info.value.code == "vault.not_a_file"
    with pytest.raises(VaultError, match="not a directory"):
        unixfs.ls(add_bytes(b"x", store)[0].cid, store.read)


# -- dag-pb ---------------------------------------------------------------------------------

# A directory block written by Kubo: links "a.txt" (raw) and "emptydir" (dag-pb).
KUBO_DIR_BLOCK = bytes.fromhex(
    "122f0a24015512205891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    "1205612e747874180612320a240170122059948439065f29619ef41280cbb932be52c56d99c5966b"
    "65e0111239f098bbef1208656d70747964697218040a020801"
)


def test_dagpb_decodes_and_reencodes_kubo_bytes() -> None:
    node = dagpb.decode_node(KUBO_DIR_BLOCK)
    assert [(link.name, link.tsize) for link in node.links] == [("a.txt", 6), ("emptydir", 4)]
    assert node.links[0].cid.codec == RAW
    assert node.links[1].cid.encode() == unixfs.EMPTY_DIR_CID
    assert dagpb.node_unixfs(node) == UnixFSData(DataType.DIRECTORY)
    assert dagpb.encode_node(node) == KUBO_DIR_BLOCK
    cid = CID.of(DAG_PB, KUBO_DIR_BLOCK)
    assert dagpb.links(cid, KUBO_DIR_BLOCK) == [link.cid for link in node.links]
    assert dagpb.links(CID.of(RAW, b"\x12\x34"), b"\x12\x34") == []


_cids = st.binary(min_size=32, max_size=32).flatmap(
    lambda digest: st.sampled_from([CID(RAW, digest), CID(DAG_PB, digest), CID(DAG_PB, digest, 0)])
)
_links = st.builds(
    PBLink,
    _cids,
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**63)),
)


@settings(max_examples=200, deadline=None)
@given(links=st.lists(_links, max_size=5), payload=st.one_of(st.none(), st.binary(max_size=64)))
def test_dagpb_round_trip(links: list[PBLink], payload: bytes | None) -> None:
    node = PBNode(tuple(links), payload)
    assert dagpb.decode_node(dagpb.encode_node(node)) == node


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(list(DataType)),
    payload=st.one_of(st.none(), st.binary(max_size=40)),
    sizes=st.lists(st.integers(min_value=0, max_value=2**40), max_size=6),
    optional=st.lists(
        st.one_of(st.none(), st.integers(min_value=0, max_value=2**32)), min_size=4, max_size=4
    ),
    mtime=st.one_of(
        st.none(),
        st.tuples(
            st.integers(min_value=-(2**40), max_value=2**40),
            st.one_of(st.none(), st.integers(min_value=0, max_value=999_999_999)),
        ),
    ),
)
def test_unixfs_data_round_trip(
    kind: DataType,
    payload: bytes | None,
    sizes: list[int],
    optional: list[int | None],
    mtime: tuple[int, int | None] | None,
) -> None:
    filesize, hash_type, fanout, mode = optional
    msg = UnixFSData(kind, payload, filesize, tuple(sizes), hash_type, fanout, mode, mtime)
    assert dagpb.decode_unixfs(dagpb.encode_unixfs(msg)) == msg


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b"\x12", "truncated"),
        (b"\x12\x05\x0a\x03abc", "link hash"),
        (b"\x0a\x00\x12\x00", "Links after Data"),
        (b"\x0a\x00\x0a\x00", "two Data"),
        (b"\x1a\x00", "unexpected PBNode field 3"),
        (b"\x08\x01", "unexpected PBNode field 1"),
        (b"\x12\x00", "without Hash"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
    ],
)
def test_dagpb_malformed_input(block: bytes, why: str) -> None:
    cid = CID.of(DAG_PB, block)
    with pytest.raises(VaultBlockCorrupt, match=why) as info:
        dagpb.links(cid, block)
    assert cid.encode() in info.value.message


@pytest.mark.parametrize(
    ("data_bytes", "why"),
    [(b"", "without Type"), (b"\x08\x09", "unknown UnixFS type"), (b"\x12\x05ab", "truncated")],
)
def test_unixfs_malformed_input(data_bytes: bytes, why: str) -> None:
    with pytest.raises(VaultBlockCorrupt, match=why):
        dagpb.decode_unixfs(data_bytes)


def test_links_refuses_other_codecs() -> None:
    with pytest.raises(VaultBlockCorrupt, match="dag-cbor"):
        dagpb.links(CID(0x71, bytes(32)), b"\xa0")


# -- directories ----------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    """The tree whose Kubo CIDs are below (tests/e2e builds it too)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "emptydir").mkdir()
    (root / "a.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "B").write_bytes(b"upper")
    (root / "\u00e9").write_bytes(b"e acute")
    (root / "sub" / "big.bin").write_bytes(data(700000, b"big"))
    (root / "sub" / "deeper" / "x").write_bytes(b"x" * 300000)
    (root / ".hidden").write_bytes(b"secret")
    (root / "sub" / ".cache").mkdir()
    (root / "sub" / ".cache" / "f").write_bytes(b"f")
    (root / "link").symlink_to("a.txt")
    return root


TREE = "bafybeiauectlbv4zl4p5vj6gxf5qgps77zv7hfhwlg3zwlkwiziznsb5qa"
TREE_HIDDEN = "bafybeihs4u3eut2ohar46ii43ygcdundogmimxpg2utosogrqlinparmx4"
TREE_SUB = "bafybeidxquzd7qarskfhntfg4jceaoctz2zipot63ncqldbvmxcygjvlei"
SYMLINK_TO_A_TXT = "bafybeibysfkbozujnkzmx63h6nk4td2kmqcyhxhq67adb6vgr3mis24ble"


def test_directory_cids_match_kubo(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    seen: list[tuple[str, int]] = []
    store = Store()
    result = unixfs.import_directory(root, store.put, on_file=lambda p, n: seen.append((p, n)))
    assert result.cid.encode() == TREE
    assert result.size == 6 + 5 + 7 + 700000 + 300000
    assert result.blocks == store.puts
    assert sorted(seen) == sorted(
        [("a.txt", 6), ("empty", 0), ("B", 5), ("\u00e9", 7), ("sub/big.bin", 700000),
         ("sub/deeper/x", 300000), ("link", 0)]
    )  # fmt: skip
    hidden = unixfs.import_directory(root, Store().put, hidden=True)
    assert hidden.cid.encode() == TREE_HIDDEN
    assert unixfs.import_directory(root / "sub", Store().put).cid.encode() == TREE_SUB
    # A symlink given as the path is stored as a symlink; a file as a file.
    assert unixfs.import_directory(root / "link", Store().put).cid.encode() == SYMLINK_TO_A_TXT
    assert unixfs.import_directory(root / "a.txt", Store().put).cid == add_bytes(b"hello\n")[0].cid


def test_ls_stat_and_export_of_a_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    store = Store()
    result = unixfs.import_directory(root, store.put)
    entries = unixfs.ls(result.cid, store.read)
    assert [(e.name, e.type, e.size) for e in entries] == [
        ("B", "file", 5),
        ("a.txt", "file", 6),
        ("empty", "file", 0),
        ("emptydir", "directory", 0),
        ("link", "symlink", 5),
        ("sub", "directory", 0),
        ("\u00e9", "file", 7),
    ]
    info = unixfs.stat(result.cid, store.read)
    assert (info.type, info.cumulative_size) == ("directory", result.tsize)

    out = tmp_path / "out"
    unixfs.export_to_path(result.cid, store.read, out)
    assert _snapshot(out) == _snapshot(root, skip_hidden=True)
    with pytest.raises(VaultError, match="exists already"):
        unixfs.export_to_path(result.cid, store.read, out)
    single = tmp_path / "single.bin"
    big = next(e for e in unixfs.ls(CID.decode(TREE_SUB), store.read) if e.name == "big.bin")
    unixfs.export_to_path(big.cid, store.read, single)
    assert single.read_bytes() == data(700000, b"big")


def _snapshot(root: Path, *, skip_hidden: bool = False) -> dict[str, object]:
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames + filenames:
            if skip_hidden and name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = ("link", str(path.readlink()))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


def test_export_refuses_unsafe_names(tmp_path: Path) -> None:
    store = Store()
    leaf = add_bytes(b"evil", store)[0]
    for name in ("../escape", "a/b", "..", ""):
        block = dagpb.encode_node(
            PBNode(
                (PBLink(leaf.cid, name, 4),),
                dagpb.encode_unixfs(UnixFSData(DataType.DIRECTORY)),
            )
        )
        cid = CID.of(DAG_PB, block)
        store[cid] = block
        with pytest.raises(VaultBlockCorrupt, match="unsafe entry name"):
            unixfs.export_to_path(cid, store.read, tmp_path / f"out{len(name)}")
    assert not (tmp_path / "escape").exists()


def test_export_does_not_follow_a_symlink_planted_by_the_dag(tmp_path: Path) -> None:
    """A crafted directory that holds a symlink "a" and then a directory "a": the second
    entry must not be written through the link."""
    store = Store()
    outside = tmp_path / "outside"
    outside.mkdir()
    link = unixfs.symlink_block("../outside")
    link_cid = CID.of(DAG_PB, link)
    store[link_cid] = link
    leaf = add_bytes(b"payload", store)[0]
    inner = unixfs.build_directory([PBLink(leaf.cid, "f", 7)], store.put)
    block = dagpb.encode_node(
        PBNode(
            (PBLink(link_cid, "a", len(link)), PBLink(inner.cid, "a", inner.tsize)),
            dagpb.encode_unixfs(UnixFSData(DataType.DIRECTORY)),
        )
    )
    cid = CID.of(DAG_PB, block)
    store[cid] = block
    with pytest.raises(VaultError):
        unixfs.export_to_path(cid, store.read, tmp_path / "out")
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "out").exists()


def _dir(store: Store, *entries: tuple[str, CID, int]) -> CID:
    """A basic directory block with exactly these links (duplicates allowed)."""
    block = dagpb.encode_node(
        PBNode(
            tuple(PBLink(cid, name, tsize) for name, cid, tsize in entries),
            dagpb.encode_unixfs(UnixFSData(DataType.DIRECTORY)),
        )
    )
    cid = CID.of(DAG_PB, block)
    store[cid] = block
    return cid


def _link(store: Store, target: str) -> CID:
    block = unixfs.symlink_block(target)
    cid = CID.of(DAG_PB, block)
    store[cid] = block
    return cid


@pytest.mark.parametrize(
    ("where", "target"),
    [
        ("top", "/etc/passwd"),
        ("top", "../victim"),
        ("top", "sub/../../victim"),
        ("sub", "../../victim"),
        ("sub", "/tmp"),
        ("sub", "./../x/../../victim"),
    ],
)
def test_export_refuses_symlinks_that_are_absolute_or_leave_the_output(
    tmp_path: Path, where: str, target: str
) -> None:
    store = Store()
    leaf = add_bytes(b"payload", store)[0]
    link = _link(store, target)
    if where == "top":
        root = _dir(store, ("f", leaf.cid, 7), ("link", link, 10))
    else:
        sub = _dir(store, ("link", link, 10))
        root = _dir(store, ("f", leaf.cid, 7), ("sub", sub, 20))
    out = tmp_path / "out"
    with pytest.raises(VaultError) as caught:
        unixfs.export_to_path(root, store.read, out)
    assert caught.value.code == "vault.unsafe_symlink"
    assert target in caught.value.message
    assert not out.exists() and not out.is_symlink()  # nothing half-made is left


def test_export_refuses_links_that_leave_the_output_only_together(tmp_path: Path) -> None:
    """``sub/d -> ..`` and ``sub/e -> d/../..`` each stay inside when read as text, but
    ``sub/e`` resolves to the folder above the output."""
    store = Store()
    sub = _dir(store, ("d", _link(store, ".."), 2), ("e", _link(store, "d/../.."), 7))
    root = _dir(store, ("sub", sub, 9))
    out = tmp_path / "out"
    with pytest.raises(VaultError) as caught:
        unixfs.export_to_path(root, store.read, out)
    assert caught.value.code == "vault.unsafe_symlink"
    assert not out.exists()


def test_export_keeps_symlinks_that_stay_inside(tmp_path: Path) -> None:
    store = Store()
    leaf = add_bytes(b"payload", store)[0]
    sub = _dir(store, ("up", _link(store, "../f"), 4), ("self", _link(store, "."), 1))
    root = _dir(store, ("f", leaf.cid, 7), ("sub", sub, 9), ("l", _link(store, "sub/../f"), 8))
    out = tmp_path / "out"
    unixfs.export_to_path(root, store.read, out)
    assert (out / "sub" / "up").read_bytes() == b"payload"
    assert (out / "l").read_bytes() == b"payload"
    assert (out / "sub" / "self").readlink() == Path()
    # A symlink exported on its own may point beside itself, not above.
    unixfs.export_to_path(_link(store, "f"), store.read, tmp_path / "alone")
    assert (tmp_path / "alone").readlink() == Path("f")


def _bomb(store: Store, files: int, leaves: int, *, honest: bool = True) -> CID:
    """A directory of ``files`` links to one file of ``leaves`` links to one 256 KiB leaf:
    a few hundred KiB of blocks that export to files x leaves x 256 KiB."""
    leaf = data(C, b"bomb")
    leaf_cid = CID.of(RAW, leaf)
    store[leaf_cid] = leaf
    node = dagpb.encode_node(
        PBNode(
            tuple(PBLink(leaf_cid, "", C) for _ in range(leaves)),
            dagpb.encode_unixfs(
                UnixFSData(DataType.FILE, filesize=leaves * C, blocksizes=(C,) * leaves)
            ),
        )
    )
    file_cid = CID.of(DAG_PB, node)
    store[file_cid] = node
    size = leaves * C + len(node) if honest else 1
    return _dir(store, *((f"f{i:04d}", file_cid, size) for i in range(files)))


def test_export_budget_stops_a_dag_that_expands_past_its_bytes(tmp_path: Path) -> None:
    store = Store()
    bomb = _bomb(store, 64, 8)  # 128 MiB from 2 MiB of blocks
    out = tmp_path / "out"
    with pytest.raises(VaultError) as caught:
        unixfs.export_to_path(bomb, store.read, out, max_bytes=8 << 20)
    assert caught.value.code == "vault.export_too_large"
    assert "8388608 bytes" in caught.value.message
    assert not out.exists()
    # Within the budget it exports.
    small = _bomb(store, 3, 2)
    unixfs.export_to_path(small, store.read, tmp_path / "ok", max_bytes=6 * C)
    assert sorted(p.stat().st_size for p in (tmp_path / "ok").iterdir()) == [2 * C] * 3


def test_export_budget_stops_a_dag_that_expands_past_its_entries(tmp_path: Path) -> None:
    """100 links to one directory of 100 empty files: 10,101 entries from two blocks."""
    store = Store()
    empty = add_bytes(b"", store)[0].cid
    inner = _dir(store, *((f"e{i:03d}", empty, 0) for i in range(100)))
    root = _dir(store, *((f"d{i:03d}", inner, 4000) for i in range(100)))
    out = tmp_path / "out"
    with pytest.raises(VaultError) as caught:
        unixfs.export_to_path(root, store.read, out, max_entries=500)
    assert caught.value.code == "vault.export_too_large"
    assert not out.exists()


def test_a_file_that_yields_more_than_it_declares_stops_at_once() -> None:
    store = Store()
    leaf = data(C, b"x")
    leaf_cid = CID.of(RAW, leaf)
    store[leaf_cid] = leaf
    node = dagpb.encode_node(
        PBNode(
            tuple(PBLink(leaf_cid, "", C) for _ in range(4)),
            dagpb.encode_unixfs(UnixFSData(DataType.FILE, filesize=C, blocksizes=(C,))),
        )
    )
    cid = CID.of(DAG_PB, node)
    store[cid] = node
    pieces = unixfs.iter_file(cid, store.read)
    assert next(pieces) == leaf
    with pytest.raises(VaultBlockCorrupt, match="declares"):
        next(pieces)


def test_special_files_and_bad_names_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "fifo"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with pytest.raises(VaultError, match="not a file, directory or symlink") as info:
        unixfs.import_directory(root, Store().put)
    assert info.value.code == "vault.unsupported_file"
    bad = tmp_path / "badname"
    bad.mkdir()
    (Path(os.fsdecode(os.fsencode(bad) + b"/\xff.txt"))).write_bytes(b"x")
    with pytest.raises(VaultError, match="not valid UTF-8"):
        unixfs.import_directory(bad, Store().put)
    with pytest.raises(FileUnreadable):
        unixfs.import_directory(tmp_path / "nothing", Store().put)


# -- HAMT-sharded directories ---------------------------------------------------------------

# 100-byte names + 36-byte CIDs: 1927 entries stay below Kubo's 256 KiB estimate, 1928
# reach it and are sharded. Each entry is a 1-byte file holding str(i % 7).
KUBO_BASIC_1927 = "bafybeibfqmo7esc7dhscg6t4ho5v7y247nbpzgmguxtouf22j6isgeey64"
KUBO_HAMT_1928 = "bafybeiemdx7iidm2mualvrhotu2obth6ebujx2mucrvcsqaeflwnpcwjuq"


def hamt_links(count: int, store: Store) -> list[PBLink]:
    files = [add_bytes(str(i).encode(), store)[0].cid for i in range(7)]
    return [PBLink(files[i % 7], f"{i:06d}".ljust(100, "n"), 1) for i in range(count)]


def test_hamt_threshold_and_cids_match_kubo(tmp_path: Path) -> None:
    store = Store()
    basic = unixfs.build_directory(hamt_links(1927, store), store.put)
    assert basic.cid.encode() == KUBO_BASIC_1927
    sharded = unixfs.build_directory(hamt_links(1928, store), store.put)
    assert sharded.cid.encode() == KUBO_HAMT_1928
    fs = dagpb.node_unixfs(dagpb.decode_node(store[sharded.cid]))
    assert (fs.type, fs.fanout, fs.hash_type) == (DataType.HAMT_SHARD, 256, 0x22)
    entries = unixfs.ls(sharded.cid, store.read)
    assert [e.name for e in entries] == sorted(link.name or "" for link in hamt_links(1928, store))
    assert {e.size for e in entries} == {1}
    out = tmp_path / "out"
    unixfs.export_to_path(sharded.cid, store.read, out)
    assert len(list(out.iterdir())) == 1928
    assert (out / "001927".ljust(100, "n")).read_bytes() == b"2"
    # Sharding off: one basic node, whatever the size.
    unsharded = unixfs.build_directory(hamt_links(1928, store), store.put, hamt_threshold=0)
    assert dagpb.node_unixfs(dagpb.decode_node(store[unsharded.cid])).type == DataType.DIRECTORY


def test_hamt_from_real_files(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(1928):
        (root / f"{i:06d}".ljust(100, "n")).write_bytes(str(i % 7).encode())
    assert unixfs.import_directory(root, Store().put).cid.encode() == KUBO_HAMT_1928


def test_murmur3_reference_values() -> None:
    murmur: Callable[[bytes], bytes] = unixfs._murmur3_64
    # MurmurHash3_x64_128 seed 0, first 64-bit word (reference implementation values).
    assert murmur(b"") == bytes(8)
    assert murmur(b"hello").hex() == "cbd8a7b341bd9b02"
    assert murmur(b"The quick brown fox jumps over the lazy dog").hex() == "e34bbc7bbc071b6c"
