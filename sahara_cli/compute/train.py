"""LoRA fine-tuning of a local causal LM on texts, with DP-SGD when asked: :func:`train_lora`.

The loop is a plain peft loop (forward with the block as labels, backward, AdamW step,
one ``loss.item()`` a step); with a DP budget, opacus's ``PrivacyEngine`` makes the model
and optimizer private (per-example clipping and Gaussian noise) with the noise multiplier
that reaches the target epsilon over the planned steps (``get_noise_multiplier`` with
``steps``, which is what ``make_private_with_epsilon`` does for whole epochs), and the
epsilon reported is the one its accountant has spent after the steps ran.

Batches come from :class:`~sahara_cli.compute.textdata.BatchPlan` (Poisson sampling under
DP); checkpoints go to a folder every ``checkpoint_every`` steps and when ``stop`` is set,
and a run given a folder with a checkpoint of the same run resumes from it. Nothing else
is written while it trains.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sahara_cli.compute import checkpoints
from sahara_cli.compute.spec import ALL_LINEAR, DPSpec, LoraSpec, TrainSpec
from sahara_cli.compute.textdata import (
    BatchPlan,
    blocks_digest,
    check_base,
    config_digest,
    load_model,
    load_tokenizer,
    token_blocks,
)
from sahara_cli.errors import (
    BaseModelInvalid,
    ComputeSpecInvalid,
    TrainingFailed,
    TrainingInterrupted,
)

__all__ = ["DPSpec", "LoraSpec", "StepReport", "TrainOutcome", "TrainSpec", "train_lora"]

#: The files peft's ``save_pretrained`` writes that make the adapter.
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
#: Warnings the libraries raise on every run that ask nothing of a user. (opacus's note
#: that its noise is not from a cryptographic generator is in docs/compute.md.)
_NOISE = (
    "Secure RNG turned off",
    "Full backward hook is firing",
    "Optimal order is the largest alpha",
    ".*is_gradient_checkpointing.*",
)
#: How many steps the first and last mean losses of an outcome average.
LOSS_WINDOW = 10


@dataclass(frozen=True)
class StepReport:
    """One finished step (1-based) of ``total_steps``; ``epsilon_so_far`` is None (the
    accountant is asked once, at the end)."""

    step: int
    total_steps: int
    loss: float
    epsilon_so_far: float | None = None


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished run did. ``losses`` has one entry per step (NaN for a DP step whose
    Poisson batch came out empty); ``first_loss``/``last_loss`` are the means of the first
    and last ``LOSS_WINDOW`` steps. ``epsilon`` is opacus's accountant's, for ``delta``,
    after all steps (None without DP). ``adapter_files`` maps each file name in
    ``adapter_dir`` to its SHA-256."""

    steps: int
    total_steps: int
    epochs: float
    losses: list[float]
    first_loss: float
    last_loss: float
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    sample_rate: float
    adapter_dir: Path
    adapter_files: dict[str, str]
    hparams_hash: bytes
    tokens_seen: int
    blocks: int
    seconds: float
    resumed_from_step: int | None
    device: str


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ComputeSpecInvalid(f"device {device!r} is not a torch device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ComputeSpecInvalid(
            f"device {device!r}: torch sees no CUDA GPU here", hint="Train on the CPU."
        )
    if kind not in ("cpu", "cuda"):
        raise ComputeSpecInvalid(f"device {device!r}: training runs on cpu or cuda")


def _window_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _targets(names: tuple[str, ...] | None) -> list[str] | str | None:
    if names == (ALL_LINEAR,):
        return ALL_LINEAR
    return list(names) if names else None


