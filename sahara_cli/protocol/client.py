"""Typed clients of the protocol contracts: build, sign, send, wait, decode.

``Protocol(node)`` wraps the five contracts at their genesis addresses. Reads are
``eth_call``; writes are EIP-1559 transactions signed by a Sahara ID, sent after an
``eth_estimateGas`` that turns a revert into a :class:`SaharaError` before anything is
spent. Every write returns a :class:`TxResult` with the decoded events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sahara_cli.errors import (
    AssetNotFound,
    LicenseNotFound,
    NodeRPCError,
    NotPermitted,
    OfferClosed,
    OfferNotFound,
    ProtocolError,
    ProtocolInsufficientFunds,
    ProtocolInvalidArgument,
    ProtocolNotDeployed,
    ProtocolReverted,
    ReceiptNotFound,
    RecordNotFound,
    SaharaError,
)
from sahara_cli.identity.keys import Signer, keccak256, parse_address, to_checksum_address
from sahara_cli.node.client import NodeClient, format_sah
from sahara_cli.protocol import artifacts

ASSET_KINDS = ("dataset", "model", "agent", "compute")
#: License types by CLI name; 0 means "any" in ``hasAccess``.
LICENSE_TYPES = {"api": 1, "full": 2, "long-term": 3, "partnership": 4}
LICENSE_NAMES = {v: k for k, v in LICENSE_TYPES.items()}
BPS = 10_000
FOREVER = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
#: Gas headroom over eth_estimateGas, as wallets add.
GAS_MARGIN = 1.2


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


# -- reverts -------------------------------------------------------------------------


def revert_reason(data: Any) -> str | None:
    """The text of an ``Error(string)`` revert, or a description of a panic."""
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    from eth_abi.abi import decode

    try:
        if raw[:4] == ERROR_SELECTOR:
            (text,) = decode(["string"], raw[4:])
            return str(text)
        if raw[:4] == PANIC_SELECTOR:
            (code,) = decode(["uint256"], raw[4:])
            return f"panic 0x{code:02x}"
    except Exception:  # eth_abi raises several types on malformed data
        return None
    return None


_REASON_ERRORS: list[tuple[str, type[SaharaError]]] = [
    ("unknown asset", AssetNotFound),
    ("unknown parent asset", AssetNotFound),
    ("unknown source asset", AssetNotFound),
    ("unknown record", RecordNotFound),
    ("unknown offer", OfferNotFound),
    ("unknown license", LicenseNotFound),
    ("unknown receipt", ReceiptNotFound),
    ("offer is paused", OfferClosed),
    ("offer has expired", OfferClosed),
    ("only ", NotPermitted),
    ("this partnership is offered to another", NotPermitted),
    ("non-transferable", NotPermitted),
    ("already", ProtocolReverted),
    ("not enough prepaid calls", ProtocolReverted),
    ("nothing to", ProtocolReverted),
    ("no unused calls", ProtocolReverted),
    ("the owner holds", ProtocolReverted),
]


def error_for_reason(reason: str, action: str) -> SaharaError:
    """The SaharaError a contract's revert reason stands for."""
    details = {"call": action, "reason": reason}
    for prefix, cls in _REASON_ERRORS:
        if reason.startswith(prefix) or prefix in reason:
            return cls(reason, details=details)
    if reason.startswith("panic"):
        return ProtocolReverted(f"the contract failed ({reason})", details=details)
    return ProtocolInvalidArgument(reason, details=details)


def _translate(exc: NodeRPCError, action: str) -> SaharaError:
    reason = revert_reason(exc.data)
    if reason is not None:
        return error_for_reason(reason, action)
    if exc.rpc_code == 3 or "revert" in exc.message:
        return ProtocolReverted(f"{action}: the contract reverted without a reason")
    if "insufficient funds" in exc.message:
        return ProtocolInsufficientFunds(f"{action}: {exc.message}")
    return exc


# -- ABI -----------------------------------------------------------------------------


def _type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _to_python(param: dict[str, Any], value: Any) -> Any:
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_to_python(element, v) for v in value]
    if kind == "tuple":
        return {
            c["name"]: _to_python(c, v) for c, v in zip(param["components"], value, strict=True)
        }
    if kind == "address":
        return to_checksum_address(value)
    return value


