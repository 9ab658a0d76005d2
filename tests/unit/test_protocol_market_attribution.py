"""sahara_cli.protocol.market and sahara_cli.protocol.attribution against a dev chain:
listing, searching and showing offers; contributors, the attribution tree and claims."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sahara_cli.errors import (
    AssetNotFound,
    NothingToClaim,
    OfferNotFound,
    ProtocolReverted,
    UsageError,
)
from sahara_cli.protocol import attribution, licensing, market
from sahara_cli.protocol.client import Contribution

if TYPE_CHECKING:
    from tests.unit.chain_fixtures import Chain

pytest_plugins = ("tests.unit.chain_fixtures",)  # node_url, chain
SAH = 10**18


def test_list_search_and_show_offers(chain: Chain) -> None:
    p = chain.proto
    api = licensing.create_offer(p, chain.owner, chain.asset, "api", price=SAH // 1000)
    term = licensing.create_offer(
        p, chain.owner, chain.asset, "long-term", price=SAH, duration=30 * 86_400
    )
    licensing.set_paused(p, chain.owner, term.offer_id, True)
    steps: list[str] = []
    listed = market.list_offers(p, chain.home, asset_id=chain.asset, progress=steps.append)
    assert [o.offer_id for o in listed.offers] == [api.offer_id]
    assert listed.asset_id == chain.asset and listed.count == 1 and listed.block > 0
    first = listed.offers[0]
    assert (first.asset_name, first.asset_kind, first.lasts, first.status) == (
        "rain",
        "dataset",
        "prepaid calls",
        "open",
    )
    everything = market.list_offers(p, chain.home, asset_id=chain.asset, include_closed=True)
    assert [(o.offer_id, o.status, o.lasts) for o in everything.offers] == [
        (api.offer_id, "open", "prepaid calls"),
        (term.offer_id, "paused", "30d"),
    ]
    with pytest.raises(AssetNotFound):
        market.list_offers(p, chain.home, asset_id=999)

    found = market.search_offers(p, chain.home, "rain", include_closed=True)
    assert {o.offer_id for o in found.offers} >= {api.offer_id, term.offer_id}
    scores = [o.score for o in found.offers]
    assert scores == sorted(scores, reverse=True) and found.query == "rain"
    assert market.search_offers(p, chain.home, "zebra-nothing").offers == []
    with pytest.raises(UsageError, match="nothing to search"):
        market.search_offers(p, chain.home, "--")
    with pytest.raises(UsageError, match="--limit"):
        market.search_offers(p, chain.home, "rain", limit=0)

    shown = market.offer_details(p, term.offer_id)
    assert shown.status == "paused" and shown.duration_s == 30 * 86_400
    assert shown.asset_owner == chain.owner.address and shown.asset_cid.startswith("bafy-lib-")
    with pytest.raises(OfferNotFound):
        market.offer_details(p, 999)


def test_span_and_lasts() -> None:
    assert [market.span(s) for s in (45, 90 * 60, 12 * 3600, 14 * 86_400, 365 * 86_400)] == [
        "45s",
        "90m",
        "12h",
        "2w",
        "1y",
    ]


def test_contributors_and_the_tree(chain: Chain) -> None:
    p = chain.proto
    with pytest.raises(UsageError, match="owner holds 10000 bps"):
        attribution.preflight_add(p, chain.asset, 10_001)
    added = attribution.add_contributor(p, chain.owner, chain.asset, chain.buyer.address, 2500)
    assert added.tx.status == "success" and added.account == chain.buyer.address
    assert [(c.account, c.weight_bps) for c in added.contributors] == [
        (chain.owner.address, 7500),
        (chain.buyer.address, 2500),
    ]
    child, _ = p.register(
        chain.owner,
        kind="model",
        cid=f"bafy-child-{chain.home.name}",
        commitment=b"\2" * 32,
        name="child",
        parents=[chain.asset],
        upstream_bps=2000,
    )
    tree = attribution.attribution_tree(p, child)
    assert (tree.asset_id, tree.upstream_bps, tree.kind) == (child, 2000, "model")
    assert [n.asset_id for n in tree.parents] == [chain.asset]
    assert tree.parents[0].contributors == added.contributors
    assert tree.model_dump(mode="json")["parents"][0]["parents_beyond_depth"] == []


def test_claim_pays_the_credit_and_refuses_nothing(chain: Chain) -> None:
    p = chain.proto
    nobody = attribution.claimable(p, chain.poor.address, chain.home)
    assert nobody.claimable_wei == 0 and nobody.dry_run and nobody.tx is None
    with pytest.raises(NothingToClaim, match="nothing to claim") as refused:
        attribution.preflight_claim(nobody)
    assert isinstance(refused.value, ProtocolReverted)
    assert refused.value.code == "protocol.reverted" and refused.value.exit_code == 7
    with pytest.raises(NothingToClaim):
        attribution.claim(p, chain.buyer, chain.home)

    weighted, _ = p.register(
        chain.owner,
        kind="dataset",
        cid=f"bafy-weighted-{chain.home.name}",
        commitment=b"\3" * 32,
        name="weighted",
        contributors=[
            Contribution(chain.owner.address, 6000),
            Contribution(chain.buyer.address, 4000),
        ],
    )
    p.pay(chain.partner, weighted, SAH)
    preview = attribution.claimable(p, chain.buyer.address, chain.home)
    assert preview.claimable_wei == 4 * SAH // 10 and preview.claimable_sah == "0.4"
    assert [(c.asset_id, c.name, c.amount_sah) for c in preview.credited_by_asset] == [
        (weighted, "weighted", "0.4")
    ]
    before = chain.client.balance(chain.buyer.address)
    paid = attribution.claim(p, chain.buyer, chain.home, preview=preview)
    assert paid.tx is not None and not paid.dry_run
    assert (paid.paid_wei, paid.paid_sah) == (4 * SAH // 10, "0.4")
    assert chain.client.balance(chain.buyer.address) == before + paid.paid_wei - paid.tx.fee_wei
    after = attribution.claimable(p, chain.buyer.address, chain.home)
    assert after.claimable_wei == 0 and after.claimed_before_wei == 4 * SAH // 10


def test_claim_dry_run_adds_up_by_asset_since_the_last_claim(chain: Chain) -> None:
    import os

    from sahara_cli.errors import ProtocolInsufficientFunds
    from sahara_cli.identity.keys import Signer

    p = chain.proto
    fresh = Signer(os.urandom(32))  # credited, never funded
    assets = []
    for n in range(2):
        asset, _ = p.register(
            chain.owner,
            kind="dataset",
            cid=f"bafy-adds-up-{n}-{chain.home.name}",
            commitment=bytes([10 + n]) * 32,
            name=f"part-{n}",
            contributors=[
                Contribution(chain.owner.address, 7000),
                Contribution(fresh.address, 3000),
            ],
        )
        assets.append(asset)
    p.pay(chain.partner, assets[0], SAH)
    p.pay(chain.partner, assets[1], 2 * SAH)
    p.pay(chain.partner, assets[0], SAH // 2)
    preview = attribution.claimable(p, fresh.address, chain.home)
    by_asset = {c.asset_id: c.amount_wei for c in preview.claimable_by_asset}
    assert by_asset == {assets[0]: 3 * SAH * 3 // 20, assets[1]: 6 * SAH // 10}
    assert sum(by_asset.values()) == preview.claimable_wei
    # The claimer holds nothing: the claim's gas cannot be paid, said before anything is sent.
    assert any("needs gas" in w for w in preview.warnings)
    with pytest.raises(ProtocolInsufficientFunds, match="needs gas to claim") as short:
        attribution.preflight_claim(preview, p)
    assert "node fund" in str(short.value.hint)
    with pytest.raises(ProtocolInsufficientFunds, match="needs gas to claim"):
        attribution.claim(p, fresh, chain.home, preview=preview)
    assert chain.client.nonce(fresh.address) == 0

    chain.client.call("sahara_dev_setBalance", fresh.address, hex(SAH // 100))
    funded = attribution.claimable(p, fresh.address, chain.home)
    assert funded.warnings == []
    paid = attribution.claim(p, fresh, chain.home, preview=funded)
    assert paid.paid_wei == preview.claimable_wei
    p.pay(chain.partner, assets[1], SAH)  # after the claim: only this is claimable
    after = attribution.claimable(p, fresh.address, chain.home)
    assert [(c.asset_id, c.amount_wei) for c in after.claimable_by_asset] == [
        (assets[1], 3 * SAH // 10)
    ]
    assert after.claimable_wei == 3 * SAH // 10
    assert {c.asset_id: c.amount_wei for c in after.credited_by_asset}[assets[1]] == 9 * SAH // 10