def _lora_model(model: Any, lora: LoraSpec) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=_targets(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # targets not in the model, or no default for its type
        raise ComputeSpecInvalid(
            f"LoRA cannot wrap this model: {str(exc).strip().splitlines()[0]}",
            hint="Name the modules to adapt with targets=NAME+NAME (e.g. q_proj+v_proj).",
        ) from None


class _Run:
    """The state of one run between steps (the model, optimizer, privacy engine, RNGs)."""

    def __init__(self, spec: TrainSpec, blocks: Any, device: str) -> None:
        import torch

        self.spec = spec
        self.device = device
        torch.manual_seed(spec.seed)
        base = load_model(spec.base, device)
        vocab = base.get_input_embeddings().num_embeddings
        if int(blocks.max()) >= vocab:
            raise BaseModelInvalid(
                f"the tokenizer of {spec.base} makes ids beyond the model's {vocab} embeddings"
            )
        self.peft = _lora_model(base, spec.lora)
        self.peft.train()
        self.trainable = {n: p for n, p in self.peft.named_parameters() if p.requires_grad}
        self.optimizer: Any = torch.optim.AdamW(
            list(self.trainable.values()), lr=spec.learning_rate
        )
        self.model: Any = self.peft
        self.engine: Any = None
        self.noise: Any = None
        self.noise_multiplier: float | None = None
        self.step = 0
        self.tokens = 0
        self.losses: list[float] = []

    def make_private(self, plan: BatchPlan, dp: DPSpec) -> None:
        import torch
        from opacus import PrivacyEngine  # type: ignore[import-untyped]
        from opacus.accountants.utils import get_noise_multiplier  # type: ignore[import-untyped]

        self.engine = PrivacyEngine(accountant=dp.accountant)
        self.noise_multiplier = float(
            get_noise_multiplier(
                target_epsilon=dp.epsilon,
                target_delta=dp.delta,
                sample_rate=plan.sample_rate,
                steps=plan.total_steps,
                accountant=self.engine.accountant.mechanism(),
            )
        )
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(self.spec.seed + 1)
        # The engine reads the sample rate (1 / len) and the expected batch size from this
        # loader; the loop draws the Poisson batches itself (BatchPlan), so that a resumed
        # run draws the same ones.
        loader: Any = torch.utils.data.DataLoader(
            range(plan.blocks),  # type: ignore[arg-type]
            batch_size=plan.batch_size,
        )
        self.model, self.optimizer, _ = self.engine.make_private(
            module=self.peft,
            optimizer=self.optimizer,
            data_loader=loader,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=False,
            noise_generator=self.noise,
        )

    def rng_state(self) -> dict[str, Any]:
        import torch

        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if self.noise is not None:
            state["noise"] = self.noise.get_state()
        return state

    def restore(self, saved: checkpoints.Checkpoint) -> None:
        import torch

        with torch.no_grad():
            for name, param in self.trainable.items():
                if name not in saved.weights or saved.weights[name].shape != param.shape:
                    raise checkpoints.corrupt(saved.path or Path(), f"no weights for {name}")
                param.copy_(saved.weights[name])
        self.optimizer.load_state_dict(saved.optimizer)
        if self.engine is not None and saved.accountant_history is not None:
            self.engine.accountant.history = [tuple(h) for h in saved.accountant_history]
        self.step, self.losses, self.tokens = saved.step, list(saved.losses), saved.tokens_seen
        torch.set_rng_state(saved.rng["cpu"])
        if "cuda" in saved.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved.rng["cuda"])
        if self.noise is not None and "noise" in saved.rng:
            self.noise.set_state(saved.rng["noise"].to(self.noise.get_state().device))

    def checkpoint(self, folder: Path, identity: checkpoints.RunIdentity) -> None:
        history = None
        if self.engine is not None:
            history = [list(h) for h in self.engine.accountant.history]
        state = checkpoints.Checkpoint(
            step=self.step,
            losses=list(self.losses),
            tokens_seen=self.tokens,
            weights=dict(self.trainable),
            optimizer=self.optimizer.state_dict(),
            rng=self.rng_state(),
            accountant_history=history,
        )
        checkpoints.save(folder, identity, state)

    def loop(
        self,
        plan: BatchPlan,
        data: Any,
        *,
        on_step: Callable[[StepReport], None] | None,
        stop: threading.Event | None,
        saver: tuple[Path, checkpoints.RunIdentity, int] | None,
    ) -> None:
        """Run the steps from ``self.step`` to the plan's end: a bare peft (or opacus) step
        and one ``loss.item()`` each, a checkpoint every ``saver[2]`` steps and on stop."""
        model, optimizer, seq_len, device = (
            self.model,
            self.optimizer,
            self.spec.seq_len,
            self.device,
        )
        total = plan.total_steps
        try:
            for indices in plan.batches(self.step):
                if indices.numel() == 0:
                    self.empty_step()
                    loss = math.nan
                else:
                    batch = data[indices.to(device)]
                    out = model(input_ids=batch, labels=batch, use_cache=False)
                    out.loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    loss = out.loss.item()
                    if not math.isfinite(loss):
                        raise TrainingFailed(f"the loss became {loss} at step {self.step + 1}")
                    self.tokens += indices.numel() * seq_len
                self.losses.append(loss)
                self.step += 1
                if on_step is not None:
                    on_step(StepReport(step=self.step, total_steps=total, loss=loss))
                stopping = stop is not None and stop.is_set()
                if saver is not None and (
                    stopping or (self.step % saver[2] == 0 and self.step < total)
                ):
                    self.checkpoint(saver[0], saver[1])
                if stopping and self.step < total:
                    raise _interrupted(self.step, total, saver[0] if saver else None)
        except RuntimeError as exc:  # torch: out of memory, a device error
            raise TrainingFailed(
                f"training failed at step {self.step + 1}: {str(exc).strip().splitlines()[0]}"
            ) from exc

    def empty_step(self) -> None:
        """An empty Poisson batch: no example, yet a step of noise that the accountant counts
        (what opacus does for the empty batches of its ``DPDataLoader``)."""
        import torch

        for param in self.trainable.values():
            param.grad_sample = torch.zeros((0, *param.shape), device=param.device)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def _save_adapter(peft: Any, out_dir: Path, base_name: str) -> dict[str, str]:
    """Write the adapter into ``out_dir`` (each file replaced atomically); its files' SHA-256."""
    import hashlib

    out_dir.mkdir(parents=True, exist_ok=True)
    for config in peft.peft_config.values():
        config.base_model_name_or_path = base_name  # not the local path of this machine
    temp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=out_dir))
    try:
        peft.save_pretrained(str(temp), save_embedding_layers=False)
        files = {}
        for name in ADAPTER_FILES:
            files[name] = hashlib.sha256((temp / name).read_bytes()).hexdigest()
            (temp / name).replace(out_dir / name)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return files


