"""sahara_cli.protocol.licensing: the licensing rules on their own, then every workflow
against a real dev chain (each test rolled back), with the typed results it returns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from sahara_cli.errors import (
    LicenseNotFound,
    NotPermitted,
    OfferClosed,
    OfferNotFound,
    ProtocolInsufficientFunds,
    ProtocolReverted,
    UsageError,
)
from sahara_cli.identity.keys import keccak256
from sahara_cli.protocol import licensing
from sahara_cli.protocol.client import License, Offer
from sahara_cli.protocol.license_results import LicenseInfo, OfferInfo, license_active

if TYPE_CHECKING:
    from tests.unit.chain_fixtures import Chain

pytest_plugins = ("tests.unit.chain_fixtures",)  # node_url, chain
SAH = 10**18
DAY = 86_400

PARTNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TERMS = "0x" + keccak256(b"terms").hex()
ZERO = "0x" + "00" * 32


def an_offer(**changes: object) -> Offer:
    base = Offer(
        id=7,
        asset=3,
        type="full",
        price=2 * SAH,
        duration=0,
        terms=ZERO,
        share_bps=0,
        partner=None,
        valid_until=0,
        paused=False,
        sold=0,
        created=1_700_000_000,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def a_license(**changes: object) -> License:
    base = License(
        id=9,
        offer=7,
        asset=3,
        holder=PARTNER.lower(),
        type="api",
        price=SAH // 100,
        start=1_700_000_000,
        expiry=None,
        calls=5,
        used=1,
        terms=ZERO,
        share_bps=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- the rules -------------------------------------------------------------------------


def test_quote_prices_api_calls_and_one_time_licenses() -> None:
    api = licensing.quote(an_offer(type="api", price=SAH // 4), 4)
    assert (api.cost_wei, api.cost_sah, api.calls_bought) == (SAH, "1", 4)
    assert api.unit_price_sah == "0.25" and api.summary == "4 calls at 0.25 SAH"
    assert licensing.quote(an_offer(type="api"), 1).summary.startswith("1 call at")
    full = licensing.quote(an_offer())
    assert (full.cost_wei, full.calls_bought, full.summary) == (2 * SAH, 0, "a full license")
    assert full.model_dump(mode="json")["cost_wei"] == str(2 * SAH)


@pytest.mark.parametrize(
    ("offer", "calls", "needle"),
    [
        (an_offer(type="api"), None, "--calls N"),
        (an_offer(type="api"), 0, "at least 1"),
        (an_offer(), 3, "--calls is for api offers"),
        (an_offer(type="partnership"), None, "accepted, not bought"),
    ],
)
def test_quote_refuses_calls_that_do_not_fit(offer: Offer, calls: int | None, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        licensing.quote(offer, calls)


def test_quote_accept_is_for_partnerships_only() -> None:
    fee = licensing.quote_accept(an_offer(type="partnership", price=SAH // 2))
    assert (fee.cost_wei, fee.type) == (SAH // 2, "partnership")
    with pytest.raises(UsageError, match="bought, not accepted"):
        licensing.quote_accept(an_offer())


def test_check_open_refuses_paused_and_expired_offers_by_chain_time() -> None:
    licensing.check_open(an_offer(valid_until=1000), now=999)
    licensing.check_open(an_offer(valid_until=0), now=10**12)  # 0: open until paused
    with pytest.raises(OfferClosed, match="paused") as paused:
        licensing.check_open(an_offer(paused=True), now=0)
    assert paused.value.code == "license.offer_closed"
    with pytest.raises(OfferClosed, match="offer 7 expired at 1970-01-01 00:16:40 UTC"):
        licensing.check_open(an_offer(valid_until=1000), now=1000)


def test_check_partner() -> None:
    licensing.check_partner(an_offer(type="partnership"), PARTNER)  # open to anyone
    named = an_offer(type="partnership", partner=PARTNER)
    licensing.check_partner(named, PARTNER.lower())
    with pytest.raises(NotPermitted, match=PARTNER):
        licensing.check_partner(named, "0x" + "11" * 20)
    with pytest.raises(ProtocolReverted, match="already accepted"):
        licensing.check_partner(dataclasses.replace(named, sold=1), PARTNER)
    licensing.check_partner(an_offer(type="partnership", sold=3), PARTNER)  # anyone: many


def test_check_funds_names_the_balance_and_the_cost() -> None:
    licensing.check_funds(PARTNER, SAH, SAH, "x")
    with pytest.raises(ProtocolInsufficientFunds) as refused:
        licensing.check_funds(PARTNER, SAH // 2, SAH, "a full license")
    assert refused.value.message == f"{PARTNER} has 0.5 SAH; a full license costs 1 SAH plus gas"
    assert refused.value.code == "protocol.insufficient_funds"


def test_check_meterable_refundable_settleable() -> None:
    licensing.check_meterable(a_license(), 5)
    with pytest.raises(ProtocolReverted, match="5 prepaid calls left, fewer than 6"):
        licensing.check_meterable(a_license(), 6)
    with pytest.raises(UsageError, match="only api"):
        licensing.check_meterable(a_license(type="full"), 1)
    with pytest.raises(UsageError, match="at least 1"):
        licensing.check_meterable(a_license(), 0)
    licensing.check_refundable(a_license())
    with pytest.raises(ProtocolReverted, match="no unused calls"):
        licensing.check_refundable(a_license(calls=0))
    partnership = a_license(type="partnership", share_bps=2000)
    assert licensing.check_settleable(partnership, 10 * SAH) == 2 * SAH
    assert licensing.settle_amount(partnership, 9) == 1  # rounded down, as on chain
    with pytest.raises(UsageError, match="nothing to settle"):
        licensing.check_settleable(partnership, 4)
    with pytest.raises(UsageError, match="only partnerships"):
        licensing.check_settleable(a_license(), SAH)


def test_models_follow_the_conventions() -> None:
    lic = LicenseInfo.of(a_license(), now=0)
    doc = lic.model_dump(mode="json")
    assert doc["holder"] == PARTNER  # checksummed
    assert doc["started_at"] == "2023-11-14T22:13:20Z" and doc["expires_at"] is None
    assert (doc["price_wei"], doc["price_sah"], doc["calls_left"]) == (str(SAH // 100), "0.01", 5)
    timed = a_license(type="long-term", expiry=1_700_000_000 + DAY, calls=0)
    assert not license_active(timed, 1_700_000_000 + DAY)
    assert license_active(timed, 1_700_000_000 + DAY - 1)
    assert license_active(a_license(type="full", expiry=None), 2**40)
    assert not license_active(a_license(calls=0), 0)
    offer = OfferInfo.of(an_offer(valid_until=2**255, partner=PARTNER.lower()))
    assert offer.expires_at is None  # past year 9999: never
    assert offer.partner == PARTNER and offer.created_at == datetime.fromtimestamp(
        1_700_000_000, UTC
    )


# -- workflows on a chain --------------------------------------------------------------


def test_offer_buy_show_and_check_a_full_license(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(p, chain.owner, chain.asset, "full", price=3 * SAH // 2)
    assert (listed.type, listed.price_sah, listed.asset_id) == ("full", "1.5", chain.asset)
    assert listed.tx.status == "success" and listed.tx.fee_wei > 0
    assert listed.expires_at is None and listed.sold == 0

    priced = licensing.preflight_buy(p, listed.offer_id, None, chain.buyer.address)
    before = chain.client.balance(chain.buyer.address)
    bought = licensing.buy(p, chain.buyer, priced)
    assert bought.cost_wei == 3 * SAH // 2 and bought.holder == chain.buyer.address
    assert bought.active and bought.expires_at is None
    assert chain.client.balance(chain.buyer.address) == before - bought.cost_wei - bought.tx.fee_wei

    shown = licensing.show_license(p, bought.license_id)
    assert (
        shown.model_dump()
        == LicenseInfo.model_validate(
            bought.model_dump(exclude={"cost_wei", "cost_sah", "tx", "warnings"})
        ).model_dump()
    )
    full = licensing.check_access(p, chain.asset, chain.buyer.address, "full")
    assert full.access and full.never_expires and full.expires_at is None
    assert full.calls_left is None and full.types is None
    anything = licensing.check_access(p, chain.asset, chain.buyer.address)
    assert anything.types == {"api": False, "full": True, "long-term": False, "partnership": False}
    owner = licensing.check_access(p, chain.asset, chain.owner.address)
    assert owner.owner and owner.access
    nobody = licensing.check_access(p, chain.asset, chain.poor.address, "long-term")
    assert not nobody.access and nobody.expires_at is None and not nobody.never_expires


def test_preflight_buy_refuses_before_anything_is_sent(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(p, chain.owner, chain.asset, "full", price=5 * SAH)
    nonce = chain.client.nonce(chain.poor.address)
    with pytest.raises(ProtocolInsufficientFunds, match="has 0 SAH; a full license from offer"):
        licensing.preflight_buy(p, listed.offer_id, None, chain.poor.address)
    with pytest.raises(OfferNotFound, match="999"):
        licensing.preflight_buy(p, 999, None, chain.buyer.address)
    licensing.set_paused(p, chain.owner, listed.offer_id, True)
    with pytest.raises(OfferClosed, match="paused"):
        licensing.preflight_buy(p, listed.offer_id, None, chain.buyer.address)
    assert chain.client.nonce(chain.poor.address) == nonce


def test_an_offer_expires_by_chain_time(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(p, chain.owner, chain.asset, "full", price=SAH, lifetime=3600)
    assert listed.expires_at is not None
    start = licensing.chain_now(p)
    assert start < listed.expires_at.timestamp() <= start + 3600
    priced = licensing.prepare_buy(p, listed.offer_id)
    chain.advance(7200)
    with pytest.raises(OfferClosed, match=f"offer {listed.offer_id} expired at "):
        licensing.prepare_buy(p, listed.offer_id)
    with pytest.raises(OfferClosed, match=f"offer {listed.offer_id} expired at "):
        licensing.buy(p, chain.buyer, priced)  # the contract's refusal, with the offer's time


def test_only_the_owner_manages_offers(chain: Chain) -> None:
    p = chain.proto
    with pytest.raises(NotPermitted, match=chain.owner.address):
        licensing.create_offer(p, chain.buyer, chain.asset, "full", price=SAH)
    listed = licensing.create_offer(p, chain.owner, chain.asset, "full", price=SAH)
    with pytest.raises(NotPermitted, match="reprice"):
        licensing.reprice(p, chain.buyer, listed.offer_id, 2 * SAH)
    with pytest.raises(NotPermitted, match="pause"):
        licensing.set_paused(p, chain.buyer, listed.offer_id, True)


def test_reprice_pause_resume(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(p, chain.owner, chain.asset, "full", price=SAH)
    priced = licensing.prepare_buy(p, listed.offer_id)
    repriced = licensing.reprice(p, chain.owner, listed.offer_id, 3 * SAH)
    assert (repriced.old_price_sah, repriced.price_sah) == ("1", "3")
    with pytest.raises(ProtocolReverted, match="repriced"):
        licensing.buy(p, chain.buyer, priced)  # agreed at 1 SAH: nothing sent
    paused = licensing.set_paused(p, chain.owner, listed.offer_id, True)
    assert paused.paused and paused.changed
    again = licensing.set_paused(p, chain.owner, listed.offer_id, True)
    assert again.paused and not again.changed
    resumed = licensing.set_paused(p, chain.owner, listed.offer_id, False)
    assert not resumed.paused and resumed.changed


def test_api_license_meter_and_refund(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(p, chain.owner, chain.asset, "api", price=SAH // 100)
    bought = licensing.buy(p, chain.buyer, licensing.prepare_buy(p, listed.offer_id, 10))
    assert (bought.cost_sah, bought.calls_left, bought.calls_used) == ("0.1", 10, 0)
    with pytest.raises(NotPermitted, match="meter of asset"):
        licensing.meter(p, chain.buyer, bought.license_id, 1)
    with pytest.raises(ProtocolReverted, match="10 prepaid calls left, fewer than 11"):
        licensing.preflight_meter(p, bought.license_id, 11, chain.owner.address)
    metered = licensing.meter(p, chain.owner, bought.license_id, 3)
    assert (metered.calls_metered, metered.amount_sah) == (3, "0.03")
    assert (metered.calls_left, metered.calls_used) == (7, 3)
    api = licensing.check_access(p, chain.asset, chain.buyer.address, "api")
    assert api.access and api.calls_left == 7

    with pytest.raises(NotPermitted, match="holder"):
        licensing.refund(p, chain.owner, bought.license_id)
    refunded = licensing.refund(p, chain.buyer, bought.license_id)
    assert (refunded.calls_refunded, refunded.refunded_sah) == (7, "0.07")
    assert refunded.calls_left == 0 and not refunded.active
    with pytest.raises(ProtocolReverted, match="no unused calls"):
        licensing.preflight_refund(p, bought.license_id, chain.buyer.address)
    with pytest.raises(LicenseNotFound):
        licensing.show_license(p, 999)


def test_partnership_accept_and_settle(chain: Chain) -> None:
    p = chain.proto
    terms = keccak256(b"terms")
    listed = licensing.create_offer(
        p,
        chain.owner,
        chain.asset,
        "partnership",
        terms=terms,
        share_bps=2000,
        partner=chain.partner.address,
        duration=365 * DAY,
    )
    assert listed.terms == TERMS and listed.partner == chain.partner.address
    with pytest.raises(UsageError, match="accepted, not bought"):
        licensing.prepare_buy(p, listed.offer_id)
    with pytest.raises(NotPermitted, match=chain.partner.address):
        licensing.preflight_accept(p, listed.offer_id, chain.buyer.address)
    priced = licensing.preflight_accept(p, listed.offer_id, chain.partner.address)
    accepted = licensing.accept(p, chain.partner, priced)
    assert accepted.type == "partnership" and accepted.share_bps == 2000
    assert accepted.expires_at is not None
    assert accepted.expires_at.timestamp() - accepted.started_at.timestamp() == 365 * DAY
    with pytest.raises(ProtocolReverted, match="already accepted"):
        licensing.preflight_accept(p, listed.offer_id, chain.partner.address)

    with pytest.raises(NotPermitted, match="holding license"):
        licensing.settle(p, chain.buyer, accepted.license_id, 10 * SAH)
    settled = licensing.settle(p, chain.partner, accepted.license_id, 10 * SAH)
    assert (settled.amount_sah, settled.revenue_sah, settled.asset_id) == ("2", "10", chain.asset)
    assert p.received(chain.asset) == 2 * SAH
    timed = licensing.check_access(p, chain.asset, chain.partner.address, "partnership")
    assert timed.expires_at == accepted.expires_at


def test_preflight_settle_checks_the_partners_funds(chain: Chain) -> None:
    p = chain.proto
    listed = licensing.create_offer(
        p, chain.owner, chain.asset, "partnership", terms=keccak256(b"t"), share_bps=5000
    )
    poor = chain.poor
    chain.client.call("sahara_dev_setBalance", poor.address, hex(SAH))
    accepted = licensing.accept(
        p, poor, licensing.preflight_accept(p, listed.offer_id, poor.address)
    )
    with pytest.raises(ProtocolInsufficientFunds, match="the 50% share"):
        licensing.preflight_settle(p, accepted.license_id, 100 * SAH, poor.address)


def test_list_licenses_from_the_index(chain: Chain) -> None:
    p = chain.proto
    full = licensing.create_offer(p, chain.owner, chain.asset, "full", price=SAH // 10)
    api = licensing.create_offer(p, chain.owner, chain.asset, "api", price=SAH // 10)
    a = licensing.buy(p, chain.buyer, licensing.prepare_buy(p, full.offer_id)).license_id
    b = licensing.buy(p, chain.partner, licensing.prepare_buy(p, api.offer_id, 2)).license_id
    everything = licensing.list_licenses(p, chain.home, asset_id=chain.asset)
    assert {lic.license_id for lic in everything.licenses} == {a, b} and everything.count == 2
    mine = licensing.list_licenses(p, chain.home, holder=chain.buyer.address)
    assert [lic.license_id for lic in mine.licenses] == [a] and mine.holder == chain.buyer.address
    assert licensing.list_licenses(p, chain.home, holder=chain.poor.address).licenses == []
