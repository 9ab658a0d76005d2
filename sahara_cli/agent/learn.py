"""Lifelong learning: ``sahara agent learn`` turns an agent's rated feedback into a LoRA
adapter that the agent loads from then on.

The feedback (sealed to the agent's ID, so the ID is unlocked to read it) becomes
training examples in the agent's own prompt format: its persona as the system message
and the question as the user's, through the model's chat template, then the answer.

- ``sft`` (the default): supervised fine-tuning on every corrected answer (the
  correction) and every approved one, through :func:`~sahara_cli.compute.train.train_lora`,
  the loop of ``sahara compute train``.
- ``dpo``: preference tuning (:func:`~sahara_cli.compute.preference.train_dpo`) on pairs
  of a preferred and a rejected answer to the same question: a correction against the
  answer it corrected, and a corrected or approved answer against an answer rated bad.

The adapter is kept in the agent's folder and added to the vault (private to the agent's
ID); the agent spec's ``[adapter]`` names it, its vault CID and its job, and the torch
runner loads it on the model. When the agent is published (it has an asset), the job is
recorded through the training SAP with the agent's asset as its input (and the model's
asset as its base when the model is registered), so a model later registered from it
pays back to the agent. Each run trains a fresh adapter on all the feedback so far.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sahara_cli.errors import AgentLearnUnsupported, AgentNoFeedback, ModelInvalid

if TYPE_CHECKING:
    from sahara_cli.agent.learn_results import AgentLearned
    from sahara_cli.agent.memory import Feedback
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.compute.preference import PreferencePair
    from sahara_cli.compute.train import StepReport, TrainOutcome
    from sahara_cli.compute.workflow import Context

Objective = Literal["sft", "dpo"]
ADAPTERS_DIR = "adapters"


@dataclass(frozen=True)
class LearnRequest:
    """What ``sahara agent learn`` asks for."""

    agent: str
    objective: Objective = "sft"
    lora: str = "r=8,alpha=16"
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 4
    learning_rate: float = 2e-4
    seq_len: int = 256
    beta: float = 0.1
    seed: int = 0
    record: bool = True
    bond_wei: int | None = None
    upstream_bps: int = 3_000
    server_url: str = ""  # the vault server that serves the adapter to licensees


@dataclass(frozen=True)
class Examples:
    """The feedback as training examples: prompt and answer pairs (sft) and preference
    pairs (dpo); ``rows``: the feedback rows read."""

    supervised: list[tuple[str, str]]
    pairs: list[PreferencePair]
    rows: int
    pair_rows: int  # rows that are a side of some pair

    def skipped(self, objective: Objective) -> int:
        """Rows that gave no example for ``objective``."""
        return self.rows - (len(self.supervised) if objective == "sft" else self.pair_rows)

    def count(self, objective: Objective) -> int:
        return len(self.supervised) if objective == "sft" else len(self.pairs)

    def digest(self, objective: Objective) -> str:
        """SHA-256 of the examples an objective trains on (what the job commits to)."""
        data: Any = (
            self.supervised
            if objective == "sft"
            else [[p.prompt, p.chosen, p.rejected] for p in self.pairs]
        )
        return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()


def prompt_formatter(base: Path, persona: str) -> Callable[[str], str]:
    """A function of a question to the prompt the agent's model sees for it: the chat
    template over the persona (system) and the question (user), ready for the answer."""
    from sahara_cli.compute.textdata import load_tokenizer

    tokenizer = load_tokenizer(base)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelInvalid(
            f"{base} has no chat template",
            hint="Save the tokenizer with a chat_template (tokenizer.chat_template = ...).",
        )

    def render(question: str) -> str:
        messages = [
            {"role": "system", "content": persona},
            {"role": "user", "content": question},
        ]
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    return render


def build_examples(rows: Sequence[Feedback], prompt: Callable[[str], str]) -> Examples:
    """Training examples from feedback rows (see the module docstring)."""
    from sahara_cli.compute.preference import PreferencePair

    supervised: list[tuple[str, str]] = []
    pairs: list[PreferencePair] = []
    preferred: dict[str, Feedback] = {}
    in_pairs: set[int] = set()
    for fb in rows:
        if fb.target is not None:
            supervised.append((prompt(fb.question), fb.target))
            preferred[_key(fb.question)] = fb
        if fb.correction:
            pairs.append(PreferencePair(prompt(fb.question), fb.correction, fb.answer))
            in_pairs.add(fb.id)
    for fb in rows:
        better = preferred.get(_key(fb.question))
        if fb.rating == "bad" and not fb.correction and better is not None:
            assert better.target is not None
            pairs.append(PreferencePair(prompt(fb.question), better.target, fb.answer))
            in_pairs.update((fb.id, better.id))
    return Examples(supervised, pairs, len(rows), len(in_pairs))


def _key(question: str) -> str:
    return " ".join(question.split()).casefold()


def _model_of(home_root: Path, spec: AgentSpec) -> tuple[Path, int | None]:
    """The agent's transformers model folder and its asset id; llama.cpp models refused."""
    from sahara_cli.agent.runners.model_store import ModelStore

    entry = ModelStore(home_root).resolve(spec.model.name)
    kind = spec.model.runner or entry.runner
    if kind != "torch":
        raise AgentLearnUnsupported(
            f"agent {spec.name!r} runs {entry.name} on llama.cpp; learning trains a LoRA "
            "adapter on a transformers model, which a GGUF file is not"
        )
    return entry.path, entry.asset_id