def train_lora(
    texts: Sequence[str],
    spec: TrainSpec,
    out_dir: Path,
    *,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 50,
    on_step: Callable[[StepReport], None] | None = None,
    stop: threading.Event | None = None,
    device: str | None = None,
) -> TrainOutcome:
    """Fine-tune ``spec.base`` with a LoRA adapter on ``texts`` and save the adapter
    (``adapter_model.safetensors``, ``adapter_config.json``) into ``out_dir``.

    With ``checkpoint_dir``, a checkpoint is written every ``checkpoint_every`` steps, and a
    checkpoint of the same run found there is resumed from. When ``stop`` is set, the run
    checkpoints after the current step and raises
    :class:`~sahara_cli.errors.TrainingInterrupted`. ``device`` defaults to CUDA when
    present. Deterministic for a seed on the CPU.
    """
    with warnings.catch_warnings():
        for message in _NOISE:  # opacus and transformers notes that say nothing to a user
            warnings.filterwarnings("ignore", message=message)
        return _train(
            texts,
            spec,
            out_dir,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            on_step=on_step,
            stop=stop,
            device=device,
        )


def _train(
    texts: Sequence[str],
    spec: TrainSpec,
    out_dir: Path,
    *,
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    on_step: Callable[[StepReport], None] | None,
    stop: threading.Event | None,
    device: str | None,
) -> TrainOutcome:
    started = time.perf_counter()
    if isinstance(checkpoint_every, bool) or checkpoint_every < 1:
        raise ComputeSpecInvalid(f"checkpoint_every={checkpoint_every!r} must be at least 1")
    device = device or default_device()
    _check_device(device)
    check_base(spec.base)
    tokenizer = load_tokenizer(spec.base)
    blocks = token_blocks(texts, tokenizer, spec.seq_len)
    plan_steps = -(-blocks.shape[0] // spec.batch_size) * spec.epochs
    plan = BatchPlan(
        blocks=blocks.shape[0],
        batch_size=spec.batch_size,
        seed=spec.seed,
        poisson=spec.dp is not None,
        total_steps=min(plan_steps, spec.max_steps or plan_steps),
    )
    identity = checkpoints.RunIdentity(
        hparams_hash="0x" + spec.hparams_hash().hex(),
        hparams=spec.hparams(),
        base_config_sha256=config_digest(spec.base),
        data_sha256=blocks_digest(blocks),
        data_order=plan.describe(),
    )
    saved = None
    if checkpoint_dir is not None:
        saved = checkpoints.load_latest(checkpoint_dir, identity, device)

    run = _Run(spec, blocks, device)
    if spec.dp is not None:
        run.make_private(plan, spec.dp)
    if saved is not None:
        run.restore(saved)
    run.loop(
        plan,
        blocks.to(device),
        on_step=on_step,
        stop=stop,
        saver=None if checkpoint_dir is None else (checkpoint_dir, identity, checkpoint_every),
    )

    files = _save_adapter(run.peft, out_dir, spec.base.name)
    epsilon = None
    if run.engine is not None and spec.dp is not None:
        epsilon = float(run.engine.get_epsilon(spec.dp.delta))
    losses = run.losses
    window = min(LOSS_WINDOW, len(losses))
    return TrainOutcome(
        steps=run.step,
        total_steps=plan.total_steps,
        epochs=round(run.step / plan.steps_per_epoch, 6),
        losses=losses,
        first_loss=_window_mean(losses[:window]),
        last_loss=_window_mean(losses[len(losses) - window :]),
        epsilon=epsilon,
        delta=spec.dp.delta if spec.dp is not None else None,
        noise_multiplier=run.noise_multiplier,
        sample_rate=plan.sample_rate,
        adapter_dir=out_dir,
        adapter_files=files,
        hparams_hash=spec.hparams_hash(),
        tokens_seen=run.tokens,
        blocks=plan.blocks,
        seconds=time.perf_counter() - started,
        resumed_from_step=saved.step if saved is not None else None,
        device=device,
    )


def _interrupted(step: int, total: int, checkpoint_dir: Path | None) -> TrainingInterrupted:
    if checkpoint_dir is None:
        return TrainingInterrupted(
            f"training stopped after step {step} of {total}, "
            "with no checkpoint folder to resume from",
            hint="Run it again (from the start), with a checkpoint folder to be able to resume.",
        )
    return TrainingInterrupted(
        f"training stopped after step {step} of {total}; the checkpoint is in {checkpoint_dir}",
        hint="Run it again with the same settings, data and checkpoint folder to resume.",
        details={"step": step, "total_steps": total, "checkpoint_dir": str(checkpoint_dir)},
    )