def _from_python(param: dict[str, Any], value: Any) -> Any:
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_from_python(element, v) for v in value]
    if kind == "tuple":
        if isinstance(value, dict):
            return tuple(_from_python(c, value[c["name"]]) for c in param["components"])
        return tuple(_from_python(c, v) for c, v in zip(param["components"], value, strict=True))
    if kind == "address" and isinstance(value, str):
        # Addresses reach contracts from people too: a mixed-case one must carry its
        # EIP-55 checksum (identity.bad_address), never be sent with a typo in it.
        return parse_address(value, f"{param.get('name') or 'address'} argument")
    return value


class Contract:
    """One deployed contract: encode calls, read with eth_call, decode its events."""

    def __init__(self, node: NodeClient, name: str, address: str | None = None) -> None:
        self.node = node
        self.name = name
        self.address = address or artifacts.addresses()[name]
        self.abi: list[dict[str, Any]] = artifacts.artifact(name)["abi"]
        self.functions = {e["name"]: e for e in self.abi if e["type"] == "function"}
        self.events: dict[bytes, dict[str, Any]] = {}
        for entry in self.abi:
            if entry["type"] == "event":
                signature = f"{entry['name']}({','.join(_type(i) for i in entry['inputs'])})"
                self.events[keccak256(signature.encode())] = entry

    def topic(self, event: str) -> str:
        for topic, entry in self.events.items():
            if entry["name"] == event:
                return "0x" + topic.hex()
        raise KeyError(event)

    def encode(self, function: str, *args: Any) -> bytes:
        from eth_abi.abi import encode

        entry = self.functions[function]
        types = [_type(i) for i in entry["inputs"]]
        selector = keccak256(f"{function}({','.join(types)})".encode())[:4]
        values = [_from_python(i, a) for i, a in zip(entry["inputs"], args, strict=True)]
        return selector + encode(types, values)

    def decode_output(self, function: str, raw: bytes) -> Any:
        from eth_abi.abi import decode

        outputs = self.functions[function]["outputs"]
        values = decode([_type(o) for o in outputs], raw)
        converted = [_to_python(o, v) for o, v in zip(outputs, values, strict=True)]
        return converted[0] if len(converted) == 1 else converted

    def call(self, function: str, *args: Any, sender: str | None = None) -> Any:
        return self.call_encoded(function, self.encode(function, *args), sender=sender)

    def call_encoded(self, function: str, data: bytes, *, sender: str | None = None) -> Any:
        """:meth:`call` with the call data encoded already."""
        request: dict[str, Any] = {"to": self.address, "data": "0x" + data.hex()}
        if sender:
            request["from"] = sender
        try:
            result = self.node.call("eth_call", request, "latest")
        except NodeRPCError as exc:
            raise _translate(exc, f"{self.name}.{function}") from None
        return self.decode_output(function, bytes.fromhex(result[2:]))

    def decode_log(self, log: dict[str, Any]) -> Event | None:
        from eth_abi.abi import decode

        topics = log.get("topics") or []
        if not topics or log["address"].lower() != self.address.lower():
            return None
        entry = self.events.get(bytes.fromhex(topics[0][2:]))
        if entry is None:
            return None
        indexed = [i for i in entry["inputs"] if i["indexed"]]
        plain = [i for i in entry["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=False):
            (value,) = decode([_type(param)], bytes.fromhex(topic[2:]))
            args[param["name"]] = _to_python(param, value)
        values = decode([_type(p) for p in plain], bytes.fromhex(log["data"][2:]))
        for param, value in zip(plain, values, strict=True):
            args[param["name"]] = _to_python(param, value)
        return Event(
            name=entry["name"],
            address=to_checksum_address(log["address"]),
            args=args,
            block=int(log["blockNumber"], 16),
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
        )


# -- sending -------------------------------------------------------------------------


class Sender:
    """Estimate, check funds, sign (Sahara ID) and send; wait for the receipt."""

    def __init__(self, node: NodeClient, decoders: Sequence[Contract] = ()) -> None:
        self.node = node
        self.decoders = list(decoders)
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.node.chain_id()
        return self._chain_id

    def send(
        self,
        signer: Signer,
        to: str,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        action: str = "transaction",
        timeout: float = 60.0,
    ) -> TxResult:
        from sahara_cli.identity.transactions import sign_eip1559

        request = {"from": signer.address, "to": to, "value": hex(value), "data": "0x" + data.hex()}
        balance = self.node.balance(signer.address, "pending")
        if value > balance:
            raise ProtocolInsufficientFunds(
                f"{action}: {signer.address} has {format_sah(balance)} SAH, "
                f"this needs {format_sah(value)} SAH plus gas"
            )
        if gas is None:
            try:
                estimate = int(self.node.call("eth_estimateGas", request), 16)
            except NodeRPCError as exc:
                raise _translate(exc, action) from None
            gas = int(estimate * GAS_MARGIN) + 10_000
        tip = self.node.max_priority_fee()
        max_fee = 2 * self.node.base_fee() + tip
        if value + gas * max_fee > balance:
            raise ProtocolInsufficientFunds(
                f"{action}: {signer.address} has {format_sah(balance)} SAH, this needs "
                f"{format_sah(value + gas * max_fee)} SAH (value plus the most gas can cost)"
            )
        signed = sign_eip1559(
            signer.private_key,
            chain_id=self.chain_id,
            nonce=self.node.nonce(signer.address, "pending"),
            to=to,
            value=value,
            data=data,
            gas=gas,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
        )
        try:
            tx_hash = self.node.send_raw(signed.raw)
        except NodeRPCError as exc:
            raise _translate(exc, action) from None
        receipt = self.node.wait_for_receipt(tx_hash, timeout=timeout)
        if int(receipt["status"], 16) != 1:
            raise ProtocolReverted(
                f"{action}: transaction {tx_hash} reverted in block "
                f"{int(receipt['blockNumber'], 16)}"
            )
        return TxResult(
            hash=tx_hash,
            block=int(receipt["blockNumber"], 16),
            gas_used=int(receipt["gasUsed"], 16),
            fee=int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16),
            events=self.decode_logs(receipt["logs"]),
        )

    def decode_logs(self, logs: Iterable[dict[str, Any]]) -> list[Event]:
        events = []
        for log in logs:
            for contract in self.decoders:
                event = contract.decode_log(log)
                if event is not None:
                    events.append(event)
                    break
        return events


# -- the protocol --------------------------------------------------------------------


def _asset_kind(kind: str | int) -> int:
    if isinstance(kind, int):
        return kind
    try:
        return ASSET_KINDS.index(kind)
    except ValueError:
        raise ProtocolInvalidArgument(
            f"unknown asset kind {kind!r}", hint=f"Use one of: {', '.join(ASSET_KINDS)}."
        ) from None


def license_type(name: str | int) -> int:
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


def _sources(sources: Sequence[int]) -> list[int]:
    ids = [int(s) for s in sources]
    if len(ids) > MAX_SOURCES:
        raise ProtocolInvalidArgument(
            f"{len(ids)} source assets given; a payment or record names at most {MAX_SOURCES}"
        )
    return ids


def _hex32(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    if len(value) != 32:
        raise ProtocolInvalidArgument(f"expected 32 bytes, got {len(value)}")
    return value


class Protocol:
    """The asset registry, receipts, licensing, attribution and provenance contracts of
    one chain."""

    def __init__(self, node: NodeClient) -> None:
        self.node = node
        self.registry = Contract(node, "AssetRegistry")
        self.receipts = Contract(node, "Receipts")
        self.licensing = Contract(node, "Licensing")
        self.attribution = Contract(node, "Attribution")
        self.provenance = Contract(node, "Provenance")
        self.contracts = [
            self.registry,
            self.receipts,
            self.licensing,
            self.attribution,
            self.provenance,
        ]
        self.sender = Sender(node, self.contracts)
        self._checked = False

    def ensure_deployed(self) -> None:
        """Raise :class:`ProtocolNotDeployed` when the chain has no protocol contracts."""
        if self._checked:
            return
        for contract in self.contracts:
            if self.node.call("eth_getCode", contract.address, "latest") in ("0x", "", None):
                raise ProtocolNotDeployed(
                    f"no {contract.name} contract at {contract.address} on this chain"
                )
        self._checked = True

    def _read(self, contract: Contract, function: str, *args: Any) -> Any:
        data = contract.encode(function, *args)  # bad arguments fail before the node is asked
        self.ensure_deployed()
        return contract.call_encoded(function, data)

    def _write(
        self, signer: Signer, contract: Contract, function: str, *args: Any, value: int = 0
    ) -> TxResult:
        data = contract.encode(function, *args)  # bad arguments fail before the node is asked
        self.ensure_deployed()
        return self.sender.send(
            signer,
            contract.address,
            data,
            value=value,
            action=f"{contract.name}.{function}",
        )

    # -- registry ------------------------------------------------------------------

    def register(
        self,
        signer: Signer,
        *,
        kind: str | int,
        cid: str,
        commitment: bytes | str,
        name: str,
        uri: str = "",
        parents: Sequence[int] = (),
        contributors: Sequence[Contribution] = (),
        upstream_bps: int = 0,
    ) -> tuple[int, TxResult]:
        """Register an asset owned by ``signer``; returns its id."""
        entries = [(c.account, c.weight_bps) for c in contributors]
        tx = self._write(
            signer,
            self.registry,
            "register",
            _asset_kind(kind),
            cid,
            _hex32(commitment),
            name,
            uri,
            list(parents),
            entries,
            upstream_bps,
        )
        return int(tx.event("Registered").args["asset"]), tx

    def asset(self, asset_id: int) -> Asset:
        try:
            raw = self._read(self.registry, "getAsset", asset_id)
        except AssetNotFound as exc:
            raise AssetNotFound(f"no asset {asset_id} on this chain", details=exc.details) from None
        return Asset(
            id=asset_id,
            owner=raw["owner"],
            kind=ASSET_KINDS[raw["kind"]],
            cid=raw["cid"],
            commitment="0x" + raw["commitment"].hex(),
            name=raw["name"],
            uri=raw["uri"],
            meter=raw["meter"],
            created=raw["created"],
            parents=list(raw["parents"]),
        )

    def asset_count(self) -> int:
        return int(self._read(self.registry, "count"))

    def asset_by_cid(self, cid: str) -> int | None:
        found = int(self._read(self.registry, "cidAsset", keccak256(cid.encode())))
        return found or None

    def set_metadata(self, signer: Signer, asset_id: int, uri: str) -> TxResult:
        return self._write(signer, self.registry, "setMetadata", asset_id, uri)

    def set_meter(self, signer: Signer, asset_id: int, meter: str) -> TxResult:
        return self._write(signer, self.registry, "setMeter", asset_id, meter)

    # -- attribution ---------------------------------------------------------------

    def contributors(self, asset_id: int) -> list[Contribution]:
        self.asset(asset_id)  # unknown asset: a clear error, not an empty list
        raw = self._read(self.attribution, "contributorsOf", asset_id)
        return [Contribution(c["account"], c["weight_bps"]) for c in raw]

    def upstream_bps(self, asset_id: int) -> int:
        return int(self._read(self.attribution, "upstreamOf", asset_id))

    def received(self, asset_id: int) -> int:
        return int(self._read(self.attribution, "received", asset_id))

    def claimable(self, account: str) -> int:
        return int(self._read(self.attribution, "claimable", account))

    def claimed(self, account: str) -> int:
        return int(self._read(self.attribution, "claimed", account))

    def add_contributor(
        self, signer: Signer, asset_id: int, account: str, weight_bps: int
    ) -> TxResult:
        return self._write(
            signer, self.attribution, "addContributor", asset_id, account, weight_bps
        )

    def pay(self, signer: Signer, asset_id: int, amount: int) -> TxResult:
        return self._write(signer, self.attribution, "pay", asset_id, value=amount)

    def pay_with(
        self, signer: Signer, asset_id: int, amount: int, sources: Sequence[int]
    ) -> TxResult:
        """Pay into an asset naming the source assets the revenue was earned with."""
        return self._write(
            signer, self.attribution, "payWith", asset_id, _sources(sources), value=amount
        )

    def claim(self, signer: Signer) -> tuple[int, TxResult]:
        tx = self._write(signer, self.attribution, "claim")
        return int(tx.event("Claimed").args["amount"]), tx

    # -- licensing -----------------------------------------------------------------

    def offer(
        self,
        signer: Signer,
        asset_id: int,
        kind: str | int,
        *,
        price: int = 0,
        duration: int = 0,
        terms: bytes | str | None = None,
        share_bps: int = 0,
        partner: str | None = None,
        valid_until: int = 0,
    ) -> tuple[int, TxResult]:
        tx = self._write(
            signer,
            self.licensing,
            "offer",
            asset_id,
            license_type(kind),
            price,
            duration,
            _hex32(terms) if terms is not None else bytes(32),
            share_bps,
            partner or ZERO_ADDRESS,
            valid_until,
        )
        return int(tx.event("Offered").args["offer"]), tx

    def reprice(self, signer: Signer, offer_id: int, price: int) -> TxResult:
        return self._write(signer, self.licensing, "reprice", offer_id, price)

    def set_paused(self, signer: Signer, offer_id: int, paused: bool) -> TxResult:
        return self._write(signer, self.licensing, "setPaused", offer_id, paused)

    def buy(
        self, signer: Signer, offer_id: int, calls: int = 0, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        """Buy from an offer, paying its current price (times ``calls`` for API).

        ``price``: the unit price the buyer agreed to; if the owner repriced the offer
        since, nothing is sent.
        """
        offer = self._agreed(offer_id, price)
        cost = offer.price * calls if offer.type == "api" else offer.price
        tx = self._write(signer, self.licensing, "buy", offer_id, calls, value=cost)
        return int(tx.event("Licensed").args["license"]), tx

    def accept(
        self, signer: Signer, offer_id: int, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        offer = self._agreed(offer_id, price)
        tx = self._write(signer, self.licensing, "accept", offer_id, value=offer.price)
        return int(tx.event("Licensed").args["license"]), tx

    def _agreed(self, offer_id: int, price: int | None) -> Offer:
        offer = self.get_offer(offer_id)
        if price is not None and offer.price != price:
            raise ProtocolReverted(
                f"offer {offer_id} was repriced from {format_sah(price)} to "
                f"{format_sah(offer.price)} SAH; nothing was sent",
                hint="Run the command again to buy at the new price.",
            )
        return offer

    def meter(self, signer: Signer, license_id: int, calls: int) -> TxResult:
        return self._write(signer, self.licensing, "meter", license_id, calls)

    def meter_with(
        self, signer: Signer, license_id: int, calls: int, sources: Sequence[int]
    ) -> TxResult:
        """Meter API calls whose answers used ``sources`` (at most 4 asset ids): their
        contributors share the asset's upstream part of the revenue."""
        return self._write(
            signer, self.licensing, "meterWith", license_id, calls, _sources(sources)
        )

    def api_licenses(self, holder: str, asset_id: int, *, with_calls: bool = True) -> list[License]:
        """``holder``'s API licenses of ``asset_id``, oldest first (from the ``Licensed``
        events filtered by the holder topic, then read live); by default only those
        with prepaid calls left."""
        self.ensure_deployed()
        topic_holder = "0x" + bytes.fromhex(holder[2:].lower()).rjust(32, b"\0").hex()
        logs = self.node.call(
            "eth_getLogs",
            {
                "address": self.licensing.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [self.licensing.topic("Licensed"), None, None, topic_holder],
            },
        )
        found = []
        for log in logs:
            event = self.licensing.decode_log(log)
            if event is None or event.args["asset"] != asset_id:
                continue
            if event.args["kind"] != LICENSE_TYPES["api"]:
                continue
            lic = self.get_license(int(event.args["license"]))
            if lic.calls > 0 or not with_calls:
                found.append(lic)
        return sorted(found, key=lambda lic: lic.id)

    def refund(self, signer: Signer, license_id: int) -> tuple[int, TxResult]:
        tx = self._write(signer, self.licensing, "refund", license_id)
        return int(tx.event("Refunded").args["amount"]), tx

    def settle(self, signer: Signer, license_id: int, revenue: int) -> TxResult:
        lic = self.get_license(license_id)
        amount = revenue * lic.share_bps // BPS
        return self._write(signer, self.licensing, "settle", license_id, revenue, value=amount)

    def get_offer(self, offer_id: int) -> Offer:
        try:
            raw = self._read(self.licensing, "getOffer", offer_id)
        except OfferNotFound as exc:
            raise OfferNotFound(f"no offer {offer_id} on this chain", details=exc.details) from None
        return Offer(
            id=offer_id,
            asset=raw["asset"],
            type=LICENSE_NAMES[raw["kind"]],
            price=raw["price"],
            duration=raw["duration"],
            terms="0x" + raw["terms"].hex(),
            share_bps=raw["share_bps"],
            partner=None if raw["partner"] == to_checksum_address(ZERO_ADDRESS) else raw["partner"],
            valid_until=raw["valid_until"],
            paused=raw["paused"],
            sold=raw["sold"],
            created=raw["created"],
        )

    def get_license(self, license_id: int) -> License:
        try:
            raw = self._read(self.licensing, "getLicense", license_id)
        except LicenseNotFound as exc:
            raise LicenseNotFound(
                f"no license {license_id} on this chain", details=exc.details
            ) from None
        return License(
            id=license_id,
            offer=raw["offer"],
            asset=raw["asset"],
            holder=raw["holder"],
            type=LICENSE_NAMES[raw["kind"]],
            price=raw["price"],
            start=raw["start"],
            expiry=None if raw["expiry"] == FOREVER else raw["expiry"],
            calls=raw["calls"],
            used=raw["used"],
            terms="0x" + raw["terms"].hex(),
            share_bps=raw["share_bps"],
        )

    def offer_count(self) -> int:
        return int(self._read(self.licensing, "offerCount"))

    def license_count(self) -> int:
        return int(self._read(self.licensing, "licenseCount"))

    def has_access(self, asset_id: int, user: str, kind: str | int = 0) -> bool:
        return bool(self._read(self.licensing, "hasAccess", asset_id, user, license_type(kind)))

    def access_until(self, asset_id: int, user: str, kind: str | int) -> int:
        return int(self._read(self.licensing, "accessUntil", asset_id, user, license_type(kind)))

    # -- provenance ----------------------------------------------------------------

    def record_inference(
        self,
        signer: Signer,
        asset_id: int,
        digest: bytes | str,
        sources: Sequence[int] = (),
        license_id: int = 0,
    ) -> tuple[int, TxResult]:
        """Record an answer's provenance digest for ``asset_id``; returns the record id."""
        tx = self._write(
            signer,
            self.provenance,
            "record",
            asset_id,
            _hex32(digest),
            _sources(sources),
            license_id,
        )
        return int(tx.event("Recorded").args["id"]), tx

    def get_record(self, record_id: int) -> ProvenanceRecord:
        try:
            raw = self._read(self.provenance, "getRecord", record_id)
        except RecordNotFound as exc:
            raise RecordNotFound(
                f"no provenance record {record_id} on this chain", details=exc.details
            ) from None
        return ProvenanceRecord(
            id=record_id,
            recorder=raw["recorder"],
            asset=raw["asset"],
            digest="0x" + raw["digest"].hex(),
            license=raw["license"],
            time=raw["time"],
        )

    def record_count(self) -> int:
        return int(self._read(self.provenance, "recordCount"))

    # -- receipts ------------------------------------------------------------------

    def receipt(self, token_id: int) -> Receipt:
        raw = self._read(self.receipts, "receipts", token_id)
        if raw["holder"] == to_checksum_address(ZERO_ADDRESS):
            raise ReceiptNotFound(f"no receipt {token_id}")
        return Receipt(
            id=token_id,
            holder=raw["holder"],
            asset=raw["asset"],
            role={1: "owner", 2: "contributor"}.get(raw["role"], str(raw["role"])),
            share_bps=raw["share_bps"],
            minted=raw["minted"],
        )

    def receipts_of(self, holder: str) -> list[Receipt]:
        """Every receipt minted to ``holder`` (from the Transfer events)."""
        self.ensure_deployed()
        topic_holder = "0x" + bytes.fromhex(holder[2:].lower()).rjust(32, b"\0").hex()
        logs = self.node.call(
            "eth_getLogs",
            {
                "address": self.receipts.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [self.receipts.topic("Transfer"), None, topic_holder],
            },
        )
        ids = sorted({int(log["topics"][3], 16) for log in logs})
        return [self.receipt(i) for i in ids]

    def reputation(self, account: str) -> int:
        return int(self._read(self.receipts, "reputation", account))
