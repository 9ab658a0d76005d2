"""One conformance suite for both block stores, plus what only one of them has.

:class:`BlockstoreConformance` holds the tests; :class:`TestLocalBlockstore` runs them
on files in a temporary folder and :class:`TestKuboBlockstore` on a real Kubo daemon
(local-only, temporary repo, one per module; marked e2e). Blocks are random so tests
never share one; the Kubo store unpins what a test pinned and collects garbage after
each test. DAGs are dag-pb bytes made with :mod:`sahara_cli.vault.dagpb`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.errors import (
    VaultBackendError,
    VaultBackendUnreachable,
    VaultBlockCorrupt,
    VaultBlockNotFound,
    VaultBusy,
)
from sahara_cli.vault import dagpb, packs
from sahara_cli.vault.blockstore import Blockstore, GCResult
from sahara_cli.vault.cid import CID, DAG_PB, RAW
from sahara_cli.vault.kubo import KuboBlockstore, KuboDaemon, free_port
from sahara_cli.vault.local import (
    SHARDING,
    LocalBlockstore,
    WriterLock,
    block_key,
    block_path,
    cid_from_key,
)
from tests.vault_kubo import running_kubo

Block = tuple[CID, bytes]


def raw_block(size: int = 1000) -> Block:
    data = os.urandom(size)
    return CID.of(RAW, data), data


def node_block(*children: Block) -> Block:
    """A dag-pb node (UnixFS file) linking to ``children``; random data keeps it unique."""
    links = tuple(dagpb.PBLink(cid, "", len(data)) for cid, data in children)
    data = dagpb.encode_node(dagpb.PBNode(links, b"\x08\x02\x12\x08" + os.urandom(8)))
    return CID.of(DAG_PB, data), data


def digests(cids: Iterator[CID] | list[CID]) -> set[bytes]:
    return {cid.digest for cid in cids}


class BlockstoreConformance:
    """The behaviour every :class:`Blockstore` shares. Subclasses give ``store`` and
    ``corrupt`` (change a stored block's bytes behind the store's back)."""

    @pytest.fixture
    def store(self) -> Iterator[Blockstore]:
        raise NotImplementedError

    def corrupt(self, store: Blockstore, cid: CID, data: bytes) -> None:
        raise NotImplementedError

    # -- put / get --------------------------------------------------------------------

    def test_raw_round_trip(self, store: Blockstore) -> None:
        cid, data = raw_block(5000)
        store.put(cid, data)
        assert store.get(cid) == data
        assert store.has(cid)

    def test_dag_pb_round_trip(self, store: Blockstore) -> None:
        leaf = raw_block(300)
        cid, data = node_block(leaf)
        store.put(*leaf)
        store.put(cid, data)
        assert store.get(cid) == data
        assert dagpb.links(cid, store.get(cid)) == [leaf[0]]

    def test_empty_block(self, store: Blockstore) -> None:
        cid = CID.of(RAW, b"")
        store.put(cid, b"")
        assert store.get(cid) == b""

    def test_put_is_idempotent(self, store: Blockstore) -> None:
        cid, data = raw_block(2000)
        before = store.stat().blocks
        store.put(cid, data)
        store.put(cid, data)
        store.put_many([(cid, data), (cid, data)])
        assert store.stat().blocks == before + 1
        assert store.get(cid) == data

    def test_put_refuses_bytes_that_do_not_match(self, store: Blockstore) -> None:
        cid, _ = raw_block(100)
        with pytest.raises(VaultBlockCorrupt, match=str(cid)):
            store.put(cid, b"other bytes")
        assert not store.has(cid)

    def test_has_and_delete(self, store: Blockstore) -> None:
        cid, data = raw_block()
        assert not store.has(cid)
        store.put(cid, data)
        assert store.has(cid)
        store.delete(cid)
        assert not store.has(cid)
        store.delete(cid)  # absent: no error

    def test_get_missing_block(self, store: Blockstore) -> None:
        cid, _ = raw_block()
        with pytest.raises(VaultBlockNotFound, match=str(cid)):
            store.get(cid)

    def test_corrupt_block_is_detected(self, store: Blockstore) -> None:
        cid, data = raw_block(4000)
        store.put(cid, data)
        self.corrupt(store, cid, data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(VaultBlockCorrupt, match=str(cid)) as caught:
            store.get(cid)
        assert caught.value.code == "vault.block_corrupt"
        self.corrupt(store, cid, data[:100])  # truncated
        with pytest.raises(VaultBlockCorrupt):
            store.get(cid)

    def test_codec_does_not_matter_for_lookup(self, store: Blockstore) -> None:
        """Blocks are keyed by multihash (as in Kubo): raw and dag-pb CIDs of the same
        bytes find the same block."""
        cid, data = node_block()
        store.put(cid, data)
        assert store.has(CID(RAW, cid.digest))
        assert store.get(CID(RAW, cid.digest)) == data

    # -- listing and stat -------------------------------------------------------------

    def test_cids_lists_blocks(self, store: Blockstore) -> None:
        leaf = raw_block(10)
        node = node_block(leaf)
        store.put_many([leaf, node])
        listed = list(store.cids())
        assert all(isinstance(cid, CID) for cid in listed)
        assert {leaf[0].digest, node[0].digest} <= digests(listed)
        store.delete(node[0])
        assert node[0].digest not in digests(store.cids())

    def test_stat_counts(self, store: Blockstore) -> None:
        before = store.stat()
        blocks = [raw_block(size) for size in (1000, 2000, 3000)]
        store.put_many(blocks)
        after = store.stat()
        assert after.blocks == before.blocks + 3
        assert after.bytes - before.bytes >= 6000
        assert after.location

    def test_put_many(self, store: Blockstore) -> None:
        blocks = [raw_block(size) for size in range(1, 6000, 20)]
        blocks += [raw_block(256 * 1024) for _ in range(3)]
        blocks.append(node_block(*blocks[:50]))
        store.put_many(iter(blocks))
        assert {cid.digest for cid, _ in blocks} <= digests(store.cids())
        for cid, data in blocks[::37] + blocks[-4:]:
            assert store.get(cid) == data

    def test_put_many_empty(self, store: Blockstore) -> None:
        store.put_many([])

    # -- pins and gc ------------------------------------------------------------------

    def dag(self, store: Blockstore) -> tuple[CID, list[Block]]:
        """root -> (mid -> (l1, l2), l3), all stored; returns the root and every block."""
        l1, l2, l3 = raw_block(700), raw_block(800), raw_block(900)
        mid = node_block(l1, l2)
        root = node_block(mid, l3)
        blocks = [l1, l2, l3, mid, root]
        store.put_many(blocks)
        return root[0], blocks

    def test_recursive_pin_keeps_children_through_gc(self, store: Blockstore) -> None:
        root, blocks = self.dag(store)
        loose = raw_block(1234)
        loose_node = node_block(blocks[0])  # links to a pinned leaf, itself unpinned
        store.put_many([loose, loose_node])
        store.pin(root)
        result = store.gc()
        for cid, data in blocks:
            assert store.get(cid) == data
        assert not store.has(loose[0])
        assert not store.has(loose_node[0])
        assert result.removed_blocks >= 2
        assert result.removed_bytes >= len(loose[1]) + len(loose_node[1])

    def test_unpinned_blocks_are_collected(self, store: Blockstore) -> None:
        root, blocks = self.dag(store)
        store.pin(root)
        store.unpin(root)
        result = store.gc()
        assert not any(store.has(cid) for cid, _ in blocks)
        assert result.removed_blocks >= len(blocks)
        assert result.removed_bytes >= sum(len(data) for _, data in blocks)

    def test_gc_dry_run_counts_and_removes_nothing(self, store: Blockstore) -> None:
        root, blocks = self.dag(store)
        store.pin(root)
        loose = [raw_block(size) for size in (1500, 2500)]
        store.put_many(loose)
        counted = store.gc(dry_run=True)
        assert counted.removed_blocks >= 2 and counted.removed_bytes >= 4000
        assert all(store.has(cid) for cid, _ in [*blocks, *loose])
        assert store.gc() == counted
        assert not any(store.has(cid) for cid, _ in loose)
        assert all(store.get(cid) == data for cid, data in blocks)

    def test_pin_with_missing_child_fails(self, store: Blockstore) -> None:
        present, missing = raw_block(), raw_block()
        root = node_block(present, missing)
        store.put_many([present, root])
        with pytest.raises(VaultBlockNotFound, match=str(missing[0])):
            store.pin(root[0])
        assert root[0].digest not in digests(store.pins())

    def test_pin_with_missing_inner_node_fails(self, store: Blockstore) -> None:
        leaf = raw_block()
        mid = node_block(leaf)
        root = node_block(mid)
        store.put_many([leaf, root])
        with pytest.raises(VaultBlockNotFound, match=str(mid[0])):
            store.pin(root[0])

    def test_pin_of_missing_root_fails(self, store: Blockstore) -> None:
        root = node_block(raw_block())
        with pytest.raises(VaultBlockNotFound, match=str(root[0])):
            store.pin(root[0])

    def test_pin_of_raw_block(self, store: Blockstore) -> None:
        cid, data = raw_block()
        store.put(cid, data)
        store.pin(cid)
        store.gc()
        assert store.get(cid) == data
        assert cid.digest in digests(store.pins())

    def test_pins_listing(self, store: Blockstore) -> None:
        first, _ = self.dag(store)
        second, _ = self.dag(store)
        store.pin(first)
        store.pin(second)
        store.pin(second)  # again: no error, listed once
        pinned = [cid for cid in store.pins() if cid.digest in {first.digest, second.digest}]
        assert sorted(p.encode() for p in pinned) == sorted([first.encode(), second.encode()])
        store.unpin(first)
        store.unpin(first)  # not pinned any more: no error
        assert digests(store.pins()) & {first.digest, second.digest} == {second.digest}

    def test_shared_blocks_stay_while_one_pin_holds_them(self, store: Blockstore) -> None:
        shared = raw_block(500)
        a, b = node_block(shared), node_block(shared)
        store.put_many([shared, a, b])
        store.pin(a[0])
        store.pin(b[0])
        store.unpin(a[0])
        store.gc()
        assert store.has(shared[0])
        assert store.has(b[0])
        assert not store.has(a[0])

    def test_context_manager_closes(self, store: Blockstore) -> None:
        with store as same:
            assert same is store


# -- the local store -----------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from sahara_cli.vault import dagpb
    from sahara_cli.vault.cid import CID, DAG_PB, RAW
    from sahara_cli.vault.local import LocalBlockstore

    root, seed = Path(sys.argv[1]), sys.argv[2]
    shared = [bytes([i]) * 4096 for i in range(100)]          # both writers put these
    own = [(seed * 64 + str(i)).encode() * 64 for i in range(100)]
    leaves = [(CID.of(RAW, d), d) for d in shared + own]
    with LocalBlockstore(root) as store:
        for i, (cid, data) in enumerate(leaves):
            store.put(cid, data)
            if i % 20 == 0:
                time.sleep(0.02)   # give the gc process chances to run
        links = tuple(dagpb.PBLink(cid, "", len(d)) for cid, d in leaves)
        node = dagpb.encode_node(dagpb.PBNode(links, b"\\x08\\x02"))
        top = CID.of(DAG_PB, node)
        store.put(top, node)
        store.pin(top)
        print(top.encode())
    """
)

