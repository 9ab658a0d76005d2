"""The compute workflows behind ``sahara compute``: train, finalise, cancel, list, show.

:func:`train` is the whole life of a training job on this machine: the chain's licence
check of every input before any plaintext is decrypted, the datasets read through the
vault, LoRA (and DP-SGD) training with checkpoints, the adapter added to the vault
(encrypted to the trainer), and the job recorded through the training SAP with a bond.
After the challenge window, :func:`finalize` has the SAP register the adapter as a model
asset derived from the job's inputs, so its revenue flows up to them.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.compute import jobs
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.compute.data import Dataset
    from sahara_cli.compute.results import (
        TrainResult,
    )
    from sahara_cli.compute.train import StepReport, TrainOutcome
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.results import Transaction
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
    """Basis points proportional to ``amounts``, summing to exactly 10,000 (the largest
    remainder rule of :func:`~sahara_cli.compute.merge.shares_bps`); the chain refuses a
    zero weight, so a share that rounds to 0 takes 1 bps from the largest."""
    from sahara_cli.compute.merge import shares_bps

    out = list(shares_bps([max(1, a) for a in amounts])) if amounts else []
    for i, share in enumerate(out):
        if share == 0:
            out[out.index(max(out))] -= 1
            out[i] = 1
    return out


def parent_weights(base_asset: int, shares: Sequence[int]) -> list[int]:
    """The revenue weights of a job's parents: a registered base model first, with an
    equal part (one input among the others), then the inputs by ``shares``; each at
    least 1 bps, summing to 10,000."""
    if not base_asset:
        return share_bps(list(shares))
    base_part = BPS // (len(shares) + 1)
    total = sum(shares) or 1
    return share_bps([base_part * total, *[s * (BPS - base_part) for s in shares]])


def training_weights(base_asset: int, datasets: Sequence[Dataset]) -> list[int]:
    """How a trained model's upstream share is split: a registered base model counts as
    one input with an equal part; the datasets share the rest by the bytes of text each
    brought."""
    return parent_weights(base_asset, [max(1, d.size) for d in datasets])


def resolve_model(ctx: Context, proto: Protocol, who: Signer, ref: str) -> tuple[Path, int]:
    """A model's folder, and its asset id (0: a local folder, not an asset). A model asset
    must be open to ``who`` for training; its folder is written out of the vault once."""
    from sahara_cli.compute.data import check_training_access

    text = ref.strip().removeprefix("asset:")
    if not text.isdigit():
        path = Path(ref).expanduser()
        if not path.is_dir():
            path = _stored_model(ctx.home_root, ref)
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


def _stored_model(home_root: Path, name: str) -> Path:
    """A transformers folder of the home's model store ('sahara model list')."""
    from sahara_cli.agent.runners.model_store import ModelStore
    from sahara_cli.errors import SaharaError

    try:
        entry = ModelStore(home_root).get(name)
    except SaharaError:
        entry = None
    if entry is None or not Path(entry.path).is_dir():
        raise UsageError(
            f"model {name!r} is not a folder, an asset id or a transformers model of the store",
            hint="Give a transformers model folder, a model asset in the vault (asset:N), or a "
            "folder model of 'sahara model list' ('sahara model demo --runner torch').",
        )
    return Path(entry.path)


def add_output(ctx: Context, who: Signer, folder: Path, name: str) -> Item:
    """Add a job's output folder to the vault, encrypted to ``who``."""
    from sahara_cli.vault.publish import AddOptions, add_paths, holder_for

    holder = holder_for(who.address, None, who)
    options = AddOptions(public=False, recursive=True, name=name, embedder=None)
    ((_, item, _),) = add_paths(ctx.vault, [folder], holder, options, who=who)
    return item


def check_bond(proto: Protocol, bond_wei: int | None) -> None:
    """Refuse, before any work, a bond below the training SAP's minimum."""
    from sahara_cli.errors import BondTooSmall
    from sahara_cli.units import format_sah

    if bond_wei is None:
        return
    least = proto.training.parameters()[0]
    if bond_wei < least:
        raise BondTooSmall(
            f"a bond of {format_sah(bond_wei)} SAH is below the chain's minimum of "
            f"{format_sah(least)} SAH",
            details={"bond_wei": str(bond_wei), "min_bond_wei": str(least)},
        )


