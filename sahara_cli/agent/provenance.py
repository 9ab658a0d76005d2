"""Provenance for people: answers' records and jobs, their assets and payouts, checked.

An answer an agent served is recorded by the inference SAP (its digest, the hashes of
its prompt and answer, the assets it used, the license and the calls it metered); the
answers recorded before the SAP are in the ``Provenance`` contract and stay readable.
A training or merge job is recorded by the training SAP. This module lists them (from
the home's index of protocol events, which keeps the SAPs' events too), shows one (read
from the chain, with the payouts of its transaction and, for an answer, the record's body
if an agent of this home kept it), and verifies one: the record's digest recomputed from
its local body (:attr:`~sahara_cli.agent.record.Record.digest`) against the chain's.

References: ``answer:N`` (or ``N``), ``legacy:N``, ``job:N``; see
:mod:`sahara_cli.agent.provenance_results`. ``verify`` is in
:mod:`sahara_cli.agent.provenance_verify`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    AgentError,
    ProvenanceNotFound,
    RecordNotFound,
    UsageError,
)

if TYPE_CHECKING:
    from sahara_cli.agent.provenance_results import (
        AnswerEntry,
        JobEntry,
        JobRecord,
        ProvenanceList,
        ProvenanceShow,
    )
    from sahara_cli.protocol.client import Protocol, TrainingJob
    from sahara_cli.protocol.events import LoggedEvent
    from sahara_cli.protocol.values import Event

__all__ = [
    "list_provenance",
    "parse_ref",
    "show_provenance",
]

_REF = re.compile(r"^\s*(?:(answer|legacy|provenance|job):)?\s*#?(\d+)\s*$", re.IGNORECASE)
_KINDS = {"answer": "answer", "legacy": "legacy", "provenance": "legacy", "job": "job"}
_ZERO32 = "0x" + "00" * 32


def parse_ref(text: str) -> tuple[str, int]:
    """``("answer" | "legacy" | "job", number)`` of a reference; a bare number is an
    answer. A malformed one is a :class:`UsageError`."""
    match = _REF.match(text)
    if not match or int(match.group(2)) < 1:
        raise UsageError(
            f"not a provenance reference: {text!r}",
            hint="Write answer:N (or N), legacy:N or job:N, as 'sahara provenance list' shows.",
        )
    return _KINDS[(match.group(1) or "answer").lower()], int(match.group(2))


def _ref(kind: str, number: int) -> str:
    return f"{kind}:{number}"


def _topic(number: int) -> str:
    return "0x" + number.to_bytes(32, "big").hex()


# -- the local records of this home ----------------------------------------------------


def _stores(home_root: Path) -> Iterator[tuple[str, Path]]:
    from sahara_cli.agent.spec import AgentStore

    store = AgentStore(home_root)
    for name in store.names():
        path = store.dir(name) / "records.sqlite"
        if path.is_file():
            yield name, path


def _local(
    home_root: Path, digest: str, recorded_in: str, record_id: int
) -> tuple[str, dict[str, Any]] | None:
    """The agent of this home that keeps the record with ``digest`` and the row; else a
    committed row that says it is this chain record (its body changed since)."""
    from sahara_cli.agent.record import RecordStore

    changed = None
    for name, path in _stores(home_root):
        with RecordStore(path) as store:
            with suppress(AgentError):
                return name, store.get(digest.lower())
            row = store.committed_as(record_id, recorded_in)
            if row is not None and changed is None:
                changed = name, row
    return changed


def _local_digests(home_root: Path, digests: set[str]) -> dict[str, str]:
    """Which agent of this home keeps each of ``digests``."""
    from sahara_cli.agent.record import RecordStore

    found: dict[str, str] = {}
    for name, path in _stores(home_root):
        with RecordStore(path) as store:
            for digest in digests - found.keys():
                with suppress(AgentError):
                    store.get(digest)
                    found[digest] = name
    return found


# -- list ------------------------------------------------------------------------------


def list_provenance(
    proto: Protocol,
    home_root: Path,
    *,
    agent: str | None = None,
    asset_id: int | None = None,
    shown: str = "all",
    limit: int = 50,
    progress: Callable[[str], None] | None = None,
) -> ProvenanceList:
    """Answers' records (the inference SAP's and the Provenance contract's) and jobs,
    newest first, from the home's index of protocol events. ``agent``: the answers of
    this agent of the home (by its asset); ``asset_id``: the records and jobs about an
    asset (answers by it or using it, jobs on it or producing it); ``shown``: ``all``,
    ``answers`` or ``jobs``."""
    from sahara_cli.agent.provenance_results import ProvenanceList
    from sahara_cli.protocol.events import MAX_LIMIT, EventQuery
    from sahara_cli.protocol.index import ProtocolIndex

    if shown not in ("all", "answers", "jobs"):
        raise UsageError(f"show all, answers or jobs, not {shown!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"the limit must be 1 to {MAX_LIMIT}, got {limit}")
    if agent is not None and asset_id is not None:
        raise UsageError("give --agent or --asset, not both")
    answers_of: int | None = None
    if agent is not None:
        answers_of = _agent_asset(home_root, agent)
        shown = "answers"
    about = asset_id if asset_id is not None else answers_of
    answers: list[LoggedEvent] = []
    jobs: list[LoggedEvent] = []
    more = False
    with ProtocolIndex.for_home(proto, home_root) as index:
        index.sync(progress)
        block = index.block

        def find(contract: str, event: str) -> list[LoggedEvent]:
            nonlocal more
            found, over = index.events(EventQuery(contract, event, about, limit=limit))
            more = more or over
            return found

        if shown != "jobs":
            answers = find("InferenceRecord", "InferenceRecorded") + find("Provenance", "Recorded")
            if answers_of is not None:
                answers = [e for e in answers if int(e.args["asset"]) == answers_of]
            answers.sort(key=lambda e: (e.block, e.log_index), reverse=True)
            more = more or len(answers) > limit
            answers = answers[:limit]
        if shown != "answers":
            jobs = find("TrainingRecord", "JobSubmitted")
    local = _local_digests(home_root, {str(e.args["digest"]).lower() for e in answers})
    return ProvenanceList(
        agent=agent,
        asset_id=asset_id,
        shown=shown,
        limit=limit,
        block=block,
        more=more,
        answers=[_answer_entry(e, local) for e in answers],
        jobs=[_job_entry(proto, e) for e in jobs],
    )


def _agent_asset(home_root: Path, name: str) -> int:
    from sahara_cli.agent.spec import AgentStore

    spec = AgentStore(home_root).load(name)
    if spec.asset_id is None:
        raise ProvenanceNotFound(
            f"agent {name!r} is not published, so none of its answers is on chain",
            hint=f"Publish it with 'sahara agent publish {name}'.",
        )
    return spec.asset_id


def _answer_entry(e: LoggedEvent, local: Mapping[str, str]) -> AnswerEntry:
    from sahara_cli.agent.provenance_results import AnswerEntry

    a = e.args
    legacy = e.contract == "Provenance"
    digest = str(a["digest"]).lower()
    return AnswerEntry(
        ref=_ref("legacy" if legacy else "answer", int(a["id"])),
        recorded_in="Provenance" if legacy else "InferenceRecord",
        record_id=int(a["id"]),
        asset_id=int(a["asset"]),
        recorder=str(a["recorder"]),
        digest=digest,
        input_hash=None if legacy else str(a["input_hash"]),
        output_hash=None if legacy else str(a["output_hash"]),
        source_asset_ids=[int(s) for s in a.get("sources", [])],
        license_id=int(a["license"]) or None,
        calls_metered=0 if legacy else int(a["calls"]),
        fee_wei=0 if legacy else int(a["fee"]),
        recorded_at=e.time,
        block=e.block,
        tx_hash=e.tx_hash,
        local_agent=local.get(digest),
    )


def _job_entry(proto: Protocol, e: LoggedEvent) -> JobEntry:
    from sahara_cli.agent.provenance_results import JobEntry

    job = proto.training.get_job(int(e.args["job"]))  # its status and output, as of now
    return JobEntry(
        ref=_ref("job", job.id),
        job_id=job.id,
        kind=job.kind,
        status=job.status,
        submitter=job.submitter,
        base_asset_id=job.base or None,
        input_asset_ids=job.inputs,
        output_cid=job.cid,
        output_asset_id=job.asset or None,
        submitted_at=e.time,
        block=e.block,
        tx_hash=e.tx_hash,
    )


# -- show ------------------------------------------------------------------------------


def show_provenance(proto: Protocol, home_root: Path, ref: str) -> ProvenanceShow:
    """One answer's record (``answer:N``, ``legacy:N``) or job (``job:N``), from the
    chain: its assets, payouts and, for an answer, the local record's body."""
    from sahara_cli.agent.provenance_results import ProvenanceShow

    kind, number = parse_ref(ref)
    if kind == "job":
        return ProvenanceShow(kind="job", job=_job_record(proto, number))
    entry = _chain_answer(proto, kind, number)
    return ProvenanceShow(kind="answer", answer=_answer_record(proto, home_root, entry))


