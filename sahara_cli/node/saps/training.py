"""The training SAP: training and merge jobs recorded with a bond, finalised into assets.

A job names what it was computed from (a base model and datasets, or the models of a
merge), a hash of its hyper-parameters, the CID of its output and a hash of its metrics,
and locks a bond. Every input must be open to the submitter *for training*: owned by it,
or held under a Full-Access, Long-term or Partnership license that is valid now (an API
license gives answers, not data). The checks run in the SAP, against the Licensing
contract, at submission.

After the challenge window the job can be finalised by anyone: the SAP registers the
output as a model asset owned by the submitter whose parents are the job's inputs
(weighted, for a merge), so its revenue flows up to them through Attribution, and the
bond goes back to the submitter. Until then the submitter may cancel it (the bond comes
back, nothing is registered).

The dispute game SAP (:mod:`.dispute`) holds a job while a dispute over its computation
is open (it can be neither finalised nor cancelled meanwhile, and its window stands
still), releases it when the challenger loses (the window runs on from where it stood),
and rejects it when the submitter loses: a rejected job is never finalised, its output
CID is free again and its bond goes to the challenger.
"""

from __future__ import annotations

from typing import Any

from sahara_cli.identity.keys import keccak256
from sahara_cli.node.saps.base import SAP, Call, Event, Method, SAPRevert, slot

ADDRESS = bytes.fromhex("5a4a000000000000000000000000000000000100")
REGISTRY = bytes.fromhex("5a4a000000000000000000000000000000000001")
LICENSING = bytes.fromhex("5a4a000000000000000000000000000000000003")
#: The dispute game SAP: the only caller of ``hold``, ``release`` and ``reject``.
DISPUTE_GAME = bytes.fromhex("5a4a000000000000000000000000000000000102")

#: Job kinds and states.
KIND_TRAIN, KIND_MERGE = 0, 1
PENDING, FINALIZED, CANCELLED, REJECTED = 1, 2, 3, 4
#: Licensing kinds that open an asset's data or weights (hasAccess's ``kind``).
TRAINING_LICENSES = (2, 3, 4)  # Full-Access, Long-term, Partnership
MODEL_KIND = 1
MAX_PARENTS = 4
BPS = 10_000
MAX_CID = 128
MAX_NAME = 64
MAX_METRICS = 1024
MAX_URI = 256

#: Parameters a genesis sets (and governance will): the smallest bond, and how long a
#: job stays open to challenges before it can be finalised.
DEFAULT_MIN_BOND = 10**16  # 0.01 SAH
DEFAULT_CHALLENGE_WINDOW = 86_400
DEV_CHALLENGE_WINDOW = 10

JOB_TUPLE = (
    "(submitter:address,kind:uint8,status:uint8,base:uint256,inputs:uint256[],"
    "weights:uint256[],hparams:bytes32,cid:string,commitment:bytes32,name:string,"
    "uri:string,metrics:bytes32,bond:uint256,upstream_bps:uint256,submitted:uint256,"
    "finalize_after:uint256,asset:uint256)"
)

_SCALARS = (
    "submitter",
    "kind",
    "status",
    "base",
    "hparams",
    "commitment",
    "metrics",
    "bond",
    "upstream_bps",
    "submitted",
    "finalize_after",
    "asset",
)


def genesis_storage(
    *, min_bond: int = DEFAULT_MIN_BOND, challenge_window: int = DEFAULT_CHALLENGE_WINDOW
) -> dict[int, int]:
    """The SAP's storage in block 0: its parameters."""
    return {slot("minBond"): min_bond, slot("challengeWindow"): challenge_window}


def _field(job: int, name: str) -> int:
    return slot("job", job, name)


def _address(value: int) -> str:
    return "0x" + value.to_bytes(32, "big")[12:].hex()


def _uints(data: bytes) -> list[int]:
    from eth_abi.abi import decode

    return list(decode(["uint256[]"], data)[0]) if data else []


def _pack(values: list[int]) -> bytes:
    from eth_abi.abi import encode

    return encode(["uint256[]"], [values])


