"""A validator's application process serves Ethereum JSON-RPC: one CometBFT validator,
the application (``python -m sahara_cli.node.abci --dev --rpc-addr ... --comet-rpc
...``) as a child process, and web3.py against its JSON-RPC. Reads come from the
committed state; signed transactions go through CometBFT (CheckTx, a block, Commit)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3RPCError

from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, dev_keys
from tests.cometbft import AppProcess, CometNode, cometbft_bin, free_port, running_app, running_node
from tests.e2e.conftest import fees, load_artifact, send_signed

pytestmark = pytest.mark.e2e

SENDER = Account.from_key(dev_keys(3)[2])
RECIPIENT = Web3.to_checksum_address("0x" + "6b" * 20)


def connect(url: str, app: AppProcess, timeout: float = 60.0) -> Web3:
    """web3.py on ``url`` once the app's JSON-RPC answers (after InitChain)."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 15}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.proc is None or app.proc.poll() is not None:
            raise RuntimeError(f"the app exited:\n{app.log_tail()}")
        try:
            if w3.is_connected():
                return w3
        except Exception:  # not listening yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no JSON-RPC at {url} within {timeout}s:\n{app.log_tail()}")


def wait_block(w3: Web3, number: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = w3.eth.block_number
        if now >= number:
            return now
        time.sleep(0.05)
    raise TimeoutError(f"no block {number} after {timeout}s")


async def first_new_head(url: str, timeout: float = 15.0) -> dict[str, Any]:
    """Subscribes to ``newHeads`` over WebSocket; the first header announced."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        await ws.send_str(json.dumps(request))
        reply = json.loads(await asyncio.wait_for(ws.receive_str(), timeout))
        sub_id = reply["result"]
        note = json.loads(await asyncio.wait_for(ws.receive_str(), timeout))
        assert note["method"] == "eth_subscription", note
        assert note["params"]["subscription"] == sub_id, note
        head: dict[str, Any] = note["params"]["result"]
        return head


def test_validator_app_serves_ethereum_json_rpc(tmp_path: Path) -> None:
    cometbft_bin()
    node = CometNode(tmp_path / "cometbft")
    node.init()
    comet_port = free_port()
    rpc_port = free_port()
    app = AppProcess(
        tmp_path / "app",
        "--dev",
        "--rpc-addr",
        f"127.0.0.1:{rpc_port}",
        "--comet-rpc",
        f"http://127.0.0.1:{comet_port}",
    )
    with running_app(app):
        node.configure(app.address, rpc_port=comet_port)
        with running_node(node):
            w3 = connect(f"http://127.0.0.1:{rpc_port}", app)
            try:
                assert w3.eth.chain_id == DEFAULT_CHAIN_ID
                start = w3.eth.block_number
                assert wait_block(w3, start + 2) >= start + 2  # CometBFT makes blocks
                head = asyncio.run(first_new_head(f"ws://127.0.0.1:{rpc_port}"))
                assert int(head["number"], 16) > start + 1, head

                # A signed EIP-1559 transfer through eth_sendRawTransaction.
                nonce = w3.eth.get_transaction_count(SENDER.address)
                before = w3.eth.get_balance(RECIPIENT)
                value = 12_345 * 10**9
                tx = {
                    "type": 2,
                    "chainId": DEFAULT_CHAIN_ID,
                    "nonce": nonce,
                    "to": RECIPIENT,
                    "value": value,
                    "gas": 21_000,
                    **fees(w3),
                }
                signed = SENDER.sign_transaction(tx)
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
                assert tx_hash == signed.hash
                receipt = w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=30, poll_latency=0.05
                )
                assert receipt["status"] == 1, receipt
                assert receipt["blockNumber"] > start
                assert w3.eth.get_balance(RECIPIENT) == before + value
                assert w3.eth.get_transaction_count(SENDER.address) == nonce + 1
                assert w3.eth.get_transaction_count(SENDER.address, "pending") == nonce + 1
                block = w3.eth.get_block(receipt["blockNumber"])
                assert tx_hash in block["transactions"]
                assert w3.eth.get_transaction(tx_hash)["blockNumber"] == receipt["blockNumber"]

                # The same nonce again: CheckTx refuses it, as the solo node would.
                stale = SENDER.sign_transaction({**tx, "value": 1, **fees(w3, tip=2 * 10**9)})
                with pytest.raises(Web3RPCError) as refused:
                    w3.eth.send_raw_transaction(stale.raw_transaction)
                assert "nonce too low" in str(refused.value)

                # A validator is not a dev chain.
                for name in ("sahara_dev_mine", "evm_mine", "anvil_setBalance"):
                    reply = w3.provider.make_request(name, [])  # type: ignore[arg-type]
                    assert reply["error"]["code"] == -32601, reply
                    assert "not available" in reply["error"]["message"], reply
                reply = w3.provider.make_request("txpool_status", [])  # type: ignore[arg-type]
                assert set(reply["result"]) == {"pending", "queued"}, reply

                # Deploy and call a contract.
                artifact = load_artifact("Counter")
                deployed = send_signed(
                    w3, SENDER, {"to": None, "data": artifact.bytecode, "gas": 1_000_000}
                )
                assert deployed["status"] == 1, deployed
                counter = w3.eth.contract(address=deployed["contractAddress"], abi=artifact.abi)
                assert counter.functions.double(21).call() == 42
                call = counter.functions.increment().build_transaction(
                    {"from": SENDER.address, "gas": 200_000, "nonce": 0, **fees(w3)}
                )
                call.pop("nonce")
                incremented = send_signed(w3, SENDER, call)
                assert incremented["status"] == 1, incremented
                assert counter.functions.count().call() == 1
                assert len(incremented["logs"]) == 1
            except BaseException:
                print(app.log_tail(80))
                raise
        assert app.stop() == 0, app.log_tail()  # JSON-RPC and ABCI stop cleanly on SIGTERM
        assert "Traceback" not in app.log_path.read_text(errors="replace"), app.log_tail(80)
