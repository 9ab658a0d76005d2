"""Blocks built in a child process: same chain, and a dead builder is replaced."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from eth_account import Account

from sahara_cli.errors import BlockBuilderFailed
from sahara_cli.identity.keys import Signer
from sahara_cli.node.genesis import dev_genesis, dev_keys
from sahara_cli.node.producer import Node, NodeConfig

KEYS = dev_keys()


def transfer(i: int, nonce: int) -> bytes:
    tx = {
        "type": 2,
        "chainId": 31313,
        "nonce": nonce,
        "to": Account.from_key(KEYS[i + 1]).address,
        "value": 5,
        "gas": 21_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
    }
    return bytes(Account.sign_transaction(tx, KEYS[i]).raw_transaction)


def wait_for(node: Node, tx_hash: bytes, timeout: float = 30) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while (where := node.view().tx_location(tx_hash)) is None:
        assert time.monotonic() < deadline, "not mined in time"
        time.sleep(0.02)
    return where


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    validator = Signer(KEYS[0])
    node = Node(
        NodeConfig(data_dir=tmp_path, dev=True, builder="process"),
        validator=validator,
        genesis=dev_genesis(validator=validator.address),
    )
    node.start()
    yield node
    node.stop()


def test_process_builder_mines_and_the_parent_reads_the_blocks(node: Node) -> None:
    hashes = [node.submit(transfer(1, n)) for n in range(5)]
    locations = [wait_for(node, h) for h in hashes]
    assert all(number >= 1 for number, _ in locations)
    view = node.view()
    receiver = bytes.fromhex(Account.from_key(KEYS[2]).address[2:])
    assert view.state_at(view.head()).get_balance(receiver) == 10_000 * 10**18 + 25
    assert node.pending_nonce(bytes.fromhex(Account.from_key(KEYS[1]).address[2:])) == 5


def test_dev_methods_go_through_the_builder(node: Node) -> None:
    snap = node.snapshot()
    address = bytes.fromhex(Account.from_key(KEYS[3]).address[2:])
    node.set_balance(address, 123)
    view = node.view()
    assert view.state_at(view.head()).get_balance(address) == 123
    assert node.revert(snap) is True
    view = node.view()
    assert view.state_at(view.head()).get_balance(address) == 10_000 * 10**18


def test_a_killed_builder_is_replaced(node: Node) -> None:
    first = node.submit(transfer(4, 0))
    wait_for(node, first)
    builder = node.builder
    os.kill(builder._process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    builder._process.join(timeout=10)  # type: ignore[union-attr]
    with pytest.raises(BlockBuilderFailed):
        node.build_block()  # the block in flight is dropped, a new builder starts
    second = node.submit(transfer(4, 1))
    assert wait_for(node, second)[0] > wait_for(node, first)[0]


def test_a_queued_transaction_does_not_make_automine_spin(tmp_path: Path) -> None:
    validator = Signer(KEYS[0])
    node = Node(
        NodeConfig(data_dir=tmp_path, dev=True),
        validator,
        genesis=dev_genesis(validator=validator.address),
    )
    node.start()
    try:
        queued = node.submit(transfer(5, 3))  # nonces 0-2 are missing: the tx is queued
        assert node.mempool.status() == {"pending": 0, "queued": 1}
        time.sleep(0.3)  # asserting that nothing happens needs some time to pass
        assert node.state.head().block_number == 0
        for nonce in range(3):
            node.submit(transfer(5, nonce))
        assert wait_for(node, queued)[0] >= 1  # the gap closed: all four are mined
    finally:
        node.stop()
