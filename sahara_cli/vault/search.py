"""Retrieval over the vault: index what the user holds in plaintext, search it.

Only content the user can read is indexed: its own items when added, and licensed items
once ``vault get`` has opened them. Chunk texts of private items are sealed under the
item's data key before they reach Chroma, so the index holds no readable private text;
a search shows them only when the ID is unlocked (``--show-text``). Every hit carries
the asset id and CID so the use of the data can be attributed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.vault import crypto

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.index import Hit, VaultIndex
    from sahara_cli.vault.results import SearchResult

MAX_INDEX_BYTES = 16 << 20  # text indexed per file


def open_index(vault_root: Path, embedder: str = "onnx") -> VaultIndex:
    """The vault's search index; ``embedder`` is the kind a new index is built with."""
    from sahara_cli.vault.index import VaultIndex

    return VaultIndex(vault_root / "chroma", kind=embedder)


def _text_files(path: Path) -> Iterator[tuple[str, Path]]:
    if path.is_file():
        yield path.name, path
        return
    for sub in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        yield sub.relative_to(path).as_posix(), sub


def index_item(index: VaultIndex, item: Item, plaintext: Path, key: bytes | None) -> int:
    """Chunk and embed the text files of ``plaintext`` (a file or a tree) for ``item``.

    Returns the number of chunks indexed (0 when nothing in it is text).
    """
    from sahara_cli.vault.text import chunk_text, extract_text

    seal: Callable[[str], str] | None = None
    if key is not None:
        seal = lambda text: crypto.seal_text(key, text)  # noqa: E731
    chunks: list[Any] = []
    names: list[str] = []
    for rel, path in _text_files(plaintext):
        with path.open("rb") as handle:
            data = handle.read(MAX_INDEX_BYTES)
        text = extract_text(data, path.name)
        if not text:
            continue
        for chunk in chunk_text(text):
            chunks.append(chunk)
            names.append(rel)
    if not chunks:
        return 0
    labels = None if plaintext.is_file() else [f"{item.name}/{rel}" for rel in names]
    index.add(
        item.cid,
        asset_id=item.asset_id,
        cid=item.cid,
        name=item.name,
        chunks=_renumber(chunks),
        seal=seal,
        names=labels,
    )
    return len(chunks)


def _renumber(chunks: list[Any]) -> list[Any]:
    """Chunks of several files of one item get distinct indexes in item order."""
    return [dataclasses.replace(chunk, index=i) for i, chunk in enumerate(chunks)]


def search(
    index: VaultIndex,
    query: str,
    k: int,
    *,
    keys: Callable[[str], bytes | None] | None = None,
) -> list[Hit]:
    """Top ``k`` chunks; ``keys(cid)`` opens sealed texts when given."""
    hits = []
    for hit in index.search(query, k):
        if hit.sealed is not None and keys is not None:
            key = keys(hit.cid)
            if key is not None:
                hit = dataclasses.replace(hit, text=crypto.open_text(key, hit.sealed))  # noqa: PLW2901
        hits.append(hit)
    return hits


def search_vault(
    vault_root: Path,
    query: str,
    k: int = 5,
    *,
    embedder: str = "onnx",
    unlock: Callable[[], Signer] | None = None,
) -> SearchResult:
    """``vault search``: the top ``k`` chunks of what this vault indexed.

    With ``unlock``, the text of private hits whose key the unlocked ID holds is opened.
    """
    import time

    from sahara_cli.vault.results import SearchHit, SearchResult

    keys: Callable[[str], bytes | None] | None = None
    if unlock is not None:
        keys = _key_opener(vault_root, unlock())
    started = time.perf_counter()
    hits = search(open_index(vault_root, embedder), query, k, keys=keys)
    elapsed = time.perf_counter() - started
    return SearchResult(
        query=query,
        hits=[SearchHit.model_validate(hit.to_dict()) for hit in hits],
        elapsed_ms=round(elapsed * 1000),
    )


def _key_opener(vault_root: Path, who: Signer) -> Callable[[str], bytes | None]:
    """Open the data key of an item ``who`` holds, by CID (None: not ours to open)."""
    from sahara_cli.vault.db import VaultDB

    db = VaultDB(vault_root / "vault.db")
    cache: dict[str, bytes | None] = {}

    def open_key(cid: str) -> bytes | None:
        if cid not in cache:
            item = db.by_cid(cid)
            key = None
            if (
                item is not None
                and item.wrapped_key is not None
                and item.holder.lower() == who.address.lower()
            ):
                key = crypto.unwrap_key(item.wrapped_key, who.private_key)
            cache[cid] = key
        return cache[cid]

    return open_key
