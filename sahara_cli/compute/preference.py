"""Preference tuning of a LoRA adapter with DPO: :func:`train_dpo`.

Direct Preference Optimization (Rafailov et al., 2023) on the same peft model
:func:`~sahara_cli.compute.train.train_lora` trains: for each pair of a prompt with a
chosen and a rejected answer, the loss is

    -log sigmoid(beta * ((logp(chosen) - ref(chosen)) - (logp(rejected) - ref(rejected))))

where ``logp(y)`` sums the log-probabilities of the answer's tokens after the prompt
(the prompt's own tokens are not scored) and ``ref`` is the same sum under the base
model: the same peft model with its adapter disabled, computed once before the first
step (the base does not change while the adapter trains). The loop is the plain one of
:mod:`.train`: a forward pass over the batch's chosen and rejected sequences, backward,
an AdamW step, one ``loss.item()`` a step. Batches come from
:class:`~.textdata.BatchPlan` over the pairs. DP-SGD is not offered here (a pair's two
answers share a prompt, so the example is the pair, and opacus's per-sample hooks see
two rows of it).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sahara_cli.compute.spec import TrainSpec
from sahara_cli.compute.textdata import BatchPlan, check_base, load_model, load_tokenizer
from sahara_cli.compute.train import (
    _NOISE,
    LOSS_WINDOW,
    StepReport,
    TrainOutcome,
    _lora_model,
    _save_adapter,
    _window_mean,
    default_device,
)
from sahara_cli.errors import ComputeSpecInvalid, NoTrainingData, TrainingFailed

__all__ = ["PreferencePair", "train_dpo"]

#: DPO's β: how far the tuned model may move from the base (larger: closer).
DEFAULT_BETA = 0.1


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (already in the model's chat format) and two answers to it."""

    prompt: str
    chosen: str
    rejected: str


def _encode(pairs: Sequence[PreferencePair], tokenizer: Any, seq_len: int) -> list[Any]:
    """Each pair as ``(chosen_ids, chosen_start, rejected_ids, rejected_start)``: the
    prompt's tokens then the answer's (with the end-of-sequence token), at most
    ``seq_len`` tokens; a long answer keeps its start, a long prompt its end."""
    eos = tokenizer.eos_token_id
    out = []
    for pair in pairs:
        prompt = list(tokenizer(pair.prompt, add_special_tokens=False)["input_ids"])
        row: list[Any] = []
        for answer in (pair.chosen, pair.rejected):
            ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
            if eos is not None:
                ids.append(eos)
            ids = ids[: max(1, seq_len // 2)] if len(prompt) + len(ids) > seq_len else ids
            head = prompt[-(seq_len - len(ids)) :] if len(prompt) + len(ids) > seq_len else prompt
            if not head:
                raise NoTrainingData(f"seq_len={seq_len} leaves no room for the prompt")
            row.extend([head + ids, len(head)])
        out.append(tuple(row))
    return out


def _batch(encoded: Sequence[Any], pad: int, device: str) -> tuple[Any, Any, Any]:
    """Chosen rows then rejected rows, right-padded: ids, attention mask, answer mask."""
    import torch

    rows = [(e[0], e[1]) for e in encoded] + [(e[2], e[3]) for e in encoded]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    answer = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, start) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, : len(row)] = 1
        answer[i, start : len(row)] = True
    return ids.to(device), attention.to(device), answer.to(device)


def sequence_logps(model: Any, ids: Any, attention: Any, answer: Any) -> Any:
    """The sum of each row's answer-token log-probabilities (a 1-D tensor)."""
    import torch

    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1]
    targets = ids[:, 1:]
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1))
    return (logps.squeeze(-1) * answer[:, 1:]).sum(-1)


def dpo_loss(policy: Any, reference: Any, beta: float) -> Any:
    """The mean DPO loss of a batch whose first half is chosen, second half rejected."""
    import torch

    half = policy.shape[0] // 2
    margin = (policy[:half] - reference[:half]) - (policy[half:] - reference[half:])
    return -torch.nn.functional.logsigmoid(beta * margin).mean()


