"""What happens to a compute job after it ran: finalise, cancel, list and show.

A recorded job stays open to challenges for the training SAP's window; then anyone may
finalise it, and the SAP registers its output as a model asset derived from its inputs.
Until then its submitter may withdraw it. A run of this home is stopped with SIGINT, on
which it checkpoints (the same ``compute train`` command resumes it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sahara_cli.compute import jobs
from sahara_cli.errors import ComputeJobNotFound, ComputeJobState

#: The gas limit of a finalisation sent without an estimate (one with 4 parents uses about
#: 0.8 million).
FINALIZE_GAS = 1_500_000

if TYPE_CHECKING:
    from sahara_cli.compute.results import JobCancelled, JobDetail, JobFinalized, JobList
    from sahara_cli.compute.workflow import Context
    from sahara_cli.protocol.client import Protocol


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
    last = _last_block_time(proto)
    claim_id = proto.disputes.claim_of("training", job_id)
    # The next block carries the wall clock's time, or one past the last block's if later.
    while wait:
        disputed = bool(claim_id) and proto.disputes.get_claim(claim_id).dispute > 0
        if not disputed and max(int(time.time()), last + 1) >= record.finalize_after:
            break
        if claim_id:  # this home answers challenges of its claims while it waits
            from sahara_cli.compute.game import defend

            defend(ctx, once=True)
        time.sleep(0.2 if disputed else min(1.0, max(0.1, record.finalize_after - time.time())))
        last = _last_block_time(proto)
        # A dispute holds the job, and a survived one moves its window on by its length.
        record = proto.training.get_job(job_id)
        if record.status != "pending":
            break
    if record.status == "rejected":
        raise ComputeJobState(f"job {job_id} lost a dispute: rejected, never finalised")
    if record.status != "pending":
        raise ComputeJobState(f"job {job_id} is {record.status}, not pending")
    if max(int(time.time()), last + 1) < record.finalize_after:
        raise ComputeJobState(
            f"job {job_id} is open to challenges until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(record.finalize_after))}",
            hint="Finalise it then, or pass --wait.",
        )
    # The node estimates at the last block's time; if that is still inside the window
    # (no block since), send with a fixed limit: the next block's time is past it.
    gas = FINALIZE_GAS if last < record.finalize_after else None
    who = ctx.unlock()
    asset_id, tx = proto.training.finalize(who, job_id, gas=gas)
    if local is not None:
        jobs.mark(local, ctx.home_root, asset_id=asset_id)
        _link_output(ctx, local, asset_id, tx.hash)
    claim_bond = 0
    if claim_id:
        claim = proto.disputes.get_claim(claim_id)
        if claim.status == "open" and not claim.dispute:
            proto.disputes.close(who, claim_id)  # the claim's bond comes back too
            claim_bond = claim.bond_wei
    return JobFinalized(
        job_id=job_id,
        asset_id=asset_id,
        parents=record.parents,
        bond_wei=record.bond_wei,
        claim_id=claim_id or None,
        claim_bond_wei=claim_bond,
        transaction=tx.transaction(),
    )


def _last_block_time(proto: Protocol) -> int:
    return int(proto.node.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


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
    from sahara_cli.errors import UnreachableError

    local = sorted(jobs.all_jobs(ctx.home_root), key=lambda j: -j.created)
    proto = None
    if chain and any(j.job_id for j in local):
        try:
            proto = ctx.protocol()
            proto.node.chain_id()
        except UnreachableError:
            proto = None  # no node: the jobs as this home last saw them ("recorded")
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
    claim_id = proto.disputes.claim_of("training", job_id)
    claim = proto.disputes.get_claim(claim_id) if claim_id else None
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
        claim_id=claim_id or None,
        claim_status=claim.status if claim else None,
        dispute_id=(claim.dispute or None) if claim else None,
    )
