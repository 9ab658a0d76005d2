"""The compute workflows behind ``sahara compute``: train, finalise, cancel, list, show.

:func:`train` is the whole life of a training job on this machine: the chain's licence
check of every input before any plaintext is decrypted, the datasets read through the
vault, LoRA (and DP-SGD) training with checkpoints, the adapter added to the vault
(encrypted to the trainer), and the job recorded through the training SAP with a bond.
After the challenge window, :func:`finalize` has the SAP register the adapter as a model
asset derived from the job's inputs, so its revenue flows up to them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.compute import jobs
from sahara_cli.errors import ComputeJobNotFound, ComputeJobState, UsageError

if TYPE_CHECKING:
    from sahara_cli.compute.data import Dataset
    from sahara_cli.compute.results import (
        JobCancelled,
        JobDetail,
        JobFinalized,
        JobList,
        TrainResult,
    )
    from sahara_cli.compute.train import StepReport, TrainOutcome
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item

BPS = 10_000
#: The share of a trained model's revenue that flows up to its inputs, unless given.
DEFAULT_UPSTREAM_BPS = 3_000


@dataclass(frozen=True)
class TrainRequest:
    """What ``sahara compute train`` asks for."""

    base: str
    data: Sequence[int]
    lora: str = "r=8,alpha=16"
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    learning_rate: float = 2e-4
    seq_len: int = 128
    seed: int = 0
    name: str | None = None
    upstream_bps: int = DEFAULT_UPSTREAM_BPS
    bond_wei: int | None = None
    record: bool = True
    server_url: str = ""


@dataclass(frozen=True)
class Context:
    """What a workflow reaches: the home, its vault, the node and the ID that signs."""

    home_root: Path
    vault: Vault
    protocol: Callable[[], Protocol]
    unlock: Callable[[], Signer]


def share_bps(amounts: Sequence[int]) -> list[int]:
    """Basis points proportional to ``amounts``, summing to exactly 10,000 (largest
    remainder; ties to the earlier entry). Every entry gets at least 1."""
    total = sum(amounts)
    if not amounts:
        return []
    if total <= 0:
        amounts, total = [1] * len(amounts), len(amounts)
    raw = [a * BPS / total for a in amounts]
    out = [max(1, int(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - int(raw[i])), i))
    i = 0
    while sum(out) < BPS:
        out[order[i % len(order)]] += 1
        i += 1
    while sum(out) > BPS:
        j = max(range(len(out)), key=lambda k: (out[k], -k))
        out[j] -= 1
    return out


def training_weights(base_asset: int, datasets: Sequence[Dataset]) -> list[int]:
    """How a trained model's upstream share is split: a registered base model counts as
    one input with an equal part; the datasets share the rest by the bytes of text each
    brought."""
    sizes = [max(1, d.size) for d in datasets]
    if not base_asset:
        return share_bps(sizes)
    n = len(datasets) + 1
    base_part = BPS // n
    rest = share_bps(sizes)
    scaled = [r * (BPS - base_part) // BPS for r in rest]
    scaled[0] += BPS - base_part - sum(scaled)
    return [base_part, *scaled]


def _resolve_base(ctx: Context, proto: Protocol, who: Signer, base: str) -> tuple[Path, int]:
    """The base model's folder, and its asset id (0: a local folder, not an asset)."""
    from sahara_cli.compute.data import check_training_access

    text = base.strip().removeprefix("asset:")
    if not text.isdigit():
        path = Path(base).expanduser()
        if not path.is_dir():
            raise UsageError(
                f"base model {base!r} is neither a folder nor an asset id",
                hint="Give a transformers model folder or a model asset in the vault (asset:N).",
            )
        return path.resolve(), 0
    asset_id = int(text)
    check_training_access(proto, [asset_id], who.address)
    item = ctx.vault.find(f"asset:{asset_id}")
    if item.kind == "file":
        raise UsageError(f"asset {asset_id} ({item.name}) is a file, not a model folder")
    target = ctx.home_root / "compute" / "models" / item.cid
    if not target.is_dir():
        from sahara_cli.vault.licensed import open_key

        ctx.vault.write_out(item, open_key(ctx.vault, item, lambda: who), target)
    return target, asset_id


def add_output(ctx: Context, who: Signer, folder: Path, name: str) -> Item:
    """Add a job's output folder to the vault as a private item of ``who``."""
    from sahara_cli.vault.publish import AddOptions, add_paths, holder_for

    holder = holder_for(who.address, None, who)
    options = AddOptions(public=False, recursive=True, name=name, embedder=None)
    ((_, item, _),) = add_paths(ctx.vault, [folder], holder, options, who=who)
    return item


