"""Every JSON-RPC method of the node, through web3.py against a real dev node and server.

One node per module (per xdist worker); each test runs between a dev snapshot and a
revert, so the tests see the same chain whatever their order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak
from hexbytes import HexBytes
from trie import HexaryTrie
from web3 import AsyncWeb3, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from sahara_cli.node.genesis import dev_keys
from sahara_cli.node.producer import Node
from sahara_cli.node.rpc.testing import dev_node

pytestmark = pytest.mark.e2e

COUNTER = json.loads((Path(__file__).parent / "contracts" / "Counter.json").read_text())
KEYS = dev_keys()
DEV = [Account.from_key(k) for k in KEYS]
MAX_LOG_RANGE = 50


@dataclass
class Chain:
    node: Node
    url: str
    ws_url: str
    w3: Web3

    def raw(self, method: str, *params: Any) -> dict[str, Any]:
        reply = httpx.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
        doc: dict[str, Any] = reply.json()
        return doc


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with dev_node(tmp_path_factory.mktemp("rpc-e2e"), max_log_range=MAX_LOG_RANGE) as (
        node,
        handle,
    ):
        w3 = Web3(Web3.HTTPProvider(handle.url, request_kwargs={"timeout": 30}))
        yield Chain(node, handle.url, handle.ws_url, w3)
        # Calls, estimates and traces ran on the server's shared view: none may have left
        # a write behind in it.
        assert handle.server.shared.view().db.pending == {}


@pytest.fixture(autouse=True)
def _fresh_chain(chain: Chain) -> Iterator[None]:
    snapshot = chain.w3.provider.make_request("sahara_dev_snapshot", [])["result"]
    yield
    assert chain.w3.provider.make_request("sahara_dev_revert", [snapshot])["result"] is True


def wait(w3: Web3, tx_hash: Any) -> Any:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.02)


@pytest.fixture
def counter(chain: Chain) -> Contract:
    w3 = chain.w3
    factory = w3.eth.contract(abi=COUNTER["abi"], bytecode=COUNTER["bytecode"])
    receipt = wait(w3, factory.constructor().transact({"from": DEV[9].address}))
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=COUNTER["abi"])


def increment(w3: Web3, counter: Contract, sender: int) -> Any:
    return wait(w3, counter.functions.increment().transact({"from": DEV[sender].address}))


# -- identity of the node ----------------------------------------------------------------


def test_chain_identity_and_status(chain: Chain) -> None:
    w3 = chain.w3
    assert w3.eth.chain_id == 31313
    assert w3.net.version == "31313"
    assert w3.net.listening is True
    assert w3.net.peer_count == 0
    assert w3.eth.syncing is False
    assert w3.client_version.startswith("sahara/")
    assert w3.eth.accounts == [a.address for a in DEV]
    assert w3.keccak(hexstr="0x68656c6c6f") == keccak(b"hello")
    info = chain.raw("sahara_nodeInfo")["result"]
    assert info["chainId"] == "0x7a51" and info["dev"] is True
    assert int(info["head"]["number"], 16) == w3.eth.block_number


def test_fees_follow_the_base_fee(chain: Chain) -> None:
    w3 = chain.w3
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tip = w3.eth.max_priority_fee
    assert tip == 10**9
    assert w3.eth.gas_price >= tip + base * 7 // 8
    history = w3.eth.fee_history(1, "latest", [25, 75])
    assert history["oldestBlock"] == w3.eth.block_number
    assert len(history["baseFeePerGas"]) == 2 and history["baseFeePerGas"][0] == base
    assert len(history["reward"]) == 1 and len(history["reward"][0]) == 2


# -- transactions, receipts, blocks ------------------------------------------------------


def test_send_raw_transaction_and_read_it_back(chain: Chain) -> None:
    w3, sender = chain.w3, DEV[1]
    to = "0x" + "12" * 20
    before = w3.eth.get_balance(sender.address)
    nonce = w3.eth.get_transaction_count(sender.address)
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    signed = sender.sign_transaction(
        {"chainId": 31313, "nonce": nonce, "to": to, "value": 1234, "gas": 21_000,
         "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9, "type": 2}
    )  # fmt: skip
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert tx_hash == signed.hash
    receipt = wait(w3, tx_hash)
    assert (
        receipt["status"] == 1
        and receipt["gasUsed"] == 21_000
        and receipt["to"] == Web3.to_checksum_address(to)
    )
    assert receipt["from"] == sender.address and receipt["contractAddress"] is None
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["blockNumber"] == receipt["blockNumber"] and tx["value"] == 1234 and tx["type"] == 2
    assert tx["chainId"] == 31313 and tx["gasPrice"] == receipt["effectiveGasPrice"]
    assert (
        w3.eth.get_balance(sender.address) == before - 1234 - 21_000 * receipt["effectiveGasPrice"]
    )
    assert w3.eth.get_balance(to) == 1234
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce + 1
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["hash"] == receipt["blockHash"] and block["transactions"][0]["hash"] == tx_hash
    assert block["withdrawals"] == [] and block["totalDifficulty"] == 0 and block["size"] > 0
    assert w3.eth.get_block(receipt["blockHash"])["transactions"] == [tx_hash]
    assert w3.eth.get_block_transaction_count(receipt["blockNumber"]) == 1
    assert w3.eth.get_block_transaction_count(receipt["blockHash"]) == 1
    assert w3.eth.get_transaction_by_block(receipt["blockNumber"], 0)["hash"] == tx_hash
    assert w3.eth.get_transaction_by_block(receipt["blockHash"], 0)["hash"] == tx_hash
    assert (
        chain.raw("eth_getTransactionByBlockNumberAndIndex", hex(receipt["blockNumber"]), "0x5")[
            "result"
        ]
        is None
    )
    assert chain.raw("eth_getBlockByNumber", "0xffff", False)["result"] is None
    assert w3.eth.get_block("earliest")["number"] == 0


def test_send_transaction_fills_in_nonce_gas_and_fees(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    receipt = increment(w3, counter, 2)
    assert receipt["status"] == 1 and counter.functions.count().call() == 1
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["gas"] >= receipt["gasUsed"] and tx["type"] == 2
    legacy = wait(
        w3,
        w3.eth.send_transaction(
            {"from": DEV[2].address, "to": DEV[3].address, "value": 1, "gasPrice": 3 * 10**9}
        ),
    )
    assert w3.eth.get_transaction(legacy["transactionHash"])["type"] == 0
    with pytest.raises(Web3RPCError, match="unknown account"):
        w3.eth.send_transaction({"from": "0x" + "77" * 20, "to": DEV[3].address, "gas": 21_000})


def test_mempool_errors_carry_geths_text(chain: Chain) -> None:
    w3, sender = chain.w3, DEV[4]
    nonce = w3.eth.get_transaction_count(sender.address)
    tx = {
        "chainId": 31313,
        "nonce": nonce,
        "to": DEV[0].address,
        "value": 1,
        "gas": 21_000,
        "gasPrice": 5 * 10**9,
    }
    wait(w3, w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    with pytest.raises(Web3RPCError, match="nonce too low"):
        w3.eth.send_raw_transaction(sender.sign_transaction({**tx, "value": 2}).raw_transaction)


def test_txpool_shows_queued_transactions(chain: Chain) -> None:
    w3, sender = chain.w3, DEV[8]
    nonce = w3.eth.get_transaction_count(sender.address) + 3  # a gap: it waits in the queue
    fields = {"chainId": 31313, "to": DEV[0].address, "value": 1, "gas": 21_000}
    legacy = sender.sign_transaction({**fields, "nonce": nonce, "gasPrice": 5 * 10**9})
    dynamic = sender.sign_transaction(
        {**fields, "nonce": nonce + 1, "maxFeePerGas": 7 * 10**9, "maxPriorityFeePerGas": 10**9}
    )
    for signed in (legacy, dynamic):
        w3.eth.send_raw_transaction(signed.raw_transaction)
    assert chain.raw("txpool_status")["result"] == {"pending": "0x0", "queued": "0x2"}
    queued = chain.raw("txpool_content")["result"]["queued"][sender.address]
    assert queued[str(nonce)]["hash"] == legacy.hash.to_0x_hex()
    assert queued[str(nonce + 1)]["hash"] == dynamic.hash.to_0x_hex()
    pending = w3.eth.get_transaction(dynamic.hash)
    assert pending["blockHash"] is None and pending["transactionIndex"] is None
    assert pending["nonce"] == nonce + 1 and pending["gasPrice"] == 7 * 10**9  # the max fee
    assert w3.eth.get_transaction(legacy.hash)["gasPrice"] == 5 * 10**9
    for signed in (legacy, dynamic):
        chain.node.mempool.remove(bytes(signed.hash))


# -- calls, state overrides, gas estimates ----------------------------------------------------


def test_eth_call_and_reverts(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    assert counter.functions.double(21).call() == 42
    with pytest.raises(ContractLogicError, match="execution reverted: counter: nope") as info:
        counter.functions.fail().call()
    assert info.value.data.startswith("0x08c379a0")
    reply = chain.raw(
        "eth_call", {"to": counter.address, "data": counter.encode_abi("fail")}, "latest"
    )
    assert (
        reply["error"]["code"] == 3
        and reply["error"]["message"] == "execution reverted: counter: nope"
    )
    with pytest.raises(ContractLogicError, match="counter: nope"):
        counter.functions.fail().estimate_gas({"from": DEV[0].address})
    number = w3.eth.block_number
    increment(w3, counter, 0)
    assert counter.functions.count().call(block_identifier=number) == 0
    assert (
        counter.functions.count().call(block_identifier=w3.eth.get_block(number + 1)["hash"]) == 1
    )
    by_object = chain.raw(
        "eth_call",
        {"to": counter.address, "data": counter.encode_abi("count")},
        {"blockNumber": hex(number)},
    )
    assert int(by_object["result"], 16) == 0


def test_eth_call_with_state_overrides(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    data = counter.encode_abi("count")
    overrides = {counter.address: {"stateDiff": {"0x" + "00" * 32: "0x" + "00" * 31 + "07"}}}
    result = w3.eth.call({"to": counter.address, "data": data}, "latest", overrides)
    assert int.from_bytes(result, "big") == 7
    assert counter.functions.count().call() == 0  # nothing stuck
    poor = "0x" + "99" * 20
    transfer = {"from": poor, "to": DEV[0].address, "value": 10**18}
    with pytest.raises(Web3RPCError, match="insufficient funds"):
        w3.eth.call(transfer)
    assert w3.eth.call(transfer, "latest", {poor: {"balance": hex(2 * 10**18)}}) == b""
    code = w3.eth.get_code(counter.address)
    elsewhere = "0x" + "42" * 20
    moved = w3.eth.call(
        {"to": elsewhere, "data": counter.encode_abi("double", [5])},
        "latest",
        {elsewhere: {"code": code.to_0x_hex()}},
    )
    assert int.from_bytes(moved, "big") == 10


def test_estimate_gas_is_enough_and_close(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    assert w3.eth.estimate_gas({"from": DEV[0].address, "to": DEV[1].address, "value": 1}) == 21_000
    estimate = counter.functions.increment().estimate_gas({"from": DEV[0].address})
    receipt = wait(
        w3, counter.functions.increment().transact({"from": DEV[0].address, "gas": estimate})
    )
    assert receipt["status"] == 1
    assert receipt["gasUsed"] <= estimate <= receipt["gasUsed"] * 1.1 + 2_300


# -- state reads and proofs ----------------------------------------------------------------


def test_code_storage_and_proofs_verify_against_the_state_root(
    chain: Chain, counter: Contract
) -> None:
    w3 = chain.w3
    increment(w3, counter, 0)
    increment(w3, counter, 0)
    assert w3.eth.get_storage_at(counter.address, 0) == (2).to_bytes(32, "big")
    assert len(w3.eth.get_code(counter.address)) > 10
    block = w3.eth.get_block("latest")
    proof = w3.eth.get_proof(counter.address, [0, 1], "latest")
    account = HexaryTrie.get_from_proof(
        block["stateRoot"],
        keccak(HexBytes(counter.address)),
        [rlp.decode(bytes(n)) for n in proof["accountProof"]],
    )
    nonce, balance, storage_root, code_hash = rlp.decode(account)
    assert int.from_bytes(nonce, "big") == proof["nonce"] == 1
    assert int.from_bytes(balance, "big") == proof["balance"] == 0
    assert storage_root == proof["storageHash"] and code_hash == proof["codeHash"] == keccak(
        w3.eth.get_code(counter.address)
    )
    slot0, slot1 = proof["storageProof"]
    stored = HexaryTrie.get_from_proof(
        storage_root,
        keccak((0).to_bytes(32, "big")),
        [rlp.decode(bytes(n)) for n in slot0["proof"]],
    )
    assert (
        rlp.decode(stored, sedes=rlp.sedes.big_endian_int)
        == int.from_bytes(slot0["value"], "big")
        == 2
    )
    absent = HexaryTrie.get_from_proof(
        storage_root,
        keccak((1).to_bytes(32, "big")),
        [rlp.decode(bytes(n)) for n in slot1["proof"]],
    )
    assert absent == b"" and int.from_bytes(slot1["value"], "big") == 0
    nobody = w3.eth.get_proof("0x" + "31" * 20, [], "latest")
    assert nobody["balance"] == 0 and nobody["nonce"] == 0
    assert (
        HexaryTrie.get_from_proof(
            block["stateRoot"],
            keccak(b"\x31" * 20),
            [rlp.decode(bytes(n)) for n in nobody["accountProof"]],
        )
        == b""
    )


# -- logs and filters ----------------------------------------------------------------------


def test_get_logs_by_address_topics_and_block(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    start = w3.eth.block_number
    first = increment(w3, counter, 0)
    increment(w3, counter, 1)
    increment(w3, counter, 2)
    topic0 = keccak(text="Incremented(address,uint256)")
    everything = w3.eth.get_logs({"fromBlock": start, "address": counter.address})
    assert [int.from_bytes(e["data"], "big") for e in everything] == [1, 2, 3]
    assert all(e["topics"][0] == topic0 and e["removed"] is False for e in everything)

    def padded(i: int) -> str:
        return "0x" + "00" * 12 + DEV[i].address[2:].lower()

    by_sender = w3.eth.get_logs({"fromBlock": start, "topics": [None, [padded(0), padded(2)]]})
    assert [int.from_bytes(e["data"], "big") for e in by_sender] == [1, 3]
    assert (
        w3.eth.get_logs(
            {"fromBlock": start, "topics": ["0x" + keccak(text="Deposited(address,uint256)").hex()]}
        )
        == []
    )
    in_block = w3.eth.get_logs({"blockHash": first["blockHash"]})
    assert len(in_block) == 1 and in_block[0]["transactionHash"] == first["transactionHash"]
    assert in_block[0]["logIndex"] == 0 and in_block[0]["blockNumber"] == first["blockNumber"]
    assert first["logs"][0]["logIndex"] == 0 and first["logs"][0]["address"] == counter.address
    assert w3.eth.get_logs({"fromBlock": start, "address": "0x" + "00" * 20}) == []
    chain.raw("sahara_dev_mine", hex(MAX_LOG_RANGE))
    too_wide = chain.raw("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}][0])
    assert too_wide["error"]["code"] == -32005 and "max block range" in too_wide["error"]["message"]


def test_polled_filters(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    logs = w3.eth.filter({"address": counter.address, "fromBlock": w3.eth.block_number})
    blocks = w3.eth.filter("latest")
    pending = w3.eth.filter("pending")
    receipt = increment(w3, counter, 3)
    changes = logs.get_new_entries()
    assert [c["transactionHash"] for c in changes] == [receipt["transactionHash"]]
    assert logs.get_new_entries() == []
    assert receipt["blockHash"] in blocks.get_new_entries()
    assert receipt["transactionHash"] in pending.get_new_entries()
    increment(w3, counter, 3)
    assert len(logs.get_all_entries()) == 2
    assert w3.eth.uninstall_filter(logs.filter_id) is True
    assert w3.eth.uninstall_filter(logs.filter_id) is False
    with pytest.raises(Web3RPCError, match="filter not found"):
        w3.eth.get_filter_changes(logs.filter_id)


# -- subscriptions over WebSocket ----------------------------------------------------------


def test_websocket_subscriptions_to_new_heads_and_logs(chain: Chain, counter: Contract) -> None:
    from web3 import WebSocketProvider

    async def scenario() -> tuple[list[Any], list[Any], Any]:
        async with AsyncWeb3(WebSocketProvider(chain.ws_url)) as aw3:
            heads_id = await aw3.eth.subscribe("newHeads")
            await aw3.eth.subscribe("logs", {"address": counter.address})
            loop = asyncio.get_running_loop()
            receipt = await loop.run_in_executor(None, increment, chain.w3, counter, 5)
            heads: list[Any] = []
            logs: list[Any] = []

            async def collect() -> None:
                async for message in aw3.socket.process_subscriptions():
                    (heads if message["subscription"] == heads_id else logs).append(
                        message["result"]
                    )
                    if heads and logs:
                        return

            await asyncio.wait_for(collect(), timeout=20)
            assert await aw3.eth.unsubscribe(heads_id) is True
            return heads, logs, receipt

    heads, logs, receipt = asyncio.run(scenario())
    assert (
        heads[-1]["number"] == receipt["blockNumber"] and heads[-1]["hash"] == receipt["blockHash"]
    )
    assert logs[0]["transactionHash"] == receipt["transactionHash"]
    assert logs[0]["address"] == counter.address


# -- tracing --------------------------------------------------------------------------------


def test_debug_trace_transaction_struct_logs(chain: Chain, counter: Contract) -> None:
    w3 = chain.w3
    receipt = increment(w3, counter, 6)
    trace = chain.raw("debug_traceTransaction", receipt["transactionHash"].to_0x_hex())["result"]
    assert trace["failed"] is False and trace["gas"] == receipt["gasUsed"]
    steps = trace["structLogs"]
    assert steps[0]["pc"] == 0 and steps[0]["depth"] == 1 and steps[0]["stack"] == []
    ops = [s["op"] for s in steps]
    assert "SSTORE" in ops and "LOG2" in ops and ops[-1] in ("STOP", "RETURN")
    sstore = steps[ops.index("SSTORE")]
    assert sstore["storage"] == {"00" * 32: "00" * 31 + "01"}
    for step, following in itertools.pairwise(steps):
        assert following["gas"] == step["gas"] - step["gasCost"], step
        assert all(word.startswith("0x") for word in step["stack"])
    with_memory = chain.raw(
        "debug_traceTransaction",
        receipt["transactionHash"].to_0x_hex(),
        {"enableMemory": True, "disableStack": True},
    )["result"]
    assert "stack" not in with_memory["structLogs"][0] and any(
        s.get("memory") for s in with_memory["structLogs"]
    )
    failing = wait(w3, counter.functions.fail().transact({"from": DEV[6].address, "gas": 100_000}))
    assert failing["status"] == 0
    failed = chain.raw("debug_traceTransaction", failing["transactionHash"].to_0x_hex())["result"]
    assert failed["failed"] is True and failed["structLogs"][-1]["op"] == "REVERT"
    assert failed["returnValue"].startswith("0x08c379a0")
    assert (
        chain.raw("debug_traceTransaction", "0x" + "00" * 32)["error"]["message"]
        == "transaction not found"
    )


# -- signing with the dev accounts ------------------------------------------------------------


def test_eth_sign_and_typed_data(chain: Chain) -> None:
    w3 = chain.w3
    signature = w3.eth.sign(DEV[0].address, data=b"hello")
    assert Account.recover_message(encode_defunct(b"hello"), signature=signature) == DEV[0].address
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Mail": [{"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "sahara", "chainId": 31313},
        "message": {"contents": "hi"},
    }
    result = chain.raw("eth_signTypedData_v4", DEV[1].address, typed)["result"]
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=result)
        == DEV[1].address
    )


# -- dev chain methods ----------------------------------------------------------------------


def test_snapshot_and_revert_undo_blocks_and_transactions(chain: Chain) -> None:
    w3 = chain.w3
    height = w3.eth.block_number
    balance = w3.eth.get_balance(DEV[0].address)
    snap = chain.raw("evm_snapshot")["result"]
    receipt = wait(
        w3, w3.eth.send_transaction({"from": DEV[0].address, "to": DEV[1].address, "value": 10**18})
    )
    assert w3.eth.block_number == height + 1
    assert chain.raw("evm_revert", snap)["result"] is True
    assert w3.eth.block_number == height
    assert w3.eth.get_balance(DEV[0].address) == balance
    assert (
        chain.raw("eth_getTransactionReceipt", receipt["transactionHash"].to_0x_hex())["result"]
        is None
    )
    assert chain.raw("evm_revert", snap)["result"] is False  # used up, as in anvil


def test_mine_time_and_balance_methods(chain: Chain) -> None:
    w3 = chain.w3
    height = w3.eth.block_number
    assert chain.raw("sahara_dev_mine", "0x3")["result"] == hex(height + 3)
    stamp = w3.eth.get_block("latest")["timestamp"] + 1_000
    assert chain.raw("evm_mine", stamp)["result"] == "0x0"
    assert w3.eth.get_block("latest")["timestamp"] == stamp
    offset = chain.raw("evm_increaseTime", 3_600)["result"]
    assert offset >= 3_600
    chain.raw("sahara_dev_mine")
    assert w3.eth.get_block("latest")["timestamp"] >= time.time() + 3_600 - 60
    rich = Web3.to_checksum_address("0x" + "ab" * 20)
    assert chain.raw("sahara_dev_setBalance", rich, hex(5 * 10**18))["result"] is True
    assert w3.eth.get_balance(rich) == 5 * 10**18
    assert chain.raw("hardhat_setBalance", rich, "0x1")["result"] is True
    assert chain.raw("anvil_setBalance", rich, "0x2")["result"] is None
    assert w3.eth.get_balance(rich) == 2


def test_automine_off_holds_transactions_until_mined(chain: Chain) -> None:
    w3 = chain.w3
    assert chain.raw("evm_setAutomine", False)["result"] is True
    try:
        height = w3.eth.block_number
        tx = {"from": DEV[7].address, "to": DEV[1].address, "value": 1, "gas": 21_000}
        tx_hash = w3.eth.send_transaction(tx)
        assert chain.raw("txpool_status")["result"]["pending"] == "0x1"
        assert w3.eth.block_number == height
        assert w3.eth.get_transaction_count(DEV[7].address, "pending") == (
            w3.eth.get_transaction_count(DEV[7].address) + 1
        )
        assert chain.raw("sahara_dev_mine")["result"] == hex(height + 1)
        assert w3.eth.get_transaction_receipt(tx_hash)["blockNumber"] == height + 1
    finally:
        assert chain.raw("sahara_dev_setAutomine", True)["result"] is True