def _check_shape(
    kind: int,
    parents: list[int],
    inputs: list[int],
    weights: list[int],
    upstream_bps: int,
    cid: str,
    name: str,
    metrics: str,
) -> None:
    """Refuse a malformed job before any state is read."""
    if kind not in (KIND_TRAIN, KIND_MERGE):
        raise SAPRevert("unknown job kind")
    if not inputs:
        raise SAPRevert("a job needs at least one input asset")
    if len(parents) > MAX_PARENTS:
        raise SAPRevert(f"a job has at most {MAX_PARENTS} input assets, the base included")
    if len(set(parents)) != len(parents):
        raise SAPRevert("input asset listed twice")
    if weights and (len(weights) != len(parents) or sum(weights) != BPS or 0 in weights):
        raise SAPRevert("weights: one per input (base first), each > 0, summing to 10000 bps")
    if upstream_bps > BPS:
        raise SAPRevert("upstream share is over 10000 bps")
    if not cid or len(cid.encode()) > MAX_CID:
        raise SAPRevert("output CID is empty or too long")
    if not name or len(name.encode()) > MAX_NAME:
        raise SAPRevert("output name is empty or too long")
    if len(metrics.encode()) > MAX_METRICS:
        raise SAPRevert(f"metrics are over {MAX_METRICS} bytes")


