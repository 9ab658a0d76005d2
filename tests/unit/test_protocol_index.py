"""The protocol index against a real in-process dev node.

One module-scoped chain is given a small market (assets, offers of every type, sales,
metering, a refund, a renewal, a pause, a reprice, a claim, an expiry), and the index
must agree with what the contracts themselves answer for every asset, offer and license.
Tests that change a chain (incremental sync, a replaced chain) start their own node.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_cli.errors import ProtocolInvalidArgument
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.protocol.client import Contribution, Protocol
from sahara_cli.protocol.index import (
    SCHEMA_VERSION,
    Listing,
    ProtocolIndex,
    ProtocolIndexError,
    fts5_available,
    offer_status,
)

SAH = 10**18
DAY = 86_400
TERMS = b"\x7e" * 32
KEYS = dev_keys()
ALICE, BOB, CAROL, DAVE = (Signer(k) for k in KEYS[:4])


@dataclass
class Market:
    proto: Protocol
    assets: dict[str, int]
    offers: dict[str, int]
    licenses: dict[str, int]


def register(proto: Protocol, who: Signer, name: str, **opts: object) -> int:
    fields: dict[str, object] = {"kind": "model", "cid": f"bafy-{name.lower().replace(' ', '-')}"}
    fields |= opts
    asset, _ = proto.register(who, commitment=b"\x01" * 32, name=name, **fields)
    return asset


def build_market(proto: Protocol) -> Market:
    """Every kind of event the index applies, in an order that exercises the updates."""
    a = {
        "llama": register(proto, ALICE, "Llama 3 8B Instruct", uri="ipfs://llama-card"),
        "med": register(proto, ALICE, "Medical images", kind="dataset", uri="ipfs://med"),
        "agent": register(
            proto,
            BOB,
            "Support agent",
            kind="agent",
            uri="https://example.com/llama-agent.json",
            parents=[1],
            contributors=[Contribution(BOB.address, 7000), Contribution(CAROL.address, 3000)],
            upstream_bps=2000,
        ),
        "gpu": register(proto, CAROL, "GPU pool", kind="compute"),
    }
    proto.set_metadata(ALICE, a["med"], "ipfs://med-v2")
    proto.set_meter(ALICE, a["llama"], DAVE.address)
    now = proto.asset(a["gpu"]).created
    o = {
        "api": proto.offer(ALICE, a["llama"], "api", price=SAH // 1000)[0],
        "full": proto.offer(ALICE, a["llama"], "full", price=SAH)[0],
        "term": proto.offer(ALICE, a["med"], "long-term", price=SAH // 2, duration=30 * DAY)[0],
        "partner": proto.offer(
            BOB, a["agent"], "partnership", terms=TERMS, share_bps=1000, partner=CAROL.address
        )[0],
        "soon": proto.offer(BOB, a["agent"], "full", price=2 * SAH, valid_until=now + 3600)[0],
        "paused": proto.offer(CAROL, a["gpu"], "full", price=SAH)[0],
        "cheap": proto.offer(ALICE, a["med"], "full", price=SAH)[0],
        "agent_api": proto.offer(BOB, a["agent"], "api", price=SAH // 1000)[0],
    }
    proto.reprice(ALICE, o["cheap"], SAH // 4)
    proto.set_paused(CAROL, o["paused"], True)
    lic = {
        "metered": proto.buy(BOB, o["api"], calls=10)[0],
        "refunded": proto.buy(CAROL, o["api"], calls=3)[0],
        "term": proto.buy(BOB, o["term"])[0],
        "renewal": proto.buy(BOB, o["term"])[0],
        "partner": proto.accept(CAROL, o["partner"])[0],
        "cheap": proto.buy(DAVE, o["cheap"])[0],
        "full": proto.buy(BOB, o["full"])[0],
        "soon": proto.buy(DAVE, o["soon"])[0],
    }
    proto.meter(DAVE, lic["metered"], 4)
    proto.refund(CAROL, lic["refunded"])
    proto.claim(ALICE)
    proto.buy(CAROL, o["full"])  # credited after the claim
    proto.node.call("sahara_dev_increaseTime", 7200)
    proto.node.call("sahara_dev_mine")
    return Market(proto, a, o, lic)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    with dev_node(tmp_path_factory.mktemp("index-node")) as (_, server):
        yield build_market(Protocol(NodeClient(server.url)))


@pytest.fixture
def index(market: Market, tmp_path: Path) -> Iterator[ProtocolIndex]:
    with ProtocolIndex(market.proto, tmp_path / "index.sqlite") as found:
        yield found


# -- state -----------------------------------------------------------------------------


def test_assets_offers_and_licenses_match_the_contracts(
    market: Market, index: ProtocolIndex
) -> None:
    proto = market.proto
    assert index.assets() == [proto.asset(i) for i in range(1, proto.asset_count() + 1)]
    assert index.offers() == [proto.get_offer(i) for i in range(1, proto.offer_count() + 1)]
    assert index.licenses() == [proto.get_license(i) for i in range(1, proto.license_count() + 1)]


def test_updates_are_applied(market: Market, index: ProtocolIndex) -> None:
    med = index.asset(market.assets["med"])
    llama = index.asset(market.assets["llama"])
    assert med is not None and med.uri == "ipfs://med-v2"
    assert llama is not None and llama.meter == DAVE.address
    offers = {o.id: o for o in index.offers()}
    assert offers[market.offers["cheap"]].price == SAH // 4
    assert offers[market.offers["paused"]].paused
    assert offers[market.offers["full"]].sold == 2
    licenses = {lic.id: lic for lic in index.licenses()}
    metered = licenses[market.licenses["metered"]]
    assert (metered.calls, metered.used) == (6, 4)
    assert licenses[market.licenses["refunded"]].calls == 0
    first, renewal = licenses[market.licenses["term"]], licenses[market.licenses["renewal"]]
    assert first.expiry is not None and renewal.start == first.expiry
    assert licenses[market.licenses["full"]].expiry is None
    assert index.asset(999) is None


def test_filters(market: Market, index: ProtocolIndex) -> None:
    assert [a.id for a in index.assets(owner=ALICE.address)] == [1, 2]
    assert [a.id for a in index.assets(owner=ALICE.address.lower(), kind="dataset")] == [2]
    assert [a.name for a in index.assets(kind="compute")] == ["GPU pool"]
    assert index.assets(owner=DAVE.address) == []
    with pytest.raises(ProtocolInvalidArgument):
        index.assets(kind="weights")
    assert {o.asset for o in index.offers(asset=market.assets["agent"])} == {3}
    listed = index.listings(asset=market.assets["med"], open_only=True)
    assert [(m.offer.id, m.asset.name) for m in listed] == [
        (market.offers["term"], "Medical images"),
        (market.offers["cheap"], "Medical images"),
    ]
    assert {lic.holder for lic in index.licenses(holder=BOB.address)} == {BOB.address}
    assert [lic.id for lic in index.licenses(asset=market.assets["med"])] == [3, 4, 6]
    assert index.licenses(holder=ALICE.address) == []


def test_open_offers_leave_out_paused_expired_and_taken(
    market: Market, index: ProtocolIndex
) -> None:
    o = market.offers
    assert [x.id for x in index.offers(open_only=True)] == [
        o["api"],
        o["full"],
        o["term"],
        o["cheap"],
        o["agent_api"],
    ]
    status = {x.id: offer_status(x, index.now) for x in index.offers()}
    assert status[o["paused"]] == "paused"
    assert status[o["soon"]] == "expired"
    assert status[o["partner"]] == "taken"
    assert status[o["api"]] == "open"


def test_credits_add_up_to_claimable_plus_claimed(market: Market, index: ProtocolIndex) -> None:
    proto = market.proto
    for who in (ALICE, BOB, CAROL):
        credited = sum(c["amount"] for c in index.credits(who.address))
        assert credited == proto.claimable(who.address) + proto.claimed(who.address)
    alice = index.credits(ALICE.address)
    assert {c["asset"]: c["name"] for c in alice} == {1: "Llama 3 8B Instruct", 2: "Medical images"}
    claims = index.claims(ALICE.address)
    assert [c["amount"] for c in claims] == [proto.claimed(ALICE.address)]
    assert index.credits(DAVE.address) == []


# -- search ----------------------------------------------------------------------------


def ids(listings: list[Listing]) -> list[int]:
    return [m.offer.id for m in listings]


def test_search_ranks_name_hits_first(market: Market, index: ProtocolIndex) -> None:
    o = market.offers
    found = index.search("llama")
    # Both offers of the asset named Llama first; the agent whose URI mentions it after.
    assert set(ids(found[:2])) == {o["api"], o["full"]}
    assert ids(found[2:]) == [o["agent_api"]]
    assert found[0].asset.name == "Llama 3 8B Instruct"
    assert found[0].score >= found[1].score > found[2].score


def test_search_words(market: Market, index: ProtocolIndex) -> None:
    o = market.offers
    assert set(ids(index.search("LLA"))) == set(ids(index.search("llama")))  # prefix, any case
    assert ids(index.search("long-term")) == [o["term"]]
    assert set(ids(index.search("llama api"))) == {o["api"], o["agent_api"]}  # every word
    assert set(ids(index.search("v2"))) == {o["term"], o["cheap"]}  # the updated URI
    assert ids(index.search("bafy-medical-images full")) == [o["cheap"]]
    assert index.search("nothing-like-this") == []
    assert len(index.search("bafy", limit=2)) == 2


def test_search_open_only(market: Market, index: ProtocolIndex) -> None:
    assert index.search("gpu") == []
    assert ids(index.search("gpu", open_only=False)) == [market.offers["paused"]]
    assert set(ids(index.search("agent", open_only=False))) == {
        market.offers["partner"],
        market.offers["soon"],
        market.offers["agent_api"],
    }


@pytest.mark.parametrize("query", ["", "  ", "--", "*"])
def test_search_needs_a_word(index: ProtocolIndex, query: str) -> None:
    with pytest.raises(ProtocolInvalidArgument):
        index.search(query)


def test_search_quotes_fts_syntax(index: ProtocolIndex) -> None:
    assert index.search('llama" OR "gpu') == index.search("llama or gpu")
    assert index.search("NEAR(llama") == []


def test_like_fallback_finds_the_same(market: Market, tmp_path: Path) -> None:
    with (
        ProtocolIndex(market.proto, tmp_path / "like.sqlite", fts=False) as like,
        ProtocolIndex(market.proto, tmp_path / "fts.sqlite") as fts,
    ):
        assert not like.fts
        for query in ("llama", "lla", "long-term", "llama api", "v2", "gpu", "bafy"):
            assert set(ids(like.search(query, open_only=False))) == set(
                ids(fts.search(query, open_only=False))
            ), query
        found = like.search("llama")
        assert found[-1].offer.id == market.offers["agent_api"]  # a URI hit ranks last


@pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5")
def test_fts5_is_used_when_present(index: ProtocolIndex) -> None:
    assert index.fts
    row = index.db.execute("SELECT sql FROM sqlite_master WHERE name = 'offer_text'").fetchone()
    assert "fts5" in row[0]


# -- syncing ---------------------------------------------------------------------------


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Protocol]:
    with dev_node(tmp_path / "node") as (_, server):
        yield Protocol(NodeClient(server.url))


def test_sync_is_incremental_and_chunked(chain: Protocol, tmp_path: Path) -> None:
    first = register(chain, ALICE, "First model")
    index = ProtocolIndex(chain, tmp_path / "index.sqlite", chunk_blocks=1)
    # Every event is indexed: the owner's receipt (Transfer, Locked), ContributorsSet, Registered.
    assert index.sync() == 4
    assert index.sync() == 0
    assert index.block == chain.node.block_number()
    offer, _ = chain.offer(ALICE, first, "full", price=SAH)
    chain.buy(BOB, offer)
    assert index.sync() == 4  # Offered, Licensed, Paid, and Credited to the owner
    assert [o.sold for o in index.offers()] == [1]
    # A second reader of the same file starts where the first left off.
    other = ProtocolIndex(chain, tmp_path / "index.sqlite")
    assert other.sync() == 0
    assert other.offers() == index.offers()


def test_two_writers_never_apply_events_twice(chain: Protocol, tmp_path: Path) -> None:
    asset = register(chain, ALICE, "Shared")
    offer, _ = chain.offer(ALICE, asset, "full", price=SAH)
    chain.buy(BOB, offer)
    slow = ProtocolIndex(chain, tmp_path / "index.sqlite")
    fast = ProtocolIndex(chain, tmp_path / "index.sqlite")
    mark, head = slow._mark(), slow._head()
    events = slow._fetch(0, head.number, None)
    assert fast.sync() == len(events)
    assert slow._commit(mark, head, events, rebuild=False) is None  # lost the race
    assert slow.sync() == 0
    assert slow.credits(ALICE.address) == [{"asset": 1, "name": "Shared", "amount": SAH}]


@pytest.mark.parametrize("extra_blocks", [0, 5], ids=["shorter", "longer"])
def test_a_replaced_chain_is_indexed_from_scratch(tmp_path: Path, extra_blocks: int) -> None:
    path = tmp_path / "index.sqlite"
    with dev_node(tmp_path / "one") as (_, server):
        proto = Protocol(NodeClient(server.url))
        for name in ("Old A", "Old B", "Old C"):
            register(proto, ALICE, name)
        with ProtocolIndex(proto, path) as index:
            assert [a.name for a in index.assets()] == ["Old A", "Old B", "Old C"]
    with dev_node(tmp_path / "two") as (_, server):
        proto = Protocol(NodeClient(server.url))
        register(proto, BOB, "New")
        for _ in range(extra_blocks):  # past the old head: the old block number exists
            proto.node.call("sahara_dev_mine")
        with ProtocolIndex(proto, path) as index:
            assert [(a.id, a.name, a.owner) for a in index.assets()] == [(1, "New", BOB.address)]
            assert index.sync() == 0


def test_for_home_names_the_file_after_the_chain(chain: Protocol, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ProtocolIndex.for_home(chain, home) as index:
        genesis = chain.node.call("eth_getBlockByNumber", "0x0", False)["hash"]
        assert (
            index.path
            == home / "index" / f"protocol-{chain.node.chain_id()}-{genesis[2:18]}.sqlite"
        )
        assert (home / "index").stat().st_mode & 0o777 == 0o700
        assert index.path.stat().st_mode & 0o077 == 0
        assert index.assets() == []


def test_log_queries_too_large_for_the_node_are_split(tmp_path: Path) -> None:
    with dev_node(tmp_path / "node", max_log_range=3) as (_, server):
        proto = Protocol(NodeClient(server.url))
        for name in ("A", "B", "C", "D"):
            register(proto, ALICE, name)
        index = ProtocolIndex(proto, tmp_path / "index.sqlite", chunk_blocks=1000)
        assert [a.name for a in index.assets()] == ["A", "B", "C", "D"]


def test_uint256_values_survive(chain: Protocol, tmp_path: Path) -> None:
    asset = register(chain, ALICE, "Huge")
    offer, _ = chain.offer(ALICE, asset, "full", price=2**200, valid_until=2**255)
    free, _ = chain.offer(ALICE, asset, "api", price=0)
    chain.buy(BOB, free, calls=2**100)
    index = ProtocolIndex(chain, tmp_path / "index.sqlite")
    assert index.offers() == [chain.get_offer(offer), chain.get_offer(free)]
    assert [o.id for o in index.offers(open_only=True)] == [offer, free]
    assert index.licenses() == [chain.get_license(1)]


def test_an_index_of_another_version_or_a_broken_file_is_rebuilt(
    chain: Protocol, tmp_path: Path
) -> None:
    register(chain, ALICE, "Kept")
    path = tmp_path / "index.sqlite"
    ProtocolIndex(chain, path).sync()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '0 old' WHERE key = 'schema'")
    db.commit()
    db.close()
    index = ProtocolIndex(chain, path)
    assert index._version(index.db) == f"{SCHEMA_VERSION} {'fts5' if index.fts else 'like'}"
    assert [a.name for a in index.assets()] == ["Kept"]
    index.close()
    path.write_bytes(b"not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert [a.name for a in ProtocolIndex(chain, path).assets()] == ["Kept"]


def test_an_unusable_file_is_a_sahara_error(chain: Protocol, tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ProtocolIndexError) as info:
        ProtocolIndex(chain, tmp_path / "dir.sqlite")
    assert info.value.exit_code == 8


@pytest.mark.slow
def test_sync_speed(chain: Protocol, tmp_path: Path) -> None:
    """About 4,000 Credited events: an asset with two generations of ancestors, each
    with 16 contributors, paid three times. The sync must take well under 1 s per 1,000."""
    people = [Contribution(f"0x{i + 1:040x}", 625) for i in range(16)]
    names = iter(range(100))

    def make(parents: list[int]) -> int:
        return register(
            chain,
            ALICE,
            f"a{next(names)}",
            contributors=people,
            parents=parents,
            upstream_bps=5000 if parents else 0,
        )

    level: list[int] = []
    for _ in range(3):
        level = [make(level) for _ in range(4)]
    top = make(level)
    for _ in range(3):
        chain.pay(ALICE, top, SAH)
    index = ProtocolIndex(chain, tmp_path / "index.sqlite")
    started = time.perf_counter()
    applied = index.sync()
    elapsed = time.perf_counter() - started
    assert applied > 3_000
    assert elapsed / applied * 1000 < 0.5, f"{elapsed:.2f} s for {applied} events"
    total = sum(c["amount"] for c in index.credits(people[0].account))
    assert total == chain.claimable(people[0].account)
