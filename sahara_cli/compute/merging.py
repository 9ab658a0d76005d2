"""The merge workflow behind ``sahara compute merge``.

Each input model is a model asset open to the merger for training (checked on chain
before its weights are written out of the vault) or, for a merge that is not recorded, a
local folder. The merged model goes into the vault and is recorded through the training
SAP as a merge job whose parents are its inputs, weighted by the merge weights: once it is
finalised, its revenue flows up to each input by that share. A registered base model of
``task-arithmetic`` or ``ties`` is a parent too, with an equal part, as in training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahara_cli.compute import jobs
from sahara_cli.compute.workflow import (
    DEFAULT_UPSTREAM_BPS,
    Context,
    Recorded,
    add_output,
    check_bond,
    parent_weights,
    record_job,
    resolve_model,
)
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.compute.results import MergeResult


@dataclass(frozen=True)
class MergeRequest:
    """What ``sahara compute merge`` asks for."""

    models: Sequence[str]
    method: str
    weights: Sequence[float] | None = None
    base: str | None = None
    density: float = 0.2
    lam: float = 1.0
    fisher_data: Sequence[int] = ()
    name: str | None = None
    upstream_bps: int = DEFAULT_UPSTREAM_BPS
    bond_wei: int | None = None
    record: bool = True
    server_url: str = ""


def hparams(request: MergeRequest, shares: Sequence[int]) -> dict[str, object]:
    return {
        "method": request.method,
        "shares_bps": list(shares),
        "density": float(request.density),
        "lambda": float(request.lam),
        "fisher_data": list(request.fisher_data),
    }


def merge(ctx: Context, request: MergeRequest) -> MergeResult:
    """Merge models into a new one; record it with its inputs as weighted parents."""
    import json

    from sahara_cli.compute.data import check_training_access, read_datasets
    from sahara_cli.compute.merge import merge_models
    from sahara_cli.compute.results import MergeResult
    from sahara_cli.identity.keys import keccak256

    if len(request.models) < 2:
        raise UsageError("a merge needs at least two models")
    proto = ctx.protocol()
    who = ctx.unlock()
    assets = [_asset_ref(m) for m in request.models]
    if request.record and 0 in assets:
        local = request.models[assets.index(0)]
        raise UsageError(
            f"{local!r} is a local folder: a recorded merge takes model assets (asset:N)",
            hint="Register it first ('sahara vault add FOLDER --register --kind model'), "
            "or merge without a record (--no-record).",
        )
    check_training_access(proto, [a for a in assets if a], who.address)
    if request.record:
        check_bond(proto, request.bond_wei)
    paths = [resolve_model(ctx, proto, who, m)[0] for m in request.models]
    base_path, base_asset = (None, 0)
    if request.base is not None:
        base_path, base_asset = resolve_model(ctx, proto, who, request.base)
    texts: list[str] = []
    if request.fisher_data:
        texts = [
            r
            for d in read_datasets(ctx.vault, proto, request.fisher_data, lambda: who)
            for r in d.records
        ]
    name = request.name or f"{request.method}-merge"
    base_ref = f"asset:{base_asset}" if base_asset else str(base_path or "")
    inputs = [a if a else i for i, a in enumerate(assets)]
    key = jobs.job_key(
        "merge",
        base_ref,
        inputs,
        json.dumps(
            [
                request.method,
                list(request.weights or []),
                request.density,
                request.lam,
                list(request.fisher_data),
                [str(p) for p in paths],
            ]
        ),
        name,
    )
    done = jobs.earlier_run(
        ctx.home_root,
        key,
        recorded="this merge was recorded as job {job_id} ({key})",
        hint="Change --name or a setting to merge again; see 'sahara compute show'.",
    )
    folder = jobs.job_dir(ctx.home_root, key)
    out_dir = folder / "merged"
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    outcome = merge_models(
        paths,
        out_dir,
        method=request.method,
        weights=request.weights,
        base=base_path,
        density=request.density,
        lam=request.lam,
        fisher_texts=texts or None,
    )
    params = hparams(request, outcome.shares_bps)
    hparams_hash = keccak256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode())
    job = jobs.LocalJob(
        key=key,
        kind="merge",
        name=name,
        base=base_ref,
        base_asset=base_asset,
        inputs=[a for a in assets if a],
        hparams=params,
        hparams_hash="0x" + hparams_hash.hex(),
        created=done.created if done is not None else time.time(),
        state="trained",
        weights_bps=parent_weights(base_asset, outcome.shares_bps),
        metrics={"method": request.method, "kind": outcome.kind, "parameters": outcome.parameters},
    )
    item = add_output(ctx, who, out_dir, name)
    jobs.mark(job, ctx.home_root, output_cid=item.cid, output_path=str(out_dir))
    recorded = Recorded()
    if request.record:
        recorded = record_job(
            proto,
            who,
            job,
            ctx.home_root,
            item,
            hparams_hash=hparams_hash,
            metrics=job.metrics,
            upstream_bps=request.upstream_bps,
            bond_wei=request.bond_wei,
            server_url=request.server_url,
        )
    return MergeResult(
        job_key=key,
        job_id=recorded.job_id,
        kind="merge",
        name=name,
        state="pending" if recorded.job_id else "trained",
        input_ids=job.inputs,
        base=base_ref,
        output_cid=item.cid,
        asset_id=None,
        created_at=job.created,
        method=request.method,
        weights_bps=job.weights_bps,
        parameters=outcome.parameters,
        merge_s=round(outcome.seconds, 3),
        output_path=str(out_dir),
        bond_wei=recorded.bond_wei,
        finalize_after_at=recorded.finalize_after,
        transaction=recorded.transaction,
    )


def _asset_ref(ref: str) -> int:
    text = ref.strip().removeprefix("asset:")
    return int(text) if text.isdigit() else 0
