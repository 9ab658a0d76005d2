"""The protocol's event log: what to ask the index for, and the typed answer.

Every event of every protocol contract and SAP is kept by the client-side index
(:class:`~sahara_cli.protocol.index.ProtocolIndex`); :class:`EventQuery` picks some of
them (by contract, event, asset, address and block range) and :func:`find_events` returns
them as an :class:`EventsResult`, newest first unless asked for the oldest first.

Arguments are named as in the contracts' ABIs, following the JSON conventions: an id gets
``_id`` (``asset`` -> ``asset_id``, Provenance's ``id`` -> ``record_id``), an amount in
wei becomes ``x_wei`` with ``x_sah``, a time ``x_at`` (ISO 8601 UTC, ``null`` for never),
a duration ``duration_s``, a count of calls says which (``calls_bought``...); addresses
are checksummed, ``bytes32`` values 0x-hex, asset kinds, job kinds and license types
their names. The SAPs' events follow the same rules: a job's ``job`` is ``job_id``, its
``base`` and ``inputs`` ``base_asset_id`` and ``input_asset_ids``, its ``weights``
``weights_bps``, its ``bond`` ``bond_wei``; an answer's ``fee`` is ``fee_wei``.

This module is light (pydantic, the result conventions, the committed ABIs): the index
and the node are imported only by :func:`find_events`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sahara_cli.errors import ProtocolInvalidArgument
from sahara_cli.protocol import artifacts
from sahara_cli.results import Address, Hash32, Result, Timestamp
from sahara_cli.units import format_sah

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Protocol

#: The most events one query returns.
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 50
#: Ids named after the thing they number.
_ID_NAMES = {"asset": "asset_id", "offer": "offer_id", "license": "license_id"}
#: What a ``calls`` argument counts, by event.
_CALLS = {
    "Licensed": "calls_bought",
    "Metered": "calls_metered",
    "Refunded": "calls_refunded",
    "InferenceRecorded": "calls_metered",
}
_ASSET_KINDS = ("dataset", "model", "agent", "compute")
_LICENSE_TYPES = {1: "api", 2: "full", 3: "long-term", 4: "partnership"}
_JOB_KINDS = ("train", "merge")
_FOREVER = 2**256 - 1
#: 9999-12-31 23:59:59 UTC: later times (and "forever") are shown as never.
_LAST_TIME = 253_402_300_799
_ZERO_ADDRESS = "0x" + "00" * 20


# -- the catalogue -------------------------------------------------------------------


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """Every deployed contract's and SAP's name and the ABI entries of the events it
    emits."""
    return {name: list(entries) for name, entries in _catalogue().items()}


@cache
def _catalogue() -> dict[str, tuple[dict[str, Any], ...]]:
    return {
        name: tuple(e for e in artifacts.artifact(name)["abi"] if e["type"] == "event")
        for name in (*artifacts.NAMES, *artifacts.sap_addresses())
    }


@cache
def _inputs(contract: str, event: str) -> dict[str, dict[str, Any]]:
    """The ABI inputs of one event by argument name (none for an unknown event)."""
    for entry in _catalogue().get(contract, ()):
        if entry["name"] == event:
            return {i["name"]: i for i in entry["inputs"]}
    return {}


def event_names() -> dict[str, list[str]]:
    """Contract name to the names of its events."""
    return {name: [e["name"] for e in entries] for name, entries in catalogue().items()}


# -- the query -----------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    """Which events to return; every filter left at None matches every event.

    ``address`` matches an event that has it as any address argument (an owner, holder,
    payer, contributor, sender or receiver...); ``asset_id`` one whose asset is that id:
    its ``asset`` argument, or the asset of the offer, license or receipt it names.
    Blocks are inclusive. ``oldest_first``: in chain order; by default the newest first.
    """

    contract: str | None = None
    event: str | None = None
    asset_id: int | None = None
    address: str | None = None
    from_block: int | None = None
    to_block: int | None = None
    limit: int = DEFAULT_LIMIT
    oldest_first: bool = False

    def checked(self) -> EventQuery:
        """The query with names spelled as the contracts spell them; a bad one raises
        :class:`ProtocolInvalidArgument` naming the choices."""
        from sahara_cli.identity.keys import parse_address

        names = event_names()
        contract = self.contract
        if contract is not None:
            found = [n for n in names if n.lower() == contract.strip().lower()]
            if not found:
                raise ProtocolInvalidArgument(
                    f"no protocol contract named {contract!r}",
                    hint=f"Use one of: {', '.join(names)}.",
                )
            contract = found[0]
        event = self.event
        if event is not None:
            known = names[contract] if contract else [e for n in names.values() for e in n]
            found = [e for e in known if e.lower() == event.strip().lower()]
            if not found:
                where = f"the {contract} contract" if contract else "the protocol contracts"
                raise ProtocolInvalidArgument(
                    f"{where} emit no event named {event!r}",
                    hint=f"Use one of: {', '.join(dict.fromkeys(known))}.",
                )
            event = found[0]
        for name, value in (("from block", self.from_block), ("to block", self.to_block)):
            if value is not None and value < 0:
                raise ProtocolInvalidArgument(f"the {name} must be 0 or more, got {value}")
        if (
            self.from_block is not None
            and self.to_block is not None
            and self.from_block > self.to_block
        ):
            raise ProtocolInvalidArgument(
                f"the block range {self.from_block}..{self.to_block} is empty",
                hint="Give --from-block at most --to-block.",
            )
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ProtocolInvalidArgument(f"the limit must be 1 to {MAX_LIMIT}, got {self.limit}")
        if self.asset_id is not None and self.asset_id < 1:
            raise ProtocolInvalidArgument(f"an asset id is 1 or more, got {self.asset_id}")
        address = parse_address(self.address) if self.address is not None else None
        return EventQuery(
            contract,
            event,
            self.asset_id,
            address,
            self.from_block,
            self.to_block,
            self.limit,
            self.oldest_first,
        )


@dataclass(frozen=True)
class LoggedEvent:
    """One event as the index keeps it: arguments as decoded (ints, hex, addresses)."""

    contract: str
    event: str
    address: str
    block: int
    tx_hash: str
    log_index: int
    time: int
    args: dict[str, Any]


# -- the result ----------------------------------------------------------------------


class ProtocolEvent(Result):
    """One event a protocol contract emitted."""

    contract: str = Field(description="the contract's name: AssetRegistry, Licensing...")
    event: str = Field(description="the event's name: Registered, Licensed...")
    contract_address: Address
    block: int
    tx_hash: Hash32
    log_index: int = Field(description="the log's position in its block")
    time: Timestamp = Field(description="the block's time")
    args: dict[str, Any] = Field(
        description="the event's arguments, named as in the ABI with the JSON conventions"
    )


class EventsResult(Result):
    """The events that matched a query (``sahara events``)."""

    contract: str | None = None
    event: str | None = None
    asset_id: int | None = None
    address: Address | None = None
    from_block: int | None = None
    to_block: int | None = None
    order: Literal["newest_first", "oldest_first"] = "newest_first"
    limit: int
    block: int | None = Field(description="the last block the index has read")
    count: int
    more: bool = Field(description="whether more events matched than the limit let through")
    events: list[ProtocolEvent]


def event_result(logged: LoggedEvent) -> ProtocolEvent:
    return ProtocolEvent(
        contract=logged.contract,
        event=logged.event,
        contract_address=logged.address,
        block=logged.block,
        tx_hash=logged.tx_hash,
        log_index=logged.log_index,
        time=logged.time,
        args=arguments(logged.contract, logged.event, logged.args),
    )


def events_result(
    query: EventQuery, found: list[LoggedEvent], *, block: int | None, more: bool
) -> EventsResult:
    return EventsResult(
        contract=query.contract,
        event=query.event,
        asset_id=query.asset_id,
        address=query.address,
        from_block=query.from_block,
        to_block=query.to_block,
        order="oldest_first" if query.oldest_first else "newest_first",
        limit=query.limit,
        block=block,
        count=len(found),
        more=more,
        events=[event_result(e) for e in found],
    )


def find_events(
    proto: Protocol,
    home_root: Path,
    query: EventQuery,
    progress: Callable[[str], None] | None = None,
) -> EventsResult:
    """The events ``query`` asks for, from the home's index of ``proto``'s chain (brought
    up to date with the chain first)."""
    from sahara_cli.protocol.index import ProtocolIndex

    query = query.checked()
    with ProtocolIndex.for_home(proto, home_root) as index:
        index.sync(progress)
        found, more = index.events(query)
        return events_result(query, found, block=index.block, more=more)


# -- arguments -----------------------------------------------------------------------


def arguments(contract: str, event: str, raw: dict[str, Any]) -> dict[str, Any]:
    """An event's decoded arguments as JSON, following the result conventions."""
    types = _inputs(contract, event)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        param = types.get(name, {"type": ""})
        convert = _CONVERT.get(name)
        if convert is not None:
            out.update(convert(event, name, value))
        else:
            out[name] = _plain(param, value)
    return out


