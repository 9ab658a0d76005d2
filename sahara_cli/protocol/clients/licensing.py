"""The Licensing contract: offers, licenses, metering, refunds and settlements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sahara_cli.errors import LicenseNotFound, OfferNotFound, ProtocolReverted
from sahara_cli.identity.keys import to_checksum_address
from sahara_cli.protocol.clients.base import ContractClient, address_topic
from sahara_cli.protocol.values import (
    BPS,
    FOREVER,
    LICENSE_NAMES,
    LICENSE_TYPES,
    ZERO_ADDRESS,
    License,
    Offer,
    TxResult,
    hex32,
    license_type,
    sources_arg,
)
from sahara_cli.units import format_sah

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class LicensingClient(ContractClient):
    """License offers of assets and the licenses bought from them."""

    CONTRACT = "Licensing"

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
        """Offer licenses of ``asset_id``; returns the offer id."""
        tx = self.write(
            signer,
            "offer",
            asset_id,
            license_type(kind),
            price,
            duration,
            hex32(terms) if terms is not None else bytes(32),
            share_bps,
            partner or ZERO_ADDRESS,
            valid_until,
        )
        return int(tx.event("Offered").args["offer"]), tx

    def reprice(self, signer: Signer, offer_id: int, price: int) -> TxResult:
        return self.write(signer, "reprice", offer_id, price)

    def set_paused(self, signer: Signer, offer_id: int, paused: bool) -> TxResult:
        return self.write(signer, "setPaused", offer_id, paused)

    def buy(
        self, signer: Signer, offer_id: int, calls: int = 0, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        """Buy from an offer, paying its current price (times ``calls`` for API).

        ``price``: the unit price the buyer agreed to; if the owner repriced the offer
        since, nothing is sent.
        """
        offer = self.agreed(offer_id, price)
        cost = offer.price * calls if offer.type == "api" else offer.price
        tx = self.write(signer, "buy", offer_id, calls, value=cost)
        return int(tx.event("Licensed").args["license"]), tx

    def accept(
        self, signer: Signer, offer_id: int, *, price: int | None = None
    ) -> tuple[int, TxResult]:
        """Accept a partnership offer, paying its price; returns the license id."""
        offer = self.agreed(offer_id, price)
        tx = self.write(signer, "accept", offer_id, value=offer.price)
        return int(tx.event("Licensed").args["license"]), tx

    def agreed(self, offer_id: int, price: int | None) -> Offer:
        """The offer, when its price is still ``price`` (None: any price)."""
        offer = self.get_offer(offer_id)
        if price is not None and offer.price != price:
            raise ProtocolReverted(
                f"offer {offer_id} was repriced from {format_sah(price)} to "
                f"{format_sah(offer.price)} SAH; nothing was sent",
                hint="Run the command again to buy at the new price.",
            )
        return offer

    def meter(self, signer: Signer, license_id: int, calls: int) -> TxResult:
        return self.write(signer, "meter", license_id, calls)

    def meter_with(
        self, signer: Signer, license_id: int, calls: int, sources: Sequence[int]
    ) -> TxResult:
        """Meter API calls whose answers used ``sources`` (at most 4 asset ids): their
        contributors share the asset's upstream part of the revenue."""
        return self.write(signer, "meterWith", license_id, calls, sources_arg(sources))

    def api_licenses(self, holder: str, asset_id: int, *, with_calls: bool = True) -> list[License]:
        """``holder``'s API licenses of ``asset_id``, oldest first (from the ``Licensed``
        events filtered by the holder topic, then read live); by default only those
        with prepaid calls left."""
        self.ensure_deployed()
        found = []
        for event in self.logs("Licensed", None, None, address_topic(holder)):
            if event.args["asset"] != asset_id or event.args["kind"] != LICENSE_TYPES["api"]:
                continue
            lic = self.get_license(int(event.args["license"]))
            if lic.calls > 0 or not with_calls:
                found.append(lic)
        return sorted(found, key=lambda lic: lic.id)

    def refund(self, signer: Signer, license_id: int) -> tuple[int, TxResult]:
        """Refund an API license's unused calls; returns the amount refunded in wei."""
        tx = self.write(signer, "refund", license_id)
        return int(tx.event("Refunded").args["amount"]), tx

    def settle(self, signer: Signer, license_id: int, revenue: int) -> TxResult:
        """Pay a partnership license's share of ``revenue`` (wei) to the asset."""
        lic = self.get_license(license_id)
        amount = revenue * lic.share_bps // BPS
        return self.write(signer, "settle", license_id, revenue, value=amount)

    def get_offer(self, offer_id: int) -> Offer:
        try:
            raw = self.read("getOffer", offer_id)
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
            raw = self.read("getLicense", license_id)
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
        return int(self.read("offerCount"))

    def license_count(self) -> int:
        return int(self.read("licenseCount"))

    def has_access(self, asset_id: int, user: str, kind: str | int = 0) -> bool:
        return bool(self.read("hasAccess", asset_id, user, license_type(kind)))

    def access_until(self, asset_id: int, user: str, kind: str | int) -> int:
        return int(self.read("accessUntil", asset_id, user, license_type(kind)))
