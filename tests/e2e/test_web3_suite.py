"""What a dapp developer relies on, through web3.py against a real node process.

Transactions are signed locally with eth-account and sent with eth_sendRawTransaction,
as wallets do. Every test reads the balances and nonces it checks before it acts, and
deploys its own Counter, so tests pass in any order and on a node other tests used.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
import rlp
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import big_endian_to_int, keccak, to_bytes, to_checksum_address
from hexbytes import HexBytes
from trie import HexaryTrie
from trie.exceptions import BadTrieProof
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from tests.e2e.conftest import Artifact, fees, send_signed
from tests.e2e.nodes import DevMethods

pytestmark = pytest.mark.e2e

GWEI = 10**9
TRANSFER_GAS = 21_000
ACCESS_LIST_ADDRESS_GAS = 2_400
ACCESS_LIST_STORAGE_KEY_GAS = 1_900
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
EMPTY_CODE_HASH = keccak(b"")


def fresh_address() -> str:
    """An address nobody has touched: its balance is exactly what a test sends it."""
    return to_checksum_address(secrets.token_bytes(20))


def raw_rpc(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    """The whole JSON-RPC reply, error object included (web3.py would reword it)."""
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    doc: dict[str, Any] = reply.json()
    return doc


def rejection(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> tuple[str, int]:
    """Send a transaction the node must refuse; its error message (lower case) and code."""
    signed = account.sign_transaction(tx)
    with pytest.raises(Web3RPCError) as info:
        w3.eth.send_raw_transaction(signed.raw_transaction)
    error = (info.value.rpc_response or {}).get("error", {})
    return str(error.get("message", info.value)).lower(), int(error.get("code", 0))


def dev_call(w3: Web3, method: str, params: list[Any]) -> None:
    reply = w3.provider.make_request(method, params)
    assert "error" not in reply, reply


def assert_paid(before: int, after: int, receipt: Any, value: int) -> None:
    """The sender paid exactly value + gasUsed * effectiveGasPrice."""
    assert before - after == value + receipt["gasUsed"] * receipt["effectiveGasPrice"]


# --- transfers -----------------------------------------------------------------------


def test_eip1559_transfer_moves_exact_amounts(w3: Web3, accounts: list[LocalAccount]) -> None:
    sender, recipient, value = accounts[1], fresh_address(), 12_345 * GWEI
    before = w3.eth.get_balance(sender.address)
    nonce = w3.eth.get_transaction_count(sender.address)
    tip = 2 * GWEI
    receipt = send_signed(
        w3,
        sender,
        {"to": recipient, "value": value, "gas": TRANSFER_GAS, **fees(w3, tip=tip)},
    )
    assert receipt["status"] == 1
    assert receipt["type"] == 2
    assert receipt["gasUsed"] == TRANSFER_GAS
    assert receipt["from"] == sender.address and receipt["to"] == recipient
    base_fee = w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
    assert receipt["effectiveGasPrice"] == base_fee + tip
    assert_paid(before, w3.eth.get_balance(sender.address), receipt, value)
    assert w3.eth.get_balance(recipient) == value
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1


def test_legacy_transfer(w3: Web3, accounts: list[LocalAccount], chain_id: int) -> None:
    sender, recipient, value = accounts[2], fresh_address(), 777
    before = w3.eth.get_balance(sender.address)
    gas_price = w3.eth.gas_price
    assert gas_price >= w3.eth.get_block("latest")["baseFeePerGas"]
    receipt = send_signed(
        w3, sender, {"to": recipient, "value": value, "gas": TRANSFER_GAS, "gasPrice": gas_price}
    )
    assert receipt["status"] == 1 and receipt["type"] == 0
    assert receipt["effectiveGasPrice"] == gas_price
    assert_paid(before, w3.eth.get_balance(sender.address), receipt, value)
    assert w3.eth.get_balance(recipient) == value
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["type"] == 0 and tx["gasPrice"] == gas_price
    assert tx["v"] in (chain_id * 2 + 35, chain_id * 2 + 36)  # EIP-155 replay protection


def test_eip2930_transfer_charges_its_access_list(w3: Web3, accounts: list[LocalAccount]) -> None:
    sender, recipient, value = accounts[3], fresh_address(), 4_242
    before = w3.eth.get_balance(sender.address)
    access_list = [{"address": recipient, "storageKeys": ["0x" + "00" * 31 + "01"]}]
    receipt = send_signed(
        w3,
        sender,
        {
            "type": 1,
            "to": recipient,
            "value": value,
            "gas": 30_000,
            "gasPrice": w3.eth.gas_price,
            "accessList": access_list,
        },
    )
    assert receipt["status"] == 1 and receipt["type"] == 1
    assert receipt["gasUsed"] == TRANSFER_GAS + ACCESS_LIST_ADDRESS_GAS + (
        ACCESS_LIST_STORAGE_KEY_GAS
    )
    assert_paid(before, w3.eth.get_balance(sender.address), receipt, value)
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["type"] == 1
    assert [entry["address"] for entry in tx["accessList"]] == [recipient]


def test_pending_nonce_counts_unmined_transactions(
    w3: Web3, accounts: list[LocalAccount], dev_methods: DevMethods, node_kind: str
) -> None:
    sender = accounts[4]
    latest = w3.eth.get_transaction_count(sender.address, "latest")
    assert w3.eth.get_transaction_count(sender.address, "pending") == latest
    if dev_methods.set_automine is None or dev_methods.mine is None:
        pytest.skip(
            f"the {node_kind} node serves no evm_setAutomine / evm_mine (dev methods) "
            "to hold a transaction in the pool"
        )
    dev_call(w3, dev_methods.set_automine, [False])
    try:
        signed = sender.sign_transaction(
            {
                "type": 2,
                "chainId": w3.eth.chain_id,
                "nonce": latest,
                "to": fresh_address(),
                "value": 1,
                "gas": TRANSFER_GAS,
                **fees(w3),
            }
        )
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        assert w3.eth.get_transaction_count(sender.address, "pending") == latest + 1
        assert w3.eth.get_transaction_count(sender.address, "latest") == latest
        dev_call(w3, dev_methods.mine, [])
    finally:
        dev_call(w3, dev_methods.set_automine, [True])
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    assert w3.eth.get_transaction_count(sender.address, "latest") == latest + 1
    assert w3.eth.get_transaction_count(sender.address, "pending") == latest + 1


# --- contracts -----------------------------------------------------------------------


def test_deploy_puts_the_runtime_code_on_chain(
    w3: Web3, accounts: list[LocalAccount], counter_artifact: Artifact
) -> None:
    deployer = accounts[5]
    nonce = w3.eth.get_transaction_count(deployer.address)
    receipt = send_signed(
        w3, deployer, {"to": None, "data": counter_artifact.bytecode, "gas": 1_000_000}
    )
    assert receipt["status"] == 1 and receipt["to"] is None
    # CREATE address: keccak(rlp([sender, nonce]))[12:]
    expected = keccak(rlp.encode([to_bytes(hexstr=deployer.address), nonce]))[12:]
    assert receipt["contractAddress"] == to_checksum_address(expected)
    code = w3.eth.get_code(receipt["contractAddress"])
    assert len(code) > 0
    assert code.hex() in counter_artifact.bytecode.removeprefix("0x")


def test_calls_read_state_and_compute(counter: Contract) -> None:
    assert counter.functions.count().call() == 0
    assert counter.functions.double(21).call() == 42
    assert counter.functions.double(0).call() == 0


def test_state_write_emits_a_decodable_event(
    w3: Web3, accounts: list[LocalAccount], counter: Contract
) -> None:
    caller = accounts[6]
    for expected in (1, 2):
        tx = counter.functions.increment().build_transaction(
            {"from": caller.address, "nonce": w3.eth.get_transaction_count(caller.address)}
        )
        receipt = send_signed(w3, caller, tx)
        assert receipt["status"] == 1
        (event,) = counter.events.Incremented().process_receipt(receipt)
        assert event["args"]["caller"] == caller.address
        assert event["args"]["new_count"] == expected
        assert event["address"] == counter.address
        assert event["transactionHash"] == receipt["transactionHash"]
        assert counter.functions.count().call() == expected
    receipt = send_signed(
        w3,
        caller,
        counter.functions.set(1_000_000).build_transaction(
            {"from": caller.address, "nonce": w3.eth.get_transaction_count(caller.address)}
        ),
    )
    assert receipt["status"] == 1 and receipt["logs"] == []
    assert counter.functions.count().call() == 1_000_000
    # Past state stays readable at the block it was written in.
    assert counter.functions.count().call(block_identifier=receipt["blockNumber"] - 1) == 2


def test_payable_deposit_holds_value_and_logs(
    w3: Web3, accounts: list[LocalAccount], counter: Contract
) -> None:
    sender, amount = accounts[6], 3 * GWEI
    before = w3.eth.get_balance(sender.address)
    tx = counter.functions.deposit().build_transaction(
        {
            "from": sender.address,
            "value": amount,
            "nonce": w3.eth.get_transaction_count(sender.address),
        }
    )
    receipt = send_signed(w3, sender, tx)
    assert receipt["status"] == 1
    (event,) = counter.events.Deposited().process_receipt(receipt)
    assert event["args"]["sender"] == sender.address and event["args"]["amount"] == amount
    assert w3.eth.get_balance(counter.address) == amount
    assert_paid(before, w3.eth.get_balance(sender.address), receipt, amount)


def test_get_logs_filters_by_address_topic_and_blocks(
    w3: Web3, accounts: list[LocalAccount], counter: Contract
) -> None:
    alice, bob = accounts[7], accounts[8]
    receipts = []
    for caller in (alice, bob, alice):
        tx = counter.functions.increment().build_transaction(
            {"from": caller.address, "nonce": w3.eth.get_transaction_count(caller.address)}
        )
        receipts.append(send_signed(w3, caller, tx))
    first, last = receipts[0]["blockNumber"], receipts[-1]["blockNumber"]
    signature = "0x" + keccak(text="Incremented(address,uint256)").hex()

    everything = w3.eth.get_logs({"address": counter.address, "fromBlock": first, "toBlock": last})
    decoded = [counter.events.Incremented().process_log(log) for log in everything]
    assert [event["args"]["new_count"] for event in decoded] == [1, 2, 3]
    assert [log["transactionHash"] for log in everything] == [
        receipt["transactionHash"] for receipt in receipts
    ]
    assert all(log["removed"] is False for log in everything)
    assert all(HexBytes(log["topics"][0]) == HexBytes(signature) for log in everything)

    alice_topic = "0x" + "00" * 12 + alice.address[2:].lower()
    by_alice = w3.eth.get_logs(
        {
            "address": counter.address,
            "fromBlock": first,
            "toBlock": last,
            "topics": [signature, alice_topic],
        }
    )
    assert [log["transactionHash"] for log in by_alice] == [
        receipts[0]["transactionHash"],
        receipts[2]["transactionHash"],
    ]
    middle = receipts[1]["blockNumber"]
    in_middle = w3.eth.get_logs(
        {"address": counter.address, "fromBlock": middle, "toBlock": middle}
    )
    assert [log["transactionHash"] for log in in_middle] == [receipts[1]["transactionHash"]]
    other = w3.eth.get_logs({"address": fresh_address(), "fromBlock": first, "toBlock": last})
    assert other == []


# --- reverts -------------------------------------------------------------------------


def test_eth_call_of_a_revert_carries_the_reason(w3: Web3, rpc_url: str, counter: Contract) -> None:
    with pytest.raises(ContractLogicError, match="counter: nope"):
        counter.functions.fail().call()
    data = counter.encode_abi("fail")
    reply = raw_rpc(rpc_url, "eth_call", [{"to": counter.address, "data": data}, "latest"])
    error = reply["error"]
    assert error["code"] == 3  # geth's code for a revert with data
    revert_data = bytes.fromhex(error["data"].removeprefix("0x"))
    assert revert_data[:4] == ERROR_STRING_SELECTOR
    assert abi_decode(["string"], revert_data[4:]) == ("counter: nope",)


def test_a_reverting_transaction_is_mined_with_status_0(
    w3: Web3, accounts: list[LocalAccount], counter: Contract
) -> None:
    sender = accounts[6]
    before = w3.eth.get_balance(sender.address)
    nonce = w3.eth.get_transaction_count(sender.address)
    tx = counter.functions.fail().build_transaction(
        {"from": sender.address, "nonce": nonce, "gas": 100_000}
    )
    receipt = send_signed(w3, sender, tx)
    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert TRANSFER_GAS < receipt["gasUsed"] < 100_000  # REVERT refunds the rest
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1
    assert_paid(before, w3.eth.get_balance(sender.address), receipt, 0)
    assert counter.functions.count().call() == 0


# --- fees and gas --------------------------------------------------------------------


def test_fee_fields_in_blocks_transactions_and_receipts(
    w3: Web3, accounts: list[LocalAccount]
) -> None:
    sender, tip = accounts[1], 3 * GWEI
    max_fee = 4 * w3.eth.get_block("latest")["baseFeePerGas"] + tip
    receipt = send_signed(
        w3,
        sender,
        {
            "to": fresh_address(),
            "value": 1,
            "gas": TRANSFER_GAS,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        },
    )
    block = w3.eth.get_block(receipt["blockNumber"])
    assert isinstance(block["baseFeePerGas"], int) and block["baseFeePerGas"] > 0
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["maxFeePerGas"] == max_fee and tx["maxPriorityFeePerGas"] == tip
    assert receipt["effectiveGasPrice"] == min(max_fee, block["baseFeePerGas"] + tip)
    assert w3.eth.max_priority_fee >= 0


def test_fee_history_matches_the_blocks(w3: Web3, accounts: list[LocalAccount]) -> None:
    for _ in range(2):  # at least a few blocks to look back on
        send_signed(w3, accounts[1], {"to": fresh_address(), "value": 1, "gas": TRANSFER_GAS})
    newest = w3.eth.block_number
    history = w3.eth.fee_history(4, newest, [25, 75])
    count = min(4, newest + 1)
    assert history["oldestBlock"] == newest - count + 1
    assert len(history["baseFeePerGas"]) == count + 1  # one more: the next block's
    assert len(history["gasUsedRatio"]) == count
    assert len(history["reward"]) == count and all(len(r) == 2 for r in history["reward"])
    for offset in range(count):
        block = w3.eth.get_block(history["oldestBlock"] + offset)
        assert history["baseFeePerGas"][offset] == block["baseFeePerGas"]
        assert history["gasUsedRatio"][offset] == pytest.approx(
            block["gasUsed"] / block["gasLimit"], rel=1e-3
        )


def test_estimate_gas(w3: Web3, accounts: list[LocalAccount], counter: Contract) -> None:
    sender = accounts[2]
    transfer = w3.eth.estimate_gas({"from": sender.address, "to": fresh_address(), "value": 1})
    # geth answers exactly 21,000 for a plain transfer; Hardhat's search stops at 21,001.
    assert TRANSFER_GAS <= transfer <= TRANSFER_GAS * 1.01
    estimate = counter.functions.increment().estimate_gas({"from": sender.address})
    tx = counter.functions.increment().build_transaction(
        {
            "from": sender.address,
            "gas": estimate,
            "nonce": w3.eth.get_transaction_count(sender.address),
        }
    )
    receipt = send_signed(w3, sender, tx)
    assert receipt["status"] == 1
    assert TRANSFER_GAS < receipt["gasUsed"] <= estimate
    with pytest.raises(ContractLogicError, match="counter: nope"):
        counter.functions.fail().estimate_gas({"from": sender.address})


# --- blocks and transactions ---------------------------------------------------------


def test_blocks_by_number_and_hash(w3: Web3, accounts: list[LocalAccount]) -> None:
    receipt = send_signed(w3, accounts[3], {"to": fresh_address(), "value": 5, "gas": TRANSFER_GAS})
    number, tx_hash = receipt["blockNumber"], receipt["transactionHash"]
    with_hashes = w3.eth.get_block(number)
    full = w3.eth.get_block(number, full_transactions=True)
    by_hash = w3.eth.get_block(receipt["blockHash"], full_transactions=True)
    assert with_hashes["hash"] == receipt["blockHash"] == by_hash["hash"]
    assert with_hashes["number"] == number
    assert tx_hash in with_hashes["transactions"]
    assert all(isinstance(item, bytes) for item in with_hashes["transactions"])
    (mined,) = [tx for tx in full["transactions"] if tx["hash"] == tx_hash]
    assert mined["blockNumber"] == number and mined["value"] == 5
    assert full == by_hash
    parent = w3.eth.get_block(number - 1)
    assert with_hashes["parentHash"] == parent["hash"]
    assert with_hashes["timestamp"] >= parent["timestamp"]
    assert w3.eth.get_block("latest")["number"] >= number
    assert w3.eth.get_block_transaction_count(number) == len(with_hashes["transactions"])


def test_transaction_by_hash_is_what_was_signed(
    w3: Web3, accounts: list[LocalAccount], chain_id: int
) -> None:
    sender, recipient = accounts[4], fresh_address()
    nonce = w3.eth.get_transaction_count(sender.address)
    fee_fields = fees(w3)
    receipt = send_signed(
        w3,
        sender,
        {"to": recipient, "value": 99, "gas": 30_000, "data": "0xc0ffee", **fee_fields},
    )
    # Three non-zero calldata bytes: 21,000 + 3 * 16 = 21,048 by the old rule, but Prague's
    # EIP-7623 floor, 21,000 + 10 * (3 * 4 tokens) = 21,120, is higher.
    assert receipt["gasUsed"] == 21_120
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["hash"] == receipt["transactionHash"]
    assert tx["from"] == sender.address and tx["to"] == recipient
    assert tx["value"] == 99 and tx["nonce"] == nonce and tx["gas"] == 30_000
    assert tx["input"] == HexBytes("0xc0ffee")
    assert tx["type"] == 2 and tx["chainId"] == chain_id
    assert tx["maxFeePerGas"] == fee_fields["maxFeePerGas"]
    assert tx["blockHash"] == receipt["blockHash"]
    assert tx["transactionIndex"] == receipt["transactionIndex"]
    assert tx["r"] and tx["s"] and tx["v"] in (0, 1)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction("0x" + secrets.token_hex(32))


# --- state proofs --------------------------------------------------------------------


def proven(root: bytes, key: bytes, proof: list[bytes]) -> bytes:
    """The value under keccak(key) in the trie of ``root``, checked node by node."""
    nodes = [rlp.decode(bytes(node)) for node in proof]
    value: bytes = HexaryTrie.get_from_proof(root, keccak(key), nodes)
    return value


def test_get_proof_verifies_against_the_state_root(
    w3: Web3, accounts: list[LocalAccount], counter: Contract
) -> None:
    owner = accounts[9]
    receipt = send_signed(
        w3,
        owner,
        counter.functions.set(0x2A).build_transaction(
            {"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address)}
        ),
    )
    number = receipt["blockNumber"]
    state_root = bytes(w3.eth.get_block(number)["stateRoot"])
    slot = (0).to_bytes(32, "big")

    proof = w3.eth.get_proof(counter.address, ["0x" + slot.hex()], number)
    account = rlp.decode(
        proven(state_root, to_bytes(hexstr=counter.address), proof["accountProof"])
    )
    nonce, balance, storage_root, code_hash = account
    assert big_endian_to_int(nonce) == proof["nonce"] == 1  # EIP-161: contracts start at 1
    assert big_endian_to_int(balance) == proof["balance"] == 0
    assert storage_root == bytes(proof["storageHash"])
    assert code_hash == bytes(proof["codeHash"]) == keccak(w3.eth.get_code(counter.address))
    (storage,) = proof["storageProof"]
    assert big_endian_to_int(bytes(storage["key"])) == 0
    stored = proven(storage_root, slot, storage["proof"])
    assert big_endian_to_int(rlp.decode(stored)) == big_endian_to_int(storage["value"]) == 0x2A

    # An externally owned account, and one that does not exist (a proof of absence).
    eoa = w3.eth.get_proof(owner.address, [], number)
    fields = rlp.decode(proven(state_root, to_bytes(hexstr=owner.address), eoa["accountProof"]))
    assert big_endian_to_int(fields[1]) == w3.eth.get_balance(owner.address, number)
    assert fields[3] == EMPTY_CODE_HASH
    nobody = fresh_address()
    absent = w3.eth.get_proof(nobody, [], number)
    assert proven(state_root, to_bytes(hexstr=nobody), absent["accountProof"]) == b""

    # The check is real: a proof against another root fails.
    other_root = bytes(w3.eth.get_block(number - 1)["stateRoot"])
    with pytest.raises(BadTrieProof):
        proven(other_root, to_bytes(hexstr=counter.address), proof["accountProof"])


# --- rejected transactions -----------------------------------------------------------


def test_nonce_too_low_is_rejected(w3: Web3, accounts: list[LocalAccount]) -> None:
    sender = accounts[5]
    send_signed(w3, sender, {"to": fresh_address(), "value": 1, "gas": TRANSFER_GAS})
    nonce = w3.eth.get_transaction_count(sender.address)
    message, code = rejection(
        w3,
        sender,
        {
            "type": 2,
            "chainId": w3.eth.chain_id,
            "nonce": nonce - 1,
            "to": fresh_address(),
            "value": 1,
            "gas": TRANSFER_GAS,
            **fees(w3),
        },
    )
    assert "nonce too low" in message
    assert code < 0
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce


def test_insufficient_funds_is_rejected(w3: Web3, accounts: list[LocalAccount]) -> None:
    pauper: LocalAccount = Account.create()
    message, code = rejection(
        w3,
        pauper,
        {
            "type": 2,
            "chainId": w3.eth.chain_id,
            "nonce": 0,
            "to": accounts[0].address,
            "value": 10**18,
            "gas": TRANSFER_GAS,
            **fees(w3),
        },
    )
    # geth: "insufficient funds for gas * price + value"; Hardhat: "Sender doesn't have
    # enough funds to send tx".
    assert "insufficient funds" in message or "enough funds" in message
    assert code < 0
    assert w3.eth.get_transaction_count(pauper.address, "pending") == 0


def test_wrong_chain_id_is_rejected(w3: Web3, accounts: list[LocalAccount], chain_id: int) -> None:
    sender = accounts[5]
    nonce = w3.eth.get_transaction_count(sender.address)
    for tx in (
        {"type": 2, **fees(w3)},
        {"gasPrice": w3.eth.gas_price},  # legacy, EIP-155
    ):
        message, code = rejection(
            w3,
            sender,
            {
                **tx,
                "chainId": chain_id + 1,
                "nonce": nonce,
                "to": fresh_address(),
                "value": 1,
                "gas": TRANSFER_GAS,
            },
        )
        # geth: "invalid chain id for signer"; Hardhat: "... an invalid chainId ...".
        assert "chain" in message
        assert code < 0
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce


def test_unknown_method_is_a_json_rpc_error(rpc_url: str, node_kind: str) -> None:
    reply = raw_rpc(rpc_url, "eth_noSuchMethod", [])
    assert "result" not in reply
    # -32601 is JSON-RPC 2.0's "method not found" (geth's too); Hardhat says -32004.
    expected = {-32601, -32004} if node_kind == "hardhat" else {-32601}
    assert reply["error"]["code"] in expected
