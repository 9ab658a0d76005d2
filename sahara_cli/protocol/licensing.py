"""The licensing rules and workflows: quote, preflight, offer, buy, accept, meter, refund,
settle, pause, resume, reprice and check.

Every workflow checks what the chain already says (the owner, the offer's state, the
buyer's funds, the prepaid calls) before it signs anything, so a refusal costs no gas
and names what is wrong; the contract stays the judge of everything else. Each returns a
typed result of :mod:`sahara_cli.protocol.license_results`.

Times are the chain's: an offer expires by the latest block's timestamp, not by this
machine's clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import (
    NotPermitted,
    OfferClosed,
    ProtocolInsufficientFunds,
    ProtocolReverted,
    UsageError,
)
from sahara_cli.protocol.license_results import (
    AccessCheck,
    AccessScope,
    LicenseInfo,
    LicenseList,
    MeterResult,
    OfferInfo,
    OfferResult,
    PauseResult,
    PurchaseResult,
    Quote,
    RefundResult,
    RepriceResult,
    SettleResult,
    moment,
)

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import License, Offer, Protocol
    from sahara_cli.results import Transaction

BPS = 10_000


def sah(wei: int) -> str:
    """``1.5 SAH``: an amount for messages."""
    from sahara_cli.units import format_sah

    return f"{format_sah(wei)} SAH"


def utc(timestamp: int | None) -> str:
    """A chain timestamp as ``2026-12-07 16:13:48 UTC``; None is "never"."""
    from datetime import UTC, datetime

    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def chain_now(proto: Protocol) -> int:
    """The latest block's timestamp: the chain's clock, not this machine's."""
    block = proto.node.call("eth_getBlockByNumber", "latest", False)
    return int(block["timestamp"], 16)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


# -- the rules (pure: they read nothing from the chain) ----------------------------------


def quote(offer: Offer, calls: int | None = None) -> Quote:
    """What buying from ``offer`` costs: its price, times ``calls`` for an api offer.

    Raises :class:`UsageError` when ``calls`` does not fit the offer's type, and for a
    partnership, which is accepted (:func:`quote_accept`), not bought.
    """
    if calls is not None and calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    if offer.type == "partnership":
        raise UsageError(
            f"offer {offer.id} is a partnership: it is accepted, not bought",
            hint=f"Run 'sahara license accept {offer.id}' as the partner.",
        )
    if offer.type == "api" and calls is None:
        raise UsageError(
            f"offer {offer.id} is an api offer: say how many calls to prepay with --calls N"
        )
    if offer.type != "api" and calls is not None:
        raise UsageError(f"--calls is for api offers; offer {offer.id} is {offer.type}")
    n = calls or 0
    if offer.type == "api":
        cost = offer.price * n
        summary = f"{n} call{'s' if n != 1 else ''} at {sah(offer.price)}"
    else:
        cost = offer.price
        summary = f"a {offer.type} license"
    return Quote(
        offer_id=offer.id,
        asset_id=offer.asset,
        type=offer.type,
        calls_bought=n,
        unit_price_wei=offer.price,
        cost_wei=cost,
        summary=summary,
    )


def quote_accept(offer: Offer) -> Quote:
    """What accepting a partnership offer costs: its upfront fee (may be 0)."""
    if offer.type != "partnership":
        raise UsageError(
            f"offer {offer.id} is a {offer.type} offer: it is bought, not accepted",
            hint=f"Run 'sahara license buy {offer.id}'.",
        )
    return Quote(
        offer_id=offer.id,
        asset_id=offer.asset,
        type="partnership",
        calls_bought=0,
        unit_price_wei=offer.price,
        cost_wei=offer.price,
        summary=f"the upfront fee of offer {offer.id}",
    )


def check_open(offer: Offer, now: int) -> None:
    """Refuse a paused offer, or one expired at chain time ``now``."""
    if offer.paused:
        raise OfferClosed(
            f"offer {offer.id} is paused by the owner of asset {offer.asset}",
            hint="Wait until the owner resumes it, or look for another offer with "
            "'sahara market list'.",
        )
    if offer.valid_until and now >= offer.valid_until:
        raise OfferClosed(
            f"offer {offer.id} expired at {utc(offer.valid_until)}",
            hint="Look for another offer with 'sahara market list'.",
        )


