"""What the licensing and marketplace workflows return: offers, licenses, quotes, checks.

A light module (pydantic and :mod:`sahara_cli.results` only), so that a command can name
these models without loading the protocol client. The workflows that fill them are in
:mod:`sahara_cli.protocol.licensing` and :mod:`sahara_cli.protocol.market`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from sahara_cli.results import Address, Hash32, Result, Sah, Timestamp, Transaction, Wei

if TYPE_CHECKING:
    from sahara_cli.protocol.client import License, Offer

LicenseTypeName = Literal["api", "full", "long-term", "partnership"]
#: ``any`` or one license type: what ``license check`` asks about.
AccessScope = Literal["any", "api", "full", "long-term", "partnership"]
#: 9999-12-31 23:59:59 UTC, the last moment an ISO 8601 year can show; later is "never".
LAST_MOMENT = 253_402_300_799


def moment(timestamp: int | None) -> datetime | None:
    """A chain timestamp as a UTC datetime; ``None``, 0 and past year 9999 are "never"."""
    if not timestamp or timestamp > LAST_MOMENT:
        return None
    return datetime.fromtimestamp(timestamp, UTC)


# -- offers ------------------------------------------------------------------------------


class OfferInfo(Result):
    """A license offer as the Licensing contract keeps it."""

    offer_id: int
    asset_id: int
    type: LicenseTypeName
    price_wei: Wei = Field(description="one-time price, or the price of one call (api)")
    price_sah: Sah = ""
    duration_s: int = Field(description="how long a license bought lasts; 0: no expiry")
    terms: Hash32 = Field(description="keccak256 of a partnership's terms document")
    share_bps: int = Field(description="a partnership's revenue share, in basis points")
    partner: Address | None = Field(description="who alone may accept; null: anyone")
    expires_at: Timestamp | None = Field(description="when it stops selling; null: never")
    paused: bool
    sold: int
    created_at: Timestamp

    @classmethod
    def fields_of(cls, offer: Offer) -> dict[str, object]:
        return {
            "offer_id": offer.id,
            "asset_id": offer.asset,
            "type": offer.type,
            "price_wei": offer.price,
            "duration_s": offer.duration,
            "terms": offer.terms,
            "share_bps": offer.share_bps,
            "partner": offer.partner,
            "expires_at": moment(offer.valid_until),
            "paused": offer.paused,
            "sold": offer.sold,
            "created_at": moment(offer.created) or datetime.fromtimestamp(0, UTC),
        }

    @classmethod
    def of(cls, offer: Offer, **more: object) -> OfferInfo:
        return cls.model_validate(cls.fields_of(offer) | more)


class OfferResult(OfferInfo):
    """``license offer``: the offer listed, and the transaction that listed it."""

    terms_file: str | None = None
    tx: Transaction


class RepriceResult(OfferInfo):
    """``license reprice``: the offer at its new price, and the price it had."""

    old_price_wei: Wei
    old_price_sah: Sah = ""
    tx: Transaction


class PauseResult(OfferInfo):
    """``license pause`` / ``license resume``: the offer after the change."""

    changed: bool = Field(description="false when it was paused (or open) already")
    tx: Transaction


# -- licenses ----------------------------------------------------------------------------


class LicenseInfo(Result):
    """A license as the Licensing contract keeps it, and whether it grants access now."""

    license_id: int
    offer_id: int
    asset_id: int
    holder: Address
    type: LicenseTypeName
    price_wei: Wei = Field(description="price paid, or the price of one call (api)")
    price_sah: Sah = ""
    started_at: Timestamp
    expires_at: Timestamp | None = Field(description="end of access; null: never")
    calls_left: int = Field(description="prepaid api calls not yet metered")
    calls_used: int = Field(description="api calls metered")
    terms: Hash32
    share_bps: int
    active: bool = Field(description="grants access at the chain's latest block")

    @classmethod
    def fields_of(cls, lic: License, now: int) -> dict[str, object]:
        return {
            "license_id": lic.id,
            "offer_id": lic.offer,
            "asset_id": lic.asset,
            "holder": lic.holder,
            "type": lic.type,
            "price_wei": lic.price,
            "started_at": moment(lic.start) or datetime.fromtimestamp(0, UTC),
            "expires_at": None if lic.type == "api" else moment(lic.expiry),
            "calls_left": lic.calls,
            "calls_used": lic.used,
            "terms": lic.terms,
            "share_bps": lic.share_bps,
            "active": license_active(lic, now),
        }

    @classmethod
    def of(cls, lic: License, now: int, **more: object) -> LicenseInfo:
        return cls.model_validate(cls.fields_of(lic, now) | more)


def license_active(lic: License, now: int) -> bool:
    """An api license is active while it has prepaid calls; others until they expire."""
    if lic.type == "api":
        return lic.calls > 0
    return lic.expiry is None or lic.expiry > now


class Quote(Result):
    """What buying (or accepting) an offer costs, read from the chain before paying."""

    offer_id: int
    asset_id: int
    type: LicenseTypeName
    calls_bought: int = Field(description="prepaid calls (api); 0 for other types")
    unit_price_wei: Wei = Field(description="the offer's price (per call for api)")
    unit_price_sah: Sah = ""
    cost_wei: Wei
    cost_sah: Sah = ""
    summary: str = Field(description="what is bought, for people: '4 calls at 0.25 SAH'")


class PurchaseResult(LicenseInfo):
    """``license buy`` / ``license accept``: the license obtained and what it cost."""

    cost_wei: Wei
    cost_sah: Sah = ""
    tx: Transaction
    warnings: list[str] = Field(
        default_factory=list,
        description="what the buyer was warned of and confirmed: owning the asset, "
        "or holding an active license of this type already",
    )


class MeterResult(LicenseInfo):
    """``license meter``: the license after the calls were recorded."""

    calls_metered: int
    amount_wei: Wei = Field(description="what the calls moved to the asset's revenue")
    amount_sah: Sah = ""
    tx: Transaction


class RefundResult(LicenseInfo):
    """``license refund``: the license after its unused calls were paid back."""

    calls_refunded: int
    refunded_wei: Wei
    refunded_sah: Sah = ""
    tx: Transaction


class SettleResult(Result):
    """``license settle``: a partnership's revenue share paid to the asset."""

    license_id: int
    asset_id: int
    revenue_wei: Wei
    revenue_sah: Sah = ""
    share_bps: int
    amount_wei: Wei = Field(description="the share paid: revenue times share_bps / 10000")
    amount_sah: Sah = ""
    tx: Transaction


