"""The vault library on the local blockstore: bounded memory, what an interrupted add
leaves, deduplication, commitments, and the key a different ID cannot open."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.errors import VaultDecryptFailed, VaultWrongKey
from sahara_cli.identity.keys import public_key_of
from sahara_cli.vault.core import Holder, Vault
from sahara_cli.vault.local import LocalBlockstore

OWNER_KEY = bytes(range(1, 33))
OWNER = Holder("0x" + "11" * 20, public_key_of(OWNER_KEY))


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    root = tmp_path / "vault"
    with Vault(root, LocalBlockstore(root)) as v:
        yield v


def _file(path: Path, size: int, seed: int = 0) -> Path:
    import random

    rng = random.Random(seed)
    with path.open("wb") as handle:
        left = size
        while left:
            piece = min(left, 1 << 20)
            handle.write(rng.randbytes(piece))
            left -= piece
    return path


@pytest.mark.parametrize("public", [True, False])
def test_add_and_read_back_in_bounded_memory(vault: Vault, tmp_path: Path, public: bool) -> None:
    size = 40 << 20
    src = _file(tmp_path / "big.bin", size)
    tracemalloc.start()
    item, new = vault.add(src, OWNER, public=public)
    _, add_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    out = tmp_path / "back.bin"
    vault.write_out(item, vault.data_key(item, OWNER_KEY), out)
    _, get_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert new and item.size == size
    # A few 8 MiB write batches at most, never the file.
    assert add_peak < 32 << 20, add_peak
    assert get_peak < 8 << 20, get_peak
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_an_add_stopped_half_way_leaves_no_item_and_gc_takes_its_blocks(
    vault: Vault, tmp_path: Path
) -> None:
    src = _file(tmp_path / "big.bin", 20 << 20)
    seen = 0

    def stop_half_way(n: int) -> None:
        nonlocal seen
        seen += n
        if seen > 10 << 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vault.add(src, OWNER, progress=stop_half_way)
    assert vault.items() == []
    assert vault.store.stat().blocks > 0  # written, but pinned by nothing
    assert vault.store.gc().removed_blocks > 0
    assert vault.store.stat().blocks == 0
    item, new = vault.add(src, OWNER)
    assert new and vault.items() == [item]


def test_private_re_add_returns_the_first_item(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("same plaintext")
    first, new1 = vault.add(src, OWNER)
    second, new2 = vault.add(src, OWNER)
    assert new1 and not new2 and second.cid == first.cid
    other = Holder("0x" + "22" * 20, public_key_of(bytes(range(2, 34))))
    third, new3 = vault.add(src, other)
    assert new3 and third.cid != first.cid  # another ID gets its own key and ciphertext


def test_commitments(vault: Vault, tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("one block")
    big = _file(tmp_path / "big.bin", 600_000)
    sha = {p: "0x" + hashlib.sha256(p.read_bytes()).hexdigest() for p in (small, big)}
    plain, _ = vault.add(big, OWNER, salted=False)
    assert plain.commitment == sha[big]  # --plain-commitment: anyone can recompute it
    one, _ = vault.add(small, OWNER, public=True)
    assert one.commitment == sha[small]  # a one-block CID is the file's SHA-256
    many, _ = vault.add(big, OWNER, public=True)
    assert many.commitment == ""  # filled in when registered
    assert vault.ensure_commitment(many).commitment == sha[big]


def test_a_private_commitment_does_not_confirm_a_guessed_plaintext(
    vault: Vault, tmp_path: Path
) -> None:
    """Whoever guesses the plaintext of a private item (a form with few possible values)
    must not be able to confirm the guess from the chain's commitment; whoever holds the
    data key (the owner, a licensee) checks the plaintext against it."""
    from sahara_cli.vault import crypto

    src = tmp_path / "salary.txt"
    src.write_text("salary: 120000")
    item, _ = vault.add(src, OWNER)
    guess = "0x" + hashlib.sha256(b"salary: 120000").hexdigest()
    assert item.commitment != guess
    assert len(bytes.fromhex(item.commitment.removeprefix("0x"))) == 32
    key = vault.data_key(item, OWNER_KEY)
    assert key is not None and item.commitment == crypto.salted_commitment(key, guess)
    out = tmp_path / "back.txt"
    vault.write_out(item, key, out)  # checked against the salted commitment
    assert out.read_text() == "salary: 120000"
    # Each add salts anew (a new data key), yet the same plaintext is still found twice.
    again, new = vault.add(src, OWNER)
    assert not new and again.id == item.id
    other = tmp_path / "other.txt"
    other.write_text("salary: 120000")
    _, salted_twin_new = vault.add(other, OWNER, salted=False)
    assert not salted_twin_new


def test_private_directory_commitment_is_reproducible(vault: Vault, tmp_path: Path) -> None:
    for name in ("one", "two"):
        tree = tmp_path / name
        (tree / "sub").mkdir(parents=True)
        (tree / "a.txt").write_text("alpha")
        (tree / "sub" / "b.txt").write_text("beta")
        os.utime(tree / "a.txt", (1, 1 if name == "one" else 99999))
    first, _ = vault.add(tmp_path / "one", OWNER, recursive=True, salted=False)
    second, new = vault.add(tmp_path / "two", OWNER, recursive=True, salted=False)
    assert first.commitment == second.commitment and not new


def test_another_ids_key_cannot_open_the_item(vault: Vault, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("secret")
    item, _ = vault.add(src, OWNER)
    with pytest.raises(VaultWrongKey):
        vault.data_key(item, bytes(range(2, 34)))


def test_a_changed_ciphertext_byte_fails_before_any_output(vault: Vault, tmp_path: Path) -> None:
    """Change the ciphertext and store it under its new CID, as a malicious server
    would: the block hashes check out, the AES-GCM tags do not."""
    from sahara_cli.vault import unixfs
    from sahara_cli.vault.cid import CID

    src = tmp_path / "a.txt"
    src.write_text("secret " * 1000)
    item, _ = vault.add(src, OWNER)
    key = vault.data_key(item, OWNER_KEY)
    sealed = bytearray(b"".join(unixfs.iter_file(CID.decode(item.cid), vault.store.get)))
    sealed[100] ^= 1
    forged = unixfs.FileImporter(vault.store.put)
    forged.write(bytes(sealed))
    cid = forged.finish().cid
    vault.db.update(item.id, cid=cid.encode())
    out = tmp_path / "out.txt"
    with pytest.raises(VaultDecryptFailed):
        vault.write_out(vault.db.by_id(item.id), key, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.txt")] == []


def test_car_export_never_writes_through_a_planted_partial_file(
    vault: Vault, tmp_path: Path
) -> None:
    """Someone who can write beside the output planted a symlink where the export used to
    put its partial file: the export neither follows it nor removes it."""
    src = tmp_path / "a.txt"
    src.write_text("public words " * 100)
    item, _ = vault.add(src, OWNER, public=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out.car"
    planted = tmp_path / ".out.car.partial"
    planted.symlink_to(victim)
    data = vault.export_car(item, out)
    assert victim.read_text() == "keep me"
    assert planted.is_symlink() and planted.readlink() == victim
    assert not out.is_symlink() and out.stat().st_size == data["bytes"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == [planted.name]
    from sahara_cli.vault import car

    with out.open("rb") as handle:
        roots, blocks = car.read_car(handle)
        assert [r.encode() for r in roots] == [item.cid] and len(list(blocks)) == 1


def test_an_imported_dag_cannot_expand_past_what_its_root_declares(
    vault: Vault, tmp_path: Path
) -> None:
    """A CAR of 2 MiB of blocks whose directory links one 2 MiB file 32 times while
    declaring 1 byte for each: 'vault get' stops at the declared size, leaves nothing."""
    from sahara_cli.errors import VaultError
    from sahara_cli.vault import car, dagpb, unixfs
    from sahara_cli.vault.cid import CID, DAG_PB, RAW

    chunk = unixfs.CHUNK_SIZE
    leaf = os.urandom(chunk)
    leaf_cid = CID.of(RAW, leaf)
    node = dagpb.encode_node(
        dagpb.PBNode(
            tuple(dagpb.PBLink(leaf_cid, "", chunk) for _ in range(8)),
            dagpb.encode_unixfs(
                dagpb.UnixFSData(dagpb.DataType.FILE, filesize=8 * chunk, blocksizes=(chunk,) * 8)
            ),
        )
    )
    file_cid = CID.of(DAG_PB, node)
    root_block = dagpb.encode_node(
        dagpb.PBNode(
            tuple(dagpb.PBLink(file_cid, f"f{i:02d}", 1) for i in range(32)),
            dagpb.encode_unixfs(dagpb.UnixFSData(dagpb.DataType.DIRECTORY)),
        )
    )
    root = CID.of(DAG_PB, root_block)
    blocks = {root: root_block, file_cid: node, leaf_cid: leaf}
    bomb = tmp_path / "bomb.car"
    with bomb.open("wb") as handle:
        car.write_car(handle, [root], unixfs.walk(root, blocks.__getitem__))
    (item,) = vault.import_car(bomb, OWNER)
    out = tmp_path / "out"
    with pytest.raises(VaultError) as caught:
        vault.write_out(item, None, out)
    assert caught.value.code == "vault.export_too_large"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_catalogue_from_before_salting_opens_and_still_finds_twins(tmp_path: Path) -> None:
    """Version 1 catalogues have no digest column; their commitments are plain SHA-256s."""
    import sqlite3

    from sahara_cli.vault.db import VaultDB

    path = tmp_path / "vault.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, cid TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL, stored INTEGER NOT NULL,
        encrypted INTEGER NOT NULL, commitment TEXT NOT NULL, holder TEXT NOT NULL,
        owner TEXT NOT NULL, origin TEXT NOT NULL, wrapped_key BLOB, asset_id INTEGER,
        state TEXT NOT NULL DEFAULT 'ready', register_tx TEXT, source TEXT,
        chunks INTEGER NOT NULL DEFAULT 0, indexed INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL);
        INSERT INTO items (cid, name, kind, size, stored, encrypted, commitment, holder, owner,
        origin, created_at) VALUES ('bafyold', 'old.txt', 'file', 3, 40, 1, '0xabc', '0xAA',
        '0xAA', 'added', 1.0);
        PRAGMA user_version=1;"""
    )
    old.close()
    db = VaultDB(path)
    try:
        found = db.by_digest("0xabc", "0xaa", True)
        assert found is not None and found.cid == "bafyold"
        db.insert(
            cid="bafynew",
            name="new.txt",
            kind="file",
            size=3,
            stored=40,
            encrypted=1,
            commitment="0xsalted",
            holder="0xAA",
            owner="0xAA",
            origin="added",
            digest="0xdef",
        )
        found = db.by_digest("0xdef", "0xAA", True)
        assert found is not None and found.cid == "bafynew"
    finally:
        db.close()
    again = VaultDB(path)  # opening it again migrates nothing a second time
    assert again.by_cid("bafyold") is not None
    again.close()
