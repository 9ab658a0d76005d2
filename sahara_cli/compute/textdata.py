"""The base model and the training text: load and check a local causal LM, cut texts into
fixed-length token blocks, and draw the batches of each step.

Everything that can be wrong with a base folder is found here and raised as
:class:`~sahara_cli.errors.BaseModelInvalid` (transformers' own exceptions are translated
where they enter). The batch order is a pure function of the seed and the step, so a run
resumed from a checkpoint draws the same batches as one that never stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import BaseModelInvalid, NoTrainingData

if TYPE_CHECKING:
    import torch

#: Files of which at least one makes a folder hold a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_base(base: Path) -> dict[str, Any]:
    """The base folder's ``config.json`` as a dict, after the checks that need no import:
    the folder, the config, a known architecture, weights and tokenizer files."""
    if not base.is_dir():
        raise BaseModelInvalid(f"base model folder {base} does not exist")
    config_file = base / "config.json"
    if not config_file.is_file():
        raise BaseModelInvalid(f"{base} holds no config.json, so it is not a transformers model")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaseModelInvalid(f"{config_file} cannot be read: {_first_line(exc)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise BaseModelInvalid(f"{config_file} names no model_type")
    if not any(base.glob("*.safetensors")) and not any(base.glob("*.bin")):
        raise BaseModelInvalid(f"{base} holds no weights (*.safetensors or *.bin)")
    if not any((base / name).is_file() for name in TOKENIZER_FILES):
        raise BaseModelInvalid(f"{base} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    return config


def config_digest(base: Path) -> str:
    """SHA-256 of the base's ``config.json``: what a checkpoint checks the base against."""
    return hashlib.sha256((base / "config.json").read_bytes()).hexdigest()


def load_tokenizer(base: Path) -> Any:
    """The base's tokenizer (local files only)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        raise BaseModelInvalid(
            f"the tokenizer in {base} cannot be loaded: {_first_line(exc)}"
        ) from None


def load_model(base: Path, device: str) -> Any:
    """The base as a float32 causal LM on ``device`` (local files only)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            str(base), local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
        model, info = loaded
    except Exception as exc:  # unknown architecture, missing or broken weights, ...
        raise BaseModelInvalid(
            f"{base} cannot be loaded as a causal language model: {_first_line(exc)}"
        ) from None
    # transformers fills weights the files lack with random ones; a base must have them all.
    missing = sorted(info.get("missing_keys") or []) + sorted(
        str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or []
    )
    if missing:
        raise BaseModelInvalid(
            f"the weights in {base} do not fit its architecture: {len(missing)} missing or "
            f"of another shape (the first: {missing[0]})"
        )
    return model.to(device)


def token_blocks(texts: Sequence[str], tokenizer: Any, seq_len: int) -> torch.Tensor:
    """The texts as one token stream (each text followed by the end-of-sequence token when
    the tokenizer has one) cut into ``[blocks, seq_len]``; the tail shorter than a block
    is dropped."""
    import torch

    texts = [t for t in texts if t and not t.isspace()]
    if not texts:
        raise NoTrainingData("there is no text to train on")
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    count = len(stream) // seq_len
    if count == 0:
        raise NoTrainingData(
            f"the text makes {len(stream)} tokens, fewer than one block of seq_len={seq_len}"
        )
    return torch.tensor(stream[: count * seq_len], dtype=torch.long).view(count, seq_len)


def blocks_digest(blocks: torch.Tensor) -> str:
    """SHA-256 of the token blocks: what a checkpoint checks the data against."""
    digest = hashlib.sha256(f"{tuple(blocks.shape)}".encode())
    digest.update(blocks.cpu().numpy().tobytes())
    return digest.hexdigest()


def _seed(seed: int, tag: str, index: int) -> int:
    raw = hashlib.sha256(f"sahara-train:{seed}:{tag}:{index}".encode()).digest()
    return int.from_bytes(raw[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class BatchPlan:
    """Which blocks each step trains on.

    Without DP, each epoch is a fresh permutation cut into batches of ``batch_size`` (the
    last one may be short). With DP (``poisson``), each step takes every block
    independently with probability ``sample_rate = 1 / steps_per_epoch`` (opacus's
    Poisson sampling, the rule of its ``DPDataLoader``; a batch may be empty). The
    randomness of epoch ``e`` or step ``s`` comes from a generator seeded by
    ``(seed, e or s)`` alone.
    """

    blocks: int
    batch_size: int
    seed: int
    poisson: bool
    total_steps: int

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.blocks // self.batch_size)

    @property
    def sample_rate(self) -> float:
        return 1 / self.steps_per_epoch

    def describe(self) -> dict[str, Any]:
        """The data order, as a checkpoint's manifest records it."""
        return {
            "rule": "poisson" if self.poisson else "shuffle",
            "blocks": self.blocks,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
        }

    def batches(self, start: int = 0) -> Iterator[torch.Tensor]:
        """The block indices (on the CPU) of each step from ``start`` (0-based) to the end."""
        import torch

        order = None
        for step in range(start, self.total_steps):
            if self.poisson:
                generator = torch.Generator().manual_seed(_seed(self.seed, "step", step))
                mask = torch.rand(self.blocks, generator=generator) < self.sample_rate
                yield mask.nonzero().flatten()
                continue
            epoch, offset = divmod(step, self.steps_per_epoch)
            if order is None or offset == 0:
                generator = torch.Generator().manual_seed(_seed(self.seed, "epoch", epoch))
                order = torch.randperm(self.blocks, generator=generator)
            yield order[offset * self.batch_size : (offset + 1) * self.batch_size]
