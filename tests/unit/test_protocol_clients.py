"""The transaction sender and the per-contract clients, each used on its own.

Against one real in-process dev node: a client made from a node alone reads and writes
its contract, the sender checks funds and translates reverts before anything is spent,
and the facade's clients share one sender so that every receipt decodes whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_abi.abi import encode

from sahara_cli.errors import (
    AssetNotFound,
    LicenseNotFound,
    NodeRPCError,
    NotPermitted,
    OfferClosed,
    ProtocolInsufficientFunds,
    ProtocolInvalidArgument,
    ProtocolNotDeployed,
    ProtocolReverted,
    ReceiptNotFound,
)
from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.protocol.client import Protocol
from sahara_cli.protocol.clients import (
    CLIENTS,
    AssetRegistryClient,
    AttributionClient,
    LicensingClient,
    ReceiptsClient,
)
from sahara_cli.protocol.sender import (
    ERROR_SELECTOR,
    PANIC_SELECTOR,
    Sender,
    error_for_reason,
    revert_reason,
    translate_rpc_error,
)
from sahara_cli.protocol.values import Contribution

SAH = 10**18
ALICE, BOB = Signer(dev_keys()[0]), Signer(dev_keys()[1])
PAUPER = Signer(b"\x42" * 32)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    with dev_node(tmp_path_factory.mktemp("clients-node")) as (_, server):
        yield NodeClient(server.url)


# -- reverts ---------------------------------------------------------------------------


def error_data(reason: str) -> str:
    return "0x" + (ERROR_SELECTOR + encode(["string"], [reason])).hex()


def test_revert_reasons_are_read_from_error_data() -> None:
    assert revert_reason(error_data("unknown asset")) == "unknown asset"
    assert revert_reason("0x" + (PANIC_SELECTOR + encode(["uint256"], [0x11])).hex()) == (
        "panic 0x11"
    )
    for junk in (None, "", "0x", "0xzz", "0x08c379a0ff", 7):
        assert revert_reason(junk) is None


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("unknown asset", AssetNotFound),
        ("unknown license", LicenseNotFound),
        ("unknown receipt", ReceiptNotFound),
        ("offer is paused", OfferClosed),
        ("only the asset owner can do this", NotPermitted),
        ("nothing to claim", ProtocolReverted),
        ("panic 0x11", ProtocolReverted),
        ("weights must add up to 10000", ProtocolInvalidArgument),
    ],
)
def test_each_reason_becomes_its_error(reason: str, error: type[Exception]) -> None:
    found = error_for_reason(reason, "Licensing.buy")
    assert type(found) is error
    assert found.details == {"call": "Licensing.buy", "reason": reason}


def test_node_errors_are_translated() -> None:
    reverted = NodeRPCError("execution reverted", rpc_code=3, data=error_data("unknown offer"))
    assert translate_rpc_error(reverted, "x").code == "license.offer_not_found"
    silent = NodeRPCError("execution reverted", rpc_code=3)
    assert isinstance(translate_rpc_error(silent, "x"), ProtocolReverted)
    poor = NodeRPCError("insufficient funds for gas * price + value", rpc_code=-32000)
    assert isinstance(translate_rpc_error(poor, "x"), ProtocolInsufficientFunds)
    other = NodeRPCError("something else", rpc_code=-32000)
    assert translate_rpc_error(other, "x") is other


# -- the sender ------------------------------------------------------------------------


def test_the_sender_signs_sends_and_decodes(node: NodeClient) -> None:
    registry = AssetRegistryClient(node)
    sender = Sender(node, [registry, ReceiptsClient(node), AttributionClient(node)])
    data = registry.encode("register", 0, "bafy-sent", b"\x01" * 32, "sent", "", [], [], 0)
    before = node.balance(ALICE.address)
    tx = sender.send(ALICE, registry.address, data, action="AssetRegistry.register")
    assert [e.name for e in tx.events] == ["Transfer", "Locked", "ContributorsSet", "Registered"]
    receipt = node.receipt(tx.hash)
    assert receipt is not None and int(receipt["status"], 16) == 1
    assert tx.fee == tx.gas_used * int(receipt["effectiveGasPrice"], 16)
    assert before - node.balance(ALICE.address) == tx.fee
    assert tx.event("Registered").args["name"] == "sent"


def test_a_revert_is_an_error_before_anything_is_spent(node: NodeClient) -> None:
    registry = AssetRegistryClient(node)
    nonce = node.nonce(ALICE.address)
    with pytest.raises(AssetNotFound) as info:
        registry.set_metadata(ALICE, 999, "ipfs://nothing")
    assert info.value.details["call"] == "AssetRegistry.setMetadata"
    assert node.nonce(ALICE.address) == nonce


def test_funds_are_checked_before_signing(node: NodeClient) -> None:
    attribution, registry = AttributionClient(node), AssetRegistryClient(node)
    with pytest.raises(ProtocolInsufficientFunds, match="has 0 SAH"):
        attribution.pay(PAUPER, 1, SAH)
    with pytest.raises(ProtocolInsufficientFunds, match="most gas can cost"):
        registry.register(PAUPER, kind="model", cid="bafy-poor", commitment=b"\1" * 32, name="p")


# -- the clients on their own ----------------------------------------------------------


def test_each_client_works_from_a_node_alone(node: NodeClient) -> None:
    registry, licensing = AssetRegistryClient(node), LicensingClient(node)
    attribution, receipts = AttributionClient(node), ReceiptsClient(node)
    asset, _ = registry.register(
        ALICE,
        kind="model",
        cid="bafy-alone",
        commitment=b"\x02" * 32,
        name="alone",
        contributors=[Contribution(ALICE.address, 6000), Contribution(BOB.address, 4000)],
    )
    assert registry.asset(asset).name == "alone"
    assert registry.asset_by_cid("bafy-alone") == asset
    assert attribution.contributors_of(asset) == [
        Contribution(ALICE.address, 6000),
        Contribution(BOB.address, 4000),
    ]
    offer, _ = licensing.offer(ALICE, asset, "api", price=SAH // 100)
    license_id, tx = licensing.buy(BOB, offer, calls=3)
    # a client alone decodes only its own contract's events
    assert {e.name for e in tx.events} == {"Licensed"}
    assert licensing.api_licenses(BOB.address, asset) == [licensing.get_license(license_id)]
    licensing.meter(ALICE, license_id, 2)  # the owner meters; revenue is credited
    assert attribution.claimable(BOB.address) == 2 * SAH // 100 * 4000 // 10_000
    roles = {(r.holder, r.role) for r in receipts.receipts_of(BOB.address)}
    assert (BOB.address, "contributor") in roles
    assert {type(c) for c in Protocol(node).contracts} == set(CLIENTS.values())


def test_the_facade_shares_one_sender(node: NodeClient) -> None:
    proto = Protocol(node)
    assert {id(c.sender) for c in proto.contracts} == {id(proto.sender)}
    asset, _ = proto.register(ALICE, kind="dataset", cid="bafy-f", commitment=b"\3" * 32, name="f")
    offer, _ = proto.offer(ALICE, asset, "full", price=SAH)
    _, tx = proto.buy(BOB, offer)
    assert [e.name for e in tx.events] == ["Licensed", "Paid", "Credited"]


def test_a_contract_missing_from_the_chain_is_reported(node: NodeClient) -> None:
    nowhere = AssetRegistryClient(node, address="0x" + "77" * 20)
    with pytest.raises(ProtocolNotDeployed, match="no AssetRegistry contract at"):
        nowhere.asset_count()
    assert AssetRegistryClient(node).asset_count() >= 1
