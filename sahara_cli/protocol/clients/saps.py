"""Typed clients of the SAPs: training and merge jobs, and inference records.

The SAPs are the node's precompiles (``sahara_cli.node.saps``): no bytecode at their
addresses, an ABI like any contract's. A chain without them (another EVM node) answers
their calls with empty output, which :meth:`SAPClient.is_deployed` detects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from sahara_cli.errors import NodeRPCError, ProtocolNotDeployed, RecordNotFound
from sahara_cli.protocol import artifacts
from sahara_cli.protocol.clients.base import ContractClient
from sahara_cli.protocol.values import TxResult, hex32, sources_arg

if TYPE_CHECKING:
    from collections.abc import Callable

    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.sender import Sender

#: Job kinds and states, as the training SAP numbers them.
JOB_KINDS = {0: "train", 1: "merge"}
JOB_STATES = {1: "pending", 2: "finalized", 3: "cancelled", 4: "rejected"}


@dataclass(frozen=True)
class TrainingJob:
    """A training or merge job as the training SAP keeps it."""

    id: int
    submitter: str
    kind: str
    status: str
    base: int
    inputs: list[int]
    weights_bps: list[int]
    hparams: str
    cid: str
    commitment: str
    name: str
    uri: str
    metrics_hash: str
    bond_wei: int
    upstream_bps: int
    submitted: int
    finalize_after: int
    asset: int

    @property
    def parents(self) -> list[int]:
        """The assets the output is derived from, the base first."""
        return ([self.base] if self.base else []) + list(self.inputs)


@dataclass(frozen=True)
class InferenceRecord:
    """An answer's record as the inference SAP keeps it."""

    id: int
    recorder: str
    asset: int
    digest: str
    input_hash: str
    output_hash: str
    license: int
    calls: int
    fee_wei: int
    time: int
    sources: list[int] = field(default_factory=list)


