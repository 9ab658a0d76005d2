"""Tiny random models for tests, benchmarks and the demo: a llama GGUF, a multimodal
projector GGUF for it and a transformers checkpoint, written on the spot, so nothing is
ever downloaded.

The two text models use the same small SentencePiece-style vocabulary (a few hundred
pieces: control tokens, the 256 byte-fallback tokens, printable ASCII, common English
words and JSON punctuation) and the same ChatML-like chat template. The weights are
random, with one twist so that text decodes to readable-ish words: every token embedding
carries a constant component, and the output layer reads that component to favour word
pieces over byte and control tokens (the end-of-turn token is made very unlikely, so a
reply runs until ``max_tokens`` or a stop string, which keeps tests deterministic).

These are demo models: their answers are noise. Nothing here is imported at start-up;
``gguf``, ``numpy``, ``torch`` and ``transformers`` are imported inside the writers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The chat template both tiny models carry (``tokenizer.chat_template``).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: What ``general.name`` and the transformers config say, so a listing shows it.
TINY_NAME = "sahara-tiny-demo (random weights)"

SPECIALS = ("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")
UNK, BOS, PAD, IM_START, EOS = range(len(SPECIALS))
SPACE = "\u2581"  # SentencePiece's word-boundary mark

_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "in",
    "on",
    "for",
    "with",
    "as",
    "by",
    "at",
    "from",
    "or",
    "not",
    "it",
    "this",
    "that",
    "you",
    "I",
    "we",
    "they",
    "he",
    "she",
    "what",
    "which",
    "who",
    "how",
    "when",
    "where",
    "why",
    "yes",
    "no",
    "can",
    "will",
    "would",
    "should",
    "data",
    "model",
    "agent",
    "vault",
    "asset",
    "license",
    "search",
    "answer",
    "question",
    "tool",
    "call",
    "result",
    "source",
    "chain",
    "token",
    "price",
    "file",
    "text",
    "image",
    "memory",
    "team",
    "task",
    "plan",
    "act",
    "observe",
    "good",
    "bad",
    "help",
    "find",
    "show",
    "list",
    "read",
    "write",
    "open",
    "close",
    "run",
    "send",
    "get",
    "set",
    "use",
    "make",
    "know",
    "think",
    "say",
]
_JSON_PIECES = ('{"', '":', '",', '"}', '["', '"]', "},", "}}", "]}", "true", "false", "null")
_ROLE_WORDS = ("user", "assistant", "system", "tool")
# Token types of the GGUF tokenizer (llama.cpp's llama_token_type).
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6


@dataclass(frozen=True)
class TinyVocab:
    """The shared vocabulary: pieces, scores and GGUF token types, by token id."""

    pieces: list[str]
    scores: list[float]
    types: list[int]

    @property
    def size(self) -> int:
        return len(self.pieces)

    def is_word(self, token_id: int) -> bool:
        """A normal piece (not control, unknown or byte)."""
        return self.types[token_id] == _NORMAL


def tiny_vocab() -> TinyVocab:
    """Build the vocabulary (deterministic; about 480 pieces)."""
    pieces: list[str] = list(SPECIALS)
    types = [_UNKNOWN, _CONTROL, _CONTROL, _CONTROL, _CONTROL]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    types += [_BYTE] * 256
    normal: list[str] = [SPACE]
    normal += [chr(c) for c in range(0x21, 0x7F)]
    normal += [SPACE + chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()]
    normal += [SPACE + w for w in _WORDS] + list(_WORDS)
    normal += list(_JSON_PIECES) + [SPACE + p for p in _JSON_PIECES] + list(_ROLE_WORDS)
    seen = set(pieces)
    for piece in normal:
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
            types.append(_NORMAL)
    # Longer pieces score higher, so both SentencePiece merging (llama.cpp) and the
    # Viterbi search (tokenizers' Unigram) prefer them.
    scores = [0.0 if t != _NORMAL else -10.0 + len(p) for p, t in zip(pieces, types, strict=True)]
    return TinyVocab(pieces, scores, types)


@dataclass(frozen=True)
class TinyShape:
    """Layer sizes of a tiny model."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 128
    context: int = 4096


