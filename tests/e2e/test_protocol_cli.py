"""The life of an asset, driven through the CLI against a dev node: register, license,
use, claim, expire. The commands are the ones ``docs/protocol.md`` shows."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_home import CliHome, dev_node

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "protocol test password"
SAH = 10**18


def life_of_an_asset() -> list[list[str]]:
    """The command lines of the life-of-an-asset block in docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    block = re.search(r"<!-- life-of-an-asset -->\s*```console\n(.*?)```", text, re.DOTALL)
    assert block, "docs/protocol.md lost its life-of-an-asset block"
    lines = [shlex.split(line.removeprefix("$ ")) for line in block.group(1).strip().splitlines()]
    assert all(line[0] == "sahara" for line in lines)
    return [line[1:] for line in lines]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[CliHome]:
    work = tmp_path / "work"
    work.mkdir()
    (work / "reviews.csv").write_text("id,text,label\n1,great,1\n2,broken,0\n")
    (work / "model.gguf").write_bytes(b"GGUF" + os.urandom(4096))
    h = CliHome(tmp_path / "home", work, password=PASSWORD)
    h.ok("init")
    for name in ("bob", "carol", "dana"):
        h.ok("id", "create", name)
    with dev_node(h, fund=("bob", "carol", "dana")):
        yield h


def rpc(home: CliHome, method: str, *params: Any) -> Any:
    from sahara_cli.node.client import NodeClient

    return NodeClient(home.env["SAHARA_NODE_RPC_URL"]).call(method, *params)


def test_life_of_an_asset_pays_everyone_to_the_wei(home: CliHome) -> None:
    steps = life_of_an_asset()
    owner = home.ok("id", "show", "--no-chain")["address"]
    dana = home.ok("id", "show", "dana", "--no-chain")["address"]
    dana_before = int(rpc(home, "eth_getBalance", dana, "latest"), 16)
    results = []
    for step in steps:
        results.append(home.ok(*step))
    (
        dataset,
        offer_lt,
        bought_lt,
        model,
        offer_api,
        bought_api,
        metered,
        tree,
        dry,
        claimed,
        claimed_dana,
        check,
    ) = results

    assert dataset["asset_id"] == 1 and dataset["kind"] == "dataset"
    assert dataset["contributors"] == [
        {"account": owner, "weight_bps": 7000},
        {"account": dana, "weight_bps": 3000},
    ]
    assert model["parents"] == [1] and model["upstream_bps"] == 2000
    assert offer_lt["offer_id"] == 1 and offer_api["offer_id"] == 2
    assert bought_lt["license_id"] == 1 and bought_api["license_id"] == 2
    assert int(bought_api["cost_wei"]) == 20 * SAH // 100
    assert metered["calls_used"] == 10 and metered["calls_left"] == 10
    assert tree["parents"][0]["asset_id"] == 1

    owner_expected = 7 * SAH // 10 + 14 * SAH // 1000 + 8 * SAH // 100
    dana_expected = 3 * SAH // 10 + 6 * SAH // 1000
    assert int(dry["claimable_wei"]) == owner_expected and dry["tx"] is None
    assert int(claimed["paid_wei"]) == owner_expected
    assert int(claimed_dana["paid_wei"]) == dana_expected
    # Everything paid in is either claimed or still held for carol's unused calls.
    assert (
        int(rpc(home, "eth_getBalance", "0x5a4A000000000000000000000000000000000004", "latest"), 16)
        == 0
    )
    escrow = int(
        rpc(home, "eth_getBalance", "0x5a4A000000000000000000000000000000000003", "latest"), 16
    )
    assert escrow == 10 * SAH // 100

    # Dana's balance moved by exactly her claim minus its fee. (Not the owner's: the owner
    # is also the dev chain's validator and earns every transaction's tip.)
    dana_after = int(rpc(home, "eth_getBalance", dana, "latest"), 16)
    fee = int(claimed_dana["tx"]["fee_wei"])
    assert dana_after - dana_before == dana_expected - fee

    assert check["access"] is True
    rpc(home, "sahara_dev_increaseTime", 31 * 86400)
    rpc(home, "sahara_dev_mine")
    assert home.ok(*steps[-1])["access"] is False

    standing = home.ok("id", "show")["chain"]
    assert standing["reputation"] == 7000 + 10000
    assert [r["asset_id"] for r in standing["receipts"]] == [1, 2]


def test_bad_input_gives_one_clear_error(home: CliHome) -> None:
    code, error = home.fails("asset", "show", "42")
    assert code == 3 and error["code"] == "protocol.asset_not_found"
    code, error = home.fails(
        "asset",
        "register",
        "reviews.csv",
        "--kind",
        "dataset",
        "--contributor",
        "bob:6000",
        "--contributor",
        "dana:6000",
    )
    assert code == 2 and "sum to 12000 bps" in error["message"]
    code, error = home.fails("asset", "register", "reviews.csv", "--kind", "movie")
    assert code == 2
    code, error = home.fails("license", "buy", "7", "--yes")
    assert code == 3 and error["code"] == "license.offer_not_found"
    home.ok("asset", "register", "reviews.csv", "--kind", "dataset")
    home.ok("license", "offer", "1", "--type", "full", "--price", "1000", "--expires", "1h")
    code, error = home.fails("license", "buy", "1", "--id", "bob", "--yes")
    assert code == 7 and error["code"] == "protocol.insufficient_funds"
    rpc(home, "sahara_dev_increaseTime", 7200)
    rpc(home, "sahara_dev_mine")
    code, error = home.fails("license", "buy", "1", "--id", "bob", "--yes")
    assert code == 7 and "expired" in error["message"]
    code, error = home.fails("claim", "--id", "carol")
    assert code == 7 and error["code"] == "protocol.reverted"
    assert "nothing to claim" in error["message"]
