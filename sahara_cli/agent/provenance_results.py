"""The typed results of ``sahara provenance ...``: answers' records and jobs, as JSON.

Light on purpose (pydantic and the result conventions only), so commands can name these
models without loading the chain clients or the agent.

A record is named by a reference: ``answer:N`` (the inference SAP's record N; a bare
``N`` means the same), ``legacy:N`` (record N of the ``Provenance`` contract, where
answers were recorded before the SAP) or ``job:N`` (job N of the training SAP).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sahara_cli.results import Address, Hash32, Result, Sah, Timestamp, Wei

__all__ = [
    "AnswerEntry",
    "AnswerRecord",
    "Check",
    "JobEntry",
    "JobRecord",
    "Payout",
    "ProvenanceList",
    "ProvenanceShow",
    "ProvenanceVerify",
]

RecordedIn = Literal["InferenceRecord", "Provenance"]


class Payout(Result):
    """One credit a recorded answer's transaction made (an Attribution ``Credited``)."""

    asset_id: int = Field(description="the asset whose revenue it was")
    account: Address = Field(description="who may claim it")
    amount_wei: Wei
    amount_sah: Sah = ""


class AnswerEntry(Result):
    """An answer's record on chain."""

    ref: str = Field(description="answer:N (the inference SAP) or legacy:N (Provenance)")
    recorded_in: RecordedIn = Field(description="the SAP, or the older Provenance contract")
    record_id: int
    asset_id: int = Field(description="the agent or model that answered")
    recorder: Address
    digest: Hash32 = Field(description="keccak256 of the answer's provenance record")
    input_hash: Hash32 | None = Field(description="SHA-256 of the prompt (null: legacy)")
    output_hash: Hash32 | None = Field(description="SHA-256 of the answer (null: legacy)")
    source_asset_ids: list[int] = Field(description="the assets the answer used")
    license_id: int | None = Field(description="the license it was served under (null: none)")
    calls_metered: int = Field(description="calls of the license this record metered")
    fee_wei: Wei = Field(description="what those calls paid")
    fee_sah: Sah = ""
    recorded_at: Timestamp
    block: int
    tx_hash: Hash32
    local_agent: str | None = Field(
        description="the agent of this home whose records hold its body (null: none)"
    )


class JobEntry(Result):
    """A training or merge job of the training SAP."""

    ref: str = Field(description="job:N")
    job_id: int
    kind: str = Field(description="train or merge")
    status: str = Field(description="pending, finalized, cancelled or rejected")
    submitter: Address
    base_asset_id: int | None = Field(description="the base model (null: none)")
    input_asset_ids: list[int] = Field(description="datasets (train) or models (merge)")
    output_cid: str
    output_asset_id: int | None = Field(description="the registered output (null: not yet)")
    submitted_at: Timestamp
    block: int
    tx_hash: Hash32


class ProvenanceList(Result):
    """Answers' records and jobs, newest first (``sahara provenance list``)."""

    agent: str | None = None
    asset_id: int | None = None
    shown: Literal["all", "answers", "jobs"]
    limit: int
    block: int | None = Field(description="the last block the index has read")
    more: bool = Field(description="whether more matched than the limit let through")
    answers: list[AnswerEntry]
    jobs: list[JobEntry]


class AnswerRecord(AnswerEntry):
    """An answer's record with what it paid and, if this home has it, its body."""

    asset_name: str
    payouts: list[Payout] = Field(description="the credits of the record's transaction")
    local_record: dict[str, Any] | None = Field(
        description="the provenance record as this home keeps it (null: not here)"
    )


class JobRecord(JobEntry):
    """A job in full, with its output's place in the asset graph once finalised."""

    name: str
    weights_bps: list[int] = Field(description="the merge weights of the inputs")
    hparams: Hash32 = Field(description="hash of the hyper-parameters")
    commitment: Hash32 = Field(description="hash of the output's plaintext")
    metrics: dict[str, Any] | None = Field(description="the metrics JSON it was submitted with")
    metrics_hash: Hash32
    bond_wei: Wei
    bond_sah: Sah = ""
    upstream_bps: int = Field(description="the output's revenue share for its parents")
    finalize_at: Timestamp = Field(description="the end of its challenge window")
    parent_asset_ids: list[int] = Field(description="the output's parents, the base first")


class ProvenanceShow(Result):
    """One answer's record or one job (``sahara provenance show``)."""

    kind: Literal["answer", "job"]
    answer: AnswerRecord | None = None
    job: JobRecord | None = None


class Check(Result):
    """One comparison of ``verify``."""

    name: str
    chain: Any = Field(description="what the chain says")
    local: Any = Field(description="what the local copy says")
    ok: bool


class ProvenanceVerify(Result):
    """A record or job whose local copy matches the chain (``sahara provenance verify``);
    a mismatch is the error ``provenance.mismatch`` instead."""

    ref: str
    kind: Literal["answer", "job"]
    verified: bool
    against: str = Field(description="the local copy compared: a record store, a file, none")
    checks: list[Check]