def open_job(
    ctx: Context, data: Sequence[int], *, record: bool, bond_wei: int | None
) -> tuple[Protocol, Signer]:
    """The node and the unlocked ID of a training job, once every dataset is checked on
    chain (before anything is read or decrypted) and a recorded job's bond is enough."""
    from sahara_cli.compute.data import check_training_access

    if not data:
        raise UsageError("name at least one dataset asset (--data ID)")
    proto = ctx.protocol()
    who = ctx.unlock()
    check_training_access(proto, list(data), who.address)
    if record:
        check_bond(proto, bond_wei)
    return proto, who


@dataclass(frozen=True)
class Recorded:
    """A job's record on chain (nothing for a job not recorded)."""

    job_id: int | None = None
    bond_wei: int = 0
    finalize_after: int | None = None
    transaction: Transaction | None = None


def record_job(
    proto: Protocol,
    who: Signer,
    job: jobs.LocalJob,
    home_root: Path,
    item: Item,
    *,
    hparams_hash: bytes,
    metrics: dict[str, Any],
    upstream_bps: int,
    bond_wei: int | None,
    server_url: str,
) -> Recorded:
    """Record ``job`` (its output ``item``) through the training SAP with a bond (default:
    the chain's minimum), and mark it recorded in this home."""
    import json

    bond = bond_wei if bond_wei is not None else proto.training.parameters()[0]
    job_id, tx = proto.training.submit(
        who,
        kind=job.kind,
        base=job.base_asset,
        inputs=job.inputs,
        weights_bps=job.weights_bps,
        hparams=hparams_hash,
        cid=item.cid,
        commitment=item.commitment,
        name=job.name,
        uri=server_url,
        metrics=json.dumps(metrics, sort_keys=True, separators=(",", ":")),
        upstream_bps=upstream_bps,
        bond_wei=bond,
    )
    finalize_after = proto.training.get_job(job_id).finalize_after
    jobs.mark(job, home_root, state="recorded", job_id=job_id, tx=tx.hash)
    return Recorded(job_id, bond, finalize_after, tx.transaction())


def train(
    ctx: Context,
    request: TrainRequest,
    *,
    on_step: Callable[[StepReport], None] | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train a LoRA adapter on licensed vault data and record the job on chain."""
    from sahara_cli.compute.data import read_datasets
    from sahara_cli.compute.spec import DPSpec, LoraSpec, TrainSpec

    proto, who = open_job(ctx, request.data, record=request.record, bond_wei=request.bond_wei)
    base_path, base_asset = resolve_model(ctx, proto, who, request.base)
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
    job = jobs.earlier_run(
        ctx.home_root,
        key,
        recorded="this job ran and was recorded as job {job_id} ({key})",
        hint="Change --name or a setting to train again; see 'sahara compute show'.",
    )
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
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # only a resume needs them
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
        losses=[None if math.isnan(x) else round(x, 6) for x in outcome.losses],
    )
    recorded = Recorded()
    if request.record:
        recorded = record_job(
            proto,
            who,
            job,
            ctx.home_root,
            item,
            hparams_hash=spec.hparams_hash(),
            metrics=metrics,
            upstream_bps=request.upstream_bps,
            bond_wei=request.bond_wei,
            server_url=request.server_url,
        )
    return _train_result(job, outcome, recorded)


def _run_training(
    ctx: Context,
    job: jobs.LocalJob,
    datasets: Sequence[Dataset],
    spec: Any,
    folder: Path,
    on_step: Callable[[StepReport], None] | None,
    stop: threading.Event | None,
) -> TrainOutcome:
    from transformers.utils import logging as hf_logging

    from sahara_cli.compute.train import train_lora
    from sahara_cli.errors import SaharaError

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the CLI has its bar
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


def _train_result(job: jobs.LocalJob, outcome: TrainOutcome, recorded: Recorded) -> TrainResult:
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
        losses=[None if math.isnan(x) else round(x, 6) for x in outcome.losses],
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
        bond_wei=recorded.bond_wei,
        finalize_after_at=recorded.finalize_after,
        transaction=recorded.transaction,
    )
