"""Unit tests of revenue earned with source assets (payWith, meterWith) and of the
Provenance contract, run from the committed runtime bytecode like the other contract
tests."""

from __future__ import annotations

import boa

from tests.unit.test_protocol_contracts import API, BPS, FULL, Protocol, events

pytest_plugins = ("tests.unit.protocol_fixtures",)  # deployed, p, accts

DIGEST = b"\x42" * 32


def pay_with(p: Protocol, payer: str, asset: int, amount: int, sources: list[int]) -> None:
    with p.env.prank(payer):
        p.attribution.payWith(asset, sources, value=amount)


def claimable(p: Protocol, accounts: list[str]) -> list[int]:
    return [int(p.attribution.claimable(a)) for a in accounts]


# --------------------------------------------------------------------------- payWith


def test_pay_with_splits_the_upstream_share_among_parents_and_sources(
    p: Protocol, accts: list[str]
) -> None:
    """One parent (the model) and two sources share the upstream part equally."""
    model = p.register(accts[0])
    doc_a = p.register(accts[1])
    doc_b = p.register(accts[2])
    agent = p.register(accts[3], kind=2, parents=[model], upstream_bps=3_000)
    pay_with(p, accts[5], agent, 1_000, [doc_a, doc_b])
    [paid] = events(p.attribution, "Paid")
    assert (paid.asset, paid.payer, paid.amount) == (agent, accts[5], 1_000)
    # 1000 * 3000 // 10000 = 300, // 3 targets = 100 each; the agent keeps 700.
    assert claimable(p, accts[:4]) == [100, 100, 100, 700]
    assert [p.attribution.received(a) for a in (model, doc_a, doc_b, agent)] == [
        100,
        100,
        100,
        1_000,
    ]
    assert p.attribution.totalPaid() == 1_000
    assert p.balance(p.attribution.address) == 1_000


def test_pay_with_rounding_dust_stays_with_the_asset_owner(p: Protocol, accts: list[str]) -> None:
    """Shares round down; what does not divide evenly is the asset owner's, to the wei."""
    model = p.register(accts[0], contributors=[(accts[0], 3_333), (accts[4], 6_667)])
    doc = p.register(accts[1])
    agent = p.register(
        accts[3],
        kind=2,
        parents=[model],
        contributors=[(accts[3], 5_001), (accts[6], 4_999)],
        upstream_bps=2_500,
    )
    pay_with(p, accts[5], agent, 1_003, [doc])
    # upstream 1003 * 2500 // 10000 = 250, // 2 = 125 each; the agent keeps 753.
    # model: 125 * 3333 // 10000 = 41 to accts[0], 125 * 6667 // 10000 = 83 to accts[4],
    # dust 1 to the model's owner accts[0]. doc: 125 to accts[1].
    # agent: 753 * 5001 // 10000 = 376, 753 * 4999 // 10000 = 376, dust 1 to accts[3].
    assert claimable(p, [accts[0], accts[4], accts[1], accts[3], accts[6]]) == [
        42,
        83,
        125,
        377,
        376,
    ]
    total = sum(claimable(p, accts))
    assert total == 1_003 == p.attribution.totalPaid()


def test_pay_with_counts_each_asset_once(p: Protocol, accts: list[str]) -> None:
    """A source that is a parent, the asset itself or repeated joins the split once."""
    model = p.register(accts[0])
    doc = p.register(accts[1])
    agent = p.register(accts[3], kind=2, parents=[model], upstream_bps=BPS)
    pay_with(p, accts[5], agent, 900, [model, doc, doc, agent])
    # Targets: model, doc (agent itself is skipped): 450 each, the agent keeps 0.
    assert claimable(p, [accts[0], accts[1], accts[3]]) == [450, 450, 0]
    assert p.attribution.received(agent) == 900