def train_dpo(
    pairs: Sequence[PreferencePair],
    spec: TrainSpec,
    out_dir: Path,
    *,
    beta: float = DEFAULT_BETA,
    on_step: Callable[[StepReport], None] | None = None,
    stop: threading.Event | None = None,
    device: str | None = None,
) -> TrainOutcome:
    """Tune a LoRA adapter of ``spec.base`` on ``pairs`` with DPO and save it into
    ``out_dir`` as :func:`~sahara_cli.compute.train.train_lora` does. ``stop`` ends the
    run after the current step (the adapter so far is not saved:
    :class:`~sahara_cli.errors.TrainingInterrupted`)."""
    if spec.dp is not None:
        raise ComputeSpecInvalid("DPO does not take a DP budget", hint="Leave out --dp-epsilon.")
    if not (math.isfinite(beta) and 0 < beta <= 100):
        raise ComputeSpecInvalid(f"DPO beta={beta!r} is out of range (above 0, at most 100)")
    if not pairs:
        raise NoTrainingData("there is no preference pair to train on")
    with warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message)
        return _train(pairs, spec, out_dir, beta, on_step, stop, device or default_device())


def _train(
    pairs: Sequence[PreferencePair],
    spec: TrainSpec,
    out_dir: Path,
    beta: float,
    on_step: Callable[[StepReport], None] | None,
    stop: threading.Event | None,
    device: str,
) -> TrainOutcome:
    import torch

    started = time.perf_counter()
    check_base(spec.base)
    tokenizer = load_tokenizer(spec.base)
    encoded = _encode(pairs, tokenizer, spec.seq_len)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plan_steps = -(-len(encoded) // spec.batch_size) * spec.epochs
    plan = BatchPlan(
        blocks=len(encoded),
        batch_size=spec.batch_size,
        seed=spec.seed,
        poisson=False,
        total_steps=min(plan_steps, spec.max_steps or plan_steps),
    )
    torch.manual_seed(spec.seed)
    peft = _lora_model(load_model(spec.base, device), spec.lora)
    batches = [_batch([e], pad, device) for e in encoded]
    with torch.no_grad(), peft.disable_adapter():
        peft.eval()
        reference = [sequence_logps(peft, *b) for b in batches]
    peft.train()
    trainable = [p for p in peft.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate)
    losses: list[float] = []
    tokens = 0
    for indices in plan.batches():
        chosen = [encoded[i] for i in indices.tolist()]
        ids, attention, answer = _batch(chosen, pad, device)
        ref = torch.cat(
            [reference[i][:1] for i in indices.tolist()]
            + [reference[i][1:] for i in indices.tolist()]
        )
        try:
            loss = dpo_loss(sequence_logps(peft, ids, attention, answer), ref, beta)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        except RuntimeError as exc:  # torch: out of memory, a device error
            raise TrainingFailed(
                f"training failed at step {len(losses) + 1}: {str(exc).strip().splitlines()[0]}"
            ) from exc
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingFailed(f"the loss became {value} at step {len(losses) + 1}")
        losses.append(value)
        tokens += int(attention.sum())
        if on_step is not None:
            on_step(StepReport(step=len(losses), total_steps=plan.total_steps, loss=value))
        if stop is not None and stop.is_set() and len(losses) < plan.total_steps:
            from sahara_cli.errors import TrainingInterrupted

            raise TrainingInterrupted(
                f"training stopped after step {len(losses)} of {plan.total_steps}",
                hint="Run it again (DPO runs start from the beginning).",
            )
    files = _save_adapter(peft, out_dir, spec.base.name)
    window = min(LOSS_WINDOW, len(losses))
    return TrainOutcome(
        steps=len(losses),
        total_steps=plan.total_steps,
        epochs=round(len(losses) / plan.steps_per_epoch, 6),
        losses=losses,
        first_loss=_window_mean(losses[:window]),
        last_loss=_window_mean(losses[len(losses) - window :]),
        epsilon=None,
        delta=None,
        noise_multiplier=None,
        sample_rate=plan.sample_rate,
        adapter_dir=out_dir,
        adapter_files=files,
        hparams_hash=spec.hparams_hash(),
        tokens_seen=tokens,
        blocks=len(encoded),
        seconds=time.perf_counter() - started,
        resumed_from_step=None,
        device=device,
    )
