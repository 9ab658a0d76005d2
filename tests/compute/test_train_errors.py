"""Bad input to training: specs, base folders, data and checkpoints each give one clear
error, and nothing on disk is lost."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from safetensors.torch import load_file

from sahara_cli.compute.spec import DPSpec, LoraSpec, TrainSpec
from sahara_cli.compute.train import train_lora
from sahara_cli.errors import (
    BaseModelInvalid,
    CheckpointCorrupt,
    CheckpointMismatch,
    ComputeSpecInvalid,
    ExitCode,
    NoTrainingData,
    TrainingInterrupted,
)
from tests.compute.test_train import interrupt_at, spec_for

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


# -- specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("r=8,alpha=16", LoraSpec(8, 16)),
        ("r=4", LoraSpec(r=4, alpha=16)),
        (" alpha = 32 , r=16 ", LoraSpec(r=16, alpha=32)),
        ("r=8,alpha=16,dropout=0.05", LoraSpec(8, 16, 0.05)),
        ("r=2,alpha=4,targets=q_proj+v_proj", LoraSpec(2, 4, 0.0, ("q_proj", "v_proj"))),
        ("r=2,targets=all-linear", LoraSpec(2, 16, 0.0, ("all-linear",))),
    ],
)
def test_lora_spec_parses(text: str, expected: LoraSpec) -> None:
    spec = LoraSpec.parse(text)
    assert spec == expected
    assert LoraSpec.parse(spec.text()) == spec


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty item"),
        ("r=8,,alpha=16", "empty item"),
        ("r8", "not key=value"),
        ("r=", "not key=value"),
        ("rank=8", "unknown"),
        ("r=8,r=4", "twice"),
        ("r=eight", "not a whole number"),
        ("r=0", "out of range"),
        ("r=4096", "out of range"),
        ("r=8,alpha=0", "out of range"),
        ("r=8,alpha=1.5", "not a whole number"),
        ("r=8,dropout=1", "out of range"),
        ("r=8,dropout=nan", "not a finite number"),
        ("r=8,targets=q_proj+", "not a module name"),
        ("r=8,targets=q-proj", "not a module name"),
        ("r=8,targets=all-linear+lm_head", "stands alone"),
    ],
)
def test_bad_lora_spec_is_a_usage_error(text: str, match: str) -> None:
    with pytest.raises(ComputeSpecInvalid, match=match) as caught:
        LoraSpec.parse(text)
    assert caught.value.code == "compute.spec_invalid"
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 0},
        {"epochs": 0},
        {"seq_len": 1},
        {"learning_rate": 0.0},
        {"learning_rate": float("inf")},
        {"max_steps": 0},
    ],
)
def test_bad_train_spec_is_a_usage_error(tmp_path: Path, changes: dict[str, object]) -> None:
    with pytest.raises(ComputeSpecInvalid):
        TrainSpec(base=tmp_path, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values", [{"epsilon": 0}, {"epsilon": 8, "delta": 1}, {"epsilon": 8, "max_grad_norm": 0},
               {"epsilon": 8, "accountant": "gdp"}]
)  # fmt: skip
def test_bad_dp_spec_is_a_usage_error(values: dict[str, object]) -> None:
    with pytest.raises(ComputeSpecInvalid):
        DPSpec(**values)  # type: ignore[arg-type]


def test_hparams_hash_is_keccak_of_canonical_json(tmp_path: Path) -> None:
    from sahara_cli.identity.keys import keccak256

    spec = TrainSpec(base=tmp_path / "a", dp=DPSpec(epsilon=8))
    text = spec.hparams_json()
    assert " " not in text and json.loads(text) == spec.hparams()
    assert spec.hparams_hash() == keccak256(text.encode()) and len(spec.hparams_hash()) == 32
    # The base folder is not a hyper-parameter; every setting that changes the weights is.
    assert (
        TrainSpec(base=tmp_path / "b", dp=DPSpec(epsilon=8)).hparams_hash() == spec.hparams_hash()
    )
    for other in (
        TrainSpec(base=tmp_path / "a", dp=DPSpec(epsilon=4)),
        TrainSpec(base=tmp_path / "a"),
        TrainSpec(base=tmp_path / "a", dp=DPSpec(epsilon=8), lora=LoraSpec(r=4)),
        TrainSpec(base=tmp_path / "a", dp=DPSpec(epsilon=8), seed=1),
    ):
        assert other.hparams_hash() != spec.hparams_hash()


def test_all_linear_adapts_every_linear_layer_but_the_output(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    spec = spec_for(tiny_base, lora=LoraSpec.parse("r=2,targets=all-linear"), max_steps=1)
    outcome = train_lora(texts, spec, tmp_path / "out")
    names = load_file(str(outcome.adapter_dir / "adapter_model.safetensors"))
    adapted = {k.split(".")[-3] for k in names if k.endswith("lora_A.weight")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_lora_targets_the_model_lacks(tiny_base: Path, texts: list[str], tmp_path: Path) -> None:
    spec = spec_for(tiny_base, lora=LoraSpec.parse("r=4,targets=c_attn"))
    with pytest.raises(ComputeSpecInvalid, match="LoRA cannot wrap this model"):
        train_lora(texts, spec, tmp_path / "out")


@pytest.mark.parametrize("device", ["cuda", "tpu", "no-such-device"])
def test_a_device_torch_cannot_train_on(
    tiny_base: Path, texts: list[str], tmp_path: Path, device: str
) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ComputeSpecInvalid, match="device"):
        train_lora(texts, spec_for(tiny_base), tmp_path / "out", device=device)


# -- base model and data ---------------------------------------------------------------


def _copy_without(base: Path, dest: Path, *names: str) -> Path:
    shutil.copytree(base, dest)
    for name in names:
        (dest / name).unlink()
    return dest


def test_base_folders_that_are_not_models(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    unknown = _copy_without(tiny_base, tmp_path / "unknown")
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    encoder = _copy_without(tiny_base, tmp_path / "encoder")
    (encoder / "config.json").write_text(
        json.dumps({"model_type": "bert", "vocab_size": 300, "hidden_size": 32,
                    "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                    "architectures": ["BertModel"], "is_decoder": False})
    )  # fmt: skip
    cases = {
        tmp_path / "missing": "does not exist",
        _copy_without(tiny_base, tmp_path / "noconfig", "config.json"): "no config.json",
        _copy_without(tiny_base, tmp_path / "noweights", "model.safetensors"): "no weights",
        _copy_without(tiny_base, tmp_path / "notok", "tokenizer.json"): "no tokenizer",
        unknown: "cannot be loaded",
    }
    for base, match in cases.items():
        with pytest.raises(BaseModelInvalid, match=match) as caught:
            train_lora(texts, spec_for(base), tmp_path / "out")
        assert caught.value.code == "compute.base_model_invalid"
        assert caught.value.exit_code == ExitCode.INVALID_DATA
    # transformers would build this one with random weights: the check refuses it.
    with pytest.raises(BaseModelInvalid, match="do not fit its architecture"):
        train_lora(texts, spec_for(encoder), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", [[], ["", "  \n"], ["a camel"]])
def test_no_training_data(tiny_base: Path, tmp_path: Path, data: list[str]) -> None:
    with pytest.raises(NoTrainingData) as caught:
        train_lora(data, spec_for(tiny_base, seq_len=64), tmp_path / "out")
    assert caught.value.code == "compute.no_training_data"
    assert caught.value.exit_code == ExitCode.USAGE


# -- checkpoints -------------------------------------------------------------------------


def _interrupted_run(base: Path, texts: list[str], tmp_path: Path) -> Path:
    stop = threading.Event()
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(TrainingInterrupted):
        train_lora(
            texts,
            spec_for(base),
            tmp_path / "out",
            checkpoint_dir=checkpoints,
            on_step=interrupt_at(3, stop),
            stop=stop,
        )
    return checkpoints


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_checkpoint_of_other_hparams_is_refused(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    checkpoints = _interrupted_run(tiny_base, texts, tmp_path)
    before = _snapshot(checkpoints)
    for spec, field in (
        (spec_for(tiny_base, learning_rate=5e-3), "hparams_hash"),
        (spec_for(tiny_base), "data_sha256"),
    ):
        data = texts if field != "data_sha256" else texts[::-1]
        with pytest.raises(CheckpointMismatch) as caught:
            train_lora(data, spec, tmp_path / "out", checkpoint_dir=checkpoints)
        assert caught.value.code == "compute.checkpoint_mismatch"
        assert caught.value.details["field"] == field
    assert _snapshot(checkpoints) == before


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("truncate-adapter", "adapter.safetensors does not match"),
        ("drop-optimizer", "optimizer.pt is missing"),
        ("garble-manifest", "manifest.json cannot be read"),
        ("drop-manifest", "manifest.json is missing"),
    ],
)
def test_corrupted_checkpoint_is_refused_and_kept(
    tiny_base: Path, texts: list[str], tmp_path: Path, damage: str, match: str
) -> None:
    checkpoints = _interrupted_run(tiny_base, texts, tmp_path)
    (step,) = checkpoints.iterdir()
    if damage == "truncate-adapter":
        data = (step / "adapter.safetensors").read_bytes()
        (step / "adapter.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "drop-optimizer":
        (step / "optimizer.pt").unlink()
    elif damage == "garble-manifest":
        (step / "manifest.json").write_text('{"format": 1, "step":')
    else:
        (step / "manifest.json").unlink()
    before = _snapshot(checkpoints)
    with pytest.raises(CheckpointCorrupt, match=match) as caught:
        train_lora(texts, spec_for(tiny_base), tmp_path / "out", checkpoint_dir=checkpoints)
    assert caught.value.code == "compute.checkpoint_corrupt"
    assert caught.value.exit_code == ExitCode.INVALID_DATA
    assert _snapshot(checkpoints) == before
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