def _event(events: list[Event], what: str) -> Event:
    if not events:
        raise ProvenanceNotFound(f"no {what} on this chain")
    return events[-1]


def _chain_answer(proto: Protocol, kind: str, number: int) -> dict[str, Any]:
    """An answer's record on chain, its event and the block time, as plain values."""
    ref = _ref(kind, number)
    try:
        if kind == "legacy":
            old = proto.legacy_record(number)
            event = _event(proto.provenance.logs("Recorded", _topic(number)), ref)
            chain: dict[str, Any] = dict(
                asset=old.asset, recorder=old.recorder, digest=old.digest, license=old.license,
                time=old.time, input_hash=None, output_hash=None, calls=0, fee=0,
            )  # fmt: skip
        else:
            rec = proto.get_record(number)
            event = _event(proto.inference.logs("InferenceRecorded", _topic(number)), ref)
            chain = dict(
                asset=rec.asset, recorder=rec.recorder, digest=rec.digest, license=rec.license,
                time=rec.time, input_hash=rec.input_hash, output_hash=rec.output_hash,
                calls=rec.calls, fee=rec.fee_wei,
            )  # fmt: skip
    except RecordNotFound:
        raise ProvenanceNotFound(f"no {ref} on this chain") from None
    chain.update(
        kind=kind,
        id=number,
        sources=[int(s) for s in event.args.get("sources", [])],
        block=event.block,
        tx_hash=event.tx_hash,
    )
    return chain


