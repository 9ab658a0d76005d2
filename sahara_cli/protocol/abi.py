"""The ABI codec of the protocol contracts: calls, return values and event logs.

:class:`ContractABI` knows one contract's ABI and nothing else: it encodes a call's data,
decodes what a function returned, and decodes the logs the contract emitted into
:class:`~sahara_cli.protocol.values.Event` values. It never talks to a node; the
per-contract clients (``protocol/clients/``) do, through it.

Python values on both sides: addresses are checksummed strings (a mixed-case address
given to a contract must carry its EIP-55 checksum), tuples are dicts keyed by component
name, integers are ints and ``bytes32`` are bytes.
"""

from __future__ import annotations

from typing import Any

from sahara_cli.identity.keys import keccak256, parse_address, to_checksum_address
from sahara_cli.protocol import artifacts
from sahara_cli.protocol.values import Event


def abi_type(param: dict[str, Any]) -> str:
    """The canonical type of an ABI parameter: ``uint256``, ``(address,uint256)[]``."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def signature(entry: dict[str, Any]) -> str:
    """``name(type,type,...)``: what a selector or an event topic is the hash of."""
    return f"{entry['name']}({','.join(abi_type(i) for i in entry['inputs'])})"


def to_python(param: dict[str, Any], value: Any) -> Any:
    """A decoded ABI value as Python: checksummed addresses, tuples as dicts."""
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [to_python(element, v) for v in value]
    if kind == "tuple":
        return {c["name"]: to_python(c, v) for c, v in zip(param["components"], value, strict=True)}
    if kind == "address":
        return to_checksum_address(value)
    return value


def from_python(param: dict[str, Any], value: Any) -> Any:
    """A Python value ready for the encoder; tuples may be given as dicts or sequences."""
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [from_python(element, v) for v in value]
    if kind == "tuple":
        if isinstance(value, dict):
            return tuple(from_python(c, value[c["name"]]) for c in param["components"])
        return tuple(from_python(c, v) for c, v in zip(param["components"], value, strict=True))
    if kind == "address" and isinstance(value, str):
        # Addresses reach contracts from people too: a mixed-case one must carry its
        # EIP-55 checksum (identity.bad_address), never be sent with a typo in it.
        return parse_address(value, f"{param.get('name') or 'address'} argument")
    return value


class ContractABI:
    """One contract's ABI: encode calls, decode results and logs (no node involved)."""

    def __init__(self, name: str, abi: list[dict[str, Any]] | None = None) -> None:
        self.name = name
        self.abi: list[dict[str, Any]] = abi if abi is not None else artifacts.artifact(name)["abi"]
        self.functions = {e["name"]: e for e in self.abi if e["type"] == "function"}
        #: Event ABI entries by topic 0 (the hash of the event's signature).
        self.events: dict[bytes, dict[str, Any]] = {
            keccak256(signature(e).encode()): e for e in self.abi if e["type"] == "event"
        }

    @property
    def event_names(self) -> list[str]:
        """The names of the events this contract emits, in ABI order."""
        return [entry["name"] for entry in self.events.values()]

    def event_abi(self, event: str) -> dict[str, Any]:
        for entry in self.events.values():
            if entry["name"] == event:
                return entry
        raise KeyError(event)

    def topic(self, event: str) -> str:
        """Topic 0 of ``event`` as 0x-hex, for an ``eth_getLogs`` filter."""
        for topic, entry in self.events.items():
            if entry["name"] == event:
                return "0x" + topic.hex()
        raise KeyError(event)

    def encode(self, function: str, *args: Any) -> bytes:
        """The call data of ``function(*args)``: selector and encoded arguments."""
        from eth_abi.abi import encode

        entry = self.functions[function]
        types = [abi_type(i) for i in entry["inputs"]]
        selector = keccak256(f"{function}({','.join(types)})".encode())[:4]
        values = [from_python(i, a) for i, a in zip(entry["inputs"], args, strict=True)]
        return selector + encode(types, values)

    def decode_output(self, function: str, raw: bytes) -> Any:
        """What ``function`` returned: one value, or a list when it returns several."""
        from eth_abi.abi import decode

        outputs = self.functions[function]["outputs"]
        values = decode([abi_type(o) for o in outputs], raw)
        converted = [to_python(o, v) for o, v in zip(outputs, values, strict=True)]
        return converted[0] if len(converted) == 1 else converted

    def decode_event(self, log: dict[str, Any]) -> Event | None:
        """A JSON-RPC log as an :class:`Event`; None when it is not one of this ABI's."""
        from eth_abi.abi import decode

        topics = log.get("topics") or []
        if not topics:
            return None
        entry = self.events.get(bytes.fromhex(topics[0][2:]))
        if entry is None:
            return None
        indexed = [i for i in entry["inputs"] if i["indexed"]]
        plain = [i for i in entry["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=False):
            (value,) = decode([abi_type(param)], bytes.fromhex(topic[2:]))
            args[param["name"]] = to_python(param, value)
        values = decode([abi_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
        for param, value in zip(plain, values, strict=True):
            args[param["name"]] = to_python(param, value)
        # Keep the ABI's order of arguments, indexed or not.
        ordered = {i["name"]: args[i["name"]] for i in entry["inputs"] if i["name"] in args}
        return Event(
            name=entry["name"],
            address=to_checksum_address(log["address"]),
            args=ordered,
            block=int(log["blockNumber"], 16),
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
        )
