"""Challengeable jobs: train or answer on the fixed-point runner and claim the trace.

:func:`train_fixed` is ``compute train --runner fixed``: the licence check and the data
through the vault as for any job, SGD on the deterministic machine, the model into the
vault, the job through the training SAP, then a claim of its trace in the DisputeGame
SAP (the same bond rules), which keeps the job from being finalised while a dispute
over it is open, and rejects it if the claim loses. :func:`infer` answers an input with
a fixed-point model asset and claims that answer. Both keep the trace in this home
(:mod:`.claims`), from which :func:`~sahara_cli.compute.game.defend` answers challenges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahara_cli.compute import claims, jobs
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from sahara_cli.compute.fixed import FixedRun
    from sahara_cli.compute.game_results import InferResult
    from sahara_cli.compute.results import TrainResult
    from sahara_cli.compute.workflow import Context, Recorded
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.saps.machine import Program, State
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.protocol.values import TxResult


@dataclass(frozen=True)
class FixedTrainRequest:
    """What ``sahara compute train --runner fixed`` asks for."""

    data: Sequence[int]
    hidden: Sequence[int] = (16,)
    targets: int = 1
    steps: int = 128
    batch_size: int = 8
    learning_rate: float = 0.0625
    seed: int = 0
    name: str | None = None
    upstream_bps: int = 3_000
    bond_wei: int | None = None
    record: bool = True
    server_url: str = ""
    #: A drill: the runner gets this operation wrong (and commits the wrong trace).
    corrupt_op: int | None = None


def claim_trace(
    proto: Protocol,
    who: Signer,
    home_root: Path,
    run: FixedRun,
    *,
    kind: str,
    subject: int,
    bond_wei: int | None,
    corrupt: int | None,
) -> tuple[int, TxResult]:
    """Claim ``run``'s trace on chain and keep it in this home for the defence."""
    from sahara_cli.node.saps import merkle

    bond = bond_wei if bond_wei is not None else proto.disputes.parameters()[0]
    claim_id, tx = proto.disputes.claim(
        who,
        kind=kind,
        subject=subject,
        program=run.program.encode(),
        input_root=run.roots[0],
        output_root=run.roots[-1],
        trace_root=merkle.root(run.roots),
        steps=run.program.length,
        bond_wei=bond,
    )
    local = claims.LocalClaim(claim_id, run.program, run.first, run.roots, corrupt)
    claims.save(home_root, local)
    return claim_id, tx


