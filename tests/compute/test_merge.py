"""Model merging: every method against its formula, written out here tensor by tensor.

Tiny random llamas (and peft LoRA adapters on them, with random B so ΔW ≠ 0) are made
once per session (``conftest.py``); nothing downloads. Merged models must load in
transformers and peft.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sahara_cli.compute.fisher import fisher_diagonal, save_fisher
from sahara_cli.compute.merge import merge_models, shares_bps
from tests.compute.merge_helpers import (
    assert_tensors,
    check_outcome,
    ties_reference,
    weights_of,
)

# -- full models -----------------------------------------------------------------------


def test_average_is_the_normalised_weighted_mean_and_loads(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    inputs = [models["ft1"], models["ft2"], models["ft3"]]
    seen: list[tuple[int, int]] = []
    outcome = merge_models(
        inputs, tmp_path / "avg", method="average", weights=[5, 3, 2],
        on_progress=lambda d, t: seen.append((d, t)),
    )  # fmt: skip
    thetas = [weights_of(p) for p in inputs]
    expected = {k: (5 * thetas[0][k] + 3 * thetas[1][k] + 2 * thetas[2][k]) / 10 for k in thetas[0]}
    assert_tensors(weights_of(tmp_path / "avg"), expected)
    assert outcome.shares_bps == (5000, 3000, 2000)
    assert outcome.parameters == sum(v.size for v in expected.values())
    assert seen[-1] == (len(expected), len(expected))
    check_outcome(outcome, 3)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "avg")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "avg")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights_of(tmp_path / "avg")[name])
    ids = tokenizer("hello world", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_task_arithmetic_adds_scaled_task_vectors_to_the_base(
    models: dict[str, Path], tmp_path: Path
) -> None:
    base = weights_of(models["base"])
    t1, t2 = weights_of(models["ft1"]), weights_of(models["ft2"])
    outcome = merge_models(
        [models["ft1"], models["ft2"]], tmp_path / "ta", method="task-arithmetic",
        weights=[0.7, 0.6], base=models["base"], lam=0.5,
    )  # fmt: skip
    expected = {
        k: base[k] + 0.5 * (0.7 * (t1[k] - base[k]) + 0.6 * (t2[k] - base[k])) for k in base
    }
    assert_tensors(weights_of(tmp_path / "ta"), expected)
    assert outcome.shares_bps == (5385, 4615)  # 7/13 and 6/13 of 10,000: 5384.6, 4615.4
    assert outcome.base == models["base"]


def test_ties_trims_elects_and_takes_the_disjoint_mean(
    models: dict[str, Path], tmp_path: Path
) -> None:
    base = weights_of(models["base"])
    fts = [weights_of(models[f"ft{i}"]) for i in (1, 2, 3)]
    merge_models(
        [models["ft1"], models["ft2"], models["ft3"]], tmp_path / "ties", method="ties",
        weights=[1, 2, 1], base=models["base"], density=0.3, lam=1.2,
    )  # fmt: skip
    expected = {}
    for k, b in base.items():
        taus = [torch.from_numpy(ft[k].astype(np.float64) - b) for ft in fts]
        expected[k] = b + ties_reference(taus, [1, 2, 1], 0.3, 1.2).numpy()
    got = weights_of(tmp_path / "ties")
    assert_tensors(got, expected)
    kept = np.count_nonzero(
        got["model.layers.0.mlp.up_proj.weight"] - base["model.layers.0.mlp.up_proj.weight"]
    )
    assert kept < 0.9 * base["model.layers.0.mlp.up_proj.weight"].size  # trimming did trim


def test_fisher_weighs_each_element_by_its_fisher(models: dict[str, Path], tmp_path: Path) -> None:
    t1, t2 = weights_of(models["ft1"]), weights_of(models["ft2"])
    rng = np.random.default_rng(7)
    f1 = {k: rng.random(v.shape, dtype=np.float32) for k, v in t1.items()}
    f2 = {k: rng.random(v.shape, dtype=np.float32) for k, v in t1.items()}
    f1["model.norm.weight"][:] = 0  # no information anywhere: the weighted mean
    f2["model.norm.weight"][:] = 0
    save_fisher(tmp_path / "f1.safetensors", f1)
    save_fisher(tmp_path / "f2.safetensors", f2)
    merge_models(
        [models["ft1"], models["ft2"]], tmp_path / "fm", method="fisher", weights=[1, 3],
        fisher=[tmp_path / "f1.safetensors", tmp_path / "f2.safetensors"],
    )  # fmt: skip
    expected = {}
    for k in t1:
        den = 1 * f1[k].astype(np.float64) + 3 * f2[k]
        num = 1 * f1[k].astype(np.float64) * t1[k] + 3 * f2[k].astype(np.float64) * t2[k]
        expected[k] = np.where(den > 0, num / np.where(den > 0, den, 1), (t1[k] + 3.0 * t2[k]) / 4)
    assert_tensors(weights_of(tmp_path / "fm"), expected)


def test_fisher_diagonal_is_the_mean_squared_gradient_of_each_log_likelihood(
    models: dict[str, Path],
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["the cat sat on the mat", "hello world, hello"]
    fisher = fisher_diagonal(models["ft1"], texts)
    model = AutoModelForCausalLM.from_pretrained(models["ft1"])
    tokenizer = AutoTokenizer.from_pretrained(models["ft1"])
    squares: dict[str, torch.Tensor] = {}
    for text in texts:  # log p(x) = sum of log p(x_t | x_<t); one sample per text
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        logits = model(input_ids=ids).logits[0, :-1]
        log_p = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).sum()
        grads = torch.autograd.grad(log_p, list(model.parameters()))
        for (name, _), grad in zip(model.named_parameters(), grads, strict=True):
            squares[name] = squares.get(name, 0) + grad**2 / len(texts)
    assert set(fisher) == set(weights_of(models["ft1"]))
    for name, expected in squares.items():
        np.testing.assert_allclose(
            fisher[name], expected.numpy(), rtol=1e-4, atol=1e-10, err_msg=name
        )
    assert fisher["model.layers.1.mlp.down_proj.weight"].max() > 0


def test_fisher_from_texts_equals_fisher_from_files(
    models: dict[str, Path], tmp_path: Path
) -> None:
    texts = ["hello world", "the cat sat on the mat"]
    inputs = [models["ft1"], models["ft2"]]
    for i, path in enumerate(inputs):
        save_fisher(tmp_path / f"f{i}.safetensors", fisher_diagonal(path, texts))
    merge_models(inputs, tmp_path / "a", method="fisher", fisher_texts=texts)
    files = [tmp_path / "f0.safetensors", tmp_path / "f1.safetensors"]
    merge_models(inputs, tmp_path / "b", method="fisher", fisher=files)
    assert_tensors(weights_of(tmp_path / "a"), weights_of(tmp_path / "b"))


def test_sharded_models_merge_into_the_same_shards(models: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    inputs = []
    for i in (1, 2):
        model = AutoModelForCausalLM.from_pretrained(models[f"ft{i}"])
        model.save_pretrained(tmp_path / f"s{i}", max_shard_size="100KB")
        inputs.append(tmp_path / f"s{i}")
    index = json.loads((inputs[0] / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    merge_models(inputs, tmp_path / "out", method="average")
    out_index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert out_index["weight_map"] == index["weight_map"]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    a, b = weights_of(models["ft1"]), weights_of(models["ft2"])
    for name, value in merged.items():
        np.testing.assert_allclose(value.numpy(), (a[name] + b[name]) / 2, rtol=1e-6, atol=1e-6)


def test_bfloat16_models_stay_bfloat16(models: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file as load_torch
    from transformers import AutoModelForCausalLM

    for i in (1, 2):
        AutoModelForCausalLM.from_pretrained(
            models[f"ft{i}"], dtype=torch.bfloat16
        ).save_pretrained(tmp_path / f"b{i}")
    merge_models(
        [tmp_path / "b1", tmp_path / "b2"], tmp_path / "out", method="average", weights=[1, 3]
    )
    a, b = (
        load_torch(tmp_path / "b1" / "model.safetensors"),
        load_torch(tmp_path / "b2" / "model.safetensors"),
    )
    got = load_torch(tmp_path / "out" / "model.safetensors")
    for name, value in got.items():
        assert value.dtype == torch.bfloat16
        expected = ((a[name].double() + 3 * b[name].double()) / 4).to(torch.bfloat16)
        torch.testing.assert_close(value, expected, rtol=2**-7, atol=1e-6)


# -- shares -------------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=12))
def test_shares_are_basis_points_that_sum_to_10000(weights: list[float]) -> None:
    shares = shares_bps(weights)
    assert sum(shares) == 10_000
    total = math.fsum(weights)
    for w, s in zip(weights, shares, strict=True):
        assert abs(s - 10_000 * w / total) < 1 + 1e-6
    assert shares_bps(weights) == shares


def test_shares_give_leftover_points_to_the_largest_remainder_then_the_first() -> None:
    assert shares_bps([1, 1, 1]) == (3334, 3333, 3333)
    assert shares_bps([1, 2]) == (3333, 6667)
    assert shares_bps([0.1, 0.2, 0.7]) == (1000, 2000, 7000)


# -- mergekit as a reference --------------------------------------------------------------

MERGEKIT_CASES = {
    "average": ("linear", {}, {}),
    "task-arithmetic": ("task_arithmetic", {"lam": 0.8}, {"lambda": 0.8}),
    "ties": ("ties", {"lam": 1.0, "density": 0.3}, {}),
}


@pytest.mark.skipif(importlib.util.find_spec("mergekit") is None, reason="mergekit not installed")
@pytest.mark.parametrize("method", sorted(MERGEKIT_CASES))
def test_merges_equal_mergekits(models: dict[str, Path], tmp_path: Path, method: str) -> None:
    """mergekit (not a dependency: docs/decisions.md) merges the same models the same."""
    import mergekit.merge as mergekit_merge
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

    name, ours, theirs = MERGEKIT_CASES[method]
    inputs, weights = [models["ft1"], models["ft2"], models["ft3"]], [0.5, 0.3, 0.2]
    base = None if method == "average" else models["base"]
    merge_models(inputs, tmp_path / "ours", method=method, weights=weights, base=base, **ours)
    entries = []
    for path, w in zip(inputs, weights, strict=True):
        parameters: dict[str, float] = {"weight": w}
        if "density" in ours:
            parameters["density"] = ours["density"]
        entries.append({"model": str(path), "parameters": parameters})
    config: dict[str, Any] = {"merge_method": name, "models": entries, "dtype": "float32"}
    if base is not None:
        config["base_model"] = str(base)
    if theirs:
        config["parameters"] = theirs
    mergekit_merge.run_merge(
        MergeConfiguration.model_validate(config), str(tmp_path / "theirs"),
        MergeOptions(quiet=True, copy_tokenizer=False, write_model_card=False),
    )  # fmt: skip
    theirs_weights = weights_of(tmp_path / "theirs")
    ours_weights = weights_of(tmp_path / "ours")
    assert set(ours_weights) == set(theirs_weights)
    for key, value in theirs_weights.items():
        np.testing.assert_allclose(ours_weights[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_importing_the_merge_library_loads_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sahara_cli.compute.merge, sahara_cli.compute.fisher; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