def train(
    ctx: Context,
    request: TrainRequest,
    *,
    on_step: Callable[[StepReport], None] | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train a LoRA adapter on licensed vault data and record the job on chain."""
    from sahara_cli.compute.data import check_training_access, read_datasets
    from sahara_cli.compute.spec import DPSpec, LoraSpec, TrainSpec

    if not request.data:
        raise UsageError("name at least one dataset asset (--data ID)")
    proto = ctx.protocol()
    who = ctx.unlock()
    # Every input is checked on chain before anything is read or decrypted.
    check_training_access(proto, list(request.data), who.address)
    base_path, base_asset = _resolve_base(ctx, proto, who, request.base)
    spec = TrainSpec(
        base=base_path,
        lora=LoraSpec.parse(request.lora),
        dp=DPSpec(request.dp_epsilon, request.dp_delta) if request.dp_epsilon else None,
        epochs=request.epochs,
        max_steps=request.max_steps,
        batch_size=request.batch_size,
        learning_rate=request.learning_rate,
        seq_len=request.seq_len,
        seed=request.seed,
    )
    name = request.name or f"{base_path.name}-lora"
    base_ref = f"asset:{base_asset}" if base_asset else str(base_path)
    key = jobs.job_key("train", base_ref, list(request.data), spec.hparams_json(), name)
    folder = jobs.job_dir(ctx.home_root, key)
    try:
        job = jobs.load(ctx.home_root, key)
    except ComputeJobNotFound:
        job = None
    if job is not None and job.job_id is not None:
        raise ComputeJobState(
            f"this job ran and was recorded as job {job.job_id} ({key})",
            hint="Change --name or a setting to train again; see 'sahara compute show'.",
        )
    if job is not None and job.live_state() == "running":
        raise ComputeJobState(f"job {key} is running in process {job.pid}")
    datasets = read_datasets(ctx.vault, proto, list(request.data), lambda: who)
    job = jobs.LocalJob(
        key=key,
        kind="train",
        name=name,
        base=base_ref,
        base_asset=base_asset,
        inputs=list(request.data),
        hparams=spec.hparams(),
        hparams_hash="0x" + spec.hparams_hash().hex(),
        created=job.created if job is not None else time.time(),
        pid=jobs.this_process(),
    )
    job.save(ctx.home_root)
    outcome = _run_training(ctx, job, datasets, spec, folder, on_step, stop)
    weights = training_weights(base_asset, datasets)
    metrics = {
        "steps": outcome.steps,
        "first_loss": round(outcome.first_loss, 6),
        "last_loss": round(outcome.last_loss, 6),
        "tokens": outcome.tokens_seen,
        "epsilon": outcome.epsilon,
        "delta": outcome.delta,
        "datasets": {str(d.asset_id): d.sha256 for d in datasets},
    }
    item = add_output(ctx, who, outcome.adapter_dir, name)
    jobs.mark(
        job,
        ctx.home_root,
        state="trained",
        pid=None,
        output_cid=item.cid,
        output_path=str(outcome.adapter_dir),
        weights_bps=weights,
        metrics=metrics,
        losses=[round(x, 6) for x in outcome.losses],
    )
    recorded = None
    if request.record:
        recorded = record_job(
            ctx,
            who,
            job,
            item,
            metrics,
            bond_wei=request.bond_wei,
            upstream_bps=request.upstream_bps,
            server_url=request.server_url,
        )
    bond, finalize_after, tx_model = recorded if recorded is not None else (0, None, None)
    return _train_result(job, outcome, bond, finalize_after, tx_model)


def record_job(
    ctx: Context,
    who: Signer,
    job: jobs.LocalJob,
    item: Item,
    metrics: dict[str, Any],
    *,
    bond_wei: int | None = None,
    upstream_bps: int = DEFAULT_UPSTREAM_BPS,
    server_url: str = "",
) -> tuple[int, int, Any]:
    """Record a trained job through the training SAP (its base, inputs and weights from
    ``job``, its output ``item``) with a bond (None: the SAP's smallest); marks the local
    job recorded. Returns the bond, the end of the challenge window and the transaction."""
    import json

    proto = ctx.protocol()
    bond = bond_wei if bond_wei is not None else proto.training.parameters()[0]
    job_id, tx = proto.training.submit(
        who,
        kind="train",
        base=job.base_asset,
        inputs=list(job.inputs),
        weights_bps=job.weights_bps,
        hparams=bytes.fromhex(job.hparams_hash.removeprefix("0x")),
        cid=item.cid,
        commitment=item.commitment,
        name=job.name,
        uri=server_url,
        metrics=json.dumps(metrics, sort_keys=True, separators=(",", ":")),
        upstream_bps=upstream_bps,
        bond_wei=bond,
    )
    finalize_after = proto.training.get_job(job_id).finalize_after
    jobs.mark(job, ctx.home_root, state="recorded", job_id=job_id, tx=tx.hash)
    return bond, finalize_after, tx.transaction()


def _run_training(
    ctx: Context,
    job: jobs.LocalJob,
    datasets: Sequence[Dataset],
    spec: Any,
    folder: Path,
    on_step: Callable[[StepReport], None] | None,
    stop: threading.Event | None,
) -> TrainOutcome:
    from sahara_cli.compute.train import train_lora
    from sahara_cli.errors import SaharaError

    texts = [record for d in datasets for record in d.records]
    try:
        return train_lora(
            texts,
            spec,
            folder / "adapter",
            checkpoint_dir=folder / "checkpoints",
            on_step=on_step,
            stop=stop,
        )
    except (SaharaError, KeyboardInterrupt):
        jobs.mark(job, ctx.home_root, state="interrupted", pid=None)
        raise


def _train_result(
    job: jobs.LocalJob,
    outcome: TrainOutcome,
    bond: int,
    finalize_after: int | None,
    transaction: Any,
) -> TrainResult:
    from sahara_cli.compute.results import TrainResult

    return TrainResult(
        job_key=job.key,
        job_id=job.job_id,
        kind="train",
        name=job.name,
        state="pending" if job.job_id else job.state,
        input_ids=job.inputs,
        base=job.base,
        output_cid=job.output_cid,
        asset_id=None,
        created_at=job.created,
        steps=outcome.steps,
        epochs=int(outcome.epochs),
        losses=[round(x, 6) for x in outcome.losses],
        first_loss=outcome.first_loss,
        last_loss=outcome.last_loss,
        epsilon=outcome.epsilon,
        delta=outcome.delta,
        tokens=outcome.tokens_seen,
        train_s=round(outcome.seconds, 3),
        device=outcome.device,
        resumed_from_step=outcome.resumed_from_step,
        hparams_hash=job.hparams_hash,
        weights_bps=job.weights_bps,
        adapter_path=str(outcome.adapter_dir),
        bond_wei=bond,
        finalize_after_at=finalize_after,
        transaction=transaction,
    )


# -- after training: the job on chain ---------------------------------------------------------


def _chain_job_id(ctx: Context, ref: str) -> tuple[int, jobs.LocalJob | None]:
    local = jobs.find(ctx.home_root, ref)
    if local is not None:
        if local.job_id is None:
            raise ComputeJobState(
                f"job {local.key} is {local.live_state()} and not recorded on chain"
            )
        return local.job_id, local
    text = ref.strip().removeprefix("job:")
    if not text.isdigit():
        raise ComputeJobNotFound(f"no compute job {ref!r} in this home or on chain")
    return int(text), None


def finalize(ctx: Context, ref: str, *, wait: bool = False) -> JobFinalized:
    """Register a job's output after its challenge window (``wait``: until it ends)."""
    from sahara_cli.compute.results import JobFinalized

    proto = ctx.protocol()
    job_id, local = _chain_job_id(ctx, ref)
    record = proto.training.get_job(job_id)
    if record.status != "pending":
        raise ComputeJobState(f"job {job_id} is {record.status}, not pending")
    while wait and _chain_now(proto) < record.finalize_after:
        time.sleep(min(1.0, max(0.1, record.finalize_after - time.time())))
        proto.node.call("eth_blockNumber")
    if _chain_now(proto) < record.finalize_after:
        raise ComputeJobState(
            f"job {job_id} is open to challenges until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(record.finalize_after))}",
            hint="Finalise it then, or pass --wait.",
        )
    asset_id, tx = proto.training.finalize(ctx.unlock(), job_id)
    if local is not None:
        jobs.mark(local, ctx.home_root, asset_id=asset_id)
        _link_output(ctx, local, asset_id, tx.hash)
    return JobFinalized(
        job_id=job_id,
        asset_id=asset_id,
        parents=record.parents,
        bond_wei=record.bond_wei,
        transaction=tx.transaction(),
    )


def _chain_now(proto: Protocol) -> int:
    """The time the next block will carry: the wall clock, or the last block's if later."""
    block = proto.node.call("eth_getBlockByNumber", "latest", False)
    return max(int(time.time()), int(block["timestamp"], 16) + 1)


def _link_output(ctx: Context, local: jobs.LocalJob, asset_id: int, tx_hash: str) -> None:
    from sahara_cli.errors import SaharaError
    from sahara_cli.vault.publish import record_registration

    if local.output_cid is None:
        return
    try:
        item = ctx.vault.find(local.output_cid)
    except SaharaError:  # the output may have been removed from the vault
        return
    record_registration(ctx.vault, item, asset_id, tx_hash, None)


def cancel(ctx: Context, ref: str) -> JobCancelled:
    """Stop a run of this home, or withdraw a recorded job (its bond comes back)."""
    import os
    import signal

    from sahara_cli.compute.results import JobCancelled

    local = jobs.find(ctx.home_root, ref)
    if local is not None and local.live_state() == "running" and local.pid:
        os.kill(local.pid, signal.SIGINT)  # the run checkpoints and stops
        return JobCancelled(
            job_key=local.key, job_id=None, stopped=True, bond_wei=0, transaction=None
        )
    job_id, local = _chain_job_id(ctx, ref)
    proto = ctx.protocol()
    record = proto.training.get_job(job_id)
    if record.status != "pending":
        raise ComputeJobState(f"job {job_id} is {record.status}, not pending")
    tx = proto.training.cancel(ctx.unlock(), job_id)
    return JobCancelled(
        job_key=local.key if local else None,
        job_id=job_id,
        stopped=False,
        bond_wei=record.bond_wei,
        transaction=tx.transaction(),
    )


def list_jobs(ctx: Context, *, chain: bool = True) -> JobList:
    """This home's jobs, newest first, with their chain state when the node answers."""
    from sahara_cli.compute.results import JobList

    local = sorted(jobs.all_jobs(ctx.home_root), key=lambda j: -j.created)
    proto = ctx.protocol() if chain and any(j.job_id for j in local) else None
    return JobList(jobs=[_summary(j, proto) for j in local])


def _summary(job: jobs.LocalJob, proto: Protocol | None) -> Any:
    from sahara_cli.compute.results import JobSummary

    state, asset = job.live_state(), job.asset_id
    if job.job_id is not None and proto is not None:
        record = proto.training.get_job(job.job_id)
        state, asset = record.status, record.asset or None
    return JobSummary(
        job_key=job.key,
        job_id=job.job_id,
        kind=job.kind,
        name=job.name,
        state=state,
        input_ids=job.inputs,
        base=job.base,
        output_cid=job.output_cid,
        asset_id=asset,
        created_at=job.created,
    )


def show_job(ctx: Context, ref: str) -> JobDetail:
    """A job of this home or of the chain (``job:N``), with its chain record."""
    import json

    from sahara_cli.compute.results import JobDetail

    local = jobs.find(ctx.home_root, ref)
    if local is not None and local.job_id is None:
        return JobDetail(
            **_summary(local, None).model_dump(),
            submitter=None,
            hparams_hash=local.hparams_hash,
            weights_bps=local.weights_bps,
            metrics=local.metrics,
            bond_wei=0,
            upstream_bps=None,
            finalize_after_at=None,
            local_path=str(jobs.job_dir(ctx.home_root, local.key)),
        )
    job_id, local = _chain_job_id(ctx, ref)
    proto = ctx.protocol()
    record = proto.training.get_job(job_id)
    metrics_text = proto.training.submitted_metrics(job_id) or "{}"
    return JobDetail(
        job_key=local.key if local else f"job:{job_id}",
        job_id=job_id,
        kind=record.kind,
        name=record.name,
        state=record.status,
        input_ids=record.inputs,
        base=f"asset:{record.base}" if record.base else (local.base if local else ""),
        output_cid=record.cid,
        asset_id=record.asset or None,
        created_at=record.submitted,
        submitter=record.submitter,
        hparams_hash=record.hparams,
        weights_bps=record.weights_bps,
        metrics=json.loads(metrics_text),
        bond_wei=record.bond_wei,
        upstream_bps=record.upstream_bps,
        finalize_after_at=record.finalize_after,
        local_path=str(jobs.job_dir(ctx.home_root, local.key)) if local else None,
    )