def _weights(vocab: TinyVocab, shape: TinyShape, seed: int) -> dict[str, Any]:
    """Random llama weights (numpy float32), named as in GGUF, with the readable twist."""
    import numpy as np

    rng = np.random.default_rng(seed)
    h, v, f = shape.hidden, vocab.size, shape.ffn
    head_dim = h // shape.heads
    kv = shape.kv_heads * head_dim

    def rand(*dims: int, std: float = 0.02) -> Any:
        return (rng.standard_normal(dims) * std).astype(np.float32)

    embed = rand(v, h, std=0.5)
    embed[:, 0] = 4.0  # the constant component the output layer reads
    out = rand(v, h, std=0.5)
    word = np.array([vocab.is_word(i) for i in range(v)])
    out[:, 0] = np.where(word, 1.0, -1.5)
    out[EOS, 0] = -4.0
    tensors: dict[str, Any] = {
        "token_embd.weight": embed,
        "output_norm.weight": np.ones(h, dtype=np.float32),
        "output.weight": out,
    }
    for i in range(shape.layers):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": np.ones(h, dtype=np.float32),
                f"blk.{i}.attn_q.weight": rand(h, h),
                f"blk.{i}.attn_k.weight": rand(kv, h),
                f"blk.{i}.attn_v.weight": rand(kv, h),
                f"blk.{i}.attn_output.weight": rand(h, h),
                f"blk.{i}.ffn_norm.weight": np.ones(h, dtype=np.float32),
                f"blk.{i}.ffn_gate.weight": rand(f, h),
                f"blk.{i}.ffn_up.weight": rand(f, h),
                f"blk.{i}.ffn_down.weight": rand(h, f),
            }
        )
    return tensors


def write_tiny_gguf(
    path: Path,
    *,
    seed: int = 0,
    shape: TinyShape | None = None,
    chat_template: str = CHAT_TEMPLATE,
) -> Path:
    """Write a tiny llama-architecture GGUF (float32, random weights) to ``path``."""
    import gguf

    shape = shape or TinyShape()
    vocab = tiny_vocab()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(TINY_NAME)
    writer.add_description("A tiny random llama model written by sahara for tests and demos.")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.hidden // shape.heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab.size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.pieces)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(UNK)
    writer.add_pad_token_id(PAD)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(chat_template)
    _finish(writer, _weights(vocab, shape, seed))
    return path


def _finish(writer: Any, tensors: dict[str, Any]) -> None:
    """Add ``tensors`` and write the GGUF file out."""
    import numpy as np

    for name, tensor in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(tensor))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


