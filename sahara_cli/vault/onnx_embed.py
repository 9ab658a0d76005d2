"""all-MiniLM-L6-v2 on onnxruntime: the vault's default embedder (float) and an int8 one.

The ONNX graph is written here from the model's safetensors weights (no torch, no
download): onnxruntime's fused BERT operators (``EmbedLayerNormalization``,
``Attention``, ``SkipLayerNormalization``, ``BiasGelu``), then mean pooling over the real
tokens and L2 normalisation inside the graph. The float graph gives the float model's vectors (to
within 1e-6), so it shares the model's name and its indexes. For the int8 one,
``quantize_dynamic`` turns its matrix products into int8 ones (weights per output
channel, activations per batch at run time): faster, but its vectors differ by a few
per mille and it changes the best hit of about one search in six on close calls, so it
is its own embedder kind (``onnx-int8``) with its own vector name.

The graph is built once per machine, at first use, into the project's cache
(``$SAHARA_CACHE/embed``, else ``~/.cache/sahara/embed``), under a name keyed by the hash
of the model files and the versions of this builder, onnx and onnxruntime. A sidecar
file holds the graph's sha256: a damaged file is rebuilt, never loaded. Building needs the
``onnx`` package; running needs only onnxruntime. Tokenisation is the float model's
(the ``tokenizers`` WordPiece of the model, truncated at 256 tokens).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import VaultIndexError
from sahara_cli.vault.embed import INT8_NAME, MODEL_NAME

if TYPE_CHECKING:
    from sahara_cli.vault.embed import FloatArray

log = logging.getLogger("sahara.vault")

GRAPH_VERSION = 1  # bump when the graph or its quantisation changes
# Tokens per onnxruntime call (batch * padded length): large enough for the int8 kernels
# to run at full speed, small enough to keep the activations in the CPU's caches.
TOKEN_BUDGET = 2048
_MAX_BATCH = 256
_KEY_FILES = ("model.safetensors", "config.json", "sentence_bert_config.json")
_MS = "com.microsoft"


def cache_dir() -> Path:
    """Where built graphs are kept: ``<project cache>/embed``."""
    from sahara_cli.gobin import cache_root

    return cache_root() / "embed"


def _versions() -> str:
    import onnxruntime

    try:
        from importlib.metadata import version

        onnx_version = version("onnx")
    except Exception:
        onnx_version = "none"
    return f"g{GRAPH_VERSION}-ort{onnxruntime.__version__}-onnx{onnx_version}"


def cache_key(model_path: Path) -> str:
    """Hash of the model files and of the versions that shape the built graph."""
    digest = hashlib.sha256(_versions().encode())
    for name in _KEY_FILES:
        with (model_path / name).open("rb") as handle:
            digest.update(name.encode() + b"\0")
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return value


def build_float_graph(model_path: Path) -> Any:
    """The float ONNX model (an ``onnx.ModelProto``) of the sentence embedder at ``model_path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = _read_json(model_path / "config.json")
    sbert = _read_json(model_path / "sentence_bert_config.json")
    pooling = _read_json(model_path / "1_Pooling" / "config.json")
    if config.get("hidden_act") != "gelu" or not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError("the model is not a mean-pooled GELU BERT")
    weights = load_file(str(model_path / "model.safetensors"))
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    max_len = min(int(sbert.get("max_seq_length", 256)), int(config["max_position_embeddings"]))
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, array: Any) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def w(name: str) -> Any:
        return np.asarray(weights[name], dtype=np.float32)

    # Token type 0 is the only one used: its row is folded into the position table.
    position = w("embeddings.position_embeddings.weight")[:max_len]
    position = position + w("embeddings.token_type_embeddings.weight")[0]
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "input_ids",
                "",
                const("word", w("embeddings.word_embeddings.weight")),
                const("position", position),
                "",
                const("emb_ln_g", w("embeddings.LayerNorm.weight")),
                const("emb_ln_b", w("embeddings.LayerNorm.bias")),
                "attention_mask",
            ],
            ["x0", "mask_index"],
            domain=_MS,
            epsilon=eps,
            name="embeddings",
        )
    )
    x = "x0"
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def t(name: str, prefix: str = p) -> Any:
            return w(f"{prefix}.{name}.weight").T  # torch keeps (out, in)

        def b(name: str, prefix: str = p) -> Any:
            return w(f"{prefix}.{name}.bias")

        qkv_w = np.concatenate([t(f"attention.self.{n}") for n in ("query", "key", "value")], 1)
        qkv_b = np.concatenate([b(f"attention.self.{n}") for n in ("query", "key", "value")])
        n = f"l{i}"
        nodes += [
            helper.make_node(
                "Attention",
                [x, const(f"{n}_qkv_w", qkv_w), const(f"{n}_qkv_b", qkv_b), "mask_index"],
                [f"{n}_ctx"],
                domain=_MS,
                num_heads=heads,
                name=f"{n}_attention",
            ),
            helper.make_node(
                "MatMul",
                [f"{n}_ctx", const(f"{n}_out_w", t("attention.output.dense"))],
                [f"{n}_out"],
                name=f"{n}_out",
            ),
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"{n}_out",
                    x,
                    const(f"{n}_ln1_g", w(f"{p}.attention.output.LayerNorm.weight")),
                    const(f"{n}_ln1_b", w(f"{p}.attention.output.LayerNorm.bias")),
                    const(f"{n}_out_b", b("attention.output.dense")),
                ],
                [f"{n}_x1"],
                domain=_MS,
                epsilon=eps,
                name=f"{n}_ln1",
            ),
            helper.make_node(
                "MatMul",
                [f"{n}_x1", const(f"{n}_in_w", t("intermediate.dense"))],
                [f"{n}_in"],
                name=f"{n}_in",
            ),
            helper.make_node(
                "BiasGelu",
                [f"{n}_in", const(f"{n}_in_b", b("intermediate.dense"))],
                [f"{n}_gelu"],
                domain=_MS,
                name=f"{n}_gelu",
            ),
            helper.make_node(
                "MatMul",
                [f"{n}_gelu", const(f"{n}_ffn_w", t("output.dense"))],
                [f"{n}_ffn"],
                name=f"{n}_ffn",
            ),
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"{n}_ffn",
                    f"{n}_x1",
                    const(f"{n}_ln2_g", w(f"{p}.output.LayerNorm.weight")),
                    const(f"{n}_ln2_b", w(f"{p}.output.LayerNorm.bias")),
                    const(f"{n}_ffn_b", b("output.dense")),
                ],
                [f"{n}_x2"],
                domain=_MS,
                epsilon=eps,
                name=f"{n}_ln2",
            ),
        ]
        x = f"{n}_x2"
    # Mean over the real tokens, then L2 normalisation: sentence-transformers' pooling.
    const("axis1", np.array([1], dtype=np.int64))
    const("axis2", np.array([2], dtype=np.int64))
    const("tiny_count", np.array(1e-9, dtype=np.float32))
    const("tiny_norm", np.array(1e-12, dtype=np.float32))
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask_3d"]),
        helper.make_node("Mul", [x, "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "tiny_count"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["mean"]),
        helper.make_node("ReduceL2", ["mean", "axis1"], ["norm"], keepdims=1),
        helper.make_node("Max", ["norm", "tiny_norm"], ["norm_safe"]),
        helper.make_node("Div", ["mean", "norm_safe"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(_MS, 1)]
    )
    model.ir_version = 9
    model.producer_name = "sahara"
    onnx.checker.check_model(model)
    return model


PRECISIONS = ("float", "int8")


def build_graph(model_path: Path, out: Path, precision: str = "int8") -> None:
    """Write the ``precision`` graph of the model at ``model_path`` to ``out`` (atomically)."""
    import onnx

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as work:
        float_path = Path(work) / "float.onnx"
        int8_path = Path(work) / "int8.onnx"
        onnx.save(build_float_graph(model_path), str(float_path))
        if precision == "float":
            float_path.replace(int8_path)
        else:
            _quantise(float_path, int8_path)
        with int8_path.open("rb") as handle:
            os.fsync(handle.fileno())
        sidecar = Path(work) / "sha256"
        sidecar.write_text(_file_sha256(int8_path), encoding="utf-8")
        int8_path.replace(out)
        sidecar.replace(_sidecar(out))


def build_int8(model_path: Path, out: Path) -> None:
    """Write the int8 graph of the model at ``model_path`` to ``out`` (atomically)."""
    build_graph(model_path, out, "int8")


def _quantise(float_path: Path, int8_path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        float_path,
        int8_path,
        op_types_to_quantize=["MatMul", "Attention"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        # Shape inference does not know the fused operators' outputs: they are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _sidecar(graph: Path) -> Path:
    return graph.with_suffix(".sha256")


def _intact(graph: Path) -> bool:
    try:
        expected = _sidecar(graph).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return graph.is_file() and _file_sha256(graph) == expected


def int8_graph(model_path: Path, directory: Path | None = None) -> tuple[Path, bool]:
    """The cached int8 graph of ``model_path``, built when missing or damaged.

    Returns its path and whether it was built by this call.
    """
    return cached_graph(model_path, directory, "int8")


def cached_graph(
    model_path: Path, directory: Path | None = None, precision: str = "int8"
) -> tuple[Path, bool]:
    """The cached ``precision`` graph of ``model_path``, built when missing or damaged.

    Returns its path and whether it was built by this call.
    """
    directory = directory if directory is not None else cache_dir()
    graph = directory / f"minilm-{precision}-{cache_key(model_path)}.onnx"
    if _intact(graph):
        return graph, False
    if graph.exists():
        log.warning("the cached embedding model %s is damaged: building it again", graph)
    log.warning(
        "building the %s embedding model into %s (once per machine, a few seconds)",
        precision,
        directory,
    )
    started = time.perf_counter()
    try:
        build_graph(model_path, graph, precision)
    except ImportError as exc:
        raise VaultIndexError(
            f"the {precision} embedding model cannot be built: {exc}",
            hint="Install the 'onnx' package, or set vault.embedder = \"minilm\".",
        ) from exc
    except OSError as exc:
        raise VaultIndexError(
            f"the {precision} embedding model cannot be written to {directory}: {exc}",
            hint="Make SAHARA_CACHE point at a writable directory.",
        ) from exc
    except Exception as exc:
        raise VaultIndexError(
            f"the {precision} embedding model cannot be built: {exc}",
            hint='Set vault.embedder = "minilm" to use the float model.',
        ) from exc
    log.info("built %s in %.1f s", graph, time.perf_counter() - started)
    return graph, True


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime: ``precision="float"`` gives the float model's
    vectors (within 1e-6, same name), ``"int8"`` its own to within about 1 %."""

    precision = "float"

    def __init__(self, model_path: Path | None = None, cache: Path | None = None) -> None:
        from sahara_cli.vault.embed import check_model_dir, model_dir

        path = (model_path if model_path is not None else model_dir()).resolve()
        check_model_dir(path)
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise VaultIndexError(
                f"onnxruntime cannot be imported: {exc}",
                hint='Set vault.embedder = "minilm" to use the float model.',
            ) from exc
        self.graph, self.built = cached_graph(path, cache, self.precision)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(self.graph), options, providers=["CPUExecutionProvider"]
            )
            config = _read_json(path / "config.json")
            sbert = _read_json(path / "sentence_bert_config.json")
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:
            raise VaultIndexError(
                f"cannot load the {self.precision} embedding model {self.graph}: {exc}",
                hint=f"Remove {self.graph} to have it built again.",
            ) from exc
        self._dim = int(config["hidden_size"])
        self._max_len = min(
            int(sbert.get("max_seq_length", 256)), int(config["max_position_embeddings"])
        )
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self._max_len)
        self._tokenizer = tokenizer
        self.path = path

    @property
    def name(self) -> str:
        return INT8_NAME if self.precision == "int8" else MODEL_NAME

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_seq_length(self) -> int:
        return self._max_len

    def _encode(self, texts: Sequence[str]) -> list[Any]:
        try:
            return list(self._tokenizer.encode_batch(list(texts)))
        except (TypeError, ValueError):
            clean = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
            return list(self._tokenizer.encode_batch(clean))

    def embed(self, texts: Sequence[str], batch_size: int = _MAX_BATCH) -> FloatArray:
        """Unit vectors of ``texts``; sorted by length and batched to little padding."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one str")
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encode(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])
            size = max(1, min(batch_size, _MAX_BATCH, TOKEN_BUDGET // longest))
            rows = order[start : start + size]
            ids = np.zeros((len(rows), longest), dtype=np.int32)
            mask = np.zeros((len(rows), longest), dtype=np.int32)
            for row, index in enumerate(rows):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1
            out[rows] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            start += size
        return out


class OnnxInt8Embedder(OnnxEmbedder):
    """all-MiniLM-L6-v2 in int8 on onnxruntime: the float model's vectors, to within 1 %."""

    precision = "int8"