def check_partner(offer: Offer, address: str) -> None:
    """Refuse a partnership offered to someone else, or one already accepted."""
    if offer.partner is not None and not _same(offer.partner, address):
        raise NotPermitted(
            f"offer {offer.id} is offered to {offer.partner}, not to {address}",
            hint="Sign with the partner's ID: --id NAME.",
        )
    if offer.partner is not None and offer.sold:
        raise ProtocolReverted(f"partnership offer {offer.id} was already accepted")


def check_funds(address: str, balance: int, cost: int, what: str) -> None:
    """Refuse when ``balance`` cannot pay ``cost`` (gas comes on top)."""
    if balance < cost:
        raise ProtocolInsufficientFunds(
            f"{address} has {sah(balance)}; {what} costs {sah(cost)} plus gas"
        )


# -- preflight (reads the chain, sends nothing) ------------------------------------------


def preflight_funds(proto: Protocol, address: str, cost: int, what: str) -> None:
    """:func:`check_funds` against ``address``'s pending balance."""
    check_funds(address, proto.node.balance(address, "pending"), cost, what)


def prepare_buy(proto: Protocol, offer_id: int, calls: int | None = None) -> Quote:
    """The quote of buying from an offer that sells now (no funds checked yet)."""
    offer = proto.get_offer(offer_id)
    priced = quote(offer, calls)
    check_open(offer, chain_now(proto))
    return priced


def preflight_buy(proto: Protocol, offer_id: int, calls: int | None, buyer: str) -> Quote:
    """Everything :func:`buy` checks before it pays: the offer, its state, the funds."""
    priced = prepare_buy(proto, offer_id, calls)
    preflight_funds(proto, buyer, priced.cost_wei, f"{priced.summary} from offer {offer_id}")
    return priced


def prepare_accept(proto: Protocol, offer_id: int) -> tuple[Quote, Offer]:
    """The quote of accepting an open partnership offer (no partner or funds checked)."""
    offer = proto.get_offer(offer_id)
    priced = quote_accept(offer)
    check_open(offer, chain_now(proto))
    return priced, offer


def preflight_accept(proto: Protocol, offer_id: int, partner: str) -> Quote:
    """Everything :func:`accept` checks before it signs: type, state, partner, funds."""
    priced, offer = prepare_accept(proto, offer_id)
    check_partner(offer, partner)
    preflight_funds(proto, partner, priced.cost_wei, priced.summary)
    return priced


def check_owner(proto: Protocol, asset_id: int, address: str, action: str) -> None:
    """A clear refusal before any gas is spent when ``address`` does not own the asset."""
    owner = proto.asset(asset_id).owner
    if not _same(owner, address):
        raise NotPermitted(
            f"only the owner of asset {asset_id} ({owner}) can {action}; {address} does not own it",
            hint="Sign with the owner's ID: --id NAME.",
        )


# -- offers ------------------------------------------------------------------------------


