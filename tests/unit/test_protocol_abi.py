"""The ABI codec of the protocol contracts, checked against eth_abi and eth_utils directly."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils import keccak

from sahara_cli.errors import AddressInvalid
from sahara_cli.protocol.abi import ContractABI, abi_type, from_python, signature, to_python
from sahara_cli.protocol.artifacts import NAMES

HOLDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONTRIBUTOR = {
    "name": "contributors",
    "type": "tuple[]",
    "components": [
        {"name": "account", "type": "address"},
        {"name": "weight_bps", "type": "uint256"},
    ],
}


def test_types_and_signatures_of_tuples() -> None:
    assert abi_type(CONTRIBUTOR) == "(address,uint256)[]"
    registry = ContractABI("AssetRegistry")
    entry = registry.functions["register"]
    assert signature(entry) == (
        "register(uint8,string,bytes32,string,string,uint256[],(address,uint256)[],uint256)"
    )


def test_python_values_both_ways() -> None:
    raw = [(HOLDER.lower(), 7000)]
    assert to_python(CONTRIBUTOR, raw) == [{"account": HOLDER, "weight_bps": 7000}]
    assert from_python(CONTRIBUTOR, [{"account": HOLDER, "weight_bps": 1}]) == [(HOLDER, 1)]
    assert from_python(CONTRIBUTOR, [(HOLDER.lower(), 2)]) == [(HOLDER, 2)]


def test_a_mistyped_checksum_is_refused_before_encoding() -> None:
    licensing = ContractABI("Licensing")
    typo = HOLDER[:-2] + "c8"  # one letter of the checksum in the wrong case
    with pytest.raises(AddressInvalid):
        licensing.encode("hasAccess", 1, typo, 0)


def test_encode_matches_eth_abi() -> None:
    licensing = ContractABI("Licensing")
    data = licensing.encode("hasAccess", 5, HOLDER, 1)
    selector = keccak(text="hasAccess(uint256,address,uint8)")[:4]
    assert data == selector + encode(["uint256", "address", "uint8"], [5, HOLDER, 1])


def test_decode_output_of_a_struct() -> None:
    registry = ContractABI("AssetRegistry")
    [output] = registry.functions["getAsset"]["outputs"]
    values = (HOLDER.lower(), 1, "bafy", b"\x01" * 32, "n", "u", HOLDER.lower(), 99, [3, 4])
    raw = encode([abi_type(output)], [values])
    decoded = registry.decode_output("getAsset", raw)
    assert decoded["owner"] == HOLDER and decoded["parents"] == [3, 4]
    assert decoded["commitment"] == b"\x01" * 32
    assert registry.decode_output("count", encode(["uint256"], [12])) == 12


def log_of(abi: ContractABI, event: str, values: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log of ``event`` with ``values``, made with eth_abi alone."""
    entry = abi.event_abi(event)
    topics = [abi.topic(event)]
    plain_types, plain_values = [], []
    for param in entry["inputs"]:
        if param["indexed"]:
            topics.append("0x" + encode([abi_type(param)], [values[param["name"]]]).hex())
        else:
            plain_types.append(abi_type(param))
            plain_values.append(values[param["name"]])
    return {
        "address": "0x5a4a000000000000000000000000000000000003",
        "topics": topics,
        "data": "0x" + encode(plain_types, plain_values).hex(),
        "blockNumber": "0x2a",
        "transactionHash": "0x" + "ab" * 32,
        "logIndex": "0x3",
    }


def test_decode_event_keeps_the_abi_order_of_arguments() -> None:
    licensing = ContractABI("Licensing")
    values = {
        "license": 9,
        "offer": 2,
        "holder": HOLDER.lower(),
        "asset": 1,
        "kind": 1,
        "price": 2**200,
        "expiry": 2**256 - 1,
        "calls": 10,
    }
    event = licensing.decode_event(log_of(licensing, "Licensed", values))
    assert event is not None
    assert event.name == "Licensed"
    assert event.address == "0x5a4A000000000000000000000000000000000003"
    assert (event.block, event.log_index, event.tx_hash) == (42, 3, "0x" + "ab" * 32)
    assert list(event.args) == list(values)
    assert event.args == {**values, "holder": HOLDER}


def test_logs_of_other_events_are_not_decoded() -> None:
    licensing, receipts = ContractABI("Licensing"), ContractABI("Receipts")
    foreign = log_of(receipts, "Locked", {"token_id": 1})
    assert licensing.decode_event(foreign) is None
    assert licensing.decode_event({**foreign, "topics": []}) is None


@pytest.mark.parametrize("name", NAMES)
def test_every_event_of_every_contract_round_trips(name: str) -> None:
    """Each event decodes from a log built with eth_abi, whatever its argument types."""
    abi = ContractABI(name)
    samples = {
        "address": HOLDER.lower(),
        "bool": True,
        "bytes32": b"\x05" * 32,
        "string": "text",
        "uint8": 2,
        "uint256": 12345,
        "uint256[]": [1, 2],
        "(address,uint256)[]": [(HOLDER.lower(), 10)],
    }
    assert abi.event_names
    for event in abi.event_names:
        inputs = abi.event_abi(event)["inputs"]
        values = {p["name"]: samples[abi_type(p)] for p in inputs}
        decoded = abi.decode_event(log_of(abi, event, values))
        assert decoded is not None and decoded.name == event
        assert set(decoded.args) == set(values)
