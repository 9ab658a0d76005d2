"""The Sahara chain under the real CometBFT v0.38.25: one validator, the application
(``python -m sahara_cli.node.abci --dev``) as a child process. Signed EIP-1559
transfers go in through CometBFT's RPC, balances come out through ``abci_query``,
CometBFT height H is EVM block H, and after both processes restart the chain resumes
at the same height and app hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.identity.transactions import sign_eip1559
from sahara_cli.node.abci.app import CODE_NONCE_TOO_LOW
from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, dev_keys
from sahara_cli.node.state import StateMachine
from sahara_cli.node.store import BlockStore
from tests.cometbft import AppProcess, CometNode, cometbft_bin, running_app, running_node

pytestmark = pytest.mark.e2e

SENDER_KEY = dev_keys(2)[1]
RECIPIENT = bytes.fromhex("5a" * 20)
SAH = 10**18


def transfer(nonce: int, value: int = SAH) -> bytes:
    return sign_eip1559(
        SENDER_KEY,
        chain_id=DEFAULT_CHAIN_ID,
        nonce=nonce,
        to="0x" + RECIPIENT.hex(),
        value=value,
        data=b"",
        gas=21_000,
        max_fee_per_gas=3 * 10**9,
        max_priority_fee_per_gas=1,
    ).raw


def send(node: CometNode, raw: bytes) -> int:
    """``broadcast_tx_commit``; checks both results and returns the block height."""
    result = node.broadcast(raw)
    assert result["check_tx"]["code"] == 0, result
    assert result["tx_result"]["code"] == 0, result
    assert int(result["tx_result"]["gas_used"]) == 21_000, result
    return int(result["height"])


def recipient_balance(node: CometNode) -> int:
    answer = node.abci_query("/eth/balance", RECIPIENT)
    assert answer["code"] == 0, answer
    return int(answer["value"])


def evm_block(node: CometNode, height: int) -> dict[str, Any]:
    answer = node.abci_query("/eth/block", height=height)
    assert answer["code"] == 0, answer
    block: dict[str, Any] = json.loads(answer["value"])
    return block


def header_app_hash(node: CometNode, height: int) -> str:
    header = node.rpc_raw("block", height=str(height))["block"]["header"]
    app_hash: str = header["app_hash"]
    return app_hash


def test_sahara_chain_runs_under_cometbft_and_resumes(tmp_path: Path) -> None:
    cometbft_bin()
    node = CometNode(tmp_path / "cometbft")
    node.init()
    app = AppProcess(tmp_path / "app", "--dev")

    with running_app(app):
        node.configure(app.address)
        with running_node(node):
            first, second = send(node, transfer(0)), send(node, transfer(1))
            assert second > first >= 1
            assert recipient_balance(node) == 2 * SAH
            sender = Signer(SENDER_KEY).address.encode()  # 0x-hex data works too
            assert node.abci_query("/eth/nonce", sender)["value"] == b"2"

            # A used nonce (other bytes: CometBFT's cache already refuses the same ones).
            replay = node.broadcast(transfer(0, value=2), mode="sync")
            assert replay["code"] == CODE_NONCE_TOO_LOW, replay
            assert replay["log"].startswith("nonce too low"), replay

            # CometBFT height H is EVM block H: the header of H+1 holds H's state root.
            top = node.wait_height(second + 2)
            for height in range(1, top):
                block = evm_block(node, height)
                assert block["number"] == height
                assert header_app_hash(node, height + 1) == block["stateRoot"][2:].upper()
            assert evm_block(node, first)["gasUsed"] == 21_000
        assert app.stop() == 0, app.log_tail()

    store = BlockStore(app.home / "chain", readonly=True)
    try:
        machine = StateMachine(store)
        stopped = machine.info()
        stopped_block = machine.view().header_by_number(stopped.height)
        assert stopped_block is not None
        assert stopped.height >= top
    finally:
        store.close()

    with running_app(app):
        node.configure(app.address)
        with running_node(node):
            info = node.rpc("abci_info")["response"]
            assert int(info["last_block_height"]) >= stopped.height
            node.wait_height(stopped.height + 2)
            # The blocks the app had are the same ones, and the chain went on from them.
            resumed = evm_block(node, stopped.height)
            assert resumed["hash"] == "0x" + stopped_block.hash.hex()
            assert resumed["stateRoot"] == "0x" + stopped.app_hash.hex()
            assert header_app_hash(node, stopped.height + 1) == stopped.app_hash.hex().upper()
            assert recipient_balance(node) == 2 * SAH
            assert send(node, transfer(2)) > stopped.height
            assert recipient_balance(node) == 3 * SAH
        assert app.stop() == 0, app.log_tail()
    # Block 0 was written once: the restarted app was not asked for InitChain.
    assert app.log_path.read_text().count("wrote block 0") == 1