def test_pay_with_sources_only_count_at_the_first_level(p: Protocol, accts: list[str]) -> None:
    """Deeper levels follow the parents of each asset, as pay() does."""
    base = p.register(accts[0])
    model = p.register(accts[1], parents=[base], upstream_bps=5_000)
    doc_root = p.register(accts[2])
    doc = p.register(accts[4], parents=[doc_root], upstream_bps=BPS)
    agent = p.register(accts[3], kind=2, parents=[model], upstream_bps=4_000)
    pay_with(p, accts[5], agent, 10_000, [doc])
    # agent: 4000 upstream, 2000 to model and 2000 to doc; keeps 6000.
    # model: 1000 to base, keeps 1000. doc: all 2000 to doc_root.
    assert claimable(p, [accts[3], accts[1], accts[0], accts[4], accts[2]]) == [
        6_000,
        1_000,
        1_000,
        0,
        2_000,
    ]


def test_pay_with_an_asset_without_upstream_share_keeps_everything(
    p: Protocol, accts: list[str]
) -> None:
    """Sources share only the asset's upstream part: with none, the asset keeps it all."""
    doc = p.register(accts[1])
    agent = p.register(accts[3], kind=2)
    pay_with(p, accts[5], agent, 777, [doc])
    assert claimable(p, [accts[1], accts[3]]) == [0, 777]


def test_pay_with_no_sources_is_pay(p: Protocol, accts: list[str]) -> None:
    """An empty source list credits exactly what pay() credits."""
    a = p.register(accts[0])
    b = p.register(accts[1])
    child = p.register(accts[2], parents=[a, b], upstream_bps=5_000)
    pay_with(p, accts[5], child, 1_001, [])
    assert claimable(p, accts[:3]) == [250, 250, 501]


def test_pay_with_rejects_unknown_assets_and_zero(p: Protocol, accts: list[str]) -> None:
    """Unknown assets or sources, or a zero payment, revert and move nothing."""
    agent = p.register(accts[3])
    with boa.reverts("unknown asset"):
        pay_with(p, accts[5], agent + 1, 10, [])
    with boa.reverts("unknown source asset"):
        pay_with(p, accts[5], agent, 10, [agent + 1])
    with boa.reverts("unknown source asset"):
        pay_with(p, accts[5], agent, 10, [0])
    with boa.reverts("payment is zero"):
        pay_with(p, accts[5], agent, 0, [agent])
    assert p.attribution.totalPaid() == 0


def test_the_widest_graph_with_sources_fits_the_work_bound(p: Protocol, accts: list[str]) -> None:
    """Four parents and four sources, each with four ancestors per level: 169 work items."""

    def tower(owner_base: int) -> list[int]:
        level = [p.register(accts[owner_base]) for _ in range(4)]
        for _ in range(2):
            level = [
                p.register(accts[owner_base], parents=level, upstream_bps=BPS) for _ in range(4)
            ]
        return level

    parents = tower(0)
    sources = tower(1)
    agent = p.register(accts[2], kind=2, parents=parents, upstream_bps=BPS)
    pay_with(p, accts[5], agent, 128_000, sources)
    # 8 targets x 4 x 4 = 128 work items of 1,000 wei reach depth 3 and stop there.
    assert len(events(p.attribution, "Credited")) == 128
    assert claimable(p, accts[:3]) == [64_000, 64_000, 0]


# --------------------------------------------------------------------------- meterWith


def test_meter_with_pays_the_sources(p: Protocol, accts: list[str]) -> None:
    """meterWith records calls like meter() and pays through payWith."""
    model = p.register(accts[0])
    doc = p.register(accts[1])
    agent = p.register(accts[3], kind=2, parents=[model], upstream_bps=2_000)
    lic = p.buy(accts[5], p.offer(accts[3], agent, API, price=10**15), calls=5)
    with p.env.prank(accts[3]):
        p.licensing.meterWith(lic, 2, [doc])
    [metered] = events(p.licensing, "Metered")
    assert (metered.license, metered.asset, metered.calls, metered.amount) == (
        lic,
        agent,
        2,
        2 * 10**15,
    )
    got = p.licensing.getLicense(lic)
    assert (got.calls, got.used) == (3, 2)
    assert p.licensing.apiCalls(agent, accts[5]) == 3
    assert p.licensing.escrow() == 3 * 10**15
    # 2e15 * 2000 // 10000 = 4e14, // 2 = 2e14 each to model and doc; the agent keeps 1.6e15.
    assert claimable(p, [accts[0], accts[1], accts[3]]) == [2 * 10**14, 2 * 10**14, 16 * 10**14]


