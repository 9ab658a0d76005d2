"""Tiny random causal LMs to train on, written on the spot (nothing downloads).

:func:`make_tiny_causal_lm` trains a small byte-level BPE tokenizer on the given texts
(the ``tokenizers`` package), saves it as a ``PreTrainedTokenizerFast``, and writes a
random ``LlamaForCausalLM`` of that vocabulary next to it, so that
``AutoModelForCausalLM.from_pretrained(dir)`` and ``AutoTokenizer.from_pretrained(dir)``
both work offline. For tests, benchmarks and the demo; the weights are noise until trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
#: The tokenizer's roles of the special tokens.
ROLES = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def make_tiny_causal_lm(
    folder: Path,
    texts: Sequence[str],
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    vocab_size: int = 512,
    max_positions: int = 512,
    seed: int = 0,
) -> Path:
    """Write a random Llama causal LM (``layers`` x ``hidden``) with a BPE tokenizer of at
    most ``vocab_size`` tokens trained on ``texts`` into ``folder``; return ``folder``.
    The same arguments write the same files."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token=ROLES["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, **ROLES
    )
    fast.save_pretrained(str(folder))
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=False,
    )
    generator_state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.set_rng_state(generator_state)
    model.save_pretrained(str(folder))
    return folder
