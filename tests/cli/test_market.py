"""sahara market list / search / show against a live in-process dev node.

The chain gets two assets and four offers (one paused, one repriced, one sold twice)
through the protocol client; the commands must find them through the home's index and
keep the JSON contract: one document on stdout, or one error on stderr and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.protocol.client import Protocol
from tests.conftest import Invoke

SAH = 10**18
ALICE, BOB = Signer(dev_keys()[0]), Signer(dev_keys()[1])
WIDE = {"COLUMNS": "200"}  # tables for people fit on one line


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dev_node(tmp_path_factory.mktemp("market-node")) as (_, server):
        proto = Protocol(NodeClient(server.url))
        llama, _ = proto.register(
            ALICE,
            kind="model",
            cid="bafy-llama-3",
            commitment=b"\x01" * 32,
            name="Llama 3 8B",
            uri="ipfs://llama-card",
        )
        med, _ = proto.register(
            BOB, kind="dataset", cid="bafy-med", commitment=b"\x02" * 32, name="Medical images"
        )
        proto.offer(ALICE, llama, "api", price=SAH // 1000)  # 1
        full, _ = proto.offer(ALICE, llama, "full", price=2 * SAH)  # 2
        term, _ = proto.offer(BOB, med, "long-term", price=SAH, duration=30 * 86_400)  # 3
        paused, _ = proto.offer(BOB, med, "full", price=SAH, valid_until=2**255)  # 4
        proto.reprice(BOB, term, SAH // 2)
        proto.set_paused(BOB, paused, True)
        proto.buy(BOB, full)
        proto.buy(BOB, full)
        yield server.url


@pytest.fixture
def market(initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    return initialised


def run_json(cli: Invoke, *args: str) -> dict:  # type: ignore[type-arg]
    result = cli("--json", "--no-prompt", "market", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return document


def fails(cli: Invoke, *args: str, exit_code: int) -> dict:  # type: ignore[type-arg]
    result = cli("--json", "--no-prompt", "market", *args)
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    return result.error()


# -- list ------------------------------------------------------------------------------


def test_list_shows_the_open_offers(cli: Invoke, market: Path) -> None:
    data = run_json(cli, "list")
    assert data["count"] == 3
    assert [o["offer_id"] for o in data["offers"]] == [1, 2, 3]
    api, full, term = data["offers"]
    assert api | {"price_sah": "0.001", "type": "api", "lasts": "prepaid calls"} == api
    assert (full["asset_name"], full["asset_kind"], full["sold"]) == ("Llama 3 8B", "model", 2)
    assert (full["price_wei"], full["price_sah"], full["status"]) == (str(2 * SAH), "2", "open")
    assert full["asset_id"] == 1 and full["expires_at"] is None
    assert (term["price_sah"], term["lasts"], term["duration_s"]) == ("0.5", "30d", 30 * 86_400)
    assert data["block"] >= 10
    assert list((market / "index").glob("protocol-*.sqlite"))


def test_list_all_and_by_asset(cli: Invoke, market: Path) -> None:
    everything = run_json(cli, "list", "--all")
    assert [(o["offer_id"], o["status"]) for o in everything["offers"]] == [
        (1, "open"),
        (2, "open"),
        (3, "open"),
        (4, "paused"),
    ]
    by_asset = run_json(cli, "list", "--asset", "2")
    assert [o["offer_id"] for o in by_asset["offers"]] == [3] and by_asset["asset_id"] == 2
    everything = run_json(cli, "list", "--asset", "#2", "--all")
    assert [o["offer_id"] for o in everything["offers"]] == [3, 4]
    llama = run_json(cli, "list", "--asset", "bafy-llama-3")
    assert [o["offer_id"] for o in llama["offers"]] == [1, 2]


def test_list_of_an_unknown_asset(cli: Invoke, market: Path) -> None:
    assert fails(cli, "list", "--asset", "99", exit_code=3)["code"] == "protocol.asset_not_found"
    assert fails(cli, "list", "--asset", "bafy-nothing", exit_code=3)["message"]
    assert fails(cli, "list", "--asset", "0", exit_code=2)["code"] == "usage"


def test_list_for_people(cli: Invoke, market: Path) -> None:
    result = cli("market", "list", env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert "Llama 3 8B" in result.stdout
    assert "0.001 SAH / call" in result.stdout
    assert "Medical images" in result.stdout
    assert "paused" not in result.stdout


# -- search ----------------------------------------------------------------------------


def test_search_finds_and_ranks(cli: Invoke, market: Path) -> None:
    data = run_json(cli, "search", "llama")
    assert data["query"] == "llama"
    assert [o["offer_id"] for o in data["offers"]] == [1, 2]
    assert all(isinstance(o["score"], float) for o in data["offers"])
    assert [o["offer_id"] for o in run_json(cli, "search", "long-term")["offers"]] == [3]
    medical = run_json(cli, "search", "medical", "--all")["offers"]
    assert {o["offer_id"] for o in medical} == {3, 4}
    assert run_json(cli, "search", "llama", "--limit", "1")["count"] == 1
    assert run_json(cli, "search", "nothing-here")["offers"] == []


def test_search_needs_words_and_a_sane_limit(cli: Invoke, market: Path) -> None:
    assert fails(cli, "search", "--", "--", exit_code=2)["code"] == "usage"
    assert fails(cli, "search", "llama", "--limit", "0", exit_code=2)["message"]
    assert fails(cli, "search", "llama", "--limit", "many", exit_code=2)["message"]


def test_search_for_people(cli: Invoke, market: Path) -> None:
    result = cli("market", "search", "medical", env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert "Medical images" in result.stdout
    assert "No offers match" in cli("market", "search", "zebra").stdout


# -- show ------------------------------------------------------------------------------


def test_show_reads_the_offer_from_the_chain(cli: Invoke, market: Path) -> None:
    offer = run_json(cli, "show", "#2")
    assert (offer["offer_id"], offer["type"], offer["sold"], offer["status"]) == (
        2,
        "full",
        2,
        "open",
    )
    assert (offer["price_sah"], offer["expires_at"], offer["lasts"]) == ("2", None, "no expiry")
    assert (offer["asset_id"], offer["asset_name"], offer["asset_owner"]) == (
        1,
        "Llama 3 8B",
        ALICE.address,
    )
    assert offer["asset_cid"] == "bafy-llama-3" and offer["asset_uri"] == "ipfs://llama-card"
    assert offer["created_at"].endswith("Z")
    assert run_json(cli, "show", "4")["status"] == "paused"
    assert run_json(cli, "show", "3")["price_sah"] == "0.5"


def test_show_for_people(cli: Invoke, market: Path) -> None:
    result = cli("market", "show", "3", env=WIDE)
    assert result.exit_code == 0, result.stderr
    for text in ("Medical images", "long-term", "0.5 SAH", "30d", "never"):
        assert text in result.stdout, text


def test_show_an_offer_open_until_the_end_of_time(cli: Invoke, market: Path) -> None:
    assert run_json(cli, "show", "4")["expires_at"] is None  # past year 9999: never
    result = cli("market", "show", "4", env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert "never" in result.stdout


def test_show_unknown_offer(cli: Invoke, market: Path) -> None:
    error = fails(cli, "show", "999", exit_code=3)
    assert error["code"] == "license.offer_not_found"
    assert "999" in error["message"]


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "#"])
def test_show_bad_offer_id(cli: Invoke, market: Path, bad: str) -> None:
    assert fails(cli, "show", "--", bad, exit_code=2)["code"] == "usage"


# -- no market -------------------------------------------------------------------------


def test_an_empty_chain_has_an_empty_market(
    cli: Invoke, initialised: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dev_node(tmp_path / "empty") as (_, server):
        monkeypatch.setenv("SAHARA_NODE_RPC_URL", server.url)
        assert run_json(cli, "list") | {"count": 0, "offers": []} == run_json(cli, "list")
        assert run_json(cli, "search", "llama")["offers"] == []
        assert "No open offers." in cli("market", "list").stdout


def test_no_node(cli: Invoke, initialised: Path) -> None:
    assert fails(cli, "list", exit_code=5)["code"] == "node.unreachable"
