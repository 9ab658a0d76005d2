"""The node client, in-process and over HTTP, against a real dev node."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from sahara_cli.errors import NodeRPCError, NodeUnreachable
from sahara_cli.node.client import NodeClient, parse_sah
from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.rpc.local import LocalTransport
from sahara_cli.node.rpc.testing import dev_node
from sahara_cli.units import format_sah


def test_in_process_and_http_clients_agree(tmp_path: Path) -> None:
    with dev_node(tmp_path) as (node, server):
        local = NodeClient(LocalTransport(node))
        remote = NodeClient(server.url)
        key = dev_keys()[3]
        sender = Account.from_key(key).address
        assert local.chain_id() == remote.chain_id() == 31313
        raw = Account.sign_transaction(
            {
                "type": 2,
                "chainId": 31313,
                "nonce": local.nonce(sender),
                "to": sender,
                "value": 7,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 1,
            },
            key,
        ).raw_transaction
        tx_hash = local.send_raw(bytes(raw))
        receipt = remote.wait_for_receipt(tx_hash, timeout=30)
        assert receipt == local.receipt(tx_hash)
        assert receipt["status"] == "0x1"
        assert local.block_number() == remote.block_number() >= 1
        with pytest.raises(NodeRPCError) as info:
            local.send_raw(bytes(raw))  # the same transaction again
        assert info.value.rpc_code == -32000
        with pytest.raises(NodeRPCError) as unknown:
            remote.call("eth_noSuchMethod")
        assert unknown.value.rpc_code == -32601
        local.close()
        remote.close()


def test_unreachable_node_is_a_clear_error() -> None:
    with pytest.raises(NodeUnreachable, match="no node answers"):
        NodeClient("http://127.0.0.1:9", timeout=1).chain_id()


@pytest.mark.parametrize(
    ("text", "wei"), [("1.5", 15 * 10**17), ("0", 0), ("0.000000000000000001", 1)]
)
def test_sah_amounts_are_exact(text: str, wei: int) -> None:
    assert parse_sah(text) == wei
    assert parse_sah(format_sah(wei)) == wei


@pytest.mark.parametrize("text", ["-1", "abc", "0.0000000000000000001", "nan"])
def test_bad_amounts(text: str) -> None:
    from sahara_cli.errors import UsageError

    with pytest.raises(UsageError):
        parse_sah(text)