GC_LOOP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sahara_cli.vault.local import LocalBlockstore

    root, until = Path(sys.argv[1]), time.time() + float(sys.argv[2])
    runs = 0
    while time.time() < until:
        with LocalBlockstore(root, gc_wait=30) as store:
            store.gc()
        runs += 1
    print(runs)
    """
)


class TestLocalBlockstore(BlockstoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LocalBlockstore]:
        store = LocalBlockstore(tmp_path / "vault")
        yield store
        store.close()

    def corrupt(self, store: Blockstore, cid: CID, data: bytes) -> None:
        assert isinstance(store, LocalBlockstore)
        where = store.locate(cid)
        assert where is not None
        name, offset, length = where
        with (store.packs_dir / name).open("r+b") as pack:
            pack.seek(offset)
            pack.write(data[:length])
            if len(data) < length:
                pack.truncate(offset + len(data))

    def test_stat_is_exact(self, store: LocalBlockstore) -> None:
        assert store.stat().blocks == 0
        assert store.stat().bytes == 0
        store.put_many([raw_block(size) for size in (10, 20, 30)])
        stat = store.stat()
        assert (stat.blocks, stat.bytes) == (3, 60)
        assert stat.location == str(store.root)

    def test_gc_counts_exactly(self, store: LocalBlockstore) -> None:
        keep, drop = raw_block(100), raw_block(250)
        store.put_many([keep, drop])
        store.pin(keep[0])
        result = store.gc()
        assert (result.removed_blocks, result.removed_bytes) == (1, 250)
        assert store.gc().removed_blocks == 0

    def test_layout_is_packs_with_an_index(self, store: LocalBlockstore) -> None:
        blocks = [raw_block(size) for size in (10, 3000, 70_000)]
        store.put_many(blocks)
        [pack] = list(store.packs_dir.iterdir())
        assert pack.name.endswith(".pack") and pack.stat().st_mode & 0o777 == 0o600
        assert pack.read_bytes().startswith(packs.MAGIC)
        records = list(packs.scan(pack))
        assert [(r.digest, r.length) for r in records] == [
            (cid.digest, len(data)) for cid, data in blocks
        ]
        assert not (store.root / "blocks").exists()  # nothing is one file per block
        with LocalBlockstore(store.root) as other:
            assert not other.has(blocks[0][0])  # not recorded yet: this store's own
            store.sync()
            assert other.get(blocks[1][0]) == blocks[1][1]
        assert cid_from_key(block_key(blocks[0][0])) == CID(RAW, blocks[0][0].digest)
        assert cid_from_key("NOTAKEY") is None

    def test_nothing_is_created_by_reading(self, tmp_path: Path) -> None:
        with LocalBlockstore(tmp_path / "absent") as store:
            assert list(store.cids()) == []
            assert store.pins() == []
            assert store.stat().blocks == 0
            assert store.gc().removed_blocks == 0
            store.unpin(raw_block()[0])
            with pytest.raises(VaultBlockNotFound):
                store.get(raw_block()[0])
        assert not (tmp_path / "absent").exists()

    def test_a_killed_writer_leaves_nothing_counted_and_gc_reclaims_it(
        self, tmp_path: Path
    ) -> None:
        root = tmp_path / "vault"
        kept = raw_block(500)
        with LocalBlockstore(root) as store:
            store.put(*kept)
            store.pin(kept[0])
        script = textwrap.dedent(
            """
            import os, sys
            from pathlib import Path
            from sahara_cli.vault.cid import CID, RAW
            from sahara_cli.vault.local import LocalBlockstore
            store = LocalBlockstore(Path(sys.argv[1]))
            for i in range(5):
                data = os.urandom(70_000)
                store.put(CID.of(RAW, data), data)
            os._exit(9)   # killed between its puts and its pin
            """
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        killed = subprocess.run([sys.executable, "-c", script, str(root)], env=env, check=False)
        assert killed.returncode == 9
        orphan = max((root / "packs").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        with orphan.open("ab") as pack:  # and a record cut short
            pack.write(packs.HEADER.pack(1000, bytes(32)) + b"x" * 10)
        with LocalBlockstore(root) as store:
            assert (store.stat().blocks, store.stat().bytes) == (1, 500)
            assert store.gc(dry_run=True) == GCResult(removed_blocks=5, removed_bytes=350_000)
            assert orphan.exists()
            assert store.gc() == GCResult(removed_blocks=5, removed_bytes=350_000)
            assert not orphan.exists()
            assert store.get(kept[0]) == kept[1]
            assert store.gc().removed_blocks == 0

    def test_gc_rewrites_a_pack_that_holds_garbage(self, store: LocalBlockstore) -> None:
        keep, drop = raw_block(100_000), raw_block(200_000)
        store.put_many([keep, drop])
        store.pin(keep[0])
        [before] = list(store.packs_dir.iterdir())
        assert store.gc() == GCResult(removed_blocks=1, removed_bytes=200_000)
        [after] = list(store.packs_dir.iterdir())
        assert after != before and after.stat().st_size < 100_100
        assert store.get(keep[0]) == keep[1]
        assert store.gc() == GCResult(removed_blocks=0, removed_bytes=0)
        assert list(store.packs_dir.iterdir()) == [after]  # nothing to rewrite

    def test_gc_merges_the_packs_of_small_adds(self, tmp_path: Path) -> None:
        root = tmp_path / "vault"
        added = [raw_block(size) for size in (100, 2000, 30_000)]
        big = [raw_block(256 * 1024) for _ in range(17)]
        for block in added:  # three adds, three stores, three packs
            with LocalBlockstore(root) as store:
                store.put(*block)
                store.pin(block[0])
        with LocalBlockstore(root) as store:  # and one pack too big to merge
            store.put_many(big)
            for cid, _ in big:
                store.pin(cid)
        large = max((root / "packs").iterdir(), key=lambda p: p.stat().st_size)
        assert len(list((root / "packs").iterdir())) == 4
        with LocalBlockstore(root) as store:
            assert store.gc() == GCResult(removed_blocks=0, removed_bytes=0)
            assert len(list((root / "packs").iterdir())) == 2 and large.exists()
            for cid, data in [*added, *big]:
                assert store.get(cid) == data
            assert store.gc() == GCResult(removed_blocks=0, removed_bytes=0)
            assert len(list((root / "packs").iterdir())) == 2

    def test_first_layout_is_read_then_moved_into_a_pack_by_gc(self, tmp_path: Path) -> None:
        """A home from before packs: one file per block under blocks/ (flatfs)."""
        root = tmp_path / "vault"
        leaves = [raw_block(size) for size in (10, 3000)]
        top = node_block(*leaves)
        loose = raw_block(77)
        for cid, data in [*leaves, top, loose]:
            path = block_path(root / "blocks", cid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (root / "blocks" / "SHARDING").write_text(SHARDING)
        stale = block_path(root / "blocks", loose[0]).parent / ".tmp-XYZ-deadbeef"
        stale.write_bytes(b"torn")
        store = LocalBlockstore(root)
        with store:
            assert store.get(top[0]) == top[1]
            assert store.stat().blocks == 4
            store.pin(top[0])
            assert store.gc() == GCResult(removed_blocks=1, removed_bytes=77)
            assert list((root / "blocks").rglob("*.data")) == [] and not stale.exists()
            for cid, data in [*leaves, top]:
                assert store.locate(cid) is not None and store.get(cid) == data
            assert store.stat().blocks == 3
        with LocalBlockstore(root) as again:
            assert isinstance(again, LocalBlockstore)
            assert [c.digest for c in again.walk(top[0])] == [
                c.digest for c in [top[0], leaves[0][0], leaves[1][0]]
            ]

    def test_a_reader_follows_a_block_that_gc_moved(
        self, store: LocalBlockstore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A reader holds no lock: a gc in another process may rewrite the pack between
        its look-up and its read. The read looks again."""
        keep, drop = raw_block(5000), raw_block(9000)
        store.put_many([keep, drop])
        store.pin(keep[0])
        reader = LocalBlockstore(store.root)
        try:
            stale = reader.locate(keep[0])
            assert store.gc().removed_blocks == 1
            looks = iter([stale])
            real = reader.locate
            monkeypatch.setattr(reader, "locate", lambda cid: next(looks, None) or real(cid))
            assert reader.get(keep[0]) == keep[1]
        finally:
            reader.close()

    def test_putting_a_recorded_block_writes_nothing(self, store: LocalBlockstore) -> None:
        cid, data = raw_block(3000)
        store.put(cid, data)
        store.pin(cid)
        [pack] = list(store.packs_dir.iterdir())
        size = pack.stat().st_size
        with LocalBlockstore(store.root) as other:
            other.put(cid, data)
            other.put_many([(cid, data)] * 5)
            other.sync()
        assert pack.stat().st_size == size
        assert [p.name for p in store.packs_dir.iterdir()] == [pack.name]

    def test_pin_makes_the_pack_and_its_directory_durable_first(
        self, store: LocalBlockstore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing is recorded (indexed and pinned, then catalogued) before the pack's
        bytes and the directory entry naming the pack have been synced; one data sync
        for the whole add, not one per block."""
        events: list[tuple[str, tuple[int, int]]] = []
        real_fsync, real_fdatasync = os.fsync, os.fdatasync

        def spy(kind: str, real: object) -> object:
            def call(fd: int) -> None:
                info = os.fstat(fd)
                events.append((kind, (info.st_dev, info.st_ino)))
                real(fd)  # type: ignore[operator]

            return call

        leaves = [raw_block(size) for size in (10, 2000, 70_000, 5, 300)]
        root = node_block(*leaves)
        store.put(*leaves[0])  # creates the store
        monkeypatch.setattr(os, "fsync", spy("fsync", real_fsync))
        monkeypatch.setattr(os, "fdatasync", spy("fdatasync", real_fdatasync))
        store.put_many([*leaves[1:], root])
        with LocalBlockstore(store.root) as other:
            assert other.pins() == [] and not other.has(root[0])
        store.pin(root[0])
        assert store.pins() == [root[0]]

        def ident(path: Path) -> tuple[int, int]:
            info = path.stat()
            return info.st_dev, info.st_ino

        [pack] = list(store.packs_dir.iterdir())
        assert events.count(("fdatasync", ident(pack))) == 1
        assert ("fsync", ident(store.packs_dir)) in events
        assert events.index(("fdatasync", ident(pack))) < events.index(
            ("fsync", ident(store.packs_dir))
        )

    def test_pins_persist(self, tmp_path: Path) -> None:
        root = tmp_path / "vault"
        cid, data = raw_block()
        with LocalBlockstore(root) as store:
            store.put(cid, data)
            store.pin(cid)
        with LocalBlockstore(root) as store:
            assert store.pins() == [cid]
            assert store.gc().removed_blocks == 0
        assert (root / "pins.sqlite").is_file()

    def test_fsync_mode(self, tmp_path: Path) -> None:
        with LocalBlockstore(tmp_path / "vault", fsync=True) as store:
            cid, data = raw_block()
            store.put(cid, data)
            assert store.get(cid) == data

    def test_gc_waits_for_a_writer_that_has_not_pinned(self, tmp_path: Path) -> None:
        root = tmp_path / "vault"
        writer = LocalBlockstore(root)
        collector = LocalBlockstore(root, gc_wait=0.2)
        try:
            cid, data = raw_block()
            writer.put(cid, data)  # an add in progress: written, not pinned yet
            with pytest.raises(VaultBusy, match="gc did not run") as caught:
                collector.gc()
            assert caught.value.code == "vault.busy"
            assert writer.has(cid)
            writer.pin(cid)
            writer.close()  # the add is over
            assert collector.gc().removed_blocks == 0
            assert collector.get(cid) == data
        finally:
            writer.close()
            collector.close()

    def test_a_writer_waits_for_gc(self, tmp_path: Path) -> None:
        lock = WriterLock(tmp_path / "vault" / "writers.lock")
        store = LocalBlockstore(tmp_path / "vault")
        store.lock.write_wait = 0.2
        with lock.exclusive(), pytest.raises(VaultBusy, match="garbage-collected"):
            store.put(*raw_block())
        store.put(*raw_block())  # gc over: writes go on
        store.close()
        lock.release()

    def test_own_gc_after_own_writes(self, store: LocalBlockstore) -> None:
        """A store that wrote holds the lock shared; its own gc upgrades, then goes back
        to shared, so a later put still holds the writers' lock."""
        store.put(*raw_block())
        assert store.gc().removed_blocks == 1
        cid, data = raw_block()
        store.put(cid, data)
        other = LocalBlockstore(store.root, gc_wait=0.1)
        try:
            with pytest.raises(VaultBusy, match="gc did not run"):
                other.gc()
        finally:
            other.close()
        assert store.has(cid)

    def test_two_adds_and_gc_in_three_processes(self, tmp_path: Path) -> None:
        root = tmp_path / "vault"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

        def spawn(script: str, *args: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-c", script, str(root), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )

        LocalBlockstore(root).close()
        collector = spawn(GC_LOOP, "2.0")
        writers = [spawn(WRITER, seed) for seed in ("a", "b")]
        outputs = [proc.communicate(timeout=60) for proc in [*writers, collector]]
        for proc, (_, err) in zip([*writers, collector], outputs, strict=True):
            assert proc.returncode == 0, err
        roots = {CID.decode(out.strip()) for out, _ in outputs[:2]}
        assert int(outputs[2][0]) >= 1
        store = LocalBlockstore(root)
        assert set(store.pins()) == roots
        for top in roots:
            walked = list(store.walk(top))
            assert len(walked) == 201
            for cid in walked:
                store.get(cid)
        assert store.stat().blocks == 100 + 2 * 100 + 2
        assert store.gc().removed_blocks == 0
        store.close()


# -- the Kubo store ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboDaemon]:
    with running_kubo(tmp_path_factory.mktemp("kubo")) as daemon:
        yield daemon


@pytest.mark.e2e
class TestKuboBlockstore(BlockstoreConformance):
    @pytest.fixture
    def store(self, kubo: KuboDaemon) -> Iterator[KuboBlockstore]:
        # Small CAR batches, so put_many sends several requests even in these tests.
        store = KuboBlockstore(kubo.api_url, timeout=30, batch_bytes=64 * 1024)
        baseline = {cid.encode() for cid in store.pins()}
        yield store
        store.close()
        with KuboBlockstore(kubo.api_url, timeout=30) as cleaner:
            for cid in cleaner.pins():
                if cid.encode() not in baseline:
                    cleaner.unpin(cid)
            cleaner.gc()

    @pytest.fixture(autouse=True)
    def _daemon(self, kubo: KuboDaemon) -> None:
        self.daemon = kubo

    def corrupt(self, store: Blockstore, cid: CID, data: bytes) -> None:
        # Kubo's repo keeps blocks in flatfs: the same layout as the local store.
        path = block_path(self.daemon.repo / "blocks", cid)
        assert path.is_file(), f"{path} is not where flatfs keeps {cid}"
        path.write_bytes(data)

    def test_unreachable_daemon(self) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        with KuboBlockstore(url, timeout=5) as store:
            with pytest.raises(VaultBackendUnreachable, match=url) as caught:
                store.get(raw_block()[0])
            assert caught.value.code == "vault.backend_unreachable"
            with pytest.raises(VaultBackendUnreachable):
                list(store.cids())

    def test_kubo_error_message_is_passed_on(self, store: KuboBlockstore) -> None:
        with pytest.raises(VaultBackendError, match=r"Kubo block/get failed: .*invalid path"):
            store.call("block/get", {"arg": "not-a-cid"})

    def test_not_a_kubo_api(self, store: KuboBlockstore) -> None:
        gateway = KuboBlockstore(store.api_url + "/nothing-here", timeout=5)
        with gateway, pytest.raises(VaultBackendError, match="not a Kubo RPC API"):
            gateway.stat()

    def test_delete_of_a_pinned_block_is_refused(self, store: KuboBlockstore) -> None:
        cid, data = raw_block()
        store.put(cid, data)
        store.pin(cid)
        with pytest.raises(VaultBackendError, match="pinned"):
            store.delete(cid)
        assert store.has(cid)

    def test_writers_lock_holds_off_gc(self, store: KuboBlockstore, tmp_path: Path) -> None:
        lock_path = tmp_path / "writers.lock"
        writer = KuboBlockstore(store.api_url, lock_path=lock_path)
        collector = KuboBlockstore(store.api_url, lock_path=lock_path, gc_wait=0.2)
        try:
            cid, data = raw_block()
            writer.put(cid, data)
            with pytest.raises(VaultBusy, match="gc did not run"):
                collector.gc()
            assert store.has(cid)
        finally:
            writer.close()
            collector.close()

    def test_v0_root_pins(self, store: KuboBlockstore) -> None:
        leaf = raw_block()
        cid, data = node_block(leaf)
        store.put_many([leaf, (cid, data)])
        v0 = CID(DAG_PB, cid.digest, 0)
        store.pin(v0)
        assert cid.digest in digests(store.pins())
        assert store.get(v0) == data
