"""sahara events against a live in-process dev node.

The chain gets two assets (one with a contributor), offers, a sale, a reprice and a
claim through the protocol client; ``sahara events`` must find them through the home's
index with each filter, newest first unless ``--oldest-first``, and keep the JSON
contract: one document on stdout, or one usage error on stderr and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.protocol.artifacts import addresses
from sahara_cli.protocol.client import Contribution, Protocol
from tests.conftest import Invoke

SAH = 10**18
ALICE, BOB, CAROL = (Signer(k) for k in dev_keys()[:3])
WIDE = {"COLUMNS": "220"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dev_node(tmp_path_factory.mktemp("events-node")) as (_, server):
        proto = Protocol(NodeClient(server.url))
        llama, _ = proto.register(
            ALICE,
            kind="model",
            cid="bafy-llama",
            commitment=b"\x01" * 32,
            name="Llama",
            contributors=[Contribution(ALICE.address, 8000), Contribution(CAROL.address, 2000)],
        )
        med, _ = proto.register(
            BOB, kind="dataset", cid="bafy-med", commitment=b"\x02" * 32, name="Med"
        )
        full, _ = proto.offer(ALICE, llama, "full", price=SAH)  # 1
        proto.offer(BOB, med, "full", price=2 * SAH)  # 2
        proto.reprice(ALICE, full, SAH // 2)
        proto.buy(BOB, full)
        proto.record_inference(ALICE, llama, b"\x05" * 32, input_hash=b"\x06" * 32)  # a SAP's
        proto.claim(CAROL)
        yield server.url


@pytest.fixture
def chain(initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    return initialised


def events(cli: Invoke, *args: str) -> dict[str, Any]:
    result = cli("--json", "--no-prompt", "events", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def names(document: dict[str, Any]) -> list[str]:
    return [f"{e['contract']}.{e['event']}" for e in document["events"]]


def test_all_events_newest_first(cli: Invoke, chain: Path) -> None:
    data = events(cli)
    assert data["order"] == "newest_first"
    assert data["count"] == len(data["events"]) > 10
    assert not data["more"]
    keys = [(e["block"], e["log_index"]) for e in data["events"]]
    assert keys == sorted(keys, reverse=True)
    assert names(data)[0] == "Attribution.Claimed"  # the last thing that happened
    assert names(data)[-1] == "Receipts.Transfer"  # the first receipt of the first asset
    for event in data["events"]:
        assert ISO.match(event["time"]), event
        assert re.fullmatch(r"0x[0-9a-f]{64}", event["tx_hash"])
        assert data["block"] >= event["block"]
    oldest = events(cli, "--oldest-first")
    assert oldest["order"] == "oldest_first"
    assert oldest["events"] == list(reversed(data["events"]))


def test_arguments_follow_the_conventions(cli: Invoke, chain: Path) -> None:
    data = events(cli, "--contract", "Licensing", "--event", "Licensed")
    [licensed] = data["events"]
    assert licensed["contract_address"] == addresses()["Licensing"]
    args = licensed["args"]
    assert args["license_id"] == 1 and args["offer_id"] == 1 and args["asset_id"] == 1
    assert args["holder"] == BOB.address  # checksummed
    assert args["license_type"] == "full"
    assert (args["price_wei"], args["price_sah"]) == (str(SAH // 2), "0.5")
    assert args["expires_at"] is None  # a full license never expires
    [registered] = events(cli, "--event", "registered", "--asset", "2")["events"]
    assert registered["args"]["kind"] == "dataset"
    assert registered["args"]["owner"] == BOB.address
    assert registered["args"]["commitment"] == "0x" + "02" * 32


def test_filters(cli: Invoke, chain: Path) -> None:
    # names are matched whatever their case
    offers = events(cli, "--contract", "licensing", "--event", "offered")
    assert names(offers) == ["Licensing.Offered"] * 2
    # an asset's events include those naming its offer, license or receipt
    llama = names(events(cli, "--asset", "1", "--oldest-first"))
    assert "Licensing.OfferChanged" in llama and "Receipts.Transfer" in llama
    assert "Licensing.Licensed" in llama and "Attribution.Credited" in llama
    assert not {"Attribution.Claimed"} & set(llama)  # a claim is of no one asset
    med = events(cli, "--asset", "bafy-med")  # by content id too
    assert {e["args"].get("asset_id") for e in med["events"]} <= {2, None}
    # an address matches any address argument: contributors inside a list too
    carol = names(events(cli, "--address", CAROL.address.lower()))
    assert "Attribution.Claimed" in carol and "Attribution.ContributorsSet" in carol
    assert "Receipts.Transfer" in carol  # her contributor receipt
    assert "Licensing.Licensed" not in carol
    # block range, inclusive at both ends, and the limit
    first = events(cli, "--oldest-first", "--limit", "1")["events"][0]["block"]
    only = events(cli, "--from-block", str(first), "--to-block", str(first))
    assert {e["block"] for e in only["events"]} == {first}
    two = events(cli, "--limit", "2")
    assert two["count"] == 2 and two["more"] is True


def test_the_saps_events_are_listed_like_the_contracts(cli: Invoke, chain: Path) -> None:
    from sahara_cli.protocol.artifacts import sap_addresses

    [recorded] = events(cli, "--contract", "inferencerecord")["events"]
    assert recorded["event"] == "InferenceRecorded"
    assert recorded["contract_address"] == sap_addresses()["InferenceRecord"]
    args = recorded["args"]
    assert (args["record_id"], args["asset_id"], args["recorder"]) == (1, 1, ALICE.address)
    assert (args["digest"], args["input_hash"]) == ("0x" + "05" * 32, "0x" + "06" * 32)
    assert (args["calls_metered"], args["fee_wei"], args["fee_sah"]) == (0, "0", "0")
    assert "InferenceRecord.InferenceRecorded" in names(events(cli, "--asset", "1"))
    assert names(events(cli, "--event", "inferencerecorded")) == [
        "InferenceRecord.InferenceRecorded"
    ]
    assert events(cli, "--contract", "TrainingRecord")["events"] == []  # no job yet


def test_the_table_for_people(cli: Invoke, chain: Path) -> None:
    result = cli("--no-prompt", "events", "--event", "Licensed", env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert "Licensing.Licensed" in result.stdout
    assert "price=0.5 SAH" in result.stdout
    assert "license_type=full" in result.stdout
    none = cli("--no-prompt", "events", "--event", "Settled", env=WIDE)
    assert none.exit_code == 0 and "No events." in none.stdout


def test_an_unknown_asset_is_not_found(cli: Invoke, chain: Path) -> None:
    result = cli("--json", "--no-prompt", "events", "--asset", "99")
    assert result.exit_code == 3, result.stderr
    assert result.error()["code"] == "protocol.asset_not_found"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--contract", "Registry"], "no protocol contract named 'Registry'"),
        (["--event", "Minted"], "no event named 'Minted'"),
        (["--contract", "Receipts", "--event", "Licensed"], "the Receipts contract"),
        (["--from-block", "9", "--to-block", "3"], "is empty"),
        (["--limit", "0"], "the limit must be 1 to"),
        (["--address", "0x12"], "address"),
    ],
)
def test_bad_arguments_are_usage_errors(
    cli: Invoke, chain: Path, args: list[str], words: str
) -> None:
    result = cli("--json", "--no-prompt", "events", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    error = result.error()
    assert words in error["message"]
    if "--contract" in args and "--event" not in args:
        assert "AssetRegistry" in error["hint"]
