"""LoRA and DP-SGD training through ``train_lora`` on a tiny random model."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from sahara_cli.compute.spec import DPSpec, LoraSpec, TrainSpec
from sahara_cli.compute.train import StepReport, TrainOutcome, train_lora
from sahara_cli.errors import TrainingInterrupted

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

#: Adapting the output layer too lets a random model learn the texts in a few steps.
LORA = LoraSpec.parse("r=8,alpha=16,targets=q_proj+v_proj+lm_head")


def spec_for(base: Path, **changes: Any) -> TrainSpec:
    values: dict[str, Any] = {
        "base": base,
        "lora": LORA,
        "epochs": 100,
        "max_steps": 12,
        "batch_size": 8,
        "learning_rate": 1e-2,
        "seq_len": 16,
    }
    values.update(changes)
    return TrainSpec(**values)


def test_fifty_lora_steps_lower_the_loss(tiny_base: Path, texts: list[str], tmp_path: Path) -> None:
    reports: list[StepReport] = []
    outcome = train_lora(
        texts, spec_for(tiny_base, max_steps=50), tmp_path / "adapter", on_step=reports.append
    )
    assert outcome.steps == 50 and len(outcome.losses) == 50
    assert [r.step for r in reports] == list(range(1, 51))
    assert [r.loss for r in reports] == outcome.losses
    first, last = sum(outcome.losses[:10]) / 10, sum(outcome.losses[-10:]) / 10
    assert (first, last) == pytest.approx((outcome.first_loss, outcome.last_loss))
    assert last < first - 1.0, (first, last)
    assert outcome.epsilon is None and outcome.resumed_from_step is None
    assert outcome.device == "cpu"
    epochs, rest = divmod(50, math.ceil(outcome.blocks / 8))
    assert outcome.tokens_seen == (epochs * outcome.blocks + rest * 8) * 16
    assert sorted(outcome.adapter_files) == ["adapter_config.json", "adapter_model.safetensors"]
    assert outcome.hparams_hash == spec_for(tiny_base, max_steps=50).hparams_hash()


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_saved_adapter_loads_in_peft_and_gives_the_trained_logits(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    outcome = train_lora(texts, spec_for(tiny_base), tmp_path / "adapter")
    ids = AutoTokenizer.from_pretrained(str(tiny_base))(texts[0], return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    plain = _logits(base, ids)

    # The trained model by hand: each adapted weight W + alpha / r * B @ A.
    weights = load_file(str(outcome.adapter_dir / "adapter_model.safetensors"))
    merged = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    modules = dict(merged.named_modules())
    adapted = 0
    for key, a in weights.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b = weights[key.replace("lora_A", "lora_B")]
        with torch.no_grad():
            modules[name].weight += LORA.alpha / LORA.r * (b @ a)
        adapted += 1
    assert adapted == 2 * 2 + 1  # q_proj and v_proj of two layers, and lm_head

    loaded = PeftModel.from_pretrained(base, str(outcome.adapter_dir)).eval()
    tuned = _logits(loaded, ids)
    assert torch.allclose(tuned, _logits(merged, ids), atol=1e-4)
    assert not torch.allclose(tuned, plain, atol=1e-3)


# PRV's search for the noise multiplier takes seconds.
@pytest.mark.parametrize("accountant", ["rdp", pytest.param("prv", marks=pytest.mark.slow)])
def test_dp_reports_the_epsilon_of_opacus_accountant(
    tiny_base: Path, texts: list[str], tmp_path: Path, accountant: str
) -> None:
    from opacus.accountants import PRVAccountant, RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    dp = DPSpec(epsilon=4.0, delta=1e-5, max_grad_norm=1.0, accountant=accountant)
    spec = spec_for(tiny_base, dp=dp, max_steps=10)
    outcome = train_lora(texts, spec, tmp_path / "adapter")

    assert outcome.sample_rate == pytest.approx(1 / math.ceil(outcome.blocks / 8))
    sigma = get_noise_multiplier(
        target_epsilon=4.0,
        target_delta=1e-5,
        sample_rate=outcome.sample_rate,
        steps=10,
        accountant=accountant,
    )
    assert outcome.noise_multiplier == pytest.approx(sigma)
    expected = PRVAccountant() if accountant == "prv" else RDPAccountant()
    expected.history = [(sigma, outcome.sample_rate, 10)]
    assert outcome.epsilon == pytest.approx(expected.get_epsilon(1e-5), rel=1e-6)
    assert outcome.epsilon is not None and 3.9 < outcome.epsilon <= 4.0
    assert outcome.delta == 1e-5 and outcome.steps == 10


def test_dp_counts_empty_poisson_batches(tiny_base: Path, texts: list[str], tmp_path: Path) -> None:
    from opacus.accountants import RDPAccountant

    # One block a step on average: about a third of the Poisson batches are empty.
    spec = spec_for(tiny_base, dp=DPSpec(epsilon=8.0, accountant="rdp"), batch_size=1, max_steps=12)
    outcome = train_lora(texts, spec, tmp_path / "adapter")
    empty = [loss for loss in outcome.losses if math.isnan(loss)]
    assert 0 < len(empty) < 12
    expected = RDPAccountant()
    expected.history = [(outcome.noise_multiplier, outcome.sample_rate, 12)]
    assert outcome.epsilon == pytest.approx(expected.get_epsilon(1e-5), rel=1e-6)
    assert math.isfinite(outcome.first_loss) and math.isfinite(outcome.last_loss)


def _adapter(outcome: TrainOutcome) -> dict[str, torch.Tensor]:
    return load_file(str(outcome.adapter_dir / "adapter_model.safetensors"))


def interrupt_at(step: int, stop: threading.Event) -> Any:
    def on_step(report: StepReport) -> None:
        if report.step == step:
            stop.set()

    return on_step


@pytest.mark.parametrize(
    "changes",
    [
        {"lora": LoraSpec(r=4, alpha=8, dropout=0.1, target_modules=("q_proj", "lm_head"))},
        {"dp": DPSpec(epsilon=8.0, accountant="rdp")},
    ],
    ids=["lora-dropout", "dp"],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(
    tiny_base: Path, texts: list[str], tmp_path: Path, changes: dict[str, Any]
) -> None:
    spec = spec_for(tiny_base, **changes)
    whole = train_lora(texts, spec, tmp_path / "whole")

    stop = threading.Event()
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(TrainingInterrupted) as caught:
        train_lora(
            texts,
            spec,
            tmp_path / "parts",
            checkpoint_dir=checkpoints,
            checkpoint_every=4,
            on_step=interrupt_at(7, stop),
            stop=stop,
        )
    assert caught.value.code == "compute.interrupted" and caught.value.exit_code == 130
    assert "after step 7 of 12" in caught.value.message
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000007"]
    assert not (tmp_path / "parts" / "adapter_model.safetensors").exists()

    reports: list[StepReport] = []
    resumed = train_lora(
        texts, spec, tmp_path / "parts", checkpoint_dir=checkpoints, on_step=reports.append
    )
    assert resumed.resumed_from_step == 7
    assert [r.step for r in reports] == list(range(8, 13))
    assert resumed.losses == pytest.approx(whole.losses, nan_ok=True)
    assert resumed.tokens_seen == whole.tokens_seen
    assert resumed.epsilon == whole.epsilon
    parts, full = _adapter(resumed), _adapter(whole)
    assert parts.keys() == full.keys()
    for key in full:
        assert torch.allclose(parts[key], full[key], atol=1e-6), key


def test_stop_without_checkpoint_folder_says_there_is_nothing_to_resume(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    stop = threading.Event()
    with pytest.raises(TrainingInterrupted, match="no checkpoint folder"):
        train_lora(
            texts, spec_for(tiny_base), tmp_path / "a", on_step=interrupt_at(2, stop), stop=stop
        )


def test_library_import_does_not_load_torch() -> None:
    code = (
        "import sys, sahara_cli.compute, sahara_cli.compute.train, sahara_cli.compute.tiny\n"
        "heavy = {'torch', 'transformers', 'peft', 'opacus'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_cut_short_resumes_from_its_last_interval_checkpoint(
    tiny_base: Path, texts: list[str], tmp_path: Path
) -> None:
    # A run that dies (no stop, no goodbye) leaves the checkpoint of its last interval;
    # here the finished run stands in for it: step 8 of 12 is on disk.
    spec = spec_for(tiny_base)
    checkpoints = tmp_path / "checkpoints"
    whole = train_lora(texts, spec, tmp_path / "a", checkpoint_dir=checkpoints, checkpoint_every=4)
    assert [p.name for p in checkpoints.iterdir()] == ["step-00000008"]
    again = train_lora(texts, spec, tmp_path / "b", checkpoint_dir=checkpoints)
    assert again.resumed_from_step == 8
    assert again.losses == whole.losses
    assert again.adapter_files == whole.adapter_files