def train_fixed(
    ctx: Context,
    request: FixedTrainRequest,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train an MLP on licensed numeric datasets on the deterministic machine, record the
    job and claim its trace."""
    from sahara_cli.compute import fixed
    from sahara_cli.compute.data import read_plaintexts
    from sahara_cli.compute.workflow import add_output, open_job, record_job, share_bps

    proto, who = open_job(ctx, request.data, record=request.record, bond_wei=request.bond_wei)
    plaintexts = read_plaintexts(ctx.vault, proto, list(request.data), lambda: who)
    table = fixed.table_of(plaintexts)
    program, first = fixed.training_program(
        table,
        plaintexts,
        hidden=request.hidden,
        targets=request.targets,
        steps=request.steps,
        batch_size=request.batch_size,
        learning_rate=request.learning_rate,
        seed=request.seed,
    )
    if request.corrupt_op is not None and not 0 <= request.corrupt_op < program.length:
        raise UsageError(f"--drill-corrupt-op is an operation in [0, {program.length})")
    name = request.name or "fixed-mlp"
    hparams = {"runner": "fixed", **program.document()}
    hparams_json = program.encode().decode()
    key = jobs.job_key("train", f"seed:{request.seed}", list(request.data), hparams_json, name)
    if request.record:
        finished = _claim_recorded(ctx, proto, who, key, program, first, request, table)
        if finished is not None:
            return finished
    earlier = jobs.earlier_run(
        ctx.home_root,
        key,
        recorded="this job ran and was recorded as job {job_id} ({key})",
        hint="Change --name or a setting to train again; see 'sahara compute show'.",
    )
    job = jobs.LocalJob(
        key=key,
        kind="train",
        name=name,
        base=f"seed:{request.seed}",
        base_asset=0,
        inputs=list(request.data),
        hparams=hparams,
        hparams_hash="0x" + program.digest.hex(),
        created=earlier.created if earlier is not None else time.time(),
        pid=jobs.this_process(),
    )
    job.save(ctx.home_root)
    run = fixed.run_program(program, first, corrupt=request.corrupt_op, on_step=on_step)
    folder = fixed.write_model(run.final, jobs.job_dir(ctx.home_root, key) / name)
    weights = share_bps([p.size for p in plaintexts])
    losses = (round(fixed.mse(first, table), 6), round(fixed.mse(run.final, table), 6))
    metrics = {
        "runner": "fixed",
        "steps": program.steps,
        "operations": program.length,
        "first_loss": losses[0],
        "last_loss": losses[1],
        "trace_root": _root(run),
        "datasets": {str(p.asset_id): p.sha256 for p in plaintexts},
    }
    item = add_output(ctx, who, folder, name)
    jobs.mark(
        job,
        ctx.home_root,
        state="trained",
        pid=None,
        output_cid=item.cid,
        output_path=str(folder),
        weights_bps=weights,
        metrics=metrics,
        losses=list(run.losses),
    )
    recorded, claim_id = None, None
    if request.record:
        recorded = record_job(
            proto,
            who,
            job,
            ctx.home_root,
            item,
            hparams_hash=program.digest,
            metrics=metrics,
            upstream_bps=request.upstream_bps,
            bond_wei=request.bond_wei,
            server_url=request.server_url,
        )
        claim_id = _claim_job(ctx, proto, who, job, run, request)
    return _result(job, run, losses, recorded, claim_id, str(folder))


def _claim_job(
    ctx: Context,
    proto: Protocol,
    who: Signer,
    job: jobs.LocalJob,
    run: FixedRun,
    request: FixedTrainRequest,
) -> int:
    """Claim the trace of ``job`` (recorded on chain) and note the claim in this home."""
    assert job.job_id is not None
    claim_id, _ = claim_trace(
        proto,
        who,
        ctx.home_root,
        run,
        kind="training",
        subject=job.job_id,
        bond_wei=request.bond_wei,
        corrupt=request.corrupt_op,
    )
    jobs.mark(job, ctx.home_root, metrics={**job.metrics, "claim_id": claim_id})
    return claim_id


def _claim_recorded(
    ctx: Context,
    proto: Protocol,
    who: Signer,
    key: str,
    program: Program,
    first: State,
    request: FixedTrainRequest,
    table: Any,
) -> TrainResult | None:
    """A job of this home recorded without its claim (the run stopped between the two
    transactions): run it again, as deterministic as the first time, and claim it."""
    from sahara_cli.compute import fixed
    from sahara_cli.compute.workflow import Recorded
    from sahara_cli.errors import ComputeJobNotFound

    try:
        job = jobs.load(ctx.home_root, key)
    except ComputeJobNotFound:
        return None
    if job.job_id is None or "claim_id" in job.metrics:
        return None
    run = fixed.run_program(program, first, corrupt=request.corrupt_op)
    claim_id = _claim_job(ctx, proto, who, job, run, request)
    record = proto.training.get_job(job.job_id)
    recorded = Recorded(job.job_id, record.bond_wei, record.finalize_after)
    losses = (round(fixed.mse(first, table), 6), round(fixed.mse(run.final, table), 6))
    return _result(job, run, losses, recorded, claim_id, job.output_path or "")


def _root(run: FixedRun) -> str:
    from sahara_cli.node.saps import merkle

    return "0x" + merkle.root(run.roots).hex()


def _result(
    job: jobs.LocalJob,
    run: FixedRun,
    losses: tuple[float, float],
    recorded: Recorded | None,
    claim_id: int | None,
    path: str,
) -> TrainResult:
    from sahara_cli.compute.results import TrainResult
    from sahara_cli.compute.workflow import Recorded

    rec = recorded or Recorded()
    program = run.program
    return TrainResult(
        job_key=job.key,
        job_id=rec.job_id,
        kind="train",
        name=job.name,
        state="pending" if rec.job_id else "trained",
        input_ids=job.inputs,
        base=job.base,
        output_cid=job.output_cid,
        asset_id=None,
        created_at=job.created,
        steps=program.steps,
        epochs=program.steps * program.batch // max(1, program.rows),
        losses=list(run.losses),
        first_loss=losses[0],
        last_loss=losses[1],
        epsilon=None,
        delta=None,
        tokens=0,
        train_s=round(run.seconds, 3),
        device="cpu (fixed point)",
        resumed_from_step=None,
        hparams_hash=job.hparams_hash,
        weights_bps=job.weights_bps,
        adapter_path=path,
        bond_wei=rec.bond_wei,
        finalize_after_at=rec.finalize_after,
        transaction=rec.transaction,
        runner="fixed",
        operations=program.length,
        trace_root=_root(run),
        claim_id=claim_id,
    )


def infer(
    ctx: Context,
    model: int,
    values: Sequence[float],
    *,
    claim: bool = True,
    bond_wei: int | None = None,
    corrupt_op: int | None = None,
) -> InferResult:
    """Answer ``values`` with the fixed-point model asset ``model`` and claim the answer
    (a standalone inference claim, open to challenges for the game's window)."""
    from sahara_cli.compute import fixed
    from sahara_cli.compute.data import read_plaintexts
    from sahara_cli.compute.game_results import InferResult
    from sahara_cli.node.saps import machine

    proto = ctx.protocol()
    who = ctx.unlock()
    (plain,) = read_plaintexts(ctx.vault, proto, [model], lambda: who)
    files = dict(plain.files)
    data = files.get(fixed.MODEL_FILE)
    if data is None:
        raise UsageError(f"asset {model} ({plain.name}) holds no {fixed.MODEL_FILE}")
    label = f"asset {model}"
    weights = fixed.read_model(data, label)
    meta = f"asset:{model}:{plain.sha256}"
    program, first = fixed.inference_program(weights, values, meta, label)
    if corrupt_op is not None and not 0 <= corrupt_op < program.length:
        raise UsageError(f"--drill-corrupt-op is an operation in [0, {program.length})")
    run = fixed.run_program(program, first, corrupt=corrupt_op)
    output = run.final.tensors[f"h{program.depth - 1}"][0] / float(1 << machine.FRAC)
    claim_id: int | None = None
    tx: TxResult | None = None
    deadline: int | None = None
    bond = 0
    if claim:
        claim_id, tx = claim_trace(
            proto,
            who,
            ctx.home_root,
            run,
            kind="inference",
            subject=0,
            bond_wei=bond_wei,
            corrupt=corrupt_op,
        )
        record = proto.disputes.get_claim(claim_id)
        bond, deadline = record.bond_wei, record.deadline
    return InferResult(
        model=f"asset:{model}",
        input=[float(v) for v in values],
        output=[round(float(v), 6) for v in output],
        operations=program.length,
        output_root="0x" + run.roots[-1].hex(),
        trace_root=_root(run),
        claim_id=claim_id,
        bond_wei=bond,
        challenge_until_at=deadline,
        transaction=tx.transaction() if tx is not None else None,
    )
