"""Merging LoRA adapters: the merged adapter's ΔW, as peft computes it, against the formula."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sahara_cli.compute.fisher import fisher_diagonal, save_fisher
from sahara_cli.compute.merge import merge_models
from tests.compute.merge_helpers import TARGETS, lora_deltas, peft_deltas, ties_reference


@pytest.mark.parametrize(
    ("method", "coefficients", "extra"),
    [("average", (1 / 4, 3 / 4), {}), ("task-arithmetic", (0.5, 1.5), {"lam": 0.5})],
)
def test_linear_adapter_merges_concatenate_ranks_exactly(
    models: dict[str, Path],
    tmp_path: Path,
    method: str,
    coefficients: tuple[float, float],
    extra: dict[str, Any],
) -> None:
    outcome = merge_models(
        [models["ad1"], models["ad2"]], tmp_path / "m", method=method, weights=[1, 3], **extra
    )
    assert outcome.kind == "adapter" and outcome.shares_bps == (2500, 7500)
    config = json.loads((tmp_path / "m" / "adapter_config.json").read_text())
    assert config["r"] == 4 + 2
    d1, d2 = lora_deltas(models["ad1"]), lora_deltas(models["ad2"])
    got = peft_deltas(models["base"], tmp_path / "m")
    assert len(got) == len(d1) == 2 * len(TARGETS)
    for name, delta in got.items():
        key = next(k for k in d1 if k.endswith(name))
        expected = coefficients[0] * d1[key] + coefficients[1] * d2[key]
        np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.abs(expected).max() > 1e-3  # the adapters do change the weights


def test_ties_of_adapters_is_an_exact_full_rank_adapter(
    models: dict[str, Path], tmp_path: Path
) -> None:
    merge_models([models["ad1"], models["ad2"]], tmp_path / "t", method="ties", density=0.4)
    d1, d2 = lora_deltas(models["ad1"]), lora_deltas(models["ad2"])
    for name, delta in peft_deltas(models["base"], tmp_path / "t").items():
        key = next(k for k in d1 if k.endswith(name))
        taus = [torch.from_numpy(d1[key]), torch.from_numpy(d2[key])]
        expected = ties_reference(taus, [1.0, 1.0], 0.4, 1.0).numpy()
        np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_fisher_of_adapters_weighs_each_delta_element(
    models: dict[str, Path], tmp_path: Path
) -> None:
    d1, d2 = lora_deltas(models["ad1"]), lora_deltas(models["ad2"])
    rng = np.random.default_rng(3)
    fishers = [
        {f"{k}.weight": rng.random(v.shape, dtype=np.float32) for k, v in d1.items()}
        for _ in (1, 2)
    ]
    for i, f in enumerate(fishers):
        save_fisher(tmp_path / f"f{i}.safetensors", f)
    files = [tmp_path / "f0.safetensors", tmp_path / "f1.safetensors"]
    merge_models(
        [models["ad1"], models["ad2"]],
        tmp_path / "m",
        method="fisher",
        weights=[2, 1],
        fisher=files,
    )
    for name, delta in peft_deltas(models["base"], tmp_path / "m").items():
        key = next(k for k in d1 if k.endswith(name))
        f1, f2 = (f[f"{key}.weight"].astype(np.float64) for f in fishers)
        expected = (2 * f1 * d1[key] + f2 * d2[key]) / (2 * f1 + f2)
        np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_fisher_of_an_adapter_is_that_of_its_base_with_it_merged_in(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    texts = ["the cat sat on the mat", "hello world"]
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(models["base"]), models["ad1"]
    )
    merged.merge_and_unload().save_pretrained(tmp_path / "full")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(models["base"] / name, tmp_path / "full" / name)
    full = fisher_diagonal(tmp_path / "full", texts)
    of_adapter = fisher_diagonal(models["ad1"], texts)
    assert len(of_adapter) == 2 * len(TARGETS)  # two layers
    for name, value in of_adapter.items():
        np.testing.assert_allclose(
            value, full[name.removeprefix("base_model.model.")], rtol=1e-5, atol=1e-12
        )
    out = merge_models(
        [models["ad1"], models["ad2"]], tmp_path / "m", method="fisher", fisher_texts=texts
    )
    assert out.kind == "adapter" and (tmp_path / "m" / "adapter_model.safetensors").is_file()
