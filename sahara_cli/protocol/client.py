"""The protocol on one chain: a facade over one small client per contract.

``Protocol(node)`` composes the clients of the five contracts at their genesis addresses
(``proto.registry``, ``proto.receipts``, ``proto.licensing``, ``proto.attribution``,
``proto.provenance``, see ``protocol/clients/``) and of the SAPs (``proto.training``,
``proto.inference``, ``proto.disputes``) over one
:class:`~sahara_cli.protocol.sender.Sender`, and answers every operation with one method.
Reads are ``eth_call``; writes are EIP-1559 transactions signed by a Sahara ID, sent after
an ``eth_estimateGas`` that turns a revert into a :class:`SaharaError` before anything is
spent. Every write returns a :class:`TxResult` with the decoded events.

Answers are recorded through the inference SAP (``record_inference``, ``get_record``,
``record_count``); the records the ``Provenance`` contract kept before stay readable with
``legacy_record`` and ``legacy_record_count``.

The pieces live in their own modules and are re-exported here: the values and constants
(``protocol/values.py``), the ABI codec (``protocol/abi.py``) and the sender with its
revert translation (``protocol/sender.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import ProtocolNotDeployed
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.abi import ContractABI
from sahara_cli.protocol.clients import (
    AssetRegistryClient,
    AttributionClient,
    Contract,
    ContractClient,
    LicensingClient,
    ProvenanceClient,
    ReceiptsClient,
)
from sahara_cli.protocol.clients.disputes import DisputeClient
from sahara_cli.protocol.clients.saps import (
    InferenceClient,
    InferenceRecord,
    TrainingClient,
    TrainingJob,
)
from sahara_cli.protocol.sender import (
    ERROR_SELECTOR,
    GAS_MARGIN,
    PANIC_SELECTOR,
    Sender,
    error_for_reason,
    revert_reason,
)
from sahara_cli.protocol.values import (
    ASSET_KINDS,
    BPS,
    FOREVER,
    LICENSE_NAMES,
    LICENSE_TYPES,
    MAX_SOURCES,
    ZERO_ADDRESS,
    Asset,
    Contribution,
    Event,
    License,
    Offer,
    ProvenanceRecord,
    Receipt,
    TxResult,
    license_type,
)

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer

__all__ = [
    "ASSET_KINDS",
    "BPS",
    "ERROR_SELECTOR",
    "FOREVER",
    "GAS_MARGIN",
    "LICENSE_NAMES",
    "LICENSE_TYPES",
    "MAX_SOURCES",
    "PANIC_SELECTOR",
    "ZERO_ADDRESS",
    "Asset",
    "Contract",
    "ContractABI",
    "Contribution",
    "Event",
    "InferenceRecord",
    "License",
    "Offer",
    "Protocol",
    "ProvenanceRecord",
    "Receipt",
    "Sender",
    "TrainingJob",
    "TxResult",
    "error_for_reason",
    "license_type",
    "revert_reason",
]


class Protocol:
    """The asset registry, receipts, licensing, attribution and provenance contracts of
    one chain."""

    def __init__(self, node: NodeClient) -> None:
        self.node = node
        self.sender = Sender(node)
        self._checked = False
        sender, ready = self.sender, self.ensure_deployed
        self.registry = AssetRegistryClient(node, sender=sender, ready=ready)
        self.receipts = ReceiptsClient(node, sender=sender, ready=ready)
        self.licensing = LicensingClient(node, sender=sender, ready=ready)
        self.attribution = AttributionClient(node, sender=sender, ready=ready)
        self.provenance = ProvenanceClient(node, sender=sender, ready=ready)
        self.contracts: list[ContractClient] = [
            self.registry,
            self.receipts,
            self.licensing,
            self.attribution,
            self.provenance,
        ]
        self.training = TrainingClient(node, sender=sender)
        self.inference = InferenceClient(node, sender=sender)
        self.disputes = DisputeClient(node, sender=sender)
        #: The SAPs' clients (precompiles: no code to check at their addresses).
        self.saps: list[ContractClient] = [self.training, self.inference, self.disputes]
        self.sender.decoders = [*self.contracts, *self.saps]

    def ensure_deployed(self) -> None:
        """Raise :class:`ProtocolNotDeployed` when the chain has no protocol contracts."""
        if self._checked:
            return
        for contract in self.contracts:
            if not contract.is_deployed():
                raise ProtocolNotDeployed(
                    f"no {contract.name} contract at {contract.address} on this chain"
                )
        self._checked = True

    def contract(self, name: str) -> ContractClient:
        """The client of the contract called ``name`` (``Licensing``...)."""
        for contract in self.contracts:
            if contract.name == name:
                return contract
        raise KeyError(f"no protocol contract named {name!r}")

    def _read(self, contract: ContractClient, function: str, *args: Any) -> Any:
        """``contract.read``, kept for callers written before the per-contract clients."""
        return contract.read(function, *args)

    def _write(
        self, signer: Signer, contract: ContractClient, function: str, *args: Any, value: int = 0
    ) -> TxResult:
        """``contract.write``, kept for callers written before the per-contract clients."""
        return contract.write(signer, function, *args, value=value)

    def _agreed(self, offer_id: int, price: int | None) -> Offer:
        return self.licensing.agreed(offer_id, price)

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
        return self.registry.register(
            signer,
            kind=kind,
            cid=cid,
            commitment=commitment,
            name=name,
            uri=uri,
            parents=parents,
            contributors=contributors,
            upstream_bps=upstream_bps,
        )

    def asset(self, asset_id: int) -> Asset:
        return self.registry.asset(asset_id)

    def asset_count(self) -> int:
        return self.registry.asset_count()

    def asset_by_cid(self, cid: str) -> int | None:
        return self.registry.asset_by_cid(cid)

    def set_metadata(self, signer: Signer, asset_id: int, uri: str) -> TxResult:
        return self.registry.set_metadata(signer, asset_id, uri)

    def set_meter(self, signer: Signer, asset_id: int, meter: str) -> TxResult:
        return self.registry.set_meter(signer, asset_id, meter)

    # -- attribution ---------------------------------------------------------------

    def contributors(self, asset_id: int) -> list[Contribution]:
        self.asset(asset_id)  # unknown asset: a clear error, not an empty list
        return self.attribution.contributors_of(asset_id)

    def upstream_bps(self, asset_id: int) -> int:
        return self.attribution.upstream_bps(asset_id)

    def received(self, asset_id: int) -> int:
        return self.attribution.received(asset_id)

    def claimable(self, account: str) -> int:
        return self.attribution.claimable(account)

    def claimed(self, account: str) -> int:
        return self.attribution.claimed(account)

    def add_contributor(
        self, signer: Signer, asset_id: int, account: str, weight_bps: int
    ) -> TxResult:
        return self.attribution.add_contributor(signer, asset_id, account, weight_bps)

    def pay(self, signer: Signer, asset_id: int, amount: int) -> TxResult:
        return self.attribution.pay(signer, asset_id, amount)

    def pay_with(
        self, signer: Signer, asset_id: int, amount: int, sources: Sequence[int]
    ) -> TxResult:
        """Pay into an asset naming the source assets the revenue was earned with."""
        return self.attribution.pay_with(signer, asset_id, amount, sources)

    def claim(self, signer: Signer) -> tuple[int, TxResult]:
        return self.attribution.claim(signer)

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
        return self.licensing.offer(
            signer,
            asset_id,
            kind,
            price=price,
            duration=duration,
            terms=terms,
            share_bps=share_bps,
            partner=partner,
            valid_until=valid_until,
        )

    def reprice(self, signer: Signer, offer_id: int, price: int) -> TxResult:
        return self.licensing.reprice(signer, offer_id, price)

    def set_paused(self, signer: Signer, offer_id: int, paused: bool) -> TxResult:
        return self.licensing.set_paused(signer, offer_id, paused)

    def buy(
        self, signer: Signer, offer_id: int, calls: int = 0, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        """Buy from an offer, paying its current price (times ``calls`` for API).

        ``price``: the unit price the buyer agreed to; if the owner repriced the offer
        since, nothing is sent.
        """
        return self.licensing.buy(signer, offer_id, calls, price=price)

    def accept(
        self, signer: Signer, offer_id: int, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        return self.licensing.accept(signer, offer_id, price=price)

    def meter(self, signer: Signer, license_id: int, calls: int) -> TxResult:
        return self.licensing.meter(signer, license_id, calls)

    def meter_with(
        self, signer: Signer, license_id: int, calls: int, sources: Sequence[int]
    ) -> TxResult:
        """Meter API calls whose answers used ``sources`` (at most 4 asset ids): their
        contributors share the asset's upstream part of the revenue."""
        return self.licensing.meter_with(signer, license_id, calls, sources)

    def api_licenses(self, holder: str, asset_id: int, *, with_calls: bool = True) -> list[License]:
        """``holder``'s API licenses of ``asset_id``, oldest first; by default only those
        with prepaid calls left."""
        return self.licensing.api_licenses(holder, asset_id, with_calls=with_calls)

    def refund(self, signer: Signer, license_id: int) -> tuple[int, TxResult]:
        return self.licensing.refund(signer, license_id)

    def settle(self, signer: Signer, license_id: int, revenue: int) -> TxResult:
        return self.licensing.settle(signer, license_id, revenue)

    def get_offer(self, offer_id: int) -> Offer:
        return self.licensing.get_offer(offer_id)

    def get_license(self, license_id: int) -> License:
        return self.licensing.get_license(license_id)

    def offer_count(self) -> int:
        return self.licensing.offer_count()

    def license_count(self) -> int:
        return self.licensing.license_count()

    def has_access(self, asset_id: int, user: str, kind: str | int = 0) -> bool:
        return self.licensing.has_access(asset_id, user, kind)

    def access_until(self, asset_id: int, user: str, kind: str | int) -> int:
        return self.licensing.access_until(asset_id, user, kind)

    # -- provenance ----------------------------------------------------------------

    def record_inference(
        self,
        signer: Signer,
        asset_id: int,
        digest: bytes | str,
        sources: Sequence[int] = (),
        license_id: int = 0,
        *,
        input_hash: bytes | str = b"\0" * 32,
        output_hash: bytes | str = b"\0" * 32,
        calls: int = 0,
    ) -> tuple[int, TxResult]:
        """Record an answer of ``asset_id`` through the inference SAP; returns the record id.

        ``input_hash`` and ``output_hash``: the SHA-256 of the prompt and of the answer.
        With ``calls`` > 0 the same transaction meters that many calls of the API license
        ``license_id`` (``signer`` must be the asset's meter), and their price goes to the
        asset and its ``sources`` through Attribution."""
        return self.inference.record(
            signer,
            asset_id,
            digest,
            input_hash=input_hash,
            output_hash=output_hash,
            sources=sources,
            license_id=license_id,
            calls=calls,
        )

    def get_record(self, record_id: int) -> InferenceRecord:
        """An answer's record as the inference SAP keeps it."""
        return self.inference.get_record(record_id)

    def record_count(self) -> int:
        """How many answers the inference SAP has recorded."""
        return self.inference.record_count()

    def legacy_record(self, record_id: int) -> ProvenanceRecord:
        """A record of the ``Provenance`` contract, where answers were recorded before the
        inference SAP took over; its records stay readable."""
        return self.provenance.get_record(record_id)

    def legacy_record_count(self) -> int:
        """How many records the ``Provenance`` contract holds."""
        return self.provenance.record_count()

    # -- receipts ------------------------------------------------------------------

    def receipt(self, token_id: int) -> Receipt:
        return self.receipts.receipt(token_id)

    def receipts_of(self, holder: str) -> list[Receipt]:
        """Every receipt minted to ``holder`` (from the Transfer events)."""
        return self.receipts.receipts_of(holder)

    def reputation(self, account: str) -> int:
        return self.receipts.reputation(account)