class SAPClient(ContractClient):
    """A :class:`ContractClient` of a SAP: its address and ABI come from the node."""

    PROBE: ClassVar[str]

    def __init__(
        self,
        node: NodeClient,
        *,
        sender: Sender | None = None,
        ready: Callable[[], None] | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(
            node,
            sender=sender,
            ready=ready,
            address=address or artifacts.sap_addresses()[self.CONTRACT],
        )

    def is_deployed(self) -> bool:
        """Whether the chain runs this SAP: a view call of it answers with a word."""
        try:
            out = self.node.call(
                "eth_call",
                {"to": self.address, "data": "0x" + self.encode(self.PROBE).hex()},
                "latest",
            )
        except NodeRPCError:
            return False
        return isinstance(out, str) and len(out) == 66

    def ensure_deployed(self) -> None:
        if self._checked:
            return
        if not self.is_deployed():
            raise ProtocolNotDeployed(
                f"this chain has no {self.name} SAP at {self.address}",
                hint="Use a sahara node ('sahara node start --dev').",
            )
        self._checked = True


class TrainingClient(SAPClient):
    """The training SAP: submit, finalise and cancel jobs; read them."""

    CONTRACT = "TrainingRecord"
    PROBE = "jobCount"

    def submit(
        self,
        signer: Signer,
        *,
        kind: str,
        base: int,
        inputs: Sequence[int],
        weights_bps: Sequence[int],
        hparams: bytes | str,
        cid: str,
        commitment: bytes | str,
        name: str,
        metrics: str,
        upstream_bps: int,
        bond_wei: int,
        uri: str = "",
    ) -> tuple[int, TxResult]:
        """Record a job with ``bond_wei`` locked; returns the job id."""
        code = {v: k for k, v in JOB_KINDS.items()}[kind]
        tx = self.write(
            signer,
            "submit",
            code,
            base,
            [int(i) for i in inputs],
            [int(w) for w in weights_bps],
            hex32(hparams),
            cid,
            hex32(commitment),
            name,
            uri,
            metrics,
            upstream_bps,
            value=bond_wei,
        )
        return int(tx.event("JobSubmitted").args["job"]), tx

    def finalize(self, signer: Signer, job: int, *, gas: int | None = None) -> tuple[int, TxResult]:
        """Register the job's output after its challenge window; returns the asset id.

        ``gas``: a limit instead of the node's estimate, which runs at the last block's
        time (on a chain that makes blocks only for transactions, that time may still be
        inside the window when the next block's will not)."""
        tx = self.write(signer, "finalize", job, gas=gas)
        return int(tx.event("JobFinalized").args["asset"]), tx

    def cancel(self, signer: Signer, job: int) -> TxResult:
        return self.write(signer, "cancel", job)

    def get_job(self, job: int) -> TrainingJob:
        try:
            raw = self.read("getJob", job)
        except RecordNotFound as exc:
            raise RecordNotFound(
                f"no training job {job} on this chain", details=exc.details
            ) from None
        return TrainingJob(
            id=job,
            submitter=raw["submitter"],
            kind=JOB_KINDS.get(raw["kind"], str(raw["kind"])),
            status=JOB_STATES.get(raw["status"], str(raw["status"])),
            base=raw["base"],
            inputs=list(raw["inputs"]),
            weights_bps=list(raw["weights"]),
            hparams="0x" + raw["hparams"].hex(),
            cid=raw["cid"],
            commitment="0x" + raw["commitment"].hex(),
            name=raw["name"],
            uri=raw["uri"],
            metrics_hash="0x" + raw["metrics"].hex(),
            bond_wei=raw["bond"],
            upstream_bps=raw["upstream_bps"],
            submitted=raw["submitted"],
            finalize_after=raw["finalize_after"],
            asset=raw["asset"],
        )

    def job_count(self) -> int:
        return int(self.read("jobCount"))

    def parameters(self) -> tuple[int, int]:
        """``(min_bond_wei, challenge_window_s)``."""
        min_bond, window = self.read("parameters")
        return int(min_bond), int(window)

    def submitted_metrics(self, job: int) -> str | None:
        """The metrics JSON the job was submitted with (from its event)."""
        for event in self.logs("JobSubmitted", "0x" + job.to_bytes(32, "big").hex()):
            return str(event.args["metrics"])
        return None


class InferenceClient(SAPClient):
    """The inference SAP: record answers (metering their calls); read records."""

    CONTRACT = "InferenceRecord"
    PROBE = "recordCount"

    def record(
        self,
        signer: Signer,
        asset_id: int,
        digest: bytes | str,
        *,
        input_hash: bytes | str = b"\0" * 32,
        output_hash: bytes | str = b"\0" * 32,
        sources: Sequence[int] = (),
        license_id: int = 0,
        calls: int = 0,
    ) -> tuple[int, TxResult]:
        """Record an answer of ``asset_id`` (and meter ``calls`` on ``license_id``)."""
        tx = self.write(
            signer,
            "record",
            asset_id,
            hex32(digest),
            hex32(input_hash),
            hex32(output_hash),
            sources_arg(sources),
            license_id,
            calls,
        )
        return int(tx.event("InferenceRecorded").args["id"]), tx

    def get_record(self, record_id: int) -> InferenceRecord:
        try:
            raw = self.read("getRecord", record_id)
        except RecordNotFound as exc:
            raise RecordNotFound(
                f"no inference record {record_id} on this chain", details=exc.details
            ) from None
        sources: list[int] = []
        for event in self.logs("InferenceRecorded", "0x" + record_id.to_bytes(32, "big").hex()):
            sources = list(event.args["sources"])
        return InferenceRecord(
            id=record_id,
            recorder=raw["recorder"],
            asset=raw["asset"],
            digest="0x" + raw["digest"].hex(),
            input_hash="0x" + raw["input_hash"].hex(),
            output_hash="0x" + raw["output_hash"].hex(),
            license=raw["license"],
            calls=raw["calls"],
            fee_wei=raw["fee"],
            time=raw["time"],
            sources=sources,
        )

    def record_count(self) -> int:
        return int(self.read("recordCount"))
