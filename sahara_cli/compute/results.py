"""Typed results of the compute workflows (training, merging, jobs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sahara_cli.results import Hash32, Result, Sah, Timestamp, Transaction, Wei

JobKind = Literal["train", "merge"]


class JobSummary(Result):
    """A compute job of this home: where it stands locally and on chain."""

    job_key: str = Field(description="the local key of the job (its folder under compute/jobs)")
    job_id: int | None = Field(description="the training SAP's job id; None until recorded")
    kind: JobKind
    name: str
    state: str = Field(
        description="running, interrupted, trained (not recorded), or the chain's: pending, "
        "finalized, cancelled, rejected"
    )
    input_ids: list[int] = Field(description="the datasets (training) or models (merge)")
    base: str = Field(description="the base model: a local folder or asset:N")
    output_cid: str | None
    asset_id: int | None = Field(description="the registered output, once finalised")
    created_at: Timestamp


class JobList(Result):
    """``compute jobs``: this home's jobs, newest first."""

    jobs: list[JobSummary]


class TrainResult(JobSummary):
    """``compute train``: the run, its adapter in the vault, and its record on chain."""

    steps: int
    epochs: int
    losses: list[float | None] = Field(
        description="the loss of every step (null for a DP step whose batch came out empty)"
    )
    first_loss: float = Field(description="mean loss of the first tenth of the steps")
    last_loss: float = Field(description="mean loss of the last tenth of the steps")
    epsilon: float | None = Field(description="with DP: the ε spent, from opacus's accountant")
    delta: float | None
    tokens: int
    train_s: float
    device: str
    resumed_from_step: int | None
    hparams_hash: Hash32
    weights_bps: list[int] = Field(
        description="how the model's upstream revenue is split among its parents (base first)"
    )
    adapter_path: str
    bond_wei: Wei
    bond_sah: Sah = ""
    finalize_after_at: Timestamp | None
    transaction: Transaction | None
    runner: Literal["torch", "fixed"] = Field(
        default="torch",
        description="torch (LoRA in floats: recorded, not challengeable) or fixed (the "
        "deterministic machine: its trace is claimed and open to challenges)",
    )
    operations: int | None = Field(default=None, description="fixed: operations in the trace")
    trace_root: Hash32 | None = Field(default=None, description="fixed: the trace's Merkle root")
    claim_id: int | None = Field(default=None, description="fixed: the dispute game's claim")


class MergeResult(JobSummary):
    """``compute merge``: the merged model in the vault and its record on chain."""

    method: str
    weights_bps: list[int]
    parameters: int = Field(description="tensor elements merged")
    merge_s: float
    output_path: str
    bond_wei: Wei
    bond_sah: Sah = ""
    finalize_after_at: Timestamp | None
    transaction: Transaction | None


class JobDetail(JobSummary):
    """``compute show``: a job with its chain record."""

    submitter: str | None
    hparams_hash: Hash32 | None
    weights_bps: list[int]
    metrics: dict[str, object] = Field(description="the metrics the job was recorded with")
    bond_wei: Wei
    bond_sah: Sah = ""
    upstream_bps: int | None
    finalize_after_at: Timestamp | None
    local_path: str | None = Field(description="the job's folder in this home, if it ran here")
    claim_id: int | None = Field(
        default=None, description="the trace claim of a fixed-runner job (None: not challengeable)"
    )
    claim_status: str | None = Field(default=None, description="open, accepted or rejected")
    dispute_id: int | None = Field(default=None, description="the dispute open over it now")


class JobFinalized(Result):
    """``compute finalize``: the job's output registered as a model asset."""

    job_id: int
    asset_id: int
    parents: list[int]
    bond_wei: Wei = Field(description="returned to the submitter")
    bond_sah: Sah = ""
    claim_id: int | None = Field(default=None, description="the job's trace claim (fixed runner)")
    claim_bond_wei: Wei = Field(default=0, description="the claim's bond, returned with it")
    claim_bond_sah: Sah = ""
    transaction: Transaction


class JobCancelled(Result):
    """``compute cancel``: a running job stopped, or a recorded one withdrawn."""

    job_key: str | None
    job_id: int | None
    stopped: bool = Field(description="a training run of this home was asked to stop")
    bond_wei: Wei = Field(description="returned to the submitter")
    bond_sah: Sah = ""
    transaction: Transaction | None
