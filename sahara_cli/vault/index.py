"""The vault's search index: chunks of item text, embedded, in a local Chroma collection.

One persistent Chroma database (a directory) holds one collection, ``vault``, with cosine
distance. Each record is one chunk of one item (id ``ITEM#N``) with its vector, always
computed here by an :class:`~sahara_cli.vault.embed.Embedder` (Chroma's own embedder,
which downloads a model, is never used), and this metadata:

``item``, ``asset`` (the on-chain asset id, -1 before registration), ``cid``, ``name``,
``chunk`` (its index), ``start`` and ``end`` (character offsets in the item's text), and
either ``text`` (the chunk, for public items) or ``sealed`` (for private items: the chunk
as the vault's ``seal`` callback encrypted it under the item's data key).

Chunk text is never stored as a Chroma *document*: documents land in a full-text index
in plain text, and a private item's words must not lie readable on disk. The vectors of
a private item are stored as they are; they do not spell out the text.

Chroma (and with it numpy) is imported on first use, not with this module: commands
that never search pay nothing for it. Chroma's telemetry is off. Errors from Chroma
become :class:`~sahara_cli.errors.VaultIndexError` with one line of explanation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import SaharaError, VaultIndexError
from sahara_cli.vault.text import Chunk

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection as ChromaCollection

    from sahara_cli.vault.embed import Embedder

log = logging.getLogger("sahara.vault")

COLLECTION = "vault"
INDEX_FORMAT = 1
NO_ASSET = -1
_PAGE = 1000  # records per get() when listing


@dataclass(frozen=True)
class Hit:
    """One matching chunk; ``score`` is the cosine similarity of query and chunk."""

    item: str
    asset_id: int | None
    cid: str
    name: str
    chunk: int
    start: int
    end: int
    score: float
    text: str | None  # the chunk of a public item (or of a private one, once opened)
    sealed: str | None  # the sealed chunk of a private item: open it with the item's key

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a search hit (``sealed`` says only whether it was sealed)."""
        return {
            "asset_id": self.asset_id,
            "cid": self.cid,
            "name": self.name,
            "chunk": self.chunk,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
            "text": self.text,
            "sealed": self.sealed is not None,
        }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _chunk_id(item_id: str, index: int) -> str:
    return f"{item_id}#{index}"


