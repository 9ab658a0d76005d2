"""The empirical diagonal Fisher information of a causal language model.

Fisher merging (Matena & Raffel, 2022) weighs each parameter of each model by how much
the model's likelihood depends on it: the diagonal of the Fisher information,
estimated on texts as the mean squared gradient of each text's log-likelihood,

    Fⱼ = (1/N) Σₙ (∂ log p(xₙ) / ∂θⱼ)²,   log p(x) = Σₜ log p(xₜ | x₍<t₎).

Each text is one sample (its gradient is squared before averaging, not the batch's).
torch and transformers are imported here, when the Fisher is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sahara_cli.compute.merge_inputs import open_source
from sahara_cli.compute.safetensors_io import write_streaming
from sahara_cli.errors import ComputeModelInvalid, MergeArgumentInvalid


def fisher_diagonal(
    model_dir: Path,
    texts: Sequence[str],
    *,
    max_length: int = 512,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The diagonal Fisher of the model in ``model_dir`` on ``texts``, per tensor name.

    Names are those of the model's safetensors files; a tensor that is no parameter (a
    buffer) gets zeros. Needs the folder's tokenizer. Texts shorter than two tokens
    carry no prediction and are skipped.
    """
    import torch

    source = open_source(Path(model_dir))
    try:
        if source.kind != "full":
            raise MergeArgumentInvalid(f"{model_dir} is an adapter; the Fisher needs a full model")
        shapes = {n: source.info(n).shape for n in source.where}
    finally:
        source.close()
    tokenizer, model = _load(Path(model_dir))
    params = dict(model.named_parameters(remove_duplicate=False))
    sums = {name: torch.zeros_like(p) for name, p in params.items() if name in shapes}
    samples = 0
    for i, text in enumerate(texts, 1):
        tokens = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)[
            "input_ids"
        ]
        if tokens.shape[1] >= 2:
            model.zero_grad(set_to_none=True)
            loss = model(input_ids=tokens, labels=tokens).loss
            # The loss is the mean over the predicted tokens; the log-likelihood sums them.
            (loss * (tokens.shape[1] - 1)).backward()
            for name, acc in sums.items():
                grad = params[name].grad
                if grad is not None:
                    acc.add_(grad.detach() ** 2)
            samples += 1
        if on_progress is not None:
            on_progress(i, len(texts))
    if samples == 0:
        raise MergeArgumentInvalid("no text is long enough (two tokens) to compute a Fisher on")
    buffers = dict(model.named_buffers())
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name in sums:
            out[name] = np.asarray((sums[name] / samples).numpy(), dtype=np.float32)
        elif name in buffers:
            out[name] = np.zeros(shape, dtype=np.float32)
        else:
            raise ComputeModelInvalid(
                f"{model_dir}: the tensor {name} of its weights is no parameter of the model"
            )
    return out


def _load(model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ComputeModelInvalid(
            f"cannot load {model_dir} with its tokenizer: {exc}",
            hint="the Fisher needs a causal LM folder with tokenizer files",
        ) from exc
    model.eval()  # type: ignore[no-untyped-call]
    return tokenizer, model


def save_fisher(path: Path, fisher: dict[str, np.ndarray]) -> None:
    """Write Fisher values as a float32 safetensors file, the form ``merge_models`` reads."""
    names = sorted(fisher)
    layout = [(n, "F32", tuple(fisher[n].shape)) for n in names]
    write_streaming(Path(path), layout, ((n, fisher[n]) for n in names))