class TrainingRecord(SAP):
    name = "TrainingRecord"
    address = ADDRESS

    def _has_training_access(self, call: Call, asset: int, user: bytes) -> bool:
        who = "0x" + user.hex()
        for kind in TRAINING_LICENSES:
            (ok,) = call.view(
                LICENSING,
                "hasAccess",
                ["uint256", "address", "uint8"],
                [asset, who, kind],
                ["bool"],
            )
            if ok:
                return True
        return False

    def submit(
        self,
        call: Call,
        kind: int,
        base: int,
        inputs: list[int],
        weights: list[int],
        hparams: bytes,
        cid: str,
        commitment: bytes,
        name: str,
        uri: str,
        metrics: str,
        upstream_bps: int,
    ) -> tuple[Any, ...]:
        parents = ([base] if base else []) + list(inputs)
        _check_shape(kind, parents, inputs, weights, upstream_bps, cid, name, metrics)
        if len(uri.encode()) > MAX_URI:
            raise SAPRevert(f"output URI is over {MAX_URI} bytes")
        min_bond = call.read(slot("minBond"))
        if call.value < min_bond:
            raise SAPRevert(f"bond too small: {call.value} wei sent, {min_bond} wei needed")
        cid_key = slot("cid", keccak256(cid.encode()))
        if call.read(cid_key):
            raise SAPRevert("output CID is already in a job")
        (taken,) = call.view(
            REGISTRY, "cidAsset", ["bytes32"], [keccak256(cid.encode())], ["uint256"]
        )
        if taken:
            raise SAPRevert("output CID is already registered")
        for asset in parents:
            (exists,) = call.view(REGISTRY, "exists", ["uint256"], [asset], ["bool"])
            if not exists:
                raise SAPRevert(f"unknown asset {asset}")
            if not self._has_training_access(call, asset, call.sender):
                raise SAPRevert(
                    f"asset {asset} is not licensed to the submitter for training "
                    "(ownership, or a Full-Access, Long-term or Partnership license valid now)"
                )
        job = call.read(slot("jobCount")) + 1
        call.write(slot("jobCount"), job)
        window = call.read(slot("challengeWindow"))
        values = {
            "submitter": int.from_bytes(call.sender, "big"),
            "kind": kind,
            "status": PENDING,
            "base": base,
            "hparams": int.from_bytes(hparams, "big"),
            "commitment": int.from_bytes(commitment, "big"),
            "metrics": int.from_bytes(keccak256(metrics.encode()), "big"),
            "bond": call.value,
            "upstream_bps": upstream_bps,
            "submitted": call.timestamp,
            "finalize_after": call.timestamp + window,
        }
        for key, value in values.items():
            call.write(_field(job, key), value)
        call.write_bytes(_field(job, "inputs"), _pack(list(inputs)))
        if weights:
            call.write_bytes(_field(job, "weights"), _pack(list(weights)))
        call.write_bytes(_field(job, "cid"), cid.encode())
        call.write_bytes(_field(job, "name"), name.encode())
        if uri:
            call.write_bytes(_field(job, "uri"), uri.encode())
        call.write(cid_key, job)
        call.emit(
            SUBMITTED,
            job=job,
            submitter="0x" + call.sender.hex(),
            kind=kind,
            base=base,
            inputs=list(inputs),
            weights=list(weights),
            hparams=hparams,
            cid=cid,
            metrics=metrics,
            bond=call.value,
            finalize_after=values["finalize_after"],
        )
        return (job,)

    def _job(self, call: Call, job: int) -> dict[str, Any]:
        if not 0 < job <= call.read(slot("jobCount")):
            raise SAPRevert("unknown job")
        out: dict[str, Any] = {key: call.read(_field(job, key)) for key in _SCALARS}
        out["inputs"] = _uints(call.read_bytes(_field(job, "inputs")))
        out["weights"] = _uints(call.read_bytes(_field(job, "weights")))
        out["cid"] = call.read_bytes(_field(job, "cid")).decode()
        out["name"] = call.read_bytes(_field(job, "name")).decode()
        out["uri"] = call.read_bytes(_field(job, "uri")).decode()
        return out

    def finalize(self, call: Call, job: int) -> tuple[Any, ...]:
        record = self._job(call, job)
        if record["status"] != PENDING:
            raise SAPRevert(f"job {job} is not pending")
        if call.timestamp < record["finalize_after"]:
            raise SAPRevert(f"job {job} is open to challenges until {record['finalize_after']}")
        if call.read(_field(job, "disputes")):
            raise SAPRevert(f"job {job} has a dispute open")
        parents = ([record["base"]] if record["base"] else []) + record["inputs"]
        # The state first, then the call out (checks, effects, interactions).
        call.write(_field(job, "status"), FINALIZED)
        (asset,) = call.send(
            REGISTRY,
            "registerDerived",
            [
                "address",
                "uint8",
                "string",
                "bytes32",
                "string",
                "string",
                "uint256[]",
                "uint256[]",
                "uint256",
            ],
            [
                _address(record["submitter"]),
                MODEL_KIND,
                record["cid"],
                record["commitment"].to_bytes(32, "big"),
                record["name"],
                record["uri"],
                parents,
                record["weights"],
                record["upstream_bps"],
            ],
            ["uint256"],
        )
        call.write(_field(job, "asset"), asset)
        submitter = record["submitter"].to_bytes(32, "big")[12:]
        call.pay(submitter, record["bond"])
        call.emit(FINALIZED_EVENT, job=job, asset=asset, bond=record["bond"])
        return (asset,)

    def cancel(self, call: Call, job: int) -> tuple[Any, ...]:
        record = self._job(call, job)
        if record["submitter"] != int.from_bytes(call.sender, "big"):
            raise SAPRevert("only the job's submitter can cancel it")
        if record["status"] != PENDING:
            raise SAPRevert(f"job {job} is not pending")
        if call.read(_field(job, "disputes")):
            raise SAPRevert(f"job {job} has a dispute open")
        call.write(_field(job, "status"), CANCELLED)
        call.write(slot("cid", keccak256(record["cid"].encode())), 0)
        call.pay(call.sender, record["bond"])
        call.emit(CANCELLED_EVENT, job=job, bond=record["bond"])
        return ()

    def _held(self, call: Call, job: int) -> dict[str, Any]:
        """The job a dispute-game call is about: only that SAP may call, on a pending job."""
        if call.sender != DISPUTE_GAME:
            raise SAPRevert("only the DisputeGame SAP can hold, release or reject a job")
        record = self._job(call, job)
        if record["status"] != PENDING:
            raise SAPRevert(f"job {job} is not pending")
        return record

    def hold(self, call: Call, job: int) -> tuple[Any, ...]:
        self._held(call, job)
        key = _field(job, "disputes")
        held = call.read(key)
        if not held:
            call.write(_field(job, "held_at"), call.timestamp)
        call.write(key, held + 1)
        return ()

    def release(self, call: Call, job: int) -> tuple[Any, ...]:
        record = self._held(call, job)
        key = _field(job, "disputes")
        held = call.read(key)
        if not held:
            raise SAPRevert(f"job {job} has no dispute open")
        call.write(key, held - 1)
        if held == 1:
            # The window stood still while the job was held: it gets that time back.
            paused = call.timestamp - call.read(_field(job, "held_at"))
            call.write(_field(job, "finalize_after"), record["finalize_after"] + paused)
        return ()

    def reject(self, call: Call, job: int, to: str) -> tuple[Any, ...]:
        record = self._held(call, job)
        call.write(_field(job, "status"), REJECTED)
        call.write(_field(job, "disputes"), 0)
        call.write(slot("cid", keccak256(record["cid"].encode())), 0)
        call.pay(bytes.fromhex(to[2:]), record["bond"])
        call.emit(REJECTED_EVENT, job=job, to=to, bond=record["bond"])
        return ()

    def get_job(self, call: Call, job: int) -> tuple[Any, ...]:
        r = self._job(call, job)
        return (
            (
                _address(r["submitter"]),
                r["kind"],
                r["status"],
                r["base"],
                r["inputs"],
                r["weights"],
                r["hparams"].to_bytes(32, "big"),
                r["cid"],
                r["commitment"].to_bytes(32, "big"),
                r["name"],
                r["uri"],
                r["metrics"].to_bytes(32, "big"),
                r["bond"],
                r["upstream_bps"],
                r["submitted"],
                r["finalize_after"],
                r["asset"],
            ),
        )

    def job_count(self, call: Call) -> tuple[Any, ...]:
        return (call.read(slot("jobCount")),)

    def parameters(self, call: Call) -> tuple[Any, ...]:
        return (call.read(slot("minBond")), call.read(slot("challengeWindow")))