class VaultIndex:
    """The search index of one vault, in the Chroma database at ``path``.

    The collection records the name of the embedder that made its vectors, and vectors of
    another embedder are never mixed in. With ``embedder`` given, an index built by another
    one is refused (:class:`~sahara_cli.errors.VaultIndexError`). Without it, the embedder
    is loaded when a method first needs a vector: ``kind`` (default ``"onnx"``) for a
    new index, and for an existing one the kind that built it, so that an index made by
    the float model keeps being searched and extended with the float model.
    """

    def __init__(
        self, path: Path, embedder: Embedder | None = None, *, kind: str | None = None
    ) -> None:
        from sahara_cli.vault.embed import DEFAULT_KIND

        self.path = Path(path)
        self._embedder = embedder
        self._kind = kind or DEFAULT_KIND
        self._client: ClientAPI | None = None
        self._collection: ChromaCollection | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> VaultIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the database (its SQLite file and in-memory index)."""
        client, self._client, self._collection = self._client, None, None
        close = getattr(client, "close", None)  # Client has it; the ClientAPI type does not
        if close is not None:
            try:
                close()
            except Exception as exc:
                log.debug("closing the search index: %s", exc)

    @property
    def embedder(self) -> Embedder:
        """The embedder of this index's vectors (that of the existing index, if any)."""
        if self._embedder is None:
            collection = self._get_collection(create=False)
            recorded = None if collection is None else (collection.metadata or {}).get("embedder")
            if self._embedder is None:
                self._embedder = self._load_embedder(recorded)
        return self._embedder

    def _load_embedder(self, recorded: object) -> Embedder:
        """The configured kind's embedder, or the kind that made the ``recorded`` vectors."""
        from sahara_cli.vault.embed import KIND_OF_NAME, NAME_OF_KIND, get_embedder

        kind = self._kind
        if isinstance(recorded, str) and recorded != NAME_OF_KIND.get(kind):
            built_by = KIND_OF_NAME.get(recorded)
            if built_by is not None:
                log.info(
                    "the search index at %s holds %s vectors: using the %r embedder",
                    self.path,
                    recorded,
                    built_by,
                )
                kind = built_by
        return get_embedder(kind)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except SaharaError:
            raise
        except Exception as exc:
            raise VaultIndexError(
                f"the search index at {self.path} could not {action}: {_one_line(exc)}",
                hint=(
                    "The index only caches the vault's text: remove that directory and "
                    "index the items again."
                ),
            ) from exc

    def _open_client(self) -> ClientAPI:
        if self._client is None:
            with self._errors("be opened"):
                import chromadb
                from chromadb.config import Settings

                if self.path.exists() and not self.path.is_dir():
                    raise VaultIndexError(f"the search index path {self.path} is not a directory")
                self._client = chromadb.PersistentClient(
                    path=str(self.path),
                    settings=Settings(anonymized_telemetry=False, allow_reset=True),
                )
        return self._client

    def _get_collection(self, *, create: bool) -> ChromaCollection | None:
        """The ``vault`` collection; None when it does not exist and ``create`` is false."""
        if self._collection is not None:
            return self._collection
        client = self._open_client()
        with self._errors("open its collection"):
            from chromadb.errors import NotFoundError

            try:
                collection = client.get_collection(COLLECTION, embedding_function=None)
            except NotFoundError:
                if not create:
                    return None
                if self._embedder is None:
                    self._embedder = self._load_embedder(None)
                embedder = self._embedder
                collection = client.get_or_create_collection(
                    COLLECTION,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={
                        "embedder": embedder.name,
                        "dim": embedder.dim,
                        "format": INDEX_FORMAT,
                    },
                    embedding_function=None,
                )
        self._check_collection(collection)
        self._collection = collection
        return collection

    def _check_collection(self, collection: ChromaCollection) -> None:
        metadata = collection.metadata or {}
        # configuration_json, not configuration: the latter warns that an index with no
        # embedding function has a "legacy" one (which Chroma never builds).
        space = (collection.configuration_json.get("hnsw") or {}).get("space")
        if space not in (None, "cosine"):
            raise VaultIndexError(
                f"the search index at {self.path} uses {space} distance, not cosine",
                hint="Remove that directory and index the items again.",
            )
        if metadata.get("format", INDEX_FORMAT) != INDEX_FORMAT:
            raise VaultIndexError(
                f"the search index at {self.path} has format {metadata.get('format')}; "
                f"this sahara reads format {INDEX_FORMAT}",
                hint="Remove that directory and index the items again.",
            )

    def _check_embedder(self, collection: ChromaCollection) -> Embedder:
        metadata = collection.metadata or {}
        name, dim = metadata.get("embedder"), metadata.get("dim")
        if self._embedder is None:
            self._embedder = self._load_embedder(name)
        embedder = self._embedder
        if (name is not None and name != embedder.name) or (
            dim is not None and dim != embedder.dim
        ):
            raise VaultIndexError(
                f"the search index at {self.path} was built with {name} ({dim} dimensions), "
                f"not {embedder.name} ({embedder.dim}): their vectors do not mix",
                hint=(
                    "Search it with the embedder that built it (vault.embedder), or remove "
                    "that directory and index the items again."
                ),
            )
        return embedder

    # -- writing -----------------------------------------------------------------------

    def add(
        self,
        item_id: str,
        *,
        asset_id: int | None,
        cid: str,
        name: str,
        chunks: Sequence[Chunk],
        seal: Callable[[str], str] | None = None,
        names: Sequence[str] | None = None,
    ) -> int:
        """Index ``chunks`` of one item, replacing what the item had; returns their count.

        With ``seal`` (a private item) each chunk's text is stored only as ``seal(text)``.
        ``names`` labels each chunk (the file of a directory item it came from); the
        default labels every chunk ``name``.
        """
        if not item_id:
            raise ValueError("item_id must not be empty")
        if names is not None and len(names) != len(chunks):
            raise ValueError("names must label every chunk")
        with self._writing():
            if not chunks:
                self._remove(item_id)
                return 0
            return self._add(item_id, asset_id, cid, name, chunks, seal, names)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time across processes: Chroma's local store is not safe for two."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / f"{self.path.name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _add(
        self,
        item_id: str,
        asset_id: int | None,
        cid: str,
        name: str,
        chunks: Sequence[Chunk],
        seal: Callable[[str], str] | None,
        names: Sequence[str] | None,
    ) -> int:
        collection = self._get_collection(create=True)
        assert collection is not None
        embedder = self._check_embedder(collection)
        vectors = embedder.embed([chunk.text for chunk in chunks])
        metadatas: list[dict[str, str | int | float | bool]] = []
        for position, chunk in enumerate(chunks):
            metadata: dict[str, str | int | float | bool] = {
                "item": item_id,
                "asset": NO_ASSET if asset_id is None else int(asset_id),
                "cid": cid,
                "name": name if names is None else names[position],
                "chunk": chunk.index,
                "start": chunk.start,
                "end": chunk.end,
            }
            if seal is None:
                metadata["text"] = chunk.text
            else:
                metadata["sealed"] = seal(chunk.text)
            metadatas.append(metadata)
        ids = [_chunk_id(item_id, chunk.index) for chunk in chunks]
        if len(set(ids)) != len(ids):
            raise ValueError("chunks must have distinct indexes")
        self._delete_item(collection, item_id)
        with self._errors("store the chunks"):
            step = max(1, min(_PAGE, self._open_client().get_max_batch_size()))
            for start in range(0, len(ids), step):
                collection.add(
                    ids=ids[start : start + step],
                    embeddings=vectors[start : start + step],
                    metadatas=metadatas[start : start + step],  # type: ignore[arg-type]
                )
        log.debug("indexed %d chunks of item %s", len(ids), item_id)
        return len(ids)

    def _item_ids(self, collection: ChromaCollection, item_id: str) -> list[str]:
        with self._errors("read the item's chunks"):
            found = collection.get(where={"item": item_id}, include=[])
        return list(found["ids"])

    def _delete_item(self, collection: ChromaCollection, item_id: str) -> int:
        ids = self._item_ids(collection, item_id)
        if ids:
            with self._errors("remove the item's chunks"):
                for start in range(0, len(ids), _PAGE):
                    collection.delete(ids=ids[start : start + _PAGE])
        return len(ids)

    def remove(self, item_id: str) -> int:
        """Drop every chunk of ``item_id``; returns how many there were."""
        with self._writing():
            return self._remove(item_id)

    def _remove(self, item_id: str) -> int:
        collection = self._get_collection(create=False)
        return 0 if collection is None else self._delete_item(collection, item_id)

    def set_asset(self, item_id: str, asset_id: int | None) -> int:
        """Record the item's on-chain asset id (after registration); returns chunks changed."""
        with self._writing():
            return self._set_asset(item_id, asset_id)

    def _set_asset(self, item_id: str, asset_id: int | None) -> int:
        collection = self._get_collection(create=False)
        if collection is None:
            return 0
        ids = self._item_ids(collection, item_id)
        value = NO_ASSET if asset_id is None else int(asset_id)
        with self._errors("update the item's asset id"):
            for start in range(0, len(ids), _PAGE):
                batch = ids[start : start + _PAGE]
                collection.update(ids=batch, metadatas=[{"asset": value} for _ in batch])
        return len(ids)

    # -- reading -----------------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, items: Collection[str] | None = None) -> list[Hit]:
        """The ``k`` chunks most similar to ``query``, best first; only of ``items`` if given."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if items is not None and not items:
            return []
        collection = self._get_collection(create=False)
        if collection is None:
            return []
        embedder = self._check_embedder(collection)
        vector = embedder.embed([query])
        where: dict[str, Any] | None = None
        if items is not None:
            wanted = sorted(set(items))
            where = {"item": wanted[0]} if len(wanted) == 1 else {"item": {"$in": wanted}}
        with self._errors("search"):
            found = collection.query(
                query_embeddings=vector,
                n_results=k,
                where=where,
                include=["metadatas", "distances"],
            )
        metadatas = (found.get("metadatas") or [[]])[0]
        distances = (found.get("distances") or [[]])[0]
        return [
            _hit(metadata, distance)
            for metadata, distance in zip(metadatas, distances, strict=True)
            if metadata is not None
        ]

    def count(self) -> int:
        """Chunks in the index (of all items)."""
        collection = self._get_collection(create=False)
        if collection is None:
            return 0
        with self._errors("count its chunks"):
            return int(collection.count())

    def items(self) -> list[str]:
        """The ids of the items that have chunks in the index, sorted."""
        collection = self._get_collection(create=False)
        if collection is None:
            return []
        seen: set[str] = set()
        offset = 0
        with self._errors("list its items"):
            while True:
                page = collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
                metadatas = page.get("metadatas") or []
                seen.update(str(m["item"]) for m in metadatas if m and "item" in m)
                if len(page["ids"]) < _PAGE:
                    break
                offset += _PAGE
        return sorted(seen)


def _hit(metadata: Any, distance: float) -> Hit:
    asset = int(metadata.get("asset", NO_ASSET))
    text = metadata.get("text")
    sealed = metadata.get("sealed")
    return Hit(
        item=str(metadata.get("item", "")),
        asset_id=None if asset == NO_ASSET else asset,
        cid=str(metadata.get("cid", "")),
        name=str(metadata.get("name", "")),
        chunk=int(metadata.get("chunk", 0)),
        start=int(metadata.get("start", 0)),
        end=int(metadata.get("end", 0)),
        score=1.0 - float(distance),
        text=None if text is None else str(text),
        sealed=None if sealed is None else str(sealed),
    )
