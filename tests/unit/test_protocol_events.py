"""The event log of the protocol index against a real in-process dev node.

One module-scoped chain emits every event of every deployed contract; the index must
keep each one exactly as the transaction's receipt decoded it, know the asset and the
addresses of each, and answer queries by contract, event, asset, address and blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.errors import ProtocolIndexError, ProtocolInvalidArgument
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.node.saps.machine import Program, State
from sahara_cli.protocol import index_tables
from sahara_cli.protocol.client import FOREVER, Contribution, Protocol, TxResult
from sahara_cli.protocol.events import (
    EventQuery,
    EventsResult,
    LoggedEvent,
    arguments,
    catalogue,
    event_names,
    find_events,
)
from sahara_cli.protocol.index import ProtocolIndex
from tests.unit.dispute_players import Run, play

SAH = 10**18
ALICE, BOB, CAROL, DAVE = (Signer(k) for k in dev_keys()[:4])


@dataclass
class Chain:
    proto: Protocol
    txs: list[TxResult]
    model: int
    data: int


def every_event(proto: Protocol) -> Chain:
    """Transactions that, together, make every contract emit every one of its events."""
    txs: list[TxResult] = []

    def did(result: Any) -> Any:
        value, tx = result if isinstance(result, tuple) else (None, result)
        txs.append(tx)
        return value

    data = did(
        proto.register(BOB, kind="dataset", cid="bafy-data", commitment=b"\2" * 32, name="D")
    )
    model = did(
        proto.register(
            ALICE,
            kind="model",
            cid="bafy-model",
            commitment=b"\x01" * 32,
            name="Model",
            parents=[data],
            contributors=[Contribution(ALICE.address, 9000), Contribution(CAROL.address, 1000)],
            upstream_bps=1000,
        )
    )
    did(proto.set_metadata(ALICE, model, "ipfs://card"))
    did(proto.set_meter(ALICE, model, DAVE.address))
    did(proto.add_contributor(ALICE, model, DAVE.address, 500))  # ShareChanged + a mint
    api = did(proto.offer(ALICE, model, "api", price=SAH // 100))
    partner = did(proto.offer(ALICE, model, "partnership", share_bps=2000, terms=b"\3" * 32))
    did(proto.reprice(ALICE, api, SAH // 50))
    lic = did(proto.buy(BOB, api, calls=5))
    did(proto.meter(DAVE, lic, 2))
    did(proto.refund(BOB, lic))
    deal = did(proto.accept(CAROL, partner))
    did(proto.settle(CAROL, deal, 10 * SAH))
    did(proto.pay_with(BOB, model, SAH, [data]))
    did(proto.claim(CAROL))
    # An answer recorded the old way, in the Provenance contract, and one through the
    # inference SAP that meters a call in the same transaction.
    did(proto.provenance.record_inference(DAVE, model, b"\4" * 32, [data], lic))
    metered = did(proto.buy(BOB, api, calls=2))
    did(
        proto.record_inference(
            DAVE,
            model,
            b"\5" * 32,
            [data],
            metered,
            input_hash=b"\6" * 32,
            output_hash=b"\7" * 32,
            calls=1,
        )
    )
    # Jobs of the training SAP: one finalised (its output derived from the data), one
    # cancelled.
    bond, _ = proto.training.parameters()

    def submit(cid: str) -> int:
        return int(
            did(
                proto.training.submit(
                    BOB,
                    kind="train",
                    base=0,
                    inputs=[data],
                    weights_bps=[],
                    hparams=b"\x11" * 32,
                    cid=cid,
                    commitment=b"\x22" * 32,
                    name="Tuned",
                    metrics='{"loss": 1.5}',
                    upstream_bps=3_000,
                    bond_wei=bond,
                )
            )
        )

    job = submit("bafy-tuned")
    did(proto.training.cancel(BOB, submit("bafy-dropped")))
    proto.node.call("sahara_dev_mine", 1, proto.training.get_job(job).finalize_after)
    did(proto.training.finalize(CAROL, job))
    # The dispute game: a job's claim with one wrong operation, challenged, bisected and
    # lost (its job rejected); a claim of an answer, unchallenged and closed.
    honest = Run(State.initial(Program("mlp-infer", (2, 2, 1)), {}))
    wrong = Run(honest.first, corrupt=0)
    lost = did(
        proto.disputes.claim(
            BOB, kind="training", subject=submit("bafy-lost"), bond_wei=bond, **wrong.claim_args()
        )
    )
    dispute = did(proto.disputes.challenge(CAROL, lost, bond))
    played = play(
        proto.disputes, dispute, claimer=BOB, claimed=wrong, challenger=CAROL, believed=honest
    )
    txs.extend(tx for _, tx in played.moves)
    kept = did(
        proto.disputes.claim(BOB, kind="inference", subject=0, bond_wei=bond, **honest.claim_args())
    )
    proto.node.call("sahara_dev_mine", 1, proto.disputes.get_claim(kept).deadline)
    did(proto.disputes.close(CAROL, kept))
    return Chain(proto, txs, model, data)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with dev_node(tmp_path_factory.mktemp("events-node")) as (_, server):
        yield every_event(Protocol(NodeClient(server.url)))


@pytest.fixture
def index(chain: Chain, tmp_path: Path) -> Iterator[ProtocolIndex]:
    with ProtocolIndex(chain.proto, tmp_path / "index.sqlite") as found:
        yield found


def query(index: ProtocolIndex, **filters: Any) -> list[LoggedEvent]:
    found, _ = index.events(EventQuery(limit=10_000, oldest_first=True, **filters))
    return found


# -- coverage --------------------------------------------------------------------------


def test_every_event_of_every_contract_is_indexed(chain: Chain, index: ProtocolIndex) -> None:
    kept = {(e.contract, e.event) for e in query(index)}
    wanted = {(contract, e["name"]) for contract, entries in catalogue().items() for e in entries}
    assert len(wanted) == 28  # a new event in a contract or a SAP shows up here
    assert kept == wanted


def test_events_are_kept_as_their_receipts_decoded_them(chain: Chain, index: ProtocolIndex) -> None:
    from_receipts = [e for tx in chain.txs for e in tx.events]
    kept = query(index)
    assert [(e.block, e.log_index, e.tx_hash) for e in kept] == [
        (e.block, e.log_index, e.tx_hash) for e in from_receipts
    ]
    for logged, sent in zip(kept, from_receipts, strict=True):
        assert logged.event == sent.name
        assert logged.address == sent.address
        raw = {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in sent.args.items()}
        assert logged.args == raw
        block = chain.proto.node.call("eth_getBlockByNumber", hex(logged.block), False)
        assert logged.time == int(block["timestamp"], 16)


def test_every_receipt_event_knows_its_asset(chain: Chain, index: ProtocolIndex) -> None:
    tokens = [e for e in query(index, contract="Receipts")]
    assert {e.event for e in tokens} == {"Transfer", "Locked", "ShareChanged"}
    for event in tokens:
        asset = chain.proto.receipt(int(event.args["token_id"])).asset
        assert event in query(index, asset_id=asset), event


# -- queries ---------------------------------------------------------------------------


def test_filter_by_asset(chain: Chain, index: ProtocolIndex) -> None:
    about_data = query(index, asset_id=chain.data)
    assert {e.event for e in about_data} == {
        "Transfer",
        "Locked",
        "ContributorsSet",
        "Registered",
        "Credited",  # its upstream share of what the model earned
        "Recorded",  # an answer that used it (the Provenance contract)
        "InferenceRecorded",  # an answer that used it (the inference SAP)
        "JobSubmitted",  # the jobs trained on it
        "JobFinalized",
        "JobCancelled",
        "JobRejected",  # the job that lost its dispute
    }
    about_model = {e.event for e in query(index, asset_id=chain.model)}
    # through its offer (OfferChanged), its license (Refunded) and its receipts
    assert {"OfferChanged", "Refunded", "ShareChanged", "Settled", "Recorded"} <= about_model
    assert "Claimed" not in about_model


def test_filter_by_address_reaches_every_address_argument(
    chain: Chain, index: ProtocolIndex
) -> None:
    dave = {(e.contract, e.event) for e in query(index, address=DAVE.address.lower())}
    assert ("AssetRegistry", "MeterChanged") in dave  # the meter argument
    assert ("Attribution", "ContributorsSet") in dave  # inside the contributors list
    assert ("Provenance", "Recorded") in dave  # the recorder
    assert ("InferenceRecord", "InferenceRecorded") in dave  # the recorder, through the SAP
    bob = {(e.contract, e.event) for e in query(index, address=BOB.address)}
    assert ("TrainingRecord", "JobSubmitted") in bob  # the submitter
    assert ("Receipts", "Transfer") in dave  # his receipt
    assert ("Licensing", "Offered") not in dave
    for event in query(index, address=BOB.address):
        assert BOB.address in str(event.args), event


def test_filter_by_contract_event_and_blocks(chain: Chain, index: ProtocolIndex) -> None:
    licensing = query(index, contract="licensing")
    assert {e.contract for e in licensing} == {"Licensing"}
    assert [e.event for e in query(index, event="OFFERED")] == ["Offered", "Offered"]
    assert [e.event for e in query(index, contract="Receipts", event="Locked")] == ["Locked"] * 5
    middle = chain.txs[5].block
    ranged = query(index, from_block=middle, to_block=middle)
    assert ranged and {e.block for e in ranged} == {middle}
    assert query(index, from_block=chain.txs[-1].block + 1) == []


def test_order_and_limit(chain: Chain, index: ProtocolIndex) -> None:
    everything = query(index)
    newest, more = index.events(EventQuery(limit=3))
    assert more
    assert newest == list(reversed(everything))[:3]
    oldest, more = index.events(EventQuery(limit=len(everything), oldest_first=True))
    assert oldest == everything and not more


def test_find_events_syncs_and_types_the_result(chain: Chain, tmp_path: Path) -> None:
    found = find_events(chain.proto, tmp_path, EventQuery(event="Licensed"))
    assert isinstance(found, EventsResult)
    assert found.block == chain.proto.node.block_number()
    licensed = [e for e in found.events if e.args["license_type"] == "api"]
    assert [e.args["calls_bought"] for e in licensed] == [2, 5]  # newest first
    assert licensed[0].args["price_wei"] == str(SAH // 50)  # the price of one call
    assert found.model_dump(mode="json")["events"][0]["time"].endswith("Z")


# -- arguments and validation ----------------------------------------------------------


def test_arguments_follow_the_json_conventions() -> None:
    licensed = arguments(
        "Licensing",
        "Licensed",
        {
            "license": 7,
            "offer": 3,
            "holder": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "asset": 2,
            "kind": 1,
            "price": 2**200,
            "expiry": FOREVER,
            "calls": 2**60,
        },
    )
    assert licensed == {
        "license_id": 7,
        "offer_id": 3,
        "holder": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "asset_id": 2,
        "license_type": "api",
        "price_wei": str(2**200),
        "price_sah": str(2**200 // SAH) + "." + f"{2**200 % SAH:018d}".rstrip("0"),
        "expires_at": None,
        "calls_bought": str(2**60),  # too large for a JSON number to keep exactly
    }
    offered = arguments(
        "Licensing",
        "Offered",
        {
            "valid_until": 0,
            "duration": 86_400,
            "partner": "0x" + "00" * 20,
            "terms": "0x" + "7e" * 32,
        },
    )
    assert offered == {
        "offer_expires_at": None,
        "duration_s": 86_400,
        "partner": None,
        "terms": "0x" + "7e" * 32,
    }
    recorded = arguments("Provenance", "Recorded", {"id": 4, "sources": [1, 2]})
    assert recorded == {"record_id": 4, "source_asset_ids": [1, 2]}
    answered = arguments(
        "InferenceRecord", "InferenceRecorded", {"id": 2, "asset": 5, "calls": 1, "fee": 10}
    )
    assert answered == {
        "record_id": 2,
        "asset_id": 5,
        "calls_metered": 1,
        "fee_wei": "10",
        "fee_sah": "0.00000000000000001",
    }
    submitted = arguments(
        "TrainingRecord",
        "JobSubmitted",
        {"job": 3, "kind": 1, "base": 0, "inputs": [1, 2], "weights": [6000, 4000],
         "bond": 10**16, "finalize_after": 86_400},
    )  # fmt: skip
    assert submitted == {
        "job_id": 3,
        "kind": "merge",
        "base_asset_id": None,
        "input_asset_ids": [1, 2],
        "weights_bps": [6000, 4000],
        "bond_wei": str(10**16),
        "bond_sah": "0.01",
        "finalize_at": "1970-01-02T00:00:00Z",
    }
    assert arguments("Licensing", "Licensed", {"expiry": 86_400})["expires_at"] == (
        "1970-01-02T00:00:00Z"
    )
    assert arguments("AssetRegistry", "Registered", {"kind": 1}) == {"kind": "model"}


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"contract": "Registry"}, "no protocol contract named"),
        ({"event": "Minted"}, "no event named 'Minted'"),
        ({"contract": "Receipts", "event": "Licensed"}, "the Receipts contract"),
        ({"from_block": 5, "to_block": 4}, "is empty"),
        ({"from_block": -1}, "0 or more"),
        ({"limit": 0}, "the limit must be"),
        ({"asset_id": 0}, "an asset id is 1 or more"),
    ],
)
def test_bad_queries_are_refused(filters: dict[str, Any], words: str) -> None:
    with pytest.raises(ProtocolInvalidArgument, match=words) as info:
        EventQuery(**filters).checked()
    assert info.value.exit_code == 2


def test_the_catalogue_names_every_contract() -> None:
    names = event_names()
    assert list(names) == [
        "AssetRegistry",
        "Receipts",
        "Licensing",
        "Attribution",
        "Provenance",
        "TrainingRecord",
        "InferenceRecord",
        "DisputeGame",
    ]
    assert names["TrainingRecord"] == [
        "JobSubmitted",
        "JobFinalized",
        "JobCancelled",
        "JobRejected",
    ]
    assert names["DisputeGame"] == [
        "Claimed",
        "Challenged",
        "Bisected",
        "Responded",
        "Resolved",
        "ClaimAccepted",
    ]
    assert names["InferenceRecord"] == ["InferenceRecorded"]
    assert names["Receipts"] == ["Transfer", "Locked", "ShareChanged"]


# -- crash safety ----------------------------------------------------------------------


def test_a_failed_sync_leaves_no_event_half_written(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = iter(range(1000))
    real = index_tables.log_event

    def flaky(*args: Any) -> None:
        if next(calls) == 10:
            raise OSError("disk gone")
        real(*args)

    monkeypatch.setattr(index_tables, "log_event", flaky)
    path = tmp_path / "index.sqlite"
    with ProtocolIndex(chain.proto, path) as index, pytest.raises(OSError):
        index.sync()
    monkeypatch.undo()
    with ProtocolIndex(chain.proto, path) as index:
        assert index.db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
        assert index._mark().block is None
        assert len(query(index)) == sum(len(tx.events) for tx in chain.txs)


def test_an_unreadable_event_log_is_a_sahara_error(chain: Chain, tmp_path: Path) -> None:
    with ProtocolIndex(chain.proto, tmp_path / "index.sqlite") as index:
        index.sync()
        index.db.execute("DROP TABLE event_assets")
        with pytest.raises(ProtocolIndexError):
            index.events(EventQuery(asset_id=1))


def test_the_log_grows_with_the_chain_and_follows_a_replaced_one(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with dev_node(tmp_path / "one") as (_, server):
        proto = Protocol(NodeClient(server.url))
        asset, _ = proto.register(
            ALICE, kind="model", cid="bafy-1", commitment=b"\1" * 32, name="1"
        )
        with ProtocolIndex(proto, path) as index:
            assert [e.event for e in query(index)][-1] == "Registered"
            _, tx = proto.offer(ALICE, asset, "full", price=SAH)
            assert index.sync() == 1  # only the new block is read
            newest, _ = index.events(EventQuery(limit=1))
            assert (newest[0].event, newest[0].tx_hash) == ("Offered", tx.hash)
    with dev_node(tmp_path / "two") as (_, server):
        proto = Protocol(NodeClient(server.url))
        proto.register(BOB, kind="dataset", cid="bafy-2", commitment=b"\2" * 32, name="2")
        with ProtocolIndex(proto, path) as index:
            kept = query(index)
            assert "Offered" not in {e.event for e in kept}  # the old chain's events are gone
            assert {e.args.get("owner") for e in kept if e.event == "Registered"} == {BOB.address}
