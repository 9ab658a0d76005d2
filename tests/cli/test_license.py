"""sahara license: every command driven through the CLI against a live in-process dev node.

One dev node serves the module; each test runs inside a chain snapshot that is rolled
back afterwards, in a fresh home with the IDs 'main' (default, unfunded), 'owner' (owns
the asset and is its meter), 'buyer' and 'partner' (funded dev accounts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.identity.keys import Signer, keccak256
from sahara_cli.node.client import NodeClient
from tests.conftest import PASSWORD, Invoke, Result

DAY = 86_400
SAH = 10**18


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("license-node")) as (_, server):
        yield server.url


@dataclass
class World:
    url: str
    client: NodeClient
    asset: int
    cid: str
    owner: str
    buyer: str
    partner: str
    main: str
    tmp: Path

    def now(self) -> int:
        return int(self.client.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def balance(self, address: str) -> int:
        return self.client.balance(address)


def ok(cli: Invoke, *args: str, input: str | None = None) -> Any:
    """Run with --json and expect success and exactly one JSON document on stdout."""
    result = cli("--json", "--no-prompt", *args, input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def fails(cli: Invoke, code: int, *args: str) -> dict[str, Any]:
    """Run with --json and expect exit ``code``, nothing on stdout, one JSON error."""
    result = cli("--json", "--no-prompt", *args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.error()


@pytest.fixture
def world(
    cli: Invoke,
    initialised: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    node_url: str,
) -> Iterator[World]:
    from sahara_cli.node.genesis import dev_keys
    from sahara_cli.protocol.client import Protocol

    client = NodeClient(node_url)
    snapshot = client.call("sahara_dev_snapshot")
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    keys = dev_keys(3)
    addresses = {}
    for name, key in zip(("owner", "buyer", "partner"), keys, strict=True):
        path = tmp_path / f"{name}.key"
        path.write_text("0x" + key.hex())
        addresses[name] = ok(cli, "id", "import", name, "--private-key-file", str(path))["address"]
    main = ok(cli, "id", "show", "main")["address"]
    cid = f"bafy-license-{tmp_path.name}"
    asset, _ = Protocol(client).register(
        Signer(keys[0]), kind="dataset", cid=cid, commitment=b"\1" * 32, name="weather"
    )
    try:
        yield World(
            url=node_url,
            client=client,
            asset=asset,
            cid=cid,
            owner=addresses["owner"],
            buyer=addresses["buyer"],
            partner=addresses["partner"],
            main=main,
            tmp=tmp_path,
        )
    finally:
        client.call("sahara_dev_revert", snapshot)


def offer(cli: Invoke, w: World, *args: str) -> int:
    doc = ok(cli, "license", "offer", str(w.asset), *args, "--id", "owner")
    return int(doc["offer_id"])


def assert_tx(doc: dict[str, Any]) -> None:
    tx = doc["tx"]
    assert tx["hash"].startswith("0x") and len(tx["hash"]) == 66
    assert tx["block"] > 0 and tx["status"] == "success"
    assert tx["gas_used"] > 0
    assert int(tx["fee_wei"]) > 0 and tx["fee_sah"]


def ts(text: str) -> int:
    """An ISO 8601 UTC time of a document as unix seconds."""
    assert text.endswith("Z"), text
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


# -- the four license types ----------------------------------------------------------


def test_full_license_offer_buy_show_check(cli: Invoke, world: World) -> None:
    doc = ok(
        cli,
        "license",
        "offer",
        str(world.asset),
        "--type",
        "full",
        "--price",
        "1.5",
        "--id",
        "owner",
    )
    assert_tx(doc)
    assert doc["type"] == "full" and doc["asset_id"] == world.asset
    assert doc["price_wei"] == str(3 * SAH // 2) and doc["price_sah"] == "1.5"
    assert doc["expires_at"] is None and doc["paused"] is False
    offer_id = doc["offer_id"]

    before = world.balance(world.buyer)
    bought = ok(cli, "license", "buy", str(offer_id), "--yes", "--id", "buyer")
    assert_tx(bought)
    assert bought["offer_id"] == offer_id
    assert bought["cost_wei"] == str(3 * SAH // 2) and bought["cost_sah"] == "1.5"
    assert bought["holder"] == world.buyer and bought["type"] == "full"
    assert bought["asset_id"] == world.asset and bought["active"] is True
    paid = before - world.balance(world.buyer)
    assert paid == 3 * SAH // 2 + int(bought["tx"]["fee_wei"])

    shown = ok(cli, "license", "show", f"#{bought['license_id']}")
    assert shown["license_id"] == bought["license_id"] and shown["offer_id"] == offer_id
    assert shown["expires_at"] is None
    assert shown["active"] is True
    assert abs(ts(shown["started_at"]) - world.now()) < 60

    yes = ok(cli, "license", "check", world.cid, "--user", "buyer", "--type", "full")
    assert yes == {
        "asset_id": world.asset,
        "user": world.buyer,
        "type": "full",
        "access": True,
        "owner": False,
        "calls_left": None,
        "types": None,
        "expires_at": None,
        "never_expires": True,
    }
    no = cli("--json", "license", "check", str(world.asset), "--type", "full")  # main
    assert no.exit_code == 0
    assert no.json()["access"] is False and no.json()["user"] == world.main
    assert no.json()["expires_at"] is None and no.json()["never_expires"] is False
    anything = ok(cli, "license", "check", str(world.asset), "--user", world.buyer)
    assert anything["type"] == "any" and anything["access"] is True
    assert anything["types"] == {
        "api": False,
        "full": True,
        "long-term": False,
        "partnership": False,
    }
    owner = ok(cli, "license", "check", str(world.asset), "--user", "owner")
    assert owner["access"] is True and owner["owner"] is True


def test_api_license_buy_meter_refund(cli: Invoke, world: World) -> None:
    offer_id = offer(cli, world, "--type", "api", "--price-per-call", "0.01")
    bought = ok(cli, "license", "buy", str(offer_id), "--calls", "10", "--yes", "--id", "buyer")
    assert bought["cost_sah"] == "0.1"
    license_id = bought["license_id"]
    assert bought["calls_left"] == 10 and bought["calls_used"] == 0
    assert bought["expires_at"] is None and bought["price_sah"] == "0.01"

    check = ok(cli, "license", "check", str(world.asset), "--user", "buyer", "--type", "api")
    assert check["access"] is True and check["calls_left"] == 10

    metered = ok(cli, "license", "meter", str(license_id), "--calls", "3", "--id", "owner")
    assert_tx(metered)
    assert metered["calls_metered"] == 3 and metered["amount_sah"] == "0.03"
    assert metered["calls_left"] == 7 and metered["calls_used"] == 3

    shown = ok(cli, "license", "show", str(license_id))
    assert (shown["calls_left"], shown["calls_used"], shown["active"]) == (7, 3, True)

    before = world.balance(world.buyer)
    refunded = ok(cli, "license", "refund", str(license_id), "--id", "buyer")
    assert_tx(refunded)
    assert refunded["calls_refunded"] == 7 and refunded["refunded_sah"] == "0.07"
    assert world.balance(world.buyer) == before + 7 * SAH // 100 - int(refunded["tx"]["fee_wei"])
    assert refunded["calls_left"] == 0 and refunded["active"] is False
    check = ok(cli, "license", "check", str(world.asset), "--user", "buyer", "--type", "api")
    assert check["access"] is False and check["calls_left"] == 0


def test_long_term_license_expires(cli: Invoke, world: World) -> None:
    offer_id = offer(cli, world, "--type", "long-term", "--price", "2", "--duration", "30d")
    bought = ok(cli, "license", "buy", str(offer_id), "--yes", "--id", "buyer")
    assert ts(bought["expires_at"]) == ts(bought["started_at"]) + 30 * DAY
    check = ok(cli, "license", "check", str(world.asset), "--user", "buyer", "--type", "long-term")
    assert check["access"] is True
    assert check["expires_at"] == bought["expires_at"] and check["never_expires"] is False

    world.client.call("sahara_dev_increaseTime", 31 * DAY)
    world.client.call("sahara_dev_mine")
    check = ok(cli, "license", "check", str(world.asset), "--user", "buyer", "--type", "long-term")
    assert check["access"] is False and check["expires_at"] == bought["expires_at"]
    assert ok(cli, "license", "show", str(bought["license_id"]))["active"] is False


def test_partnership_offer_accept_settle(cli: Invoke, world: World) -> None:
    terms = world.tmp / "terms.md"
    terms.write_text("Partner pays 20% of revenue made with the weather dataset.\n")
    doc = ok(
        cli,
        "license",
        "offer",
        str(world.asset),
        "--type",
        "partnership",
        "--terms",
        str(terms),
        "--share",
        "20%",
        "--partner",
        "partner",
        "--duration",
        "1y",
        "--id",
        "owner",
    )
    expected = "0x" + keccak256(terms.read_bytes()).hex()
    assert doc["terms"] == expected and doc["terms_file"] == str(terms)
    assert doc["share_bps"] == 2000 and doc["partner"] == world.partner
    assert doc["duration_s"] == 365 * DAY
    offer_id = str(doc["offer_id"])

    err = fails(cli, 2, "license", "buy", offer_id, "--yes", "--id", "partner")
    assert "accepted, not bought" in err["message"]
    err = fails(cli, 6, "license", "accept", offer_id, "--yes", "--id", "buyer")
    assert world.partner in err["message"]

    accepted = ok(cli, "license", "accept", offer_id, "--yes", "--id", "partner")
    assert_tx(accepted)
    lic = accepted
    assert lic["type"] == "partnership" and lic["terms"] == expected
    assert lic["share_bps"] == 2000
    assert ts(lic["expires_at"]) == ts(lic["started_at"]) + 365 * DAY
    assert fails(cli, 7, "license", "accept", offer_id, "--yes", "--id", "partner")["message"]

    settled = ok(
        cli, "license", "settle", str(accepted["license_id"]), "--revenue", "10", "--id", "partner"
    )
    assert_tx(settled)
    assert settled["amount_sah"] == "2" and settled["revenue_sah"] == "10"
    assert settled["share_bps"] == 2000
    err = fails(
        cli, 6, "license", "settle", str(accepted["license_id"]), "--revenue", "10", "--id", "buyer"
    )
    assert "holding license" in err["message"]
    err = fails(
        cli,
        2,
        "license",
        "settle",
        str(accepted["license_id"]),
        "--revenue",
        "0",
        "--id",
        "partner",
    )
    assert "nothing to settle" in err["message"]

    check = ok(
        cli, "license", "check", str(world.asset), "--user", "partner", "--type", "partnership"
    )
    assert check["access"] is True and check["expires_at"] == lic["expires_at"]


def test_partnership_open_to_anyone(cli: Invoke, world: World) -> None:
    terms = world.tmp / "terms.txt"
    terms.write_text("open terms")
    offer_id = offer(
        cli,
        world,
        "--type",
        "partnership",
        "--terms",
        str(terms),
        "--share",
        "500",
        "--price",
        "0.5",
    )
    for who in ("buyer", "partner"):
        accepted = ok(cli, "license", "accept", str(offer_id), "--yes", "--id", who)
        assert accepted["cost_sah"] == "0.5" and accepted["expires_at"] is None


# -- managing offers --------------------------------------------------------------------


def test_reprice_pause_resume(cli: Invoke, world: World) -> None:
    offer_id = str(offer(cli, world, "--type", "full", "--price", "1"))
    first = ok(cli, "license", "buy", offer_id, "--yes", "--id", "buyer")

    repriced = ok(cli, "license", "reprice", offer_id, "--price", "3", "--id", "owner")
    assert_tx(repriced)
    assert repriced["old_price_sah"] == "1" and repriced["old_price_wei"] == str(SAH)
    assert repriced["price_sah"] == "3" and repriced["offer_id"] == int(offer_id)
    assert ok(cli, "license", "show", str(first["license_id"]))["price_sah"] == "1"

    paused = ok(cli, "license", "pause", offer_id, "--id", "owner")
    assert_tx(paused)
    assert paused["paused"] is True and paused["changed"] is True
    err = fails(cli, 7, "license", "buy", offer_id, "--yes", "--id", "buyer")
    assert err["code"] == "license.offer_closed" and "paused" in err["message"]

    resumed = ok(cli, "license", "resume", offer_id, "--id", "owner")
    assert resumed["paused"] is False and resumed["changed"] is True
    second = ok(cli, "license", "buy", offer_id, "--yes", "--id", "buyer")
    assert second["cost_sah"] == "3" and second["price_sah"] == "3"

    for command in (["reprice", offer_id, "--price", "1"], ["pause", offer_id]):
        err = fails(cli, 6, "license", *command, "--id", "buyer")
        assert "only the owner" in err["message"]


def test_offer_expires(cli: Invoke, world: World) -> None:
    doc = ok(
        cli,
        "license",
        "offer",
        str(world.asset),
        "--type",
        "full",
        "--price",
        "1",
        "--expires",
        "1h",
        "--id",
        "owner",
    )
    block = world.client.call("eth_getBlockByNumber", hex(doc["tx"]["block"] - 1), False)
    assert ts(doc["expires_at"]) == int(block["timestamp"], 16) + 3600
    world.client.call("sahara_dev_increaseTime", 7200)
    world.client.call("sahara_dev_mine")
    err = fails(cli, 7, "license", "buy", str(doc["offer_id"]), "--yes", "--id", "buyer")
    assert err["code"] == "license.offer_closed"
    assert f"offer {doc['offer_id']} expired at " in err["message"]


# -- asking before paying ---------------------------------------------------------------


def test_buy_asks_for_confirmation_with_the_cost(cli: Invoke, world: World) -> None:
    offer_id = str(offer(cli, world, "--type", "api", "--price-per-call", "0.25"))
    declined = cli("license", "buy", offer_id, "--calls", "4", "--id", "buyer", input="n\n")
    assert declined.exit_code == 130
    assert "1 SAH" in declined.stderr and "4 calls" in declined.stderr
    assert ok(cli, "license", "check", str(world.asset), "--user", "buyer")["access"] is False

    err = fails(cli, 2, "license", "buy", offer_id, "--calls", "4", "--id", "buyer")
    assert err["code"] == "confirmation_required"

    agreed = cli("license", "buy", offer_id, "--calls", "4", "--id", "buyer", input="y\n")
    assert agreed.exit_code == 0, agreed.stderr
    assert "Bought license" in agreed.stdout and "calls left" in agreed.stdout
    assert "transaction" in agreed.stdout and "gas used" in agreed.stdout


def test_human_output(cli: Invoke, world: World) -> None:
    terms = world.tmp / "terms.txt"
    terms.write_text("terms")
    shown = cli(
        "license",
        "offer",
        str(world.asset),
        "--type",
        "partnership",
        "--terms",
        str(terms),
        "--share",
        "25%",
        "--id",
        "owner",
        env={"COLUMNS": "200"},
    )
    assert shown.exit_code == 0, shown.stderr
    assert "0x" + keccak256(b"terms").hex() in shown.stdout
    assert "25% (2500 bps)" in shown.stdout and "anyone" in shown.stdout
    check = cli("license", "check", str(world.asset), "--user", "buyer")
    assert check.exit_code == 0 and "access: no" in check.stdout
    check = cli("license", "check", str(world.asset), "--user", "owner")
    assert "access: yes" in check.stdout and "owns the asset" in check.stdout


# -- listing ----------------------------------------------------------------------------


def test_list_filters(cli: Invoke, world: World) -> None:
    full = str(offer(cli, world, "--type", "full", "--price", "0.1"))
    api = str(offer(cli, world, "--type", "api", "--price-per-call", "0.1"))
    a = ok(cli, "license", "buy", full, "--yes", "--id", "buyer")["license_id"]
    b = ok(cli, "license", "buy", api, "--calls", "2", "--yes", "--id", "partner")["license_id"]

    everything = ok(cli, "license", "list", "--asset", str(world.asset))
    assert {lic["license_id"] for lic in everything["licenses"]} == {a, b}
    assert everything["count"] == 2 and everything["asset_id"] == world.asset
    mine = ok(cli, "license", "list", "--mine", "--id", "buyer")
    assert [lic["license_id"] for lic in mine["licenses"]] == [a]
    assert mine["holder"] == world.buyer
    theirs = ok(cli, "license", "list", "--holder", world.partner)
    assert [lic["license_id"] for lic in theirs["licenses"]] == [b]
    assert theirs["licenses"][0]["calls_left"] == 2
    assert ok(cli, "license", "list", "--mine")["licenses"] == []  # main holds none
    table = cli("license", "list", "--asset", world.cid)
    assert table.exit_code == 0 and "2 left, 0 used" in table.stdout


# -- refusals ---------------------------------------------------------------------------


def test_unknown_offer_and_license(cli: Invoke, world: World) -> None:
    for command in (
        ["buy", "999", "--yes"],
        ["accept", "999", "--yes"],
        ["reprice", "999", "--price", "1"],
        ["pause", "999"],
    ):
        err = fails(cli, 3, "license", *command, "--id", "buyer")
        assert err["code"] == "license.offer_not_found" and "999" in err["message"]
    for command in (
        ["show", "999"],
        ["meter", "999", "--calls", "1"],
        ["refund", "999"],
        ["settle", "999", "--revenue", "1"],
    ):
        err = fails(cli, 3, "license", *command)
        assert err["code"] == "license.not_found"
    err = fails(cli, 3, "license", "offer", "999", "--type", "full", "--price", "1")
    assert err["code"] == "protocol.asset_not_found"
    assert fails(cli, 3, "license", "check", "bafy-nothing")["code"] == "protocol.asset_not_found"


def test_insufficient_funds(cli: Invoke, world: World) -> None:
    offer_id = str(offer(cli, world, "--type", "full", "--price", "5"))
    err = fails(cli, 7, "license", "buy", offer_id, "--yes")  # main has no SAH
    assert err["code"] == "protocol.insufficient_funds"
    assert world.main in err["message"] and "has 0 SAH" in err["message"]
    assert "5 SAH" in err["message"]
    world.client.call("sahara_dev_setBalance", world.main, hex(SAH))
    err = fails(cli, 7, "license", "buy", offer_id, "--yes")
    assert "has 1 SAH" in err["message"]


def test_non_owner_cannot_offer(cli: Invoke, world: World) -> None:
    err = fails(
        cli,
        6,
        "license",
        "offer",
        str(world.asset),
        "--type",
        "full",
        "--price",
        "1",
        "--id",
        "buyer",
    )
    assert err["code"] == "protocol.not_permitted"
    assert world.owner in err["message"] and world.buyer in err["message"]


def test_meter_and_refund_refusals(cli: Invoke, world: World) -> None:
    api = str(offer(cli, world, "--type", "api", "--price-per-call", "0.01"))
    lic = str(
        ok(cli, "license", "buy", api, "--calls", "2", "--yes", "--id", "buyer")["license_id"]
    )
    err = fails(cli, 6, "license", "meter", lic, "--calls", "1", "--id", "buyer")
    assert "meter of asset" in err["message"]
    err = fails(cli, 7, "license", "meter", lic, "--calls", "3", "--id", "owner")
    assert "2 prepaid calls left" in err["message"]
    err = fails(cli, 6, "license", "refund", lic, "--id", "owner")
    assert "holder" in err["message"]
    ok(cli, "license", "refund", lic, "--id", "buyer")
    assert "no unused calls" in fails(cli, 7, "license", "refund", lic, "--id", "buyer")["message"]

    full = str(offer(cli, world, "--type", "full", "--price", "0"))
    other = str(ok(cli, "license", "buy", full, "--yes", "--id", "buyer")["license_id"])
    assert "only api" in fails(cli, 2, "license", "meter", other, "--calls", "1")["message"]
    assert "only api" in fails(cli, 2, "license", "refund", other)["message"]
    assert (
        "only partnerships"
        in fails(cli, 2, "license", "settle", other, "--revenue", "1")["message"]
    )
    err = fails(cli, 2, "license", "accept", full, "--yes", "--id", "buyer")
    assert "bought, not accepted" in err["message"]


def test_buy_flag_refusals(cli: Invoke, world: World) -> None:
    api = str(offer(cli, world, "--type", "api", "--price-per-call", "0.01"))
    full = str(offer(cli, world, "--type", "full", "--price", "1"))
    assert "--calls" in fails(cli, 2, "license", "buy", api, "--yes")["message"]
    assert "--calls" in fails(cli, 2, "license", "buy", full, "--calls", "3", "--yes")["message"]
    assert fails(cli, 2, "license", "buy", api, "--calls", "0", "--yes")["message"]
    assert fails(cli, 2, "license", "buy", "zero", "--yes")["message"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--type", "api"], "--price-per-call"),
        (["--type", "api", "--price", "1"], "per call"),
        (["--type", "api", "--price-per-call", "1", "--duration", "1d"], "does not expire"),
        (["--type", "full"], "needs --price"),
        (["--type", "full", "--price-per-call", "1"], "--price-per-call is for api"),
        (["--type", "full", "--price", "1", "--duration", "30d"], "does not expire"),
        (["--type", "long-term", "--price", "1"], "needs --duration"),
        (["--type", "long-term", "--duration", "30d"], "needs --price"),
        (["--type", "full", "--price", "1", "--share", "20%"], "--share is for partnership"),
        (["--type", "full", "--price", "1", "--partner", "main"], "--partner is for partner"),
        (["--type", "partnership", "--share", "20%"], "needs --terms"),
        (["--type", "partnership", "--terms", "TERMS"], "needs --share"),
        (["--type", "partnership", "--terms", "TERMS", "--share", "0"], "more than 0"),
        (["--type", "partnership", "--terms", "TERMS", "--share", "120%"], "10000"),
        (["--type", "partnership", "--terms", "missing.txt", "--share", "1"], "does not exist"),
        (["--type", "long-term", "--price", "1", "--duration", "soon"], "not a duration"),
        (["--type", "full", "--price", "1", "--expires", "0"], "not a duration"),
        (["--type", "full", "--price", "one"], "--price: not an amount"),
        (["--type", "lifetime", "--price", "1"], "lifetime"),
        ([], "--type"),
    ],
)
def test_offer_flag_combinations(
    cli: Invoke, initialised: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    """Wrong combinations fail before any node is asked (none answers here)."""
    terms = tmp_path / "terms.txt"
    terms.write_text("terms")
    args = [str(terms) if a == "TERMS" else a for a in args]
    err = fails(cli, 2, "license", "offer", "1", *args)
    assert needle in err["message"], err


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--mine", "--holder", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
        ["list", "--id", "main"],
        ["check", "1", "--type", "lifetime"],
        ["show", "-3"],
        ["meter", "1"],
        ["reprice", "1"],
        ["settle", "1", "--revenue", "lots"],
    ],
)
def test_other_usage_errors(cli: Invoke, initialised: Path, args: list[str]) -> None:
    assert fails(cli, 2, "license", *args)["message"]


def test_errors_for_people_go_to_stderr(cli: Invoke, initialised: Path) -> None:
    result: Result = cli("license", "offer", "1", "--type", "api")
    assert result.exit_code == 2 and result.stdout == ""
    assert "error:" in result.stderr and "--price-per-call" in result.stderr


# -- claiming ---------------------------------------------------------------------------


def test_claim_with_nothing_credited_is_refused_before_signing(cli: Invoke, world: World) -> None:
    """Nothing to claim is the contract's refusal (protocol.reverted, exit 7), not a usage
    error, and it comes before any password is asked or gas spent."""
    before = world.balance(world.buyer)
    err = fails(cli, 7, "claim", "--id", "buyer")
    assert err["code"] == "protocol.reverted"
    assert "nothing to claim" in err["message"] and world.buyer in err["message"]
    assert err["hint"] and "credited" in err["hint"]
    assert world.balance(world.buyer) == before
    dry = ok(cli, "claim", "--dry-run", "--id", "buyer")
    assert (dry["claimable_wei"], dry["dry_run"], dry["tx"]) == ("0", True, None)


def test_claim_pays_what_a_sale_credited(cli: Invoke, world: World) -> None:
    offer_id = str(offer(cli, world, "--type", "full", "--price", "2"))
    ok(cli, "license", "buy", offer_id, "--yes", "--id", "buyer")
    dry = ok(cli, "claim", "--dry-run", "--id", "owner")
    assert dry["address"] == world.owner and dry["claimable_wei"] == str(2 * SAH)
    assert dry["credited_by_asset"] == [
        {"asset_id": world.asset, "name": "weather", "amount_wei": str(2 * SAH), "amount_sah": "2"}
    ]
    before = world.balance(world.owner)
    claimed = ok(cli, "claim", "--id", "owner")
    assert_tx(claimed)
    assert claimed["dry_run"] is False and claimed["paid_wei"] == str(2 * SAH)
    assert claimed["paid_sah"] == "2" and claimed["claimable_sah"] == "2"
    fee = int(claimed["tx"]["fee_wei"])
    # the owner is not the dev chain's validator here, so no tips come back to it
    assert world.balance(world.owner) == before + 2 * SAH - fee
    assert fails(cli, 7, "claim", "--id", "owner")["code"] == "protocol.reverted"


def test_buying_what_you_have_is_warned_and_needs_yes(cli: Invoke, world: World) -> None:
    full = str(offer(cli, world, "--type", "full", "--price", "1"))
    # The owner buying a license to its own asset: refused without --yes, nothing paid.
    before = world.balance(world.owner)
    err = fails(cli, 2, "license", "buy", full, "--id", "owner")
    assert err["code"] == "confirmation_required"
    assert "owns asset" in err["message"] and "--yes" in err["message"]
    assert world.balance(world.owner) == before
    declined = cli("license", "buy", full, "--id", "owner", input="n\n")
    assert declined.exit_code == 130
    assert "warning:" in declined.stderr and "owns asset" in declined.stderr
    assert world.balance(world.owner) == before
    piped = cli("license", "buy", full, "--id", "owner", input="y\n", tty=False)
    assert piped.exit_code == 2 and "pass --yes to buy anyway" in piped.stderr
    assert world.balance(world.owner) == before

    bought = ok(cli, "license", "buy", full, "--yes", "--id", "buyer")
    assert bought["warnings"] == []
    # A second license of a type the buyer holds, still active.
    again = fails(cli, 2, "license", "buy", full, "--id", "buyer")
    assert again["code"] == "confirmation_required"
    assert "already holds a full license" in again["message"]
    assert "with no expiry" in again["message"]
    forced = ok(cli, "license", "buy", full, "--yes", "--id", "buyer")
    assert len(forced["warnings"]) == 1 and "already holds" in forced["warnings"][0]
    # Buying more calls of an api license is a top-up, not a warning.
    api = str(offer(cli, world, "--type", "api", "--price-per-call", "0.01"))
    ok(cli, "license", "buy", api, "--calls", "2", "--yes", "--id", "buyer")
    assert (
        ok(cli, "license", "buy", api, "--calls", "2", "--yes", "--id", "buyer")["warnings"] == []
    )
