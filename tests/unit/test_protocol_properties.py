"""Property tests of the protocol contracts: random graphs, payments and licence histories.

Each hypothesis example runs inside its own ``env.anchor()``, so examples never see each
other's chain state. ``SAHARA_PROTOCOL_EXAMPLES`` multiplies every test's example count
(default 1) for a deeper run.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_protocol_contracts import (
    ANY,
    API,
    BPS,
    DAY,
    FULL,
    LONG_TERM,
    NON_TRANSFERABLE,
    ONLY_OWNER,
    PARTNERSHIP,
    ZERO,
    Protocol,
)

SCALE = int(os.environ.get("SAHARA_PROTOCOL_EXAMPLES", "1"))
MAX_DEPTH = 3
#: Accounts 0..5 own and contribute to assets; 6 and 7 pay, buy and license.
PEOPLE = range(6)
PAYERS = (6, 7)

pytest_plugins = ("tests.unit.protocol_fixtures",)  # the deployed fixture


def examples(n: int) -> Any:
    return settings(max_examples=n * SCALE, deadline=None)


# --------------------------------------------------------------------------- reference model


@dataclass(frozen=True)
class AssetSpec:
    owner: int
    parents: tuple[int, ...]  # asset ids, all lower than this asset's id
    upstream_bps: int
    contributors: tuple[tuple[int, int], ...]  # (account index, weight); empty: owner alone


def split(
    graph: list[AssetSpec],
    asset: int,
    amount: int,
    credits: Counter[int],
    received: Counter[int],
    sources: tuple[int, ...] = (),
) -> None:
    """Pure-Python reference of Attribution._distribute, credits by account index.

    Same integer rounding as the contract: each parent gets amount * upstream // 10000 //
    len(parents); each contributor gets local * weight // 10000; the owner gets the dust.
    Work items are never merged, and nothing is passed on beyond MAX_DEPTH levels.
    ``sources`` (payWith) join the parents at the first level, each asset once.
    """
    queue = [(asset, amount, 0)]
    while queue:
        current, value, depth = queue.pop()
        spec = graph[current - 1]
        received[current] += value
        local = value
        targets = list(spec.parents)
        if depth == 0:
            targets += [s for s in dict.fromkeys(sources) if s != current and s not in targets]
        if spec.upstream_bps and depth < MAX_DEPTH and targets:
            per_parent = value * spec.upstream_bps // BPS // len(targets)
            if per_parent:
                queue.extend((target, per_parent, depth + 1) for target in targets)
                local -= per_parent * len(targets)
        contributors = spec.contributors or ((spec.owner, BPS),)
        given = 0
        for account, weight in contributors:
            part = local * weight // BPS
            credits[account] += part
            given += part
        credits[spec.owner] += local - given


@st.composite
def weights(draw: st.DrawFn, accounts: list[int]) -> tuple[tuple[int, int], ...]:
    """Positive basis-point weights for ``accounts`` that sum to exactly 10,000."""
    cuts = sorted(
        draw(
            st.sets(st.integers(1, BPS - 1), min_size=len(accounts) - 1, max_size=len(accounts) - 1)
        )
    )
    bounds = [0, *cuts, BPS]
    return tuple(
        (account, high - low)
        for account, low, high in zip(accounts, bounds[:-1], bounds[1:], strict=True)
    )


@st.composite
def contributor_sets(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    """Empty (the owner alone) or up to five distinct accounts, the owner maybe among them."""
    accounts = draw(st.lists(st.sampled_from(PEOPLE), unique=True, max_size=5))
    if not accounts:
        return ()
    return draw(weights(accounts))


@st.composite
def graphs(draw: st.DrawFn, max_assets: int = 8) -> list[AssetSpec]:
    """A random DAG: asset i may derive from up to four distinct earlier assets."""
    n = draw(st.integers(1, max_assets))
    graph = []
    for asset in range(1, n + 1):
        earlier = list(range(1, asset))
        parents = tuple(
            draw(st.lists(st.sampled_from(earlier), unique=True, max_size=4)) if earlier else []
        )
        upstream = (
            draw(st.one_of(st.just(BPS), st.integers(0, BPS), st.integers(1, 50))) if parents else 0
        )
        graph.append(
            AssetSpec(
                owner=draw(st.sampled_from(PEOPLE)),
                parents=parents,
                upstream_bps=upstream,
                contributors=draw(contributor_sets()),
            )
        )
    return graph


def build(p: Protocol, graph: list[AssetSpec]) -> None:
    for asset, spec in enumerate(graph, start=1):
        got = p.register(
            p.accounts[spec.owner],
            parents=list(spec.parents),
            contributors=[(p.accounts[a], w) for a, w in spec.contributors],
            upstream_bps=spec.upstream_bps,
        )
        assert got == asset


# --------------------------------------------------------------------------- revenue


amounts = st.one_of(st.integers(1, 1_000), st.integers(1, 10**21))
asset_refs = st.integers(0, 10**6)  # taken modulo the number of assets
source_refs = st.lists(asset_refs, max_size=4)  # payWith / meterWith sources, repeats too
revenue_ops = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), asset_refs, amounts, st.sampled_from(PAYERS)),
        st.tuples(st.just("payWith"), asset_refs, amounts, st.sampled_from(PAYERS), source_refs),
        st.tuples(
            st.just("meterWith"),
            asset_refs,
            st.integers(0, 10**17),
            st.integers(1, 40),
            st.integers(1, 40),
            source_refs,
        ),
        st.tuples(st.just("full"), asset_refs, st.integers(0, 10**19), st.sampled_from(PAYERS)),
        st.tuples(
            st.just("api"),
            asset_refs,
            st.integers(0, 10**17),
            st.integers(1, 40),
            st.integers(0, 40),
        ),
        st.tuples(
            st.just("partner"), asset_refs, st.integers(0, 10**18), st.integers(1, BPS), amounts
        ),
        st.tuples(st.just("claim"), st.sampled_from(range(8))),
    ),
    max_size=12,
)


@examples(80)
@given(graph=graphs(), ops=revenue_ops)
def test_revenue_is_conserved_and_split_like_the_model(
    deployed: Protocol, graph: list[AssetSpec], ops: list[tuple[Any, ...]]
) -> None:
    """Every wei paid in, directly or by a licence, is credited exactly as the model says.

    sum(payments) == sum(claimable) + sum(claimed) == Attribution balance + total claimed,
    each account's credits match the reference split, and so does each asset's received.
    """
    p = deployed
    with p.env.anchor():
        build(p, graph)
        acct = p.accounts
        credits: Counter[int] = Counter()
        received: Counter[int] = Counter()
        paid_in = 0
        claimed: Counter[int] = Counter()

        def paid(asset: int, amount: int, sources: tuple[int, ...] = ()) -> None:
            nonlocal paid_in
            if amount:
                split(graph, asset, amount, credits, received, sources)
                paid_in += amount

        for op in ops:
            kind = op[0]
            if kind == "claim":
                who = acct[op[1]]
                expected = credits[op[1]] - claimed[op[1]]
                if expected == 0:
                    with p.env.prank(who), boa.reverts("nothing to claim"):
                        p.attribution.claim()
                    continue
                before = p.balance(who)
                with p.env.prank(who):
                    assert p.attribution.claim() == expected
                assert p.balance(who) - before == expected
                claimed[op[1]] += expected
                continue
            asset = op[1] % len(graph) + 1
            owner = acct[graph[asset - 1].owner]
            if kind == "pay":
                p.pay(acct[op[3]], asset, op[2])
                paid(asset, op[2])
            elif kind == "payWith":
                sources = tuple(ref % len(graph) + 1 for ref in op[4])
                with p.env.prank(acct[op[3]]):
                    p.attribution.payWith(asset, list(sources), value=op[2])
                paid(asset, op[2], sources)
            elif kind == "meterWith":
                _, _, price, calls, used, refs = op
                sources = tuple(ref % len(graph) + 1 for ref in refs)
                lic = p.buy(acct[7], p.offer(owner, asset, API, price=price), calls=calls)
                used = min(used, calls)
                with p.env.prank(owner):
                    p.licensing.meterWith(lic, used, list(sources))
                paid(asset, used * price, sources)
            elif kind == "full":
                p.buy(acct[op[3]], p.offer(owner, asset, FULL, price=op[2]))
                paid(asset, op[2])
            elif kind == "api":
                _, _, price, calls, used = op
                lic = p.buy(acct[7], p.offer(owner, asset, API, price=price), calls=calls)
                used = min(used, calls)
                if used:
                    with p.env.prank(owner):
                        p.licensing.meter(lic, used)
                paid(asset, used * price)
            else:
                _, _, fee, share, revenue = op
                lic = p.accept(acct[6], p.partnership(owner, asset, price=fee, share_bps=share))
                paid(asset, fee)
                due = revenue * share // BPS
                if due:
                    with p.env.prank(acct[6]):
                        p.licensing.settle(lic, revenue, value=due)
                paid(asset, due)

        total_claimable = sum(p.attribution.claimable(a) for a in acct)
        total_claimed = sum(p.attribution.claimed(a) for a in acct)
        assert p.attribution.totalPaid() == paid_in
        assert p.attribution.totalClaimed() == total_claimed == sum(claimed.values())
        assert total_claimable + total_claimed == paid_in
        assert p.balance(p.attribution.address) + total_claimed == paid_in
        for i, account in enumerate(acct):
            assert p.attribution.claimable(account) + p.attribution.claimed(account) == credits[i]
            assert p.attribution.claimed(account) == claimed[i]
        for asset in range(1, len(graph) + 1):
            assert p.attribution.received(asset) == received[asset]


def test_the_reference_split_matches_a_hand_computed_case() -> None:
    """The model itself: 1000 wei into a child with two parents at 50 % upstream."""
    graph = [
        AssetSpec(owner=0, parents=(), upstream_bps=0, contributors=()),
        AssetSpec(owner=1, parents=(), upstream_bps=0, contributors=((1, 3_333), (2, 6_667))),
        AssetSpec(owner=3, parents=(1, 2), upstream_bps=5_000, contributors=((4, BPS),)),
    ]
    credits: Counter[int] = Counter()
    received: Counter[int] = Counter()
    split(graph, 3, 1_001, credits, received)
    # 250 to each parent; asset 2 splits 250 as 83 + 166 with 1 wei of dust to owner 1.
    assert credits == Counter({0: 250, 1: 84, 2: 166, 4: 501})
    assert received == Counter({1: 250, 2: 250, 3: 1_001})


# --------------------------------------------------------------------------- long-term access


@examples(60)
@given(
    duration=st.one_of(st.integers(1, 100), st.integers(1, 30 * DAY)),
    steps=st.lists(
        st.tuples(st.one_of(st.integers(0, 50), st.integers(0, 40 * DAY)), st.booleans()),
        min_size=1,
        max_size=10,
    ),
)
def test_long_term_access_ends_at_expiry_and_renewals_extend_it(
    deployed: Protocol, duration: int, steps: list[tuple[int, bool]]
) -> None:
    """Access holds exactly while now < expiry; a renewal adds to max(expiry, now)."""
    p = deployed
    with p.env.anchor():
        owner, buyer, stranger = p.accounts[0], p.accounts[6], p.accounts[7]
        asset = p.register(owner)
        offer = p.offer(owner, asset, LONG_TERM, price=1, duration=duration)
        expiry = 0
        for wait, renew in steps:
            p.env.time_travel(seconds=wait)
            now = p.env.timestamp
            if renew:
                p.buy(buyer, offer)
                expiry = max(expiry, now) + duration
            assert p.licensing.accessUntil(asset, buyer, LONG_TERM) == expiry
            assert p.licensing.hasAccess(asset, buyer, LONG_TERM) == (now < expiry)
            assert p.licensing.hasAccess(asset, buyer, ANY) == (now < expiry)
            assert not p.licensing.hasAccess(asset, buyer, FULL)
            assert not p.licensing.hasAccess(asset, stranger, ANY)
        now = p.env.timestamp
        if expiry > now:
            p.env.time_travel(seconds=expiry - now - 1)
            assert p.licensing.hasAccess(asset, buyer, LONG_TERM)
            p.env.time_travel(seconds=1)
        assert not p.licensing.hasAccess(asset, buyer, LONG_TERM)
        assert not p.licensing.hasAccess(asset, buyer, ANY)
        assert p.licensing.hasAccess(asset, owner, LONG_TERM)


# --------------------------------------------------------------------------- receipts


transfer_calls = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "transferFrom",
                "safeTransferFrom",
                "safeTransferFrom4",
                "approve",
                "setApprovalForAll",
            ]
        ),
        st.sampled_from(range(8)),  # caller
        st.sampled_from(range(8)),  # from / operator
        st.sampled_from(range(8)),  # to
        st.integers(0, 40),  # token id, valid or not
        st.booleans(),
    ),
    min_size=1,
    max_size=10,
)


@examples(40)
@given(graph=graphs(max_assets=4), calls=transfer_calls)
def test_receipts_are_never_transferred_or_approved(
    deployed: Protocol, graph: list[AssetSpec], calls: list[tuple[Any, ...]]
) -> None:
    """Whoever calls, for whatever token, transfers and approvals revert and change nothing."""
    p = deployed
    with p.env.anchor():
        build(p, graph)
        acct = p.accounts
        supply = p.receipts.totalSupply()
        holders = [p.receipts.ownerOf(t) for t in range(1, supply + 1)]
        balances = [p.receipts.balanceOf(a) for a in acct]
        reputations = [p.receipts.reputation(a) for a in acct]
        for fn, caller, src, dst, token, flag in calls:
            with p.env.prank(acct[caller]), boa.reverts(NON_TRANSFERABLE):
                if fn == "transferFrom":
                    p.receipts.transferFrom(acct[src], acct[dst], token)
                elif fn == "safeTransferFrom":
                    p.receipts.safeTransferFrom(acct[src], acct[dst], token)
                elif fn == "safeTransferFrom4":
                    p.receipts.safeTransferFrom(acct[src], acct[dst], token, b"\x01" * token)
                elif fn == "approve":
                    p.receipts.approve(acct[dst], token)
                else:
                    p.receipts.setApprovalForAll(acct[dst], flag)
            assert p.receipts.isApprovedForAll(acct[caller], acct[dst]) is False
        assert p.receipts.totalSupply() == supply
        for token, holder in enumerate(holders, start=1):
            assert p.receipts.ownerOf(token) == holder
            assert p.receipts.getApproved(token) == ZERO
            assert p.receipts.locked(token) is True
        assert [p.receipts.balanceOf(a) for a in acct] == balances
        assert [p.receipts.reputation(a) for a in acct] == reputations


@examples(30)
@given(graph=graphs(max_assets=5))
def test_reputation_is_the_sum_of_receipt_shares(
    deployed: Protocol, graph: list[AssetSpec]
) -> None:
    """Receipts record each contributor's weight; reputation sums them over assets."""
    p = deployed
    with p.env.anchor():
        build(p, graph)
        expected: Counter[int] = Counter()
        for spec in graph:
            for account, weight in spec.contributors or ((spec.owner, BPS),):
                expected[account] += weight
        for i, account in enumerate(p.accounts):
            assert p.receipts.reputation(account) == expected[i]
        supply = p.receipts.totalSupply()
        shares: Counter[str] = Counter()
        for token in range(1, supply + 1):
            receipt = p.receipts.receipts(token)
            shares[receipt.holder] += receipt.share_bps
        assert all(shares[a] == expected[i] for i, a in enumerate(p.accounts))


