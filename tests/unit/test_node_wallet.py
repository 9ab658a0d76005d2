"""sahara_cli.node.wallet against a dev chain: balances, transfers and transactions."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sahara_cli.errors import NotFoundError, TxReverted, UsageError
from sahara_cli.identity.keys import Signer
from sahara_cli.node import wallet
from sahara_cli.node.client import NodeClient

SAH = 10**18
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("wallet")) as (_, server):
        yield NodeClient(server.url)


@pytest.fixture
def alice(client: NodeClient) -> Iterator[Signer]:
    snapshot = client.call("sahara_dev_snapshot")
    signer = Signer(os.urandom(32))
    client.call("sahara_dev_setBalance", signer.address, hex(10 * SAH))
    try:
        yield signer
    finally:
        client.call("sahara_dev_revert", snapshot)


def test_send_waits_and_reports_one_transaction(client: NodeClient, alice: Signer) -> None:
    bob_before = wallet.balance(client, BOB).balance_wei
    sent = wallet.send(client, alice, BOB.lower(), 3 * SAH // 2)
    assert sent.to == BOB and sent.sender == alice.address  # checksummed
    assert (sent.value_wei, sent.value_sah, sent.nonce, sent.gas) == (3 * SAH // 2, "1.5", 0, 21000)
    assert sent.chain_id == client.chain_id()
    assert sent.tx is not None and sent.tx.status == "success" and sent.tx.hash == sent.hash
    doc = sent.model_dump(mode="json")
    assert doc["from"] == alice.address and "sender" not in doc
    assert doc["tx"]["fee_wei"] == str(sent.tx.fee_wei) and sent.tx.fee_wei > 0
    wallet.require_success(sent)
    held = wallet.balance(client, alice.address)
    assert held.balance_wei == 10 * SAH - 3 * SAH // 2 - sent.tx.fee_wei
    assert wallet.balance(client, BOB).balance_wei == bob_before + 3 * SAH // 2
    before = wallet.balance(client, BOB, str(sent.tx.block - 1))
    assert before.balance_wei == bob_before and before.block == str(sent.tx.block - 1)


def test_show_transaction(client: NodeClient, alice: Signer) -> None:
    sent = wallet.send(client, alice, BOB, SAH, data=b"\x01\x02")
    shown = wallet.show_transaction(client, sent.hash.upper().replace("0X", "0x"))
    assert (shown.hash, shown.sender, shown.to) == (sent.hash, alice.address, BOB)
    assert (shown.value_sah, shown.input, shown.status) == ("1", "0x0102", "success")
    assert sent.tx is not None
    assert (shown.block, shown.gas_used, shown.fee_wei) == (
        sent.tx.block,
        sent.tx.gas_used,
        sent.tx.fee_wei,
    )
    assert shown.logs == 0 and shown.contract_address is None
    with pytest.raises(NotFoundError) as missing:
        wallet.show_transaction(client, "0x" + "ab" * 32)
    assert missing.value.code == "node.tx_not_found"
    for bad in ("0x12", "ab" * 32, "0x" + "zz" * 32):
        with pytest.raises(UsageError):
            wallet.show_transaction(client, bad)


def test_a_reverted_transfer_is_reported_then_raised(client: NodeClient, alice: Signer) -> None:
    # A call into the Licensing contract with junk data reverts; the gas is given so that
    # estimation (which would refuse it) is skipped and the transaction is mined.
    sent = wallet.send(
        client,
        alice,
        "0x5a4A000000000000000000000000000000000003",
        data=b"\xde\xad\xbe\xef",
        gas=100_000,
    )
    assert sent.tx is not None and sent.tx.status == "reverted"
    with pytest.raises(TxReverted, match=f"reverted in block {sent.tx.block}") as raised:
        wallet.require_success(sent)
    assert raised.value.code == "node.tx_reverted"
    assert wallet.show_transaction(client, sent.hash).status == "reverted"


def test_no_wait_returns_the_hash_only(client: NodeClient, alice: Signer) -> None:
    sent = wallet.send(client, alice, BOB, 1, wait=False)
    assert sent.tx is None and sent.hash.startswith("0x")
    client.wait_for_receipt(sent.hash)


def test_block_tags() -> None:
    assert wallet.block_tag("latest") == "latest" and wallet.block_tag("12") == "0xc"
    assert wallet.block_tag("0x10") == "0x10"
    with pytest.raises(UsageError, match="not a block number"):
        wallet.block_tag("yesterday")
    with pytest.raises(UsageError, match="negative"):
        wallet.block_tag("-1")


def test_an_unaffordable_transfer_is_insufficient_funds(client: NodeClient, alice: Signer) -> None:
    """Before anything is signed: the value alone, then the value with its fees."""
    from sahara_cli.errors import InsufficientFunds

    for value in (11 * SAH, 10 * SAH):  # more than held; all of it, leaving nothing for gas
        with pytest.raises(InsufficientFunds) as raised:
            wallet.send(client, alice, BOB, value)
        error = raised.value
        assert error.code == "node.insufficient_funds" and error.exit_code == 7
        assert f"{alice.address} holds 10 SAH" in error.message
        assert error.details["balance_wei"] == str(10 * SAH)
    assert client.nonce(alice.address) == 0  # nothing was sent
    poor = Signer(os.urandom(32))
    with pytest.raises(InsufficientFunds, match="holds 0 SAH"):
        wallet.send(client, poor, BOB, 0)


def test_fund_pays_from_a_dev_account(client: NodeClient, alice: Signer) -> None:
    from sahara_cli.node.genesis import dev_accounts

    before = client.balance(BOB)
    funded = wallet.fund(client, BOB.lower(), 5 * SAH)
    assert funded.to == BOB and funded.amount_sah == "5"
    assert funded.tx.status == "success" and funded.tx.fee_wei > 0
    assert funded.balance_wei == client.balance(BOB) == before + 5 * SAH
    assert funded.funder in {a.address for a in dev_accounts().accounts}
    with pytest.raises(UsageError):
        wallet.fund(client, BOB, 0)


def test_fund_is_refused_on_a_chain_that_is_not_a_dev_chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The dev accounts hold SAH here too: only the chain's kind stops the payment."""
    from sahara_cli.errors import NotDevChain
    from sahara_cli.node.genesis import Genesis, dev_accounts
    from sahara_cli.node.producer import Node, NodeConfig
    from sahara_cli.node.rpc.server import serve_in_thread

    validator = Signer(os.urandom(32))
    genesis = Genesis(validator=validator.address, dev=False)
    for account in dev_accounts().accounts:
        genesis.fund(account.address, 100 * SAH)
    data_dir = tmp_path_factory.mktemp("not-dev")
    node = Node(NodeConfig(data_dir=data_dir, dev=False), validator=validator, genesis=genesis)
    node.start()
    try:
        handle = serve_in_thread(node, "127.0.0.1", 0)
        try:
            other = NodeClient(handle.url)
            stranger = Signer(os.urandom(32)).address
            with pytest.raises(NotDevChain) as raised:
                wallet.fund(other, stranger, SAH)
            assert raised.value.code == "node.not_dev_chain" and raised.value.exit_code == 7
            assert "tx send" in str(raised.value.hint)
            assert other.balance(stranger) == 0 and other.block_number() == 0
        finally:
            handle.stop()
    finally:
        node.stop()