class LicenseList(Result):
    """``license list``: licenses from the local index of chain events."""

    holder: Address | None
    asset_id: int | None
    count: int
    licenses: list[LicenseInfo]


class AccessCheck(Result):
    """``license check``: whether a user may use an asset, and until when."""

    asset_id: int
    user: Address
    type: AccessScope
    access: bool
    owner: bool = Field(description="the user owns the asset")
    calls_left: int | None = Field(
        default=None, description="prepaid api calls (asked for any or api access)"
    )
    types: dict[str, bool] | None = Field(
        default=None, description="access by license type (asked for any access)"
    )
    expires_at: Timestamp | None = Field(
        default=None,
        description="the furthest end of the time-limited access in question; null when "
        "it never ends (never_expires) or there is none",
    )
    never_expires: bool = Field(
        default=False, description="the time-limited access in question never ends"
    )


# -- the marketplace ---------------------------------------------------------------------

OfferStatus = Literal["open", "paused", "expired", "taken"]


class MarketOffer(OfferInfo):
    """An offer with its asset's name and kind, how long its licenses last, its status."""

    asset_name: str
    asset_kind: str
    lasts: str = Field(description="'prepaid calls', 'no expiry' or a span such as '30d'")
    status: OfferStatus


class SearchHit(MarketOffer):
    score: float = Field(description="relevance; higher is better")


class OfferList(Result):
    """``market list``: offers from the local index, brought up to ``block``."""

    asset_id: int | None
    all: bool = Field(description="paused, expired and taken offers included")
    block: int
    count: int
    offers: list[MarketOffer]


class OfferSearch(Result):
    """``market search``: offers matching the words, best first."""

    query: str
    all: bool
    block: int
    count: int
    offers: list[SearchHit]


class OfferDetails(MarketOffer):
    """``market show``: one offer read from the chain, with its asset."""

    asset_owner: Address
    asset_cid: str
    asset_uri: str