def create_offer(
    proto: Protocol,
    signer: Signer,
    asset_id: int,
    kind: str,
    *,
    price: int = 0,
    duration: int = 0,
    terms: bytes | None = None,
    share_bps: int = 0,
    partner: str | None = None,
    lifetime: int | None = None,
    terms_file: Path | None = None,
) -> OfferResult:
    """List an offer for an asset ``signer`` owns; ``lifetime`` seconds of chain time from
    now it stops selling (None: until paused)."""
    check_owner(proto, asset_id, signer.address, "offer licenses for it")
    valid_until = chain_now(proto) + lifetime if lifetime is not None else 0
    offer_id, tx = proto.offer(
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
    listed = proto.get_offer(offer_id)
    return OfferResult.model_validate(
        OfferInfo.fields_of(listed)
        | {"terms_file": str(terms_file) if terms_file else None, "tx": tx.transaction()}
    )


def reprice(proto: Protocol, signer: Signer, offer_id: int, price: int) -> RepriceResult:
    """Change an offer's price; licenses already sold keep theirs."""
    before = proto.get_offer(offer_id)
    check_owner(proto, before.asset, signer.address, "reprice its offers")
    tx = proto.reprice(signer, offer_id, price)
    after = proto.get_offer(offer_id)
    return RepriceResult.model_validate(
        OfferInfo.fields_of(after) | {"old_price_wei": before.price, "tx": tx.transaction()}
    )


def set_paused(proto: Protocol, signer: Signer, offer_id: int, paused: bool) -> PauseResult:
    """Pause (stop selling) or resume an offer; licenses sold stay valid."""
    before = proto.get_offer(offer_id)
    verb = "pause" if paused else "resume"
    check_owner(proto, before.asset, signer.address, f"{verb} its offers")
    tx = proto.set_paused(signer, offer_id, paused)
    after = proto.get_offer(offer_id)
    return PauseResult.model_validate(
        OfferInfo.fields_of(after)
        | {"changed": before.paused != after.paused, "tx": tx.transaction()}
    )


# -- buying --------------------------------------------------------------------------------


def _closed_again(exc: OfferClosed, offer_id: int, proto: Protocol) -> OfferClosed:
    """The contract's terse ``offer has expired`` with the offer's id and time."""
    message = f"offer {offer_id}: {exc.message}"
    if "expired" in exc.message:
        valid_until = proto.get_offer(offer_id).valid_until
        if valid_until:
            message = f"offer {offer_id} expired at {utc(valid_until)}"
    return OfferClosed(message, hint=exc.hint, details=exc.details)


def buy(proto: Protocol, signer: Signer, priced: Quote) -> PurchaseResult:
    """Buy the license ``priced`` quotes (see :func:`preflight_buy`); nothing is sent when
    the owner repriced the offer since."""
    try:
        license_id, tx = proto.buy(
            signer, priced.offer_id, priced.calls_bought, price=priced.unit_price_wei
        )
    except OfferClosed as exc:
        raise _closed_again(exc, priced.offer_id, proto) from None
    return _purchased(proto, license_id, priced, tx.transaction())


def accept(proto: Protocol, signer: Signer, priced: Quote) -> PurchaseResult:
    """Accept the partnership ``priced`` quotes (see :func:`preflight_accept`)."""
    try:
        license_id, tx = proto.accept(signer, priced.offer_id, price=priced.unit_price_wei)
    except OfferClosed as exc:
        raise _closed_again(exc, priced.offer_id, proto) from None
    return _purchased(proto, license_id, priced, tx.transaction())


def _purchased(proto: Protocol, license_id: int, priced: Quote, tx: Transaction) -> PurchaseResult:
    lic = proto.get_license(license_id)
    return PurchaseResult.model_validate(
        LicenseInfo.fields_of(lic, chain_now(proto)) | {"cost_wei": priced.cost_wei, "tx": tx}
    )


# -- using a license -----------------------------------------------------------------------


def check_meterable(lic: License, calls: int) -> None:
    """An api license with at least ``calls`` prepaid calls left."""
    if calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    if lic.type != "api":
        raise UsageError(f"license {lic.id} is {lic.type}: only api licenses are metered")
    if calls > lic.calls:
        raise ProtocolReverted(
            f"license {lic.id} has {lic.calls} prepaid call{'s' if lic.calls != 1 else ''} "
            f"left, fewer than {calls}"
        )


def preflight_meter(proto: Protocol, license_id: int, calls: int, meter: str) -> License:
    """:func:`check_meterable`, and ``meter`` is the asset's meter."""
    lic = proto.get_license(license_id)
    check_meterable(lic, calls)
    meter_address = proto.asset(lic.asset).meter
    if not _same(meter_address, meter):
        raise NotPermitted(
            f"only the meter of asset {lic.asset} ({meter_address}) records its calls; "
            f"{meter} is not it",
            hint="Sign with the meter's ID: --id NAME.",
        )
    return lic


def meter(proto: Protocol, signer: Signer, license_id: int, calls: int) -> MeterResult:
    """Record ``calls`` api calls; each call's price moves to the asset's revenue."""
    lic = preflight_meter(proto, license_id, calls, signer.address)
    tx = proto.meter(signer, license_id, calls)
    after = proto.get_license(license_id)
    return MeterResult.model_validate(
        LicenseInfo.fields_of(after, chain_now(proto))
        | {"calls_metered": calls, "amount_wei": calls * lic.price, "tx": tx.transaction()}
    )


def check_refundable(lic: License) -> None:
    """An api license with unused calls."""
    if lic.type != "api":
        raise UsageError(f"license {lic.id} is {lic.type}: only api licenses are refunded")
    if lic.calls == 0:
        raise ProtocolReverted(f"license {lic.id} has no unused calls to refund")


def preflight_refund(proto: Protocol, license_id: int, holder: str) -> License:
    """:func:`check_refundable`, and ``holder`` holds the license."""
    lic = proto.get_license(license_id)
    check_refundable(lic)
    if not _same(lic.holder, holder):
        raise NotPermitted(
            f"only the holder of license {license_id} ({lic.holder}) can refund it",
            hint="Sign with the holder's ID: --id NAME.",
        )
    return lic


def refund(proto: Protocol, signer: Signer, license_id: int) -> RefundResult:
    """Pay an api license's holder back the price of its unused calls."""
    lic = preflight_refund(proto, license_id, signer.address)
    amount, tx = proto.refund(signer, license_id)
    after = proto.get_license(license_id)
    return RefundResult.model_validate(
        LicenseInfo.fields_of(after, chain_now(proto))
        | {"calls_refunded": lic.calls, "refunded_wei": amount, "tx": tx.transaction()}
    )


def settle_amount(lic: License, revenue: int) -> int:
    """A partnership's share of ``revenue``, rounded down to the wei as the contract does."""
    return revenue * lic.share_bps // BPS


def check_settleable(lic: License, revenue: int) -> int:
    """A partnership license whose share of ``revenue`` is worth paying; that share."""
    if lic.type != "partnership":
        raise UsageError(f"license {lic.id} is {lic.type}: only partnerships are settled")
    amount = settle_amount(lic, revenue)
    if amount == 0:
        raise UsageError(
            f"{sah(revenue)} of revenue at {lic.share_bps / 100:g}% is nothing to settle"
        )
    return amount


def preflight_settle(proto: Protocol, license_id: int, revenue: int, partner: str) -> License:
    """:func:`check_settleable`, ``partner`` holds the license and can pay the share."""
    lic = proto.get_license(license_id)
    amount = check_settleable(lic, revenue)
    if not _same(lic.holder, partner):
        raise NotPermitted(
            f"only the partner holding license {license_id} ({lic.holder}) settles it",
            hint="Sign with the partner's ID: --id NAME.",
        )
    preflight_funds(proto, partner, amount, f"the {lic.share_bps / 100:g}% share")
    return lic


def settle(proto: Protocol, signer: Signer, license_id: int, revenue: int) -> SettleResult:
    """Pay a partnership's agreed share of ``revenue`` (wei) to the asset."""
    lic = preflight_settle(proto, license_id, revenue, signer.address)
    tx = proto.settle(signer, license_id, revenue)
    return SettleResult(
        license_id=license_id,
        asset_id=lic.asset,
        revenue_wei=revenue,
        share_bps=lic.share_bps,
        amount_wei=settle_amount(lic, revenue),
        tx=tx.transaction(),
    )


# -- reading -------------------------------------------------------------------------------


def show_license(proto: Protocol, license_id: int) -> LicenseInfo:
    """A license, and whether it grants access at the latest block."""
    lic = proto.get_license(license_id)
    return LicenseInfo.of(lic, chain_now(proto))


def list_licenses(
    proto: Protocol, home_root: Path, *, holder: str | None = None, asset_id: int | None = None
) -> LicenseList:
    """Licenses sold on this chain, from the home's index of chain events."""
    from sahara_cli.protocol.index import ProtocolIndex

    with ProtocolIndex.for_home(proto, home_root) as index:
        found = index.licenses(holder=holder, asset=asset_id)
        now = index.now  # the head the index was brought up to
    return LicenseList(
        holder=holder,
        asset_id=asset_id,
        count=len(found),
        licenses=[LicenseInfo.of(lic, now) for lic in found],
    )


def check_access(
    proto: Protocol, asset_id: int, user: str, scope: AccessScope = "any"
) -> AccessCheck:
    """Whether ``user`` may use the asset: it owns it or holds a license that grants
    access now (of type ``scope``, or of any type)."""
    from sahara_cli.protocol.client import FOREVER, LICENSE_TYPES

    owner = _same(proto.asset(asset_id).owner, user)
    access = proto.has_access(asset_id, user, scope)
    calls_left = None
    if scope in ("any", "api"):
        calls_left = int(proto.licensing.call("apiCalls", asset_id, user))
    types = None
    timed: list[str] = [scope] if scope not in ("any", "api") else []
    if scope == "any":
        types = {name: proto.has_access(asset_id, user, name) for name in LICENSE_TYPES}
        timed = [name for name in LICENSE_TYPES if name != "api" and types[name]]
    # The furthest expiry among the time-limited accesses in question; for "any", among
    # the types that grant access now.
    until = max((proto.access_until(asset_id, user, name) for name in timed), default=0)
    return AccessCheck(
        asset_id=asset_id,
        user=user,
        type=scope,
        access=access,
        owner=owner,
        calls_left=calls_left,
        types=types,
        expires_at=None if until == FOREVER else moment(until),
        never_expires=until == FOREVER,
    )