# --------------------------------------------------------------------------- owner-only offers


offer_actions = st.lists(
    st.tuples(
        st.sampled_from(["offer", "reprice", "pause"]),
        st.sampled_from(range(8)),  # caller
        st.integers(0, 10**6),  # asset or offer reference
        st.integers(0, 10**18),  # price
        st.booleans(),  # paused
    ),
    min_size=1,
    max_size=15,
)


@examples(50)
@given(owners=st.lists(st.sampled_from(range(4)), min_size=1, max_size=3), actions=offer_actions)
def test_only_owners_offer_reprice_or_pause(
    deployed: Protocol, owners: list[int], actions: list[tuple[Any, ...]]
) -> None:
    """Random callers: the asset's owner succeeds, anyone else reverts and changes nothing."""
    p = deployed
    with p.env.anchor():
        acct = p.accounts
        assets = [p.register(acct[o]) for o in owners]
        offers: list[dict[str, Any]] = []  # model: asset, price, paused
        for action, caller, ref, price, paused in actions:
            if action == "offer" or not offers:
                asset = assets[ref % len(assets)]
                allowed = caller == owners[asset - 1]
                if allowed:
                    got = p.offer(acct[caller], asset, FULL, price=price)
                    offers.append({"asset": asset, "price": price, "paused": False})
                    assert got == len(offers)
                else:
                    with boa.reverts(ONLY_OWNER):
                        p.offer(acct[caller], asset, FULL, price=price)
                continue
            offer = ref % len(offers) + 1
            model = offers[offer - 1]
            allowed = caller == owners[model["asset"] - 1]
            with p.env.prank(acct[caller]):
                if not allowed:
                    with boa.reverts(ONLY_OWNER):
                        if action == "reprice":
                            p.licensing.reprice(offer, price)
                        else:
                            p.licensing.setPaused(offer, paused)
                elif action == "reprice":
                    p.licensing.reprice(offer, price)
                    model["price"] = price
                else:
                    p.licensing.setPaused(offer, paused)
                    model["paused"] = paused
        assert p.licensing.offerCount() == len(offers)
        for offer, model in enumerate(offers, start=1):
            got = p.licensing.getOffer(offer)
            assert (got.asset, got.price, got.paused) == (
                model["asset"],
                model["price"],
                model["paused"],
            )


