"""The typed result of ``sahara agent learn`` (a light module: pydantic and
:mod:`sahara_cli.results` only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sahara_cli.results import Hash32, Result, Sah, Timestamp, Transaction, Wei

__all__ = ["AgentLearned"]


class AgentLearned(Result):
    """``agent learn``: an adapter trained on the agent's feedback, now used by the agent."""

    agent: str
    objective: Literal["sft", "dpo"] = Field(
        description="sft: supervised on corrections and approved answers; dpo: preference "
        "tuning on corrected (or approved) answers against rejected ones"
    )
    feedback: int = Field(description="feedback rows read")
    examples: int = Field(description="training examples (sft) or preference pairs (dpo)")
    skipped: int = Field(description="feedback rows that gave no example for this objective")
    base: str = Field(description="the agent's transformers model folder")
    adapter_path: str = Field(description="the adapter folder the agent now loads")
    adapter_cid: str = Field(description="the adapter in the vault (private to the agent's ID)")
    job_key: str = Field(description="the local compute job (see 'sahara compute show')")
    job_id: int | None = Field(description="the training SAP's job id; None: not recorded")
    recorded: bool
    not_recorded: str | None = Field(description="why the job was not recorded on chain")
    input_ids: list[int] = Field(description="the job's inputs on chain: the agent's asset")
    base_asset_id: int | None = Field(description="the model's asset, when it is registered")
    weights_bps: list[int] = Field(description="the upstream split among the job's parents")
    steps: int
    losses: list[float] = Field(description="the loss of every step")
    first_loss: float
    last_loss: float
    tokens: int
    train_s: float
    device: str
    hparams_hash: Hash32
    bond_wei: Wei
    bond_sah: Sah = ""
    finalize_after_at: Timestamp | None
    transaction: Transaction | None