def _answer_record(proto: Protocol, home_root: Path, chain: dict[str, Any]) -> Any:
    from sahara_cli.agent.provenance_results import AnswerRecord, Payout

    legacy = chain["kind"] == "legacy"
    where = "Provenance" if legacy else "InferenceRecord"
    local = _local(home_root, chain["digest"], where, chain["id"])
    payouts = [
        Payout(
            asset_id=int(e.args["asset"]), account=e.args["account"], amount_wei=e.args["amount"]
        )
        for e in _receipt_events(proto, chain["tx_hash"])
        if e.name == "Credited"
    ]
    return AnswerRecord(
        ref=_ref(chain["kind"], chain["id"]),
        recorded_in=where,
        record_id=chain["id"],
        asset_id=chain["asset"],
        asset_name=proto.asset(chain["asset"]).name,
        recorder=chain["recorder"],
        digest=chain["digest"],
        input_hash=chain["input_hash"],
        output_hash=chain["output_hash"],
        source_asset_ids=chain["sources"],
        license_id=chain["license"] or None,
        calls_metered=chain["calls"],
        fee_wei=chain["fee"],
        recorded_at=chain["time"],
        block=chain["block"],
        tx_hash=chain["tx_hash"],
        local_agent=local[0] if local else None,
        payouts=payouts,
        local_record=local[1] if local else None,
    )


def _receipt_events(proto: Protocol, tx_hash: str) -> list[Event]:
    """The protocol events of one mined transaction, in log order."""
    receipt = proto.node.call("eth_getTransactionReceipt", tx_hash) or {}
    found = []
    emitters = {c.address.lower(): c for c in [*proto.contracts, *proto.saps]}
    for log in receipt.get("logs", []):
        contract = emitters.get(str(log.get("address", "")).lower())
        event = contract.decode_log(log) if contract is not None else None
        if event is not None:
            found.append(event)
    return found


def _job(proto: Protocol, number: int) -> TrainingJob:
    if number > proto.training.job_count():
        raise ProvenanceNotFound(f"no job:{number} on this chain")
    return proto.training.get_job(number)


def _job_record(proto: Protocol, number: int) -> JobRecord:
    from sahara_cli.agent.provenance_results import JobRecord

    job = _job(proto, number)
    event = _event(proto.training.logs("JobSubmitted", _topic(number)), f"job:{number}")
    metrics: dict[str, Any] | None = None
    with suppress(ValueError):
        parsed = json.loads(str(event.args["metrics"]))
        metrics = parsed if isinstance(parsed, dict) else {"value": parsed}
    parents, upstream = job.parents, job.upstream_bps
    if job.asset:
        parents = proto.asset(job.asset).parents
        upstream = proto.upstream_bps(job.asset)
    block = proto.node.call("eth_getBlockByNumber", hex(event.block), False)
    return JobRecord(
        ref=_ref("job", number),
        job_id=number,
        kind=job.kind,
        status=job.status,
        submitter=job.submitter,
        base_asset_id=job.base or None,
        input_asset_ids=job.inputs,
        output_cid=job.cid,
        output_asset_id=job.asset or None,
        submitted_at=int(block["timestamp"], 16) if block else job.submitted,
        block=event.block,
        tx_hash=event.tx_hash,
        name=job.name,
        weights_bps=job.weights_bps,
        hparams=job.hparams,
        commitment=job.commitment,
        metrics=metrics,
        metrics_hash=job.metrics_hash,
        bond_wei=job.bond_wei,
        upstream_bps=upstream,
        finalize_at=job.finalize_after,
        parent_asset_ids=parents,
    )