def _feedback(home_root: Path, spec: AgentSpec, ctx: Context) -> list[Feedback]:
    from sahara_cli.agent.workflows import open_feedback

    store = open_feedback(home_root, spec.name, ctx.unlock())
    try:
        if store.count() == 0:
            raise AgentNoFeedback(f"agent {spec.name!r} has no feedback to learn from")
        return store.all()  # AgentMemoryLocked for rows sealed to another ID
    finally:
        store.close()


def _examples(ctx: Context, spec: AgentSpec, base: Path, objective: Objective) -> Examples:
    """The agent's feedback and its examples; AgentNoFeedback when none fits ``objective``."""
    rows = _feedback(ctx.home_root, spec, ctx)
    examples = build_examples(rows, prompt_formatter(base, spec.persona))
    if examples.count(objective) == 0:
        wanted = (
            "an approved or corrected answer"
            if objective == "sft"
            else "a corrected answer, or an answer rated bad to a question with a better one"
        )
        raise AgentNoFeedback(
            f"none of agent {spec.name!r}'s {len(rows)} feedback rows is {wanted}",
            hint="Correct answers with /correct in 'sahara agent chat', or approve them "
            "with /good.",
        )
    return examples


def learn(
    ctx: Context,
    request: LearnRequest,
    *,
    on_step: Callable[[StepReport], None] | None = None,
    stop: threading.Event | None = None,
) -> AgentLearned:
    """Train an adapter on agent ``request.agent``'s feedback, keep it in the vault, record
    the job when the agent is published, and have the agent use the adapter."""
    from sahara_cli.agent.spec import AdapterSpec, AgentStore
    from sahara_cli.compute import jobs
    from sahara_cli.compute.data import check_training_access
    from sahara_cli.compute.spec import LoraSpec, TrainSpec
    from sahara_cli.compute.workflow import add_output, check_bond, record_job
    from sahara_cli.identity.keys import keccak256

    store = AgentStore(ctx.home_root)
    spec = store.load(request.agent)
    base, base_asset = _model_of(ctx.home_root, spec)
    examples = _examples(ctx, spec, base, request.objective)
    count = examples.count(request.objective)
    who = ctx.unlock()
    not_recorded = _why_not_recorded(request, spec)
    inputs = [spec.asset_id] if spec.asset_id is not None else []
    parents = ([base_asset] if base_asset else []) + inputs
    if not_recorded is None:  # refused before training, as 'compute train' does
        check_training_access(ctx.protocol(), parents, who.address)
        check_bond(ctx.protocol(), request.bond_wei)
    train_spec = TrainSpec(
        base=base,
        lora=LoraSpec.parse(request.lora),
        epochs=request.epochs,
        max_steps=request.max_steps,
        batch_size=request.batch_size,
        learning_rate=request.learning_rate,
        seq_len=_seq_len(request, base, examples)
        if request.objective == "sft"
        else request.seq_len,
        seed=request.seed,
    )
    hparams = {**train_spec.hparams(), "objective": request.objective}
    if request.objective == "dpo":
        hparams["beta"] = float(request.beta)
    hparams_json = json.dumps(hparams, sort_keys=True, separators=(",", ":"))
    digest = examples.digest(request.objective)
    name = f"{spec.name}-{request.objective}"[:64]
    key = jobs.job_key("train", str(base), inputs, hparams_json + digest, name)
    jobs.earlier_run(
        ctx.home_root,
        key,
        recorded=f"agent {spec.name!r} learned from this feedback already (job {{job_id}})",
        hint="Rate more answers, or change a setting (--epochs, --lora) to learn again.",
    )
    job = jobs.LocalJob(
        key=key,
        kind="train",
        name=name,
        base=str(base),
        base_asset=base_asset or 0,
        inputs=inputs,
        hparams=hparams,
        hparams_hash="0x" + keccak256(hparams_json.encode()).hex(),
        pid=jobs.this_process(),
    )
    job.save(ctx.home_root)
    adapter_dir = store.dir(spec.name) / ADAPTERS_DIR / key
    outcome = _train(ctx, job, examples, request, train_spec, adapter_dir, on_step, stop)
    metrics = {
        "objective": request.objective,
        "examples": count,
        "examples_sha256": digest,
        "steps": outcome.steps,
        "first_loss": round(outcome.first_loss, 6),
        "last_loss": round(outcome.last_loss, 6),
        "tokens": outcome.tokens_seen,
    }
    item = add_output(ctx, who, adapter_dir, name)
    jobs.mark(
        job,
        ctx.home_root,
        state="trained",
        pid=None,
        output_cid=item.cid,
        output_path=str(adapter_dir),
        weights_bps=_weights(parents),
        metrics=metrics,
        losses=[round(x, 6) for x in outcome.losses],
    )
    recorded = None
    if not_recorded is None:
        recorded = record_job(
            ctx.protocol(),
            who,
            job,
            ctx.home_root,
            item,
            hparams_hash=bytes.fromhex(job.hparams_hash.removeprefix("0x")),
            metrics=metrics,
            bond_wei=request.bond_wei,
            upstream_bps=request.upstream_bps,
            server_url=request.server_url,
        )
    adapter = AdapterSpec(
        path=f"{ADAPTERS_DIR}/{key}",
        cid=item.cid,
        job=key,
        job_id=job.job_id,
        objective=request.objective,
    )
    store.save(spec.model_copy(update={"adapter": adapter}), overwrite=True)
    bond, finalize_after, tx = (
        (recorded.bond_wei, recorded.finalize_after, recorded.transaction)
        if recorded is not None
        else (0, None, None)
    )
    from sahara_cli.agent.learn_results import AgentLearned

    return AgentLearned(
        agent=spec.name,
        objective=request.objective,
        feedback=examples.rows,
        examples=count,
        skipped=examples.skipped(request.objective),
        base=str(base),
        adapter_path=str(adapter_dir),
        adapter_cid=item.cid,
        job_key=key,
        job_id=job.job_id,
        recorded=recorded is not None,
        not_recorded=not_recorded,
        input_ids=inputs,
        base_asset_id=base_asset,
        weights_bps=job.weights_bps,
        steps=outcome.steps,
        losses=[round(x, 6) for x in outcome.losses],
        first_loss=outcome.first_loss,
        last_loss=outcome.last_loss,
        tokens=outcome.tokens_seen,
        train_s=round(outcome.seconds, 3),
        device=outcome.device,
        hparams_hash=job.hparams_hash,
        bond_wei=bond,
        finalize_after_at=finalize_after,
        transaction=tx,
    )


