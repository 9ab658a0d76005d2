"""Bad merge input: each gives its error code, before anything is written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sahara_cli.agent.runners.tiny_models import TinyShape, write_tiny_transformers
from sahara_cli.compute.fisher import save_fisher
from sahara_cli.compute.merge import merge_models
from sahara_cli.errors import SaharaError
from tests.compute.merge_helpers import make_adapter

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
