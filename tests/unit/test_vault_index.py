"""The vault's search index over a real Chroma database in a temporary directory."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sahara_cli.errors import VaultIndexError
from sahara_cli.vault.embed import MiniLMEmbedder
from sahara_cli.vault.index import Hit, VaultIndex
from sahara_cli.vault.text import chunk_text

CATS = (
    "Cats are small carnivorous mammals kept as pets. They purr when content and hunt mice.\n\n"
    "A kitten needs food several times a day."
)
GPUS = "Graphics processors accelerate the matrix multiplications of neural network training."
SOUP = "Simmer the tomatoes with garlic and basil for twenty minutes to make a soup."
MARKER = "ZEBRAQUARTZ"  # in the private item only; must never reach the disk in clear
PRIVATE = f"The launch code of project {MARKER} is kept in the vault, known to three people."


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chroma must not phone home (telemetry) nor fetch its default embedding model."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def index(tmp_path: Path, embedder: MiniLMEmbedder) -> Iterator[VaultIndex]:
    with VaultIndex(tmp_path / "index", embedder) as opened:
        yield opened


class Sealer:
    """What the vault does for a private item: AES-GCM under the item's data key."""

    def __init__(self) -> None:
        self.key = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, text: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self.key.encrypt(nonce, text.encode(), None)).decode()

    def open(self, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        return self.key.decrypt(raw[:12], raw[12:], None).decode()


def add_three(index: VaultIndex) -> None:
    index.add("cats", asset_id=None, cid="bafycats", name="cats.md", chunks=chunk_text(CATS))
    index.add("gpus", asset_id=12, cid="bafygpus", name="gpus.txt", chunks=chunk_text(GPUS))
    index.add("soup", asset_id=3, cid="bafysoup", name="soup.txt", chunks=chunk_text(SOUP))


def test_search_finds_the_right_item(index: VaultIndex) -> None:
    add_three(index)
    hits = index.search("which animal purrs?", k=3)
    assert hits[0].item == "cats"
    best = hits[0]
    assert best == Hit(
        item="cats",
        asset_id=None,
        cid="bafycats",
        name="cats.md",
        chunk=0,
        start=0,
        end=len(CATS),
        score=best.score,
        text=CATS,
        sealed=None,
    )
    assert 0.3 < best.score <= 1.0
    assert hits[0].score >= hits[1].score >= hits[2].score

    gpu = index.search("hardware for deep learning", k=1)[0]
    assert (gpu.item, gpu.asset_id, gpu.cid, gpu.chunk) == ("gpus", 12, "bafygpus", 0)
    # The score is the cosine similarity of the two embeddings.
    query, chunk = index.embedder.embed(["hardware for deep learning", GPUS])
    assert gpu.score == pytest.approx(float(np.dot(query, chunk)), abs=1e-4)
    assert index.count() == 3 and index.items() == ["cats", "gpus", "soup"]


def test_search_within_items_and_edge_cases(index: VaultIndex) -> None:
    assert index.search("anything") == []  # nothing indexed yet: no collection
    add_three(index)
    hits = index.search("which animal purrs?", k=5, items={"gpus", "soup"})
    assert {hit.item for hit in hits} == {"gpus", "soup"}
    assert [h.item for h in index.search("cats", k=5, items=["soup"])] == ["soup"]
    assert index.search("cats", items=[]) == []
    assert index.search("cats", items=["no-such-item"]) == []
    assert len(index.search("food", k=100)) == 3  # k beyond the count
    with pytest.raises(ValueError):
        index.search("cats", k=0)


def test_chunks_with_offsets(index: VaultIndex) -> None:
    text = "\n\n".join(
        f"Paragraph {n} is about {topic}. " + " ".join([topic] * 30)
        for n, topic in enumerate(["astronomy", "gardening", "cycling", "chess"])
    )
    chunks = chunk_text(text, words=40, overlap=5)
    assert len(chunks) == 4
    assert index.add("long", asset_id=1, cid="bafylong", name="l.txt", chunks=chunks) == 4
    hit = index.search("growing vegetables in the garden", k=1)[0]
    assert hit.chunk == 1 and hit.text == chunks[1].text
    assert text[hit.start : hit.end] == hit.text


def test_re_add_replaces_and_remove(index: VaultIndex) -> None:
    add_three(index)
    many = chunk_text(" ".join(f"w{i}" for i in range(500)), words=50, overlap=0)
    index.add("cats", asset_id=None, cid="bafycats2", name="cats.md", chunks=many)
    assert index.count() == 2 + len(many)
    index.add("cats", asset_id=5, cid="bafycats3", name="cats.md", chunks=chunk_text(SOUP))
    assert index.count() == 3
    assert {h.cid for h in index.search("tomato soup", k=2)} == {"bafycats3", "bafysoup"}
    assert index.remove("cats") == 1
    assert index.remove("cats") == 0
    assert index.items() == ["gpus", "soup"] and index.count() == 2
    assert index.add("gpus", asset_id=12, cid="bafygpus", name="g", chunks=[]) == 0
    assert index.items() == ["soup"]


def test_set_asset_after_registration(index: VaultIndex) -> None:
    add_three(index)
    assert index.set_asset("cats", 42) == 1
    assert index.search("kitten", k=1)[0].asset_id == 42
    assert index.set_asset("cats", None) == 1
    assert index.search("kitten", k=1)[0].asset_id is None
    assert index.set_asset("nothing", 1) == 0


def test_private_chunks_are_sealed_at_rest(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "index"
    sealer = Sealer()
    public_marker = "PUBLICWALRUS"
    with VaultIndex(path, embedder) as index:
        add_three(index)
        chunks = chunk_text(PRIVATE)
        index.add(
            "secret",
            asset_id=None,
            cid="bafysecret",
            name="plan.txt",
            chunks=chunks,
            seal=sealer.seal,
        )
        public = chunk_text(f"The {public_marker} is a public fact.")
        index.add("open", asset_id=None, cid="bafyopen", name="o.txt", chunks=public)
        hit = index.search("what is the launch code of the project?", k=1)[0]
        assert hit.item == "secret" and hit.text is None and hit.sealed is not None
        assert MARKER not in hit.sealed
        assert sealer.open(hit.sealed) == chunks[0].text
    files = [p for p in path.rglob("*") if p.is_file()]
    assert files
    on_disk = b"".join(p.read_bytes() for p in files)
    assert public_marker.encode() in on_disk  # the grep works: public text is stored
    for form in (MARKER, MARKER.lower(), "launch code"):
        assert form.encode() not in on_disk, form
        assert form.encode("utf-16-le") not in on_disk, form


def test_persists_across_instances_and_processes(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "index"
    with VaultIndex(path, embedder) as index:
        add_three(index)
        index.set_asset("cats", 9)
    with VaultIndex(path, embedder) as again:
        assert again.count() == 3 and again.items() == ["cats", "gpus", "soup"]
        hit = again.search("kitten food", k=1)[0]
        assert (hit.item, hit.asset_id) == ("cats", 9)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sahara_cli.vault.index import VaultIndex\n"
        "with VaultIndex(Path(sys.argv[1])) as index:\n"
        "    hit = index.search('graphics card training', k=1)[0]\n"
        "    print(index.count(), hit.item, hit.asset_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.split() == ["3", "gpus", "12"]


def test_import_is_lazy() -> None:
    code = (
        "import sys\n"
        "import sahara_cli.vault.index\n"
        "loaded = [m for m in ('chromadb', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_reading_does_not_load_the_model(tmp_path: Path) -> None:
    with VaultIndex(tmp_path / "index") as index:
        assert index.count() == 0 and index.items() == [] and index.remove("x") == 0
        assert index._embedder is None


class OtherEmbedder:
    name = "other-model"
    dim = 8

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        return np.ones((len(texts), self.dim), dtype=np.float32) / np.sqrt(self.dim)


def test_errors_become_vault_index_errors(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(VaultIndexError, match="not a directory"):
        VaultIndex(not_a_dir, embedder).count()

    path = tmp_path / "index"
    with VaultIndex(path, embedder) as index:
        add_three(index)
    with (
        VaultIndex(path, OtherEmbedder()) as other,
        pytest.raises(VaultIndexError, match="built with all-MiniLM-L6-v2"),
    ):
        other.search("cats")

    (path / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(VaultIndexError, match="could not") as caught:
        VaultIndex(path, embedder).count()
    message = caught.value.message
    assert "\n" not in message and str(path) in message
    assert caught.value.hint and "index the items again" in caught.value.hint