def _wei(_event: str, name: str, value: Any) -> dict[str, Any]:
    return {f"{name}_wei": str(int(value)), f"{name}_sah": format_sah(int(value))}


def _kind(event: str, _name: str, value: Any) -> dict[str, Any]:
    number = int(value)
    if event == "Registered":
        known = 0 <= number < len(_ASSET_KINDS)
        return {"kind": _ASSET_KINDS[number] if known else str(number)}
    if event == "JobSubmitted":
        known = 0 <= number < len(_JOB_KINDS)
        return {"kind": _JOB_KINDS[number] if known else str(number)}
    return {"license_type": _LICENSE_TYPES.get(number, str(number))}


def _renamed(key: str, make: Callable[[Any], Any]) -> Callable[[str, str, Any], dict[str, Any]]:
    return lambda _event, _name, value: {key: make(value)}


def _plain(param: dict[str, Any], value: Any) -> Any:
    kind: str = param.get("type", "")
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_plain(element, v) for v in value]
    if kind == "tuple" and isinstance(value, dict):
        return {c["name"]: _plain(c, value[c["name"]]) for c in param["components"]}
    if kind == "address":
        return _address(value)
    if kind.startswith("bytes") and isinstance(value, bytes):
        return "0x" + value.hex()
    if kind.startswith("uint") or kind.startswith("int"):
        return _number(value)
    return value