def test_meter_with_checks_like_meter(p: Protocol, accts: list[str]) -> None:
    """Only the meter, only API licenses, only prepaid calls, only known sources."""
    agent = p.register(accts[3], kind=2)
    lic = p.buy(accts[5], p.offer(accts[3], agent, API, price=7), calls=1)
    full = p.buy(accts[5], p.offer(accts[3], agent, FULL, price=7))
    with p.env.prank(accts[5]), boa.reverts("only the asset's meter records calls"):
        p.licensing.meterWith(lic, 1, [])
    with p.env.prank(accts[3]), boa.reverts("not an API license"):
        p.licensing.meterWith(full, 1, [])
    with p.env.prank(accts[3]), boa.reverts("not enough prepaid calls left"):
        p.licensing.meterWith(lic, 2, [])
    with p.env.prank(accts[3]), boa.reverts("unknown source asset"):
        p.licensing.meterWith(lic, 1, [agent + 1])
    assert p.licensing.getLicense(lic).calls == 1
    with p.env.prank(accts[3]):
        p.licensing.meterWith(lic, 1, [agent])
    assert p.attribution.claimable(accts[3]) == 7 + 7  # the full license and the call


def test_free_calls_meter_with_pays_nothing(p: Protocol, accts: list[str]) -> None:
    """A zero-price call is recorded without a payment (and without checking sources)."""
    agent = p.register(accts[3], kind=2)
    lic = p.buy(accts[5], p.offer(accts[3], agent, API, price=0), calls=2)
    with p.env.prank(accts[3]):
        p.licensing.meterWith(lic, 1, [])
    assert p.licensing.getLicense(lic).used == 1
    assert p.attribution.totalPaid() == 0


# --------------------------------------------------------------------------- Provenance


def test_record_stores_and_logs(p: Protocol, accts: list[str]) -> None:
    """record numbers records, keeps recorder, asset, digest, license and time."""
    doc = p.register(accts[1])
    agent = p.register(accts[3], kind=2)
    lic = p.buy(accts[5], p.offer(accts[3], agent, API, price=1), calls=1)
    now = p.env.timestamp
    with p.env.prank(accts[3]):
        first = p.provenance.record(agent, DIGEST, [doc], lic)
        second = p.provenance.record(agent, b"\x43" * 32, [], 0)
    [logged] = events(p.provenance, "Recorded")
    assert (logged.id, logged.asset, logged.recorder, logged.license) == (2, agent, accts[3], 0)
    assert logged.digest == b"\x43" * 32
    assert list(logged.sources) == []
    assert (first, second) == (1, 2)
    assert p.provenance.recordCount() == 2
    got = p.provenance.getRecord(1)
    assert (got.recorder, got.asset, got.digest, got.license) == (accts[3], agent, DIGEST, lic)
    assert got.time >= now


def test_record_logs_its_sources(p: Protocol, accts: list[str]) -> None:
    docs = [p.register(accts[1]) for _ in range(4)]
    agent = p.register(accts[3], kind=2)
    with p.env.prank(accts[6]):
        p.provenance.record(agent, DIGEST, docs, 0)
    [logged] = events(p.provenance, "Recorded")
    assert list(logged.sources) == docs
    assert logged.recorder == accts[6]


def test_record_checks(p: Protocol, accts: list[str]) -> None:
    """Unknown asset, source or license, a license of another asset, an empty digest."""
    agent = p.register(accts[3], kind=2)
    other = p.register(accts[4])
    lic = p.buy(accts[5], p.offer(accts[4], other, API, price=1), calls=1)
    with p.env.prank(accts[3]):
        with boa.reverts("unknown asset"):
            p.provenance.record(agent + 5, DIGEST, [], 0)
        with boa.reverts("unknown source asset"):
            p.provenance.record(agent, DIGEST, [agent + 5], 0)
        with boa.reverts("digest is empty"):
            p.provenance.record(agent, b"\x00" * 32, [], 0)
        with boa.reverts("unknown license"):
            p.provenance.record(agent, DIGEST, [], lic + 1)
        with boa.reverts("the license is for another asset"):
            p.provenance.record(agent, DIGEST, [], lic)
    assert p.provenance.recordCount() == 0
    with boa.reverts("unknown record"):
        p.provenance.getRecord(1)
