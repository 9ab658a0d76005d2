"""Model merging: every method against its formula, written out here tensor by tensor.

Tiny random llamas (and peft LoRA adapters on them, with random B so ΔW ≠ 0) are made
once per module; nothing downloads. Merged models must load in transformers and peft.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from sahara_cli.agent.runners.tiny_models import TinyShape, write_tiny_transformers
from sahara_cli.compute.fisher import fisher_diagonal, save_fisher
from sahara_cli.compute.merge import MergeOutcome, merge_models, shares_bps
from sahara_cli.errors import SaharaError

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


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    base = write_tiny_transformers(root / "base")
    out = {"base": base}
    for i in (1, 2, 3):
        out[f"ft{i}"] = perturbed(base, root / f"ft{i}", seed=i)
    out["ad1"] = make_adapter(base, root / "ad1", 1, r=4)
    out["ad2"] = make_adapter(base, root / "ad2", 2, r=2)
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


# -- adapters ---------------------------------------------------------------------------


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


# -- bad input ----------------------------------------------------------------------------


def corrupt(source: Path, where: Path, how: Callable[[bytes], bytes]) -> Path:
    shutil.copytree(source, where)
    target = where / "model.safetensors"
    target.write_bytes(how(target.read_bytes()))
    return where


BAD: dict[str, tuple[str, Callable[[dict[str, Path], Path], dict[str, Any]]]] = {
    "other shapes": (
        "compute.merge_incompatible",
        lambda m, t: {
            "inputs": [
                m["ft1"],
                write_tiny_transformers(t / "small", shape=TinyShape(hidden=32, ffn=64)),
            ]
        },
    ),
    "other tensors": (
        "compute.merge_incompatible",
        lambda m, t: {
            "inputs": [m["ft1"], write_tiny_transformers(t / "deep", shape=TinyShape(layers=3))]
        },
    ),
    "other architecture": (
        "compute.merge_incompatible",
        lambda m, t: {"inputs": [m["ft1"], gpt2(t)]},
    ),
    "a model and an adapter": (
        "compute.merge_incompatible",
        lambda m, t: {"inputs": [m["ft1"], m["ad1"]]},
    ),
    "adapters of other bases": (
        "compute.merge_incompatible",
        lambda m, t: {"inputs": [m["ad1"], rebased(m["ad2"], t)]},
    ),
    "adapters of other modules": (
        "compute.merge_incompatible",
        lambda m, t: {
            "inputs": [
                m["ad1"],
                make_adapter(m["base"], t / "k", 3, r=2, targets=["q_proj", "k_proj"]),
            ]
        },
    ),
    "more weights than models": (
        "compute.merge_invalid_argument",
        lambda m, t: {"weights": [1, 2, 3]},
    ),
    "a negative weight": ("compute.merge_invalid_argument", lambda m, t: {"weights": [1, -1]}),
    "zero weights": ("compute.merge_invalid_argument", lambda m, t: {"weights": [0, 0]}),
    "no base for task arithmetic": (
        "compute.merge_invalid_argument",
        lambda m, t: {"method": "task-arithmetic"},
    ),
    "no base for ties": ("compute.merge_invalid_argument", lambda m, t: {"method": "ties"}),
    "a base for adapters": (
        "compute.merge_invalid_argument",
        lambda m, t: {"inputs": [m["ad1"], m["ad2"]], "method": "ties", "base": m["base"]},
    ),
    "an unknown method": ("compute.merge_invalid_argument", lambda m, t: {"method": "slerp"}),
    "density over 1": (
        "compute.merge_invalid_argument",
        lambda m, t: {"method": "ties", "base": m["base"], "density": 1.5},
    ),
    "fisher without values": ("compute.merge_invalid_argument", lambda m, t: {"method": "fisher"}),
    "fisher of another model": (
        "compute.merge_incompatible",
        lambda m, t: {"method": "fisher", "fisher": [small_fisher(t)] * 2},
    ),
    "a truncated file": (
        "compute.model_invalid",
        lambda m, t: {"inputs": [m["ft1"], corrupt(m["ft2"], t / "c", lambda b: b[: len(b) // 2])]},
    ),
    "a garbage header": (
        "compute.model_invalid",
        lambda m, t: {
            "inputs": [
                m["ft1"],
                corrupt(m["ft2"], t / "c", lambda b: b[:8] + b"\xff" * 40 + b[48:]),
            ]
        },
    ),
    "no weights": (
        "compute.model_invalid",
        lambda m, t: {"inputs": [m["ft1"], without_weights(m["ft2"], t)]},
    ),
    "no such folder": (
        "compute.model_not_found",
        lambda m, t: {"inputs": [m["ft1"], t / "nowhere"]},
    ),
}


def without_weights(model: Path, where: Path) -> Path:
    shutil.copytree(model, where / "empty")
    (where / "empty" / "model.safetensors").unlink()
    return where / "empty"


def gpt2(where: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=585)).save_pretrained(
        where / "gpt2"
    )
    return where / "gpt2"


def rebased(adapter: Path, where: Path) -> Path:
    shutil.copytree(adapter, where / "rebased")
    config_path = where / "rebased" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "another/base-model"
    config_path.write_text(json.dumps(config))
    return where / "rebased"


def small_fisher(where: Path) -> Path:
    save_fisher(where / "f.safetensors", {"model.norm.weight": np.ones(64, dtype=np.float32)})
    return where / "f.safetensors"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_and_leaves_no_output(
    models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    code, make = BAD[case]
    work = tmp_path / "work"
    work.mkdir()
    kwargs: dict[str, Any] = {"inputs": [models["ft1"], models["ft2"]], "method": "average"}
    kwargs.update(make(models, work))
    out = tmp_path / "out" / "merged"
    with pytest.raises(SaharaError) as caught:
        merge_models(kwargs.pop("inputs"), out, **kwargs)
    assert caught.value.code == code, caught.value.message
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_an_existing_output_is_refused_and_kept(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SaharaError) as caught:
        merge_models([models["ft1"], models["ft2"]], out, method="average")
    assert caught.value.code == "compute.output_exists"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_an_output_that_cannot_be_written_is_refused(
    models: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SaharaError) as caught:
        merge_models([models["ft1"], models["ft2"]], tmp_path / "file" / "out", method="average")
    assert caught.value.code == "compute.write_failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failure_while_writing_leaves_no_output(models: dict[str, Path], tmp_path: Path) -> None:
    def fail(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        merge_models(
            [models["ft1"], models["ft2"]], tmp_path / "out", method="average", on_progress=fail
        )
    assert list(tmp_path.iterdir()) == []


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