def _why_not_recorded(request: LearnRequest, spec: AgentSpec) -> str | None:
    if not request.record:
        return "--no-record"
    if spec.asset_id is None:
        return (
            "the agent is not published: a job on chain needs an input asset "
            "('sahara agent publish' registers the agent)"
        )
    return None


def _weights(parents: Sequence[int]) -> list[int]:
    from sahara_cli.compute.workflow import share_bps

    return share_bps([1] * len(parents))


def _seq_len(request: LearnRequest, base: Path, examples: Examples) -> int:
    """The block length for supervised examples: the one asked for, shortened to the whole
    text when that is shorter (a few examples still make one block)."""
    from sahara_cli.compute.textdata import load_tokenizer

    tokenizer = load_tokenizer(base)
    texts = [p + a for p, a in examples.supervised]
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    extra = 1 if tokenizer.eos_token_id is not None else 0
    return max(2, min(request.seq_len, sum(len(i) + extra for i in ids)))


def _train(
    ctx: Context,
    job: Any,
    examples: Examples,
    request: LearnRequest,
    spec: Any,
    out_dir: Path,
    on_step: Callable[[StepReport], None] | None,
    stop: threading.Event | None,
) -> TrainOutcome:
    from sahara_cli.compute import jobs
    from sahara_cli.errors import SaharaError

    folder = jobs.job_dir(ctx.home_root, job.key)
    try:
        if request.objective == "dpo":
            from sahara_cli.compute.preference import train_dpo

            return train_dpo(
                examples.pairs, spec, out_dir, beta=request.beta, on_step=on_step, stop=stop
            )
        from sahara_cli.compute.train import train_lora

        return train_lora(
            [p + a for p, a in examples.supervised],
            spec,
            out_dir,
            checkpoint_dir=folder / "checkpoints",
            on_step=on_step,
            stop=stop,
        )
    except (SaharaError, KeyboardInterrupt):
        jobs.mark(job, ctx.home_root, state="interrupted", pid=None)
        raise
