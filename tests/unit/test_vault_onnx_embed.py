"""all-MiniLM-L6-v2 on onnxruntime, float (the default) and int8: agreement with the float
model, the graphs' cache, the fallback to the numpy float model, and an index that keeps
the embedder that built it."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sahara_cli.errors import VaultIndexError
from sahara_cli.vault import onnx_embed
from sahara_cli.vault.embed import (
    INT8_NAME,
    MODEL_NAME,
    MiniLMEmbedder,
    get_embedder,
    model_dir,
)
from sahara_cli.vault.index import VaultIndex
from sahara_cli.vault.onnx_embed import (
    OnnxEmbedder,
    OnnxInt8Embedder,
    build_float_graph,
    int8_graph,
)
from sahara_cli.vault.text import chunk_text
from tests.unit.test_vault_embed import TEXTS

CORPUS = [
    "Cats are small carnivorous mammals kept as pets; they purr when content.",
    "Graphics processors accelerate the matrix multiplications of neural networks.",
    "Simmer the tomatoes with garlic and basil for twenty minutes to make a soup.",
    "The central bank raised interest rates to slow inflation this quarter.",
    "The striker scored a penalty in the last minute of the league match.",
    "Reset your password from the login page with the link we email you.",
    "The telescope observed a supernova in a distant spiral galaxy.",
    "Water the seedlings every morning and add compost to the soil.",
]
QUERIES = [
    "which animal purrs?",
    "GPU training speed",
    "how to cook tomato soup",
    "interest rates and inflation",
    "football penalty goal",
    "I forgot my password",
    "exploding star seen through a telescope",
    "gardening tips for young plants",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embed-cache")


@pytest.fixture(scope="module")
def int8(cache: Path) -> OnnxInt8Embedder:
    return OnnxInt8Embedder(cache=cache)


@pytest.fixture(scope="module")
def onnx_float(cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache=cache)


@pytest.fixture(scope="module")
def floats() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_onnx_float_gives_the_float_models_vectors(
    onnx_float: OnnxEmbedder, floats: MiniLMEmbedder, cache: Path
) -> None:
    """Batched and sorted by length, the float graph matches the numpy float model within
    1e-4, so it shares the float model's name (and its indexes)."""
    texts = [*TEXTS, *CORPUS, *QUERIES]
    np.testing.assert_allclose(onnx_float.embed(texts), floats.embed(texts), atol=1e-4)
    assert onnx_float.name == MODEL_NAME and onnx_float.dim == 384
    assert onnx_float.graph.parent == cache and onnx_float.graph.name.startswith("minilm-float-")
    again = OnnxEmbedder(cache=cache)
    assert again.graph == onnx_float.graph and not again.built


def test_int8_and_float_graphs_are_cached_apart(
    onnx_float: OnnxEmbedder, int8: OnnxInt8Embedder
) -> None:
    assert onnx_float.graph != int8.graph and int8.graph.name.startswith("minilm-int8-")
    # int8 layers (the word embeddings stay float): the int8 file is clearly smaller
    assert onnx_float.graph.stat().st_size > 1.4 * int8.graph.stat().st_size


def test_float_graph_is_the_float_model(floats: MiniLMEmbedder, tmp_path: Path) -> None:
    """The graph before quantisation computes the float model's vectors exactly."""
    import onnx
    import onnxruntime

    path = tmp_path / "float.onnx"
    onnx.save(build_float_graph(model_dir()), str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokenizer = floats._model.tokenizer
    for text in TEXTS:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int32)
        got = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        np.testing.assert_allclose(got, floats.embed([text])[0], atol=2e-5)


def test_agrees_with_the_float_model(int8: OnnxInt8Embedder, floats: MiniLMEmbedder) -> None:
    vectors = int8.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(vectors * floats.embed(TEXTS), axis=1)
    worst = int(np.argmin(cosine))
    # int8 activations cost 1-2 % on these odd texts; the empty one and a lone [UNK] the most.
    assert cosine.min() >= 0.97, f"text {worst} ({TEXTS[worst][:40]!r}): {cosine[worst]}"
    assert cosine.mean() >= 0.985
    assert int8.name == INT8_NAME != MODEL_NAME and int8.dim == 384
    assert int8.max_seq_length == 256
    empty = int8.embed([])
    assert empty.shape == (0, 384)
    with pytest.raises(TypeError):
        int8.embed("one text")  # type: ignore[arg-type]


def test_same_top1_as_the_float_model(int8: OnnxInt8Embedder, floats: MiniLMEmbedder) -> None:
    ours = int8.embed(QUERIES) @ int8.embed(CORPUS).T
    theirs = floats.embed(QUERIES) @ floats.embed(CORPUS).T
    assert list(np.argmax(ours, axis=1)) == list(np.argmax(theirs, axis=1)) == list(range(8))


