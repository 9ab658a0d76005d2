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
    private, _ = vault.add(big, OWNER)
    assert private.commitment == sha[big]
    one, _ = vault.add(small, OWNER, public=True)
    assert one.commitment == sha[small]  # a one-block CID is the file's SHA-256
    many, _ = vault.add(big, OWNER, public=True)
    assert many.commitment == ""  # filled in when registered
    assert vault.ensure_commitment(many).commitment == sha[big]


def test_private_directory_commitment_is_reproducible(vault: Vault, tmp_path: Path) -> None:
    for name in ("one", "two"):
        tree = tmp_path / name
        (tree / "sub").mkdir(parents=True)
        (tree / "a.txt").write_text("alpha")
        (tree / "sub" / "b.txt").write_text("beta")
        os.utime(tree / "a.txt", (1, 1 if name == "one" else 99999))
    first, _ = vault.add(tmp_path / "one", OWNER, recursive=True)
    second, new = vault.add(tmp_path / "two", OWNER, recursive=True)
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
