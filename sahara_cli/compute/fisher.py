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
from sahara_cli.errors import ComputeModelInvalid, ComputeModelNotFound, MergeArgumentInvalid

#: What peft puts before a module's path in an adapter's tensor names.
PEFT_PREFIX = "base_model.model."


def fisher_diagonal(
    model_dir: Path,
    texts: Sequence[str],
    *,
    base: Path | None = None,
    max_length: int = 512,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The diagonal Fisher of the model in ``model_dir`` on ``texts``, per tensor name.

    For a full model the names are those of its safetensors files; a tensor that is no
    parameter (a buffer) gets zeros. For a LoRA adapter they are its adapted weights,
    ``<module>.weight`` as in the adapter's tensor names, and the Fisher is that of the
    base model with the adapter merged in (the base is the adapter's
    ``base_model_name_or_path``, which must be a local folder, or ``base``). Needs the
    folder's tokenizer (or the base's). Texts shorter than two tokens carry no
    prediction and are skipped.
    """
    import torch

    source = open_source(Path(model_dir))
    try:
        shapes = source.fisher_names()
        adapter = source.kind == "adapter"
        if adapter and base is None:
            base = Path(str(source.config.get("base_model_name_or_path") or ""))
    finally:
        source.close()
    tokenizer, model = _load(Path(model_dir), base if adapter else None)
    # An adapter's module "base_model.model.<path>" adapts the parameter "<path>.weight".
    rename = {n: n.removeprefix(PEFT_PREFIX) if adapter else n for n in shapes}
    params = dict(model.named_parameters(remove_duplicate=False))
    wanted = set(rename.values())
    sums = {name: torch.zeros_like(p) for name, p in params.items() if name in wanted}
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
        if rename[name] in sums:
            out[name] = np.asarray((sums[rename[name]] / samples).numpy(), dtype=np.float32)
        elif rename[name] in buffers:
            out[name] = np.zeros(shape, dtype=np.float32)
        else:
            raise ComputeModelInvalid(
                f"{model_dir}: the tensor {name} of its weights is no parameter of the model"
            )
    return out


def _load(model_dir: Path, base: Path | None) -> tuple[Any, Any]:
    """The tokenizer and the model (for an adapter: its base with it merged in)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if base is not None and not (base / "config.json").is_file():
        raise ComputeModelNotFound(
            f"the base model of the adapter {model_dir} is not a local model folder: {base}",
            hint="the Fisher of an adapter needs its base model's weights",
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(base or model_dir, dtype=torch.float32)
        if base is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, model_dir).merge_and_unload()
        has_tokenizer = (model_dir / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(model_dir if has_tokenizer else base or model_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ComputeModelInvalid(
            f"cannot load {model_dir} with its tokenizer: {exc}",
            hint="the Fisher needs a causal LM folder with tokenizer files",
        ) from exc
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(True)  # peft freezes the base model's weights
    return tokenizer, model


def save_fisher(path: Path, fisher: dict[str, np.ndarray]) -> None:
    """Write Fisher values as a float32 safetensors file, the form ``merge_models`` reads."""
    names = sorted(fisher)
    layout = [(n, "F32", tuple(fisher[n].shape)) for n in names]
    write_streaming(Path(path), layout, ((n, fisher[n]) for n in names))