@dataclass(frozen=True)
class TinyVisionShape:
    """Sizes of a tiny CLIP vision encoder: ``(image_size / patch_size) ** 2`` patches,
    each one image embedding in the text model's context."""

    image_size: int = 32
    patch_size: int = 8
    hidden: int = 32
    layers: int = 2
    heads: int = 2
    ffn: int = 48
    projector: int = 48

    @property
    def tokens(self) -> int:
        """Image embeddings (context positions) one image becomes."""
        return (self.image_size // self.patch_size) ** 2


def write_tiny_mmproj(
    path: Path,
    *,
    text_hidden: int = TinyShape.hidden,
    seed: int = 0,
    shape: TinyVisionShape | None = None,
) -> Path:
    """Write a tiny multimodal projector GGUF (float32, random weights) to ``path``.

    It is what llama.cpp's CLIP loader reads for a LLaVA-1.5 model: a ViT vision encoder
    (patch embedding, position embeddings, pre-norm transformer blocks) and the ``mlp``
    projector (linear, GELU, linear) whose output size, ``text_hidden``, must equal the
    text model's hidden size. Pair it with :func:`write_tiny_gguf`."""
    import gguf
    import numpy as np

    shape = shape or TinyVisionShape()
    if shape.image_size % shape.patch_size or shape.hidden % shape.heads:
        raise ValueError("image_size must be a multiple of patch_size, hidden of heads")
    if shape.ffn == shape.hidden:
        # llama.cpp takes equal sizes for the up/down mix-up of old conversions
        raise ValueError("ffn must differ from hidden")
    rng = np.random.default_rng(seed)
    h, f, p = shape.hidden, shape.ffn, shape.patch_size

    def rand(*dims: int, std: float = 0.02) -> Any:
        return (rng.standard_normal(dims) * std).astype(np.float32)

    def ones(n: int) -> Any:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> Any:
        return np.zeros(n, dtype=np.float32)

    # numpy shapes are GGUF shapes reversed: a linear layer is (out, in)
    tensors: dict[str, Any] = {
        "v.patch_embd.weight": rand(h, 3, p, p),
        "v.patch_embd.bias": zeros(h),
        "v.class_embd": rand(h),
        "v.position_embd.weight": rand(shape.tokens + 1, h),  # + the class token
        "v.pre_ln.weight": ones(h),
        "v.pre_ln.bias": zeros(h),
    }
    for i in range(shape.layers):
        block = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"{block}.{name}.weight"] = rand(h, h)
            tensors[f"{block}.{name}.bias"] = zeros(h)
        tensors.update(
            {
                f"{block}.ln1.weight": ones(h),
                f"{block}.ln1.bias": zeros(h),
                f"{block}.ln2.weight": ones(h),
                f"{block}.ln2.bias": zeros(h),
                f"{block}.ffn_up.weight": rand(f, h),
                f"{block}.ffn_up.bias": zeros(f),
                f"{block}.ffn_down.weight": rand(h, f),
                f"{block}.ffn_down.bias": zeros(h),
            }
        )
    tensors.update(
        {
            "mm.0.weight": rand(shape.projector, h, std=0.2),
            "mm.0.bias": zeros(shape.projector),
            "mm.2.weight": rand(text_hidden, shape.projector, std=0.2),
            "mm.2.bias": zeros(text_hidden),
        }
    )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name(f"{TINY_NAME} projector")
    writer.add_description("A tiny random CLIP projector written by sahara for tests and demos.")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", False)
    writer.add_uint32("clip.vision.image_size", shape.image_size)
    writer.add_uint32("clip.vision.patch_size", p)
    writer.add_uint32("clip.vision.embedding_length", h)
    writer.add_uint32("clip.vision.feed_forward_length", f)
    writer.add_uint32("clip.vision.projection_dim", text_hidden)
    writer.add_uint32("clip.vision.block_count", shape.layers)
    writer.add_uint32("clip.vision.attention.head_count", shape.heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    _finish(writer, tensors)
    return path


def tiny_tokenizer() -> Any:
    """The vocabulary as a ``transformers`` fast tokenizer (Unigram with byte fallback,
    SentencePiece-style spaces), built locally with the ``tokenizers`` library."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocab()
    model = models.Unigram(
        [(p, s) for p, s in zip(vocab.pieces, vocab.scores, strict=True)],
        unk_id=UNK,
        byte_fallback=True,
    )
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never")
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=SPECIALS[BOS],
        eos_token=SPECIALS[EOS],
        unk_token=SPECIALS[UNK],
        pad_token=SPECIALS[PAD],
        additional_special_tokens=[SPECIALS[IM_START]],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def write_tiny_transformers(
    directory: Path, *, seed: int = 0, shape: TinyShape | None = None
) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` and its tokenizer to ``directory``
    (``save_pretrained``: config.json, model.safetensors, tokenizer files)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    shape = shape or TinyShape()
    vocab = tiny_vocab()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(
        vocab_size=vocab.size,
        hidden_size=shape.hidden,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        rms_norm_eps=1e-5,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    weights = _weights(vocab, shape, seed)
    state = {
        "model.embed_tokens.weight": weights["token_embd.weight"],
        "model.norm.weight": weights["output_norm.weight"],
        "lm_head.weight": weights["output.weight"],
    }
    names = {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(shape.layers):
        for short, long in names.items():
            state[f"model.layers.{i}.{long}.weight"] = weights[f"blk.{i}.{short}.weight"]
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    model.config.name_or_path = TINY_NAME
    model.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    (directory / "sahara-tiny.json").write_text(
        json.dumps({"name": TINY_NAME, "seed": seed}) + "\n", encoding="utf-8"
    )
    return directory
