"""The values the protocol clients take and return, and the rules of their arguments.

Plain frozen dataclasses (the typed results of the commands are built from them) and the
constants the contracts share: asset kinds, license types, basis points, "forever".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import ProtocolError, ProtocolInvalidArgument
from sahara_cli.units import format_sah

if TYPE_CHECKING:
    from sahara_cli.results import Transaction

ASSET_KINDS = ("dataset", "model", "agent", "compute")
#: License types by CLI name; 0 means "any" in ``hasAccess``.
LICENSE_TYPES = {"api": 1, "full": 2, "long-term": 3, "partnership": 4}
LICENSE_NAMES = {v: k for k, v in LICENSE_TYPES.items()}
BPS = 10_000
FOREVER = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20


# -- values --------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    name: str
    address: str
    args: dict[str, Any]
    block: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    hash: str
    block: int
    gas_used: int
    fee: int
    events: list[Event] = field(default_factory=list)

    def event(self, name: str) -> Event:
        for event in self.events:
            if event.name == name:
                return event
        raise ProtocolError(f"transaction {self.hash} emitted no {name} event")

    def transaction(self) -> Transaction:
        """This mined write as the ``tx`` object of a typed result (a write that reverted
        raised instead of returning)."""
        from sahara_cli.results import Transaction

        return Transaction(
            hash=self.hash, block=self.block, gas_used=self.gas_used, fee_wei=self.fee
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "block": self.block,
            "gas_used": self.gas_used,
            "fee": str(self.fee),
            "fee_sah": format_sah(self.fee),
        }


@dataclass(frozen=True)
class Contribution:
    account: str
    weight_bps: int


@dataclass(frozen=True)
class Asset:
    id: int
    owner: str
    kind: str
    cid: str
    commitment: str
    name: str
    uri: str
    meter: str
    created: int
    parents: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _priced_dict(self: Any) -> dict[str, Any]:
    """Fields as JSON, with the price in wei as text (it can exceed 2^53) and in SAH."""
    out = {k: getattr(self, k) for k in self.__dataclass_fields__}
    out["price"] = str(self.price)
    out["price_sah"] = format_sah(self.price)
    return out


@dataclass(frozen=True)
class Offer:
    id: int
    asset: int
    type: str
    price: int
    duration: int
    terms: str
    share_bps: int
    partner: str | None
    valid_until: int
    paused: bool
    sold: int
    created: int

    to_dict = _priced_dict


@dataclass(frozen=True)
class License:
    id: int
    offer: int
    asset: int
    holder: str
    type: str
    price: int
    start: int
    expiry: int | None
    calls: int
    used: int
    terms: str
    share_bps: int

    to_dict = _priced_dict


@dataclass(frozen=True)
class ProvenanceRecord:
    """An answer's provenance digest as the Provenance contract keeps it."""

    id: int
    recorder: str
    asset: int
    digest: str
    license: int
    time: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Receipt:
    id: int
    holder: str
    asset: int
    role: str
    share_bps: int
    minted: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# -- arguments ---------------------------------------------------------------------


def asset_kind(kind: str | int) -> int:
    """The registry's number of an asset kind given by name (``model``) or number."""
    if isinstance(kind, int):
        return kind
    try:
        return ASSET_KINDS.index(kind)
    except ValueError:
        raise ProtocolInvalidArgument(
            f"unknown asset kind {kind!r}", hint=f"Use one of: {', '.join(ASSET_KINDS)}."
        ) from None


def license_type(name: str | int) -> int:
    """The Licensing contract's number of a license type (``api``); ``any`` is 0."""
    if isinstance(name, int):
        return name
    if name in ("any", ""):
        return 0
    try:
        return LICENSE_TYPES[name]
    except KeyError:
        raise ProtocolInvalidArgument(
            f"unknown license type {name!r}", hint=f"Use one of: {', '.join(LICENSE_TYPES)}."
        ) from None


#: Source assets one payment or record can name (MAX_SOURCES in the contracts).
MAX_SOURCES = 4


def sources_arg(sources: Sequence[int]) -> list[int]:
    """Source asset ids as a contract takes them (at most :data:`MAX_SOURCES`)."""
    ids = [int(s) for s in sources]
    if len(ids) > MAX_SOURCES:
        raise ProtocolInvalidArgument(
            f"{len(ids)} source assets given; a payment or record names at most {MAX_SOURCES}"
        )
    return ids


def hex32(value: bytes | str) -> bytes:
    """32 bytes given as bytes or 0x-hex (a commitment, digest or terms hash)."""
    if isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    if len(value) != 32:
        raise ProtocolInvalidArgument(f"expected 32 bytes, got {len(value)}")
    return value