# --------------------------------------------------------------------------- API balances


api_ops = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 3), st.sampled_from(PAYERS), st.integers(1, 30)),
        st.tuples(st.just("meter"), st.integers(0, 10**6), st.integers(0, 35), st.booleans()),
        st.tuples(st.just("refund"), st.integers(0, 10**6), st.booleans()),
        st.tuples(st.just("reprice"), st.integers(0, 3), st.integers(0, 10**16)),
    ),
    min_size=1,
    max_size=25,
)


@examples(60)
@given(prices=st.lists(st.integers(0, 10**16), min_size=4, max_size=4), ops=api_ops)
def test_api_balances_never_go_negative(
    deployed: Protocol, prices: list[int], ops: list[tuple[Any, ...]]
) -> None:
    """apiCalls == sum of calls left, escrow == the Licensing balance, over-metering reverts."""
    p = deployed
    with p.env.anchor():
        acct = p.accounts
        owner, meter = acct[0], acct[1]
        assets = [p.register(owner), p.register(owner)]
        with p.env.prank(owner):
            p.registry.setMeter(assets[1], meter)
        meters = {assets[0]: owner, assets[1]: meter}
        offers = [p.offer(owner, assets[i % 2], API, price=price) for i, price in enumerate(prices)]
        offer_price = dict(zip(offers, prices, strict=True))
        licenses: list[dict[str, Any]] = []  # asset, holder, price, left
        revenue = 0
        for op in ops:
            if op[0] == "buy":
                _, which, buyer, calls = op
                offer = offers[which]
                lic = p.buy(acct[buyer], offer, calls=calls)
                licenses.append(
                    {
                        "asset": assets[which % 2],
                        "holder": buyer,
                        "price": offer_price[offer],
                        "left": calls,
                    }
                )
                assert lic == len(licenses)
            elif op[0] == "reprice":
                _, which, price = op
                with p.env.prank(owner):
                    p.licensing.reprice(offers[which], price)
                offer_price[offers[which]] = price
            elif not licenses:
                continue
            elif op[0] == "meter":
                _, ref, calls, by_meter = op
                lic = ref % len(licenses) + 1
                model = licenses[lic - 1]
                caller = meters[model["asset"]] if by_meter else acct[model["holder"]]
                with p.env.prank(caller):
                    if not by_meter:
                        with boa.reverts("only the asset's meter records calls"):
                            p.licensing.meter(lic, calls)
                    elif calls == 0:
                        with boa.reverts("no calls to record"):
                            p.licensing.meter(lic, calls)
                    elif calls > model["left"]:
                        with boa.reverts("not enough prepaid calls left"):
                            p.licensing.meter(lic, calls)
                    else:
                        p.licensing.meter(lic, calls)
                        model["left"] -= calls
                        revenue += calls * model["price"]
            else:
                _, ref, by_holder = op
                lic = ref % len(licenses) + 1
                model = licenses[lic - 1]
                caller = acct[model["holder"]] if by_holder else owner
                with p.env.prank(caller):
                    if not by_holder:
                        with boa.reverts("only the license holder can do this"):
                            p.licensing.refund(lic)
                    elif model["left"] == 0:
                        with boa.reverts("no unused calls"):
                            p.licensing.refund(lic)
                    else:
                        before = p.balance(caller)
                        amount = p.licensing.refund(lic)
                        assert amount == model["left"] * model["price"]
                        assert p.balance(caller) - before == amount
                        model["left"] = 0

            escrow = sum(m["left"] * m["price"] for m in licenses)
            assert p.licensing.escrow() == escrow == p.balance(p.licensing.address)
            assert p.attribution.totalPaid() == revenue
            for asset in assets:
                for holder in PAYERS:
                    left = sum(
                        m["left"] for m in licenses if m["asset"] == asset and m["holder"] == holder
                    )
                    assert p.licensing.apiCalls(asset, acct[holder]) == left
                    assert p.licensing.hasAccess(asset, acct[holder], API) == (left > 0)
        for lic, model in enumerate(licenses, start=1):
            assert p.licensing.getLicense(lic).calls == model["left"]