SUBMITTED = Event(
    "JobSubmitted",
    (
        ("job", "uint256", True),
        ("submitter", "address", True),
        ("kind", "uint8", True),
        ("base", "uint256", False),
        ("inputs", "uint256[]", False),
        ("weights", "uint256[]", False),
        ("hparams", "bytes32", False),
        ("cid", "string", False),
        ("metrics", "string", False),
        ("bond", "uint256", False),
        ("finalize_after", "uint256", False),
    ),
)
FINALIZED_EVENT = Event(
    "JobFinalized",
    (("job", "uint256", True), ("asset", "uint256", True), ("bond", "uint256", False)),
)
CANCELLED_EVENT = Event("JobCancelled", (("job", "uint256", True), ("bond", "uint256", False)))
REJECTED_EVENT = Event(
    "JobRejected",
    (("job", "uint256", True), ("to", "address", True), ("bond", "uint256", False)),
)

TrainingRecord.methods = (
    Method(
        "submit",
        (
            ("kind", "uint8"),
            ("base", "uint256"),
            ("inputs", "uint256[]"),
            ("weights", "uint256[]"),
            ("hparams", "bytes32"),
            ("cid", "string"),
            ("commitment", "bytes32"),
            ("name", "string"),
            ("uri", "string"),
            ("metrics", "string"),
            ("upstream_bps", "uint256"),
        ),
        (("job", "uint256"),),
        TrainingRecord.submit,
        "payable",
    ),
    Method("finalize", (("job", "uint256"),), (("asset", "uint256"),), TrainingRecord.finalize),
    Method("cancel", (("job", "uint256"),), (), TrainingRecord.cancel),
    Method("hold", (("job", "uint256"),), (), TrainingRecord.hold),
    Method("release", (("job", "uint256"),), (), TrainingRecord.release),
    Method("reject", (("job", "uint256"), ("to", "address")), (), TrainingRecord.reject),
    Method("getJob", (("job", "uint256"),), (("", JOB_TUPLE),), TrainingRecord.get_job, "view"),
    Method("jobCount", (), (("", "uint256"),), TrainingRecord.job_count, "view"),
    Method(
        "parameters",
        (),
        (("min_bond", "uint256"), ("challenge_window", "uint256")),
        TrainingRecord.parameters,
        "view",
    ),
)
TrainingRecord.events = (SUBMITTED, FINALIZED_EVENT, CANCELLED_EVENT, REJECTED_EVENT)