def test_batching_changes_little(int8: OnnxInt8Embedder) -> None:
    """Activations are quantised per batch: a text alone or in a batch stays within 4 %."""
    together = int8.embed(TEXTS)
    alone = np.stack([int8.embed([text])[0] for text in TEXTS])
    assert np.sum(together * alone, axis=1).min() >= 0.96
    np.testing.assert_array_equal(int8.embed(TEXTS), together)  # deterministic


def test_second_load_uses_the_cache(int8: OnnxInt8Embedder, cache: Path) -> None:
    graph = int8.graph
    assert graph.parent == cache and graph.is_file()
    stamp = graph.stat().st_mtime_ns
    again = OnnxInt8Embedder(cache=cache)
    assert again.graph == graph and not again.built
    assert graph.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.embed(CORPUS), int8.embed(CORPUS))


def test_a_damaged_cache_file_is_rebuilt(int8: OnnxInt8Embedder, tmp_path: Path) -> None:
    graph, built = int8_graph(model_dir(), tmp_path)
    assert built
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the weights: ONNX would load it
    graph.write_bytes(bytes(data))
    again = OnnxInt8Embedder(cache=tmp_path)
    assert again.built and again.graph == graph
    np.testing.assert_array_equal(again.embed(CORPUS), int8.embed(CORPUS))
    graph.write_bytes(b"truncated")
    assert OnnxInt8Embedder(cache=tmp_path).built


def test_an_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(VaultIndexError, match="cannot be written") as caught:
        int8_graph(model_dir(), blocker / "embed")
    assert caught.value.hint and "SAHARA_CACHE" in caught.value.hint


def test_the_cache_follows_sahara_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path))
    assert onnx_embed.cache_dir() == tmp_path / "embed"


def test_falls_back_to_the_float_model(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_onnxruntime(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("onnxruntime"):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    for kind in ("onnx", "onnx-int8"):
        with pytest.raises(VaultIndexError, match="onnxruntime cannot be imported"):
            get_embedder(kind, fallback=False)
    fallback = get_embedder()
    assert isinstance(fallback, MiniLMEmbedder) and fallback.name == MODEL_NAME


def test_default_is_onnx_float_without_torch() -> None:
    code = (
        "import sys\n"
        "from sahara_cli.vault.embed import get_embedder\n"
        "e = get_embedder()\n"
        "assert type(e).__name__ == 'OnnxEmbedder', type(e)\n"
        "assert e.embed(['hello']).shape == (1, 384)\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=dict(os.environ))


def _add(index: VaultIndex) -> None:
    for i, text in enumerate(CORPUS):
        index.add(
            f"item{i}", asset_id=None, cid=f"cid{i}", name=f"{i}.txt", chunks=chunk_text(text)
        )


def test_an_index_keeps_its_embedder(
    tmp_path: Path, int8: OnnxInt8Embedder, floats: MiniLMEmbedder
) -> None:
    # An index built by the float model (every index made before the int8 default).
    with VaultIndex(tmp_path / "float", floats) as index:
        _add(index)
    with VaultIndex(tmp_path / "float", kind="onnx-int8") as index:
        assert index.search("which animal purrs?", k=1)[0].item == "item0"
        assert index.embedder.name == MODEL_NAME  # queried with the float model
        index.add("more", asset_id=None, cid="c", name="m", chunks=chunk_text("Dogs bark."))
    # Given an embedder explicitly, the other kind's vectors are refused.
    with (
        VaultIndex(tmp_path / "float", int8) as index,
        pytest.raises(VaultIndexError, match="do not mix"),
    ):
        index.search("cats", k=1)
    # A new index is built by the configured kind, and searched with it.
    with VaultIndex(tmp_path / "int8", kind="onnx-int8") as index:
        _add(index)
        assert index.embedder.name == INT8_NAME
    with VaultIndex(tmp_path / "int8", kind="minilm") as index:
        assert index.search("I forgot my password", k=1)[0].item == "item5"
        assert index.embedder.name == INT8_NAME
    with (
        VaultIndex(tmp_path / "int8", floats) as index,
        pytest.raises(VaultIndexError, match="built with all-MiniLM-L6-v2-int8"),
    ):
        index.add("x", asset_id=None, cid="x", name="x", chunks=chunk_text("x"))


def test_float_indexes_are_shared_by_the_float_embedders(
    tmp_path: Path, onnx_float: OnnxEmbedder, floats: MiniLMEmbedder
) -> None:
    """An index of the numpy float model is searched and extended by the onnx float one
    (the default), and the other way round: same vectors, same name."""
    with VaultIndex(tmp_path / "float", floats) as index:
        _add(index)
    with VaultIndex(tmp_path / "float", onnx_float) as index:
        assert index.search("which animal purrs?", k=1)[0].item == "item0"
        index.add("more", asset_id=None, cid="c", name="m", chunks=chunk_text("Dogs bark."))
    with VaultIndex(tmp_path / "float", kind="onnx") as index:
        assert type(index.embedder) is OnnxEmbedder
        assert index.search("dogs barking", k=1)[0].item == "more"
    with VaultIndex(tmp_path / "float", floats) as index:
        assert index.search("dogs barking", k=1)[0].item == "more"