# --------------------------------------------------------------------------- partnership


@examples(40)
@given(
    offerers=st.lists(st.sampled_from(range(8)), min_size=1, max_size=3),
    partner=st.sampled_from(range(1, 8)),
    accepters=st.lists(st.sampled_from(range(8)), min_size=1, max_size=8),
)
def test_partnership_needs_both_sides(
    deployed: Protocol, offerers: list[int], partner: int, accepters: list[int]
) -> None:
    """Only the owner offers; only the named partner accepts, once; access follows."""
    p = deployed
    with p.env.anchor():
        acct = p.accounts
        asset = p.register(acct[0])
        offer = None
        for offerer in offerers:
            if offerer == 0:
                offer = p.partnership(acct[0], asset, price=7, partner=acct[partner])
                break
            with boa.reverts(ONLY_OWNER):
                p.partnership(acct[offerer], asset, price=7, partner=acct[partner])
        for who in range(1, 8):
            assert not p.licensing.hasAccess(asset, acct[who], PARTNERSHIP)
        if offer is None:
            return
        accepted = False
        for who in accepters:
            if who != partner:
                with boa.reverts("this partnership is offered to another address"):
                    p.accept(acct[who], offer)
            elif accepted:
                with boa.reverts("this partnership was already accepted"):
                    p.accept(acct[who], offer)
            else:
                p.accept(acct[who], offer)
                accepted = True
            for other in range(1, 8):
                expected = accepted and other == partner
                assert p.licensing.hasAccess(asset, acct[other], PARTNERSHIP) == expected
                assert p.licensing.hasAccess(asset, acct[other], ANY) == expected
        assert p.licensing.getOffer(offer).sold == int(accepted)
        assert p.licensing.licenseCount() == int(accepted)
        assert p.attribution.totalPaid() == 7 * int(accepted)
