"""Merging peft LoRA adapters exactly, into an adapter peft loads.

An adapter's change to a weight is ΔW = s·B·A (s = lora_alpha / r, or / √r with
rsLoRA). Averaging the A and the B matrices separately does not average the ΔW
(Σ wᵢBᵢ · Σ wᵢAᵢ ≠ Σ wᵢBᵢAᵢ), so this module never does it:

- ``average`` and ``task-arithmetic`` are linear in ΔW, and a sum of low-rank products
  is itself one product of concatenated factors:
  Σ cᵢsᵢBᵢAᵢ = [B₁ … Bₙ] · [c₁s₁A₁; …; cₙsₙAₙ]. The merged adapter has rank Σ rᵢ and
  ``lora_alpha`` = rank (s = 1), and its ΔW is exactly Σ cᵢΔWᵢ (peft's
  ``add_weighted_adapter(combination_type="cat")`` builds the same), with cᵢ = wᵢ/Σw
  for ``average`` and λwᵢ for ``task-arithmetic``.
- ``ties`` is not linear (it trims and elects signs per element of ΔW), nor is
  ``fisher`` (it weighs each element by its Fisher value: the effective weights are
  W₀ + ΔWᵢ, and Σ wᵢFᵢ(W₀ + ΔWᵢ) / Σ wᵢFᵢ = W₀ + Σ wᵢFᵢΔWᵢ / Σ wᵢFᵢ), so their result
  is in general of full rank. It is written exactly as a full-rank adapter: with R the
  largest min(out, in) of the adapted weights, B = [I | 0] and A = [ΔW; 0] (or B = [ΔW |
  0], A = [I; 0] for a tall weight), ``r`` = ``lora_alpha`` = R. Such an adapter is as
  large as the weights it adapts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from sahara_cli.compute import merge_methods
from sahara_cli.compute.merge_inputs import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ModelSource
from sahara_cli.compute.safetensors_io import SafetensorsFile, write_streaming

#: Methods whose merged ΔW is not a low-rank product: written as full-rank adapters.
FULL_RANK = ("ties", "fisher")


def _delta(source: ModelSource, module: str) -> np.ndarray:
    m = source.modules[module]
    delta: np.ndarray = source.scaling * (source.float64(m.b) @ source.float64(m.a))
    return delta


def merge_adapters(
    sources: Sequence[ModelSource],
    tmp: Path,
    *,
    method: str,
    weights: Sequence[float],
    density: float,
    lam: float,
    fishers: Sequence[SafetensorsFile],
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Write the merged adapter into ``tmp``; return the number of elements written."""
    first = sources[0]
    modules = sorted(first.modules)
    if method in FULL_RANK:
        rank = max(min(first.modules[m].shape) for m in modules)
    else:
        rank = sum(s.modules[modules[0]].rank for s in sources)
    layout: list[tuple[str, str, tuple[int, ...]]] = []
    for name in modules:
        m = first.modules[name]
        dtype = first.info(m.a).dtype
        layout.append((m.a, dtype, (rank, m.shape[1])))
        layout.append((m.b, first.info(m.b).dtype, (m.shape[0], rank)))

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        for done, name in enumerate(modules, 1):
            m = first.modules[name]
            if method in FULL_RANK:
                deltas = [_delta(s, name) for s in sources]
                if method == "ties":
                    delta = merge_methods.ties(deltas, weights, density, lam)
                else:
                    fs = [f.float64(f"{name}.weight") for f in fishers]
                    delta = merge_methods.fisher(deltas, fs, weights)
                a, b = _full_rank(delta, rank)
            else:
                a, b = _concatenated(sources, name, method, weights, lam)
            if on_progress is not None:
                on_progress(done, len(modules))
            yield m.a, a
            yield m.b, b

    metadata = first.files[ADAPTER_WEIGHTS].metadata or {"format": "pt"}
    count = write_streaming(tmp / ADAPTER_WEIGHTS, layout, tensors(), metadata)
    config = dict(first.config)
    config.update(r=rank, lora_alpha=rank, use_rslora=False, rank_pattern={}, alpha_pattern={})
    (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return count


def _concatenated(
    sources: Sequence[ModelSource],
    module: str,
    method: str,
    weights: Sequence[float],
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    total = float(sum(weights))
    a_parts, b_parts = [], []
    for source, w in zip(sources, weights, strict=True):
        m = source.modules[module]
        c = w / total if method == "average" else lam * w
        a_parts.append(c * source.scaling * source.float64(m.a))
        b_parts.append(source.float64(m.b))
    return np.concatenate(a_parts, axis=0), np.concatenate(b_parts, axis=1)


def _full_rank(delta: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A and B of rank ``rank`` with B @ A = ``delta`` exactly."""
    out, inp = delta.shape
    a = np.zeros((rank, inp))
    b = np.zeros((out, rank))
    if out <= inp:
        a[:out] = delta
        b[:, :out] = np.eye(out)
    else:
        a[:inp] = np.eye(inp)
        b[:, :inp] = delta
    return a, b