def _number(value: Any) -> int | str:
    """An integer; one too large for a JSON number to keep exactly is decimal text."""
    number = int(value)
    return number if abs(number) <= 2**53 else str(number)


def _time(value: int) -> str | None:
    from sahara_cli.results import iso_utc

    if value == _FOREVER or value > _LAST_TIME:
        return None
    return iso_utc(datetime.fromtimestamp(value, UTC))


def _is_zero(value: Any) -> bool:
    return str(value).lower() == _ZERO_ADDRESS


def _address(value: Any) -> str:
    from sahara_cli.identity.keys import to_checksum_address

    return to_checksum_address(str(value))


#: The arguments that change name or form in JSON, by their ABI name.
_CONVERT: dict[str, Callable[[str, str, Any], dict[str, Any]]] = {
    "price": _wei,
    "amount": _wei,
    "revenue": _wei,
    "kind": _kind,
    "calls": lambda event, _name, value: {_CALLS.get(event, "calls_count"): _number(value)},
    "asset": _renamed("asset_id", int),
    "offer": _renamed("offer_id", int),
    "license": _renamed("license_id", int),
    "fee": _wei,
    "bond": _wei,
    "id": _renamed("record_id", int),  # the record id of Provenance and InferenceRecord
    "job": _renamed("job_id", int),
    "base": _renamed("base_asset_id", lambda v: int(v) or None),
    "inputs": _renamed("input_asset_ids", lambda v: [int(i) for i in v]),
    "weights": _renamed("weights_bps", lambda v: [int(i) for i in v]),
    "finalize_after": _renamed("finalize_at", lambda v: _time(int(v))),
    "parents": _renamed("parent_asset_ids", lambda v: [int(i) for i in v]),
    "sources": _renamed("source_asset_ids", lambda v: [int(i) for i in v]),
    "expiry": _renamed("expires_at", lambda v: _time(int(v))),
    "valid_until": _renamed("offer_expires_at", lambda v: _time(int(v)) if int(v) else None),
    "duration": _renamed("duration_s", _number),
    "partner": _renamed("partner", lambda v: None if _is_zero(v) else _address(v)),
}
