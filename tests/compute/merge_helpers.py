"""Helpers of the merge tests: tiny 'fine-tunes', LoRA adapters, reference formulas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from sahara_cli.compute.merge import MergeOutcome

Tensors = dict[str, np.ndarray]
TARGETS = ["q_proj", "v_proj"]


def weights_of(folder: Path) -> Tensors:
    return load_file(str(folder / "model.safetensors"))


def perturbed(base: Path, out: Path, seed: int, scale: float = 0.05) -> Path:
    """A 'fine-tune' of ``base``: the same folder with every weight moved a little."""
    shutil.copytree(base, out)
    rng = np.random.default_rng(seed)
    state = {
        k: v + scale * rng.standard_normal(v.shape).astype(v.dtype)
        for k, v in weights_of(base).items()
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def make_adapter(base: Path, out: Path, seed: int, *, r: int, targets: list[str] = TARGETS) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(
        model, LoraConfig(r=r, lora_alpha=2 * r + 1, target_modules=targets)
    )
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    peft_model.save_pretrained(out)
    return out


def lora_deltas(adapter: Path) -> Tensors:
    """Each adapted module's ΔW = (lora_alpha / r) · B @ A, from the files alone."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    return {
        name.split(".lora_A.")[0]: scale
        * (tensors[name.replace("lora_A", "lora_B")].astype(np.float64) @ a.astype(np.float64))
        for name, a in tensors.items()
        if ".lora_A." in name
    }


def assert_tensors(got: Tensors, expected: dict[str, Any]) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6, err_msg=name)


def check_outcome(outcome: MergeOutcome, n: int) -> None:
    assert sum(outcome.shares_bps) == 10_000 and len(outcome.shares_bps) == n
    for f in outcome.files:
        import hashlib

        assert hashlib.sha256((outcome.out_dir / f.name).read_bytes()).hexdigest() == f.sha256


def ties_reference(
    taus: list[torch.Tensor], weights: list[float], density: float, lam: float
) -> torch.Tensor:
    """TIES as the paper writes it, in torch: trim by a k-th value, elect, disjoint mean."""
    trimmed = []
    for tau, w in zip(taus, weights, strict=True):
        k = max(1, int(density * tau.numel()))
        threshold = tau.abs().flatten().kthvalue(tau.numel() - k + 1).values
        trimmed.append(w * torch.where(tau.abs() >= threshold, tau, torch.zeros_like(tau)))
    stacked = torch.stack(trimmed)
    sign = torch.where(stacked.sum(0) >= 0, 1.0, -1.0).to(stacked.dtype)
    agree = (stacked.sign() == sign).to(stacked.dtype)
    w = torch.tensor(weights, dtype=stacked.dtype).reshape(-1, *([1] * taus[0].dim()))
    divisor = (w * agree).sum(0)
    return lam * (stacked * agree).sum(0) / torch.where(divisor == 0, 1.0, divisor)


def peft_deltas(base: Path, adapter: Path) -> dict[str, np.ndarray]:
    """ΔW of every adapted module as peft computes it for the loaded adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            out[name] = module.get_delta_weight("default").detach().double().numpy()
    return out
