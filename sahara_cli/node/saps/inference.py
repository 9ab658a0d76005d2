"""The inference SAP: commitments of served answers, and the metering of their calls.

One record per answer: the asset that answered (an agent or a model), the digest of the
answer's provenance document (kept off chain by whoever served it), the hashes of the
input and the output, the assets it used, and the API license it was served under. With
``calls`` > 0 the record also meters those calls on the license through the Licensing
contract, on behalf of the sender, who must be the asset's meter: the prepaid price
moves to the asset's revenue and is shared with the sources through Attribution, in the
same transaction as the record. The fee is kept in the record.

It takes over the agents' records from the ``Provenance`` contract, whose records stay
where they are and readable.
"""

from __future__ import annotations

from typing import Any

from sahara_cli.node.saps.base import SAP, Call, Event, Method, SAPRevert, slot

ADDRESS = bytes.fromhex("5a4a000000000000000000000000000000000101")
REGISTRY = bytes.fromhex("5a4a000000000000000000000000000000000001")
LICENSING = bytes.fromhex("5a4a000000000000000000000000000000000003")
MAX_SOURCES = 4
API = 1

RECORD_TUPLE = (
    "(recorder:address,asset:uint256,digest:bytes32,input_hash:bytes32,"
    "output_hash:bytes32,license:uint256,calls:uint256,fee:uint256,time:uint256)"
)
LICENSE_TYPES = [
    "(uint256,uint256,address,uint8,uint256,uint256,uint256,uint256,uint256,bytes32,uint256)"
]


def _field(record: int, name: str) -> int:
    return slot("record", record, name)


class InferenceRecord(SAP):
    name = "InferenceRecord"
    address = ADDRESS

    def record(
        self,
        call: Call,
        asset: int,
        digest: bytes,
        input_hash: bytes,
        output_hash: bytes,
        sources: list[int],
        license_id: int,
        calls: int,
    ) -> tuple[Any, ...]:
        if digest == b"\0" * 32:
            raise SAPRevert("digest is empty")
        if len(sources) > MAX_SOURCES:
            raise SAPRevert(f"at most {MAX_SOURCES} source assets")
        for item in [asset, *sources]:
            (exists,) = call.view(REGISTRY, "exists", ["uint256"], [item], ["bool"])
            if not exists:
                raise SAPRevert(f"unknown asset {item}" if item != asset else "unknown asset")
        fee = 0
        if license_id and calls:
            # Licensing checks the license's asset, kind, prepaid calls and the meter.
            (fee,) = call.send(
                LICENSING,
                "meterFor",
                ["address", "uint256", "uint256", "uint256", "uint256[]"],
                ["0x" + call.sender.hex(), asset, license_id, calls, list(sources)],
                ["uint256"],
            )
        elif license_id:
            (lic,) = call.view(LICENSING, "getLicense", ["uint256"], [license_id], LICENSE_TYPES)
            if lic[1] != asset:
                raise SAPRevert("the license is for another asset")
        elif calls:
            raise SAPRevert("metered calls need an API license")
        if asset >= 1 << 128 or license_id >= 1 << 128 or calls >= 1 << 32:
            raise SAPRevert("asset, license or calls out of range")
        record_id = call.read(slot("recordCount")) + 1
        call.write(slot("recordCount"), record_id)
        # Packed: recorder | time | calls, then asset | license; zero words stay unwritten.
        head = int.from_bytes(call.sender, "big") << 96 | call.timestamp << 32 | calls
        call.write(_field(record_id, "head"), head)
        call.write(_field(record_id, "ids"), asset << 128 | license_id)
        for key, value in (
            ("digest", digest),
            ("input_hash", input_hash),
            ("output_hash", output_hash),
            ("fee", fee.to_bytes(32, "big")),
        ):
            if value != b"\0" * 32:
                call.write(_field(record_id, key), int.from_bytes(value, "big"))
        call.emit(
            RECORDED,
            id=record_id,
            asset=asset,
            recorder="0x" + call.sender.hex(),
            digest=digest,
            input_hash=input_hash,
            output_hash=output_hash,
            sources=list(sources),
            license=license_id,
            calls=calls,
            fee=fee,
        )
        return (record_id,)

    def get_record(self, call: Call, record_id: int) -> tuple[Any, ...]:
        if not 0 < record_id <= call.read(slot("recordCount")):
            raise SAPRevert("unknown record")
        head = call.read(_field(record_id, "head"))
        ids = call.read(_field(record_id, "ids"))
        word = {k: call.read(_field(record_id, k)) for k in ("digest", "input_hash", "output_hash")}
        return (
            (
                "0x" + (head >> 96).to_bytes(20, "big").hex(),
                ids >> 128,
                word["digest"].to_bytes(32, "big"),
                word["input_hash"].to_bytes(32, "big"),
                word["output_hash"].to_bytes(32, "big"),
                ids & ((1 << 128) - 1),
                head & 0xFFFFFFFF,
                call.read(_field(record_id, "fee")),
                (head >> 32) & 0xFFFFFFFFFFFFFFFF,
            ),
        )

    def record_count(self, call: Call) -> tuple[Any, ...]:
        return (call.read(slot("recordCount")),)


RECORDED = Event(
    "InferenceRecorded",
    (
        ("id", "uint256", True),
        ("asset", "uint256", True),
        ("recorder", "address", True),
        ("digest", "bytes32", False),
        ("input_hash", "bytes32", False),
        ("output_hash", "bytes32", False),
        ("sources", "uint256[]", False),
        ("license", "uint256", False),
        ("calls", "uint256", False),
        ("fee", "uint256", False),
    ),
)

InferenceRecord.methods = (
    Method(
        "record",
        (
            ("asset", "uint256"),
            ("digest", "bytes32"),
            ("input_hash", "bytes32"),
            ("output_hash", "bytes32"),
            ("sources", "uint256[]"),
            ("license_id", "uint256"),
            ("calls", "uint256"),
        ),
        (("id", "uint256"),),
        InferenceRecord.record,
    ),
    Method(
        "getRecord", (("id", "uint256"),), (("", RECORD_TUPLE),), InferenceRecord.get_record, "view"
    ),
    Method("recordCount", (), (("", "uint256"),), InferenceRecord.record_count, "view"),
)
InferenceRecord.events = (RECORDED,)
