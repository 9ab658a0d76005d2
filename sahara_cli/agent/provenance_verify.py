"""``sahara provenance verify``: a record or job checked against its local copy.

An answer's digest is recomputed from its local record (:attr:`Record.digest
<sahara_cli.agent.record.Record.digest>`) and compared with the chain's, with the prompt
and answer hashes and the asset; a job's metrics are checked against their hash, its
output asset against the job, and this home's record of the job (if it ran here)
against the chain's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.provenance import _chain_answer, _event, _job, _local, _ref, _topic, parse_ref
from sahara_cli.errors import FileUnreadable, ProvenanceMismatch, ProvenanceNotFound

if TYPE_CHECKING:
    from sahara_cli.agent.provenance_results import Check, ProvenanceVerify
    from sahara_cli.protocol.client import Protocol

__all__ = ["JOB_FIELDS", "verify_provenance"]

#: Fields of this home's record of a job (``compute/jobs/KEY/job.json``) that ``verify``
#: compares with the chain's job, besides the metrics.
JOB_FIELDS = ("kind", "base", "inputs", "weights", "cid", "hparams")


def verify_provenance(
    proto: Protocol, home_root: Path, ref: str, *, record_file: Path | None = None
) -> ProvenanceVerify:
    """Check a record or job against its local copy.

    An answer: its record's digest is recomputed from the local body (``record_file``,
    a record as JSON or a served answer's ``sahara`` object; else the record an agent of
    this home kept) and compared with the chain's, with the prompt and answer hashes and
    the asset. A job: the metrics it was submitted with against their hash, its output
    asset (once finalised) against the job, and this home's record of the job (what
    ``compute train`` or ``compute merge`` left), if it ran here. A difference is
    :class:`ProvenanceMismatch`; no such record, or no local copy of an answer,
    :class:`ProvenanceNotFound`."""
    from sahara_cli.agent.provenance_results import ProvenanceVerify

    kind, number = parse_ref(ref)
    if kind == "job":
        against, checks = _job_checks(proto, home_root, number)
    else:
        chain = _chain_answer(proto, kind, number)
        against, body = _local_body(home_root, chain, record_file)
        checks = _answer_checks(chain, body)
    result = ProvenanceVerify(
        ref=_ref(kind, number),
        kind="job" if kind == "job" else "answer",
        verified=all(c.ok for c in checks),
        against=against,
        checks=checks,
    )
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise ProvenanceMismatch(
            f"{result.ref} does not match its local copy ({against}): {', '.join(failed)} differ",
            details={"checks": [c.model_dump(mode="json") for c in checks]},
        )
    return result


def _local_body(
    home_root: Path, chain: dict[str, Any], record_file: Path | None
) -> tuple[str, dict[str, Any]]:
    ref = _ref(chain["kind"], chain["id"])
    if record_file is not None:
        try:
            data = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise FileUnreadable(f"cannot read a record from {record_file}: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("sahara"), dict):
            data = data["sahara"]  # a served answer's whole response
        if isinstance(data, dict) and isinstance(data.get("record"), dict):
            data = data["record"]  # its sahara object
        if not isinstance(data, dict):
            raise FileUnreadable(f"{record_file} holds no provenance record")
        return f"file {record_file}", data
    where = "Provenance" if chain["kind"] == "legacy" else "InferenceRecord"
    local = _local(home_root, chain["digest"], where, chain["id"])
    if local is None:
        raise ProvenanceNotFound(
            f"this home keeps no record of {ref} to check it against",
            hint="Pass the record with --record FILE (a served answer's 'sahara' object).",
        )
    return f"the records of agent {local[0]}", local[1]


def _answer_checks(chain: dict[str, Any], body: dict[str, Any]) -> list[Check]:
    from sahara_cli.agent.provenance_results import Check
    from sahara_cli.agent.record import Record

    record = Record.from_dict({k: v for k, v in body.items() if k != "digest"})
    checks = [Check(name="digest", chain=chain["digest"], local=record.digest,
                    ok=record.digest == chain["digest"].lower())]  # fmt: skip
    if body.get("digest") is not None:
        claimed = str(body["digest"]).lower()
        checks.append(Check(name="stored digest", chain=chain["digest"], local=claimed,
                            ok=claimed == chain["digest"].lower()))  # fmt: skip
    checks.append(Check(name="asset", chain=chain["asset"], local=record.agent_asset,
                        ok=record.agent_asset == chain["asset"]))  # fmt: skip
    for name, mine in (("input_hash", record.prompt_hash), ("output_hash", record.answer_hash)):
        if chain[name] is not None:
            checks.append(Check(name=name, chain=chain[name], local=mine,
                                ok=mine.lower() == chain[name].lower()))  # fmt: skip
    return checks


def _job_checks(proto: Protocol, home_root: Path, number: int) -> tuple[str, list[Check]]:
    from sahara_cli.agent.provenance_results import Check
    from sahara_cli.identity.keys import keccak256

    job = _job(proto, number)
    event = _event(proto.training.logs("JobSubmitted", _topic(number)), f"job:{number}")
    metrics = str(event.args["metrics"])
    hashed = "0x" + keccak256(metrics.encode()).hex()
    checks = [Check(name="metrics", chain=job.metrics_hash, local=hashed,
                    ok=hashed == job.metrics_hash)]  # fmt: skip
    if job.asset:
        asset = proto.asset(job.asset)
        for name, mine, theirs in (
            ("output cid", job.cid, asset.cid),
            ("output commitment", job.commitment, asset.commitment),
            ("output parents", job.parents, asset.parents),
        ):
            checks.append(Check(name=name, chain=theirs, local=mine, ok=mine == theirs))
    from sahara_cli.compute import jobs

    local = jobs.find(home_root, str(number))
    if local is None:
        return "the chain only (no job of this home)", checks
    ours: dict[str, Any] = {
        "kind": local.kind,
        "base": local.base_asset,
        "inputs": local.inputs,
        "weights": local.weights_bps,
        "cid": local.output_cid,
        "hparams": local.hparams_hash,
    }
    recorded: dict[str, Any] = {"kind": job.kind, "base": job.base, "inputs": job.inputs,
                              "weights": job.weights_bps, "cid": job.cid,
                              "hparams": job.hparams}  # fmt: skip
    for name in JOB_FIELDS:
        checks.append(Check(name=f"local job {name}", chain=recorded[name], local=ours[name],
                            ok=_same(ours[name], recorded[name])))  # fmt: skip
    checks.append(Check(name="local job metrics", chain=metrics, local=local.metrics,
                        ok=local.metrics == _loads(metrics)))  # fmt: skip
    return f"this home's job {local.key}", checks


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _same(local: Any, chain: Any) -> bool:
    if isinstance(chain, str) and isinstance(local, str) and chain.startswith("0x"):
        return local.lower() == chain.lower()
    return bool(local == chain)
