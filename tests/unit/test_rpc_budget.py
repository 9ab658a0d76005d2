"""The node's JSON-RPC server under hostile load: execution budgets, trace sizes, filter
and WebSocket caps, oversize bodies. Real node, real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sahara_cli.node.client import NodeClient
from sahara_cli.node.rpc.context import ServerOptions
from sahara_cli.node.rpc.local import LocalTransport
from sahara_cli.node.rpc.testing import dev_node

DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
LOOPER = "0x" + "10" * 20
#: JUMPDEST PUSH1 0 JUMP: loops until the gas runs out (50M gas: millions of opcodes).
LOOP_CODE = "0x5b600056"
#: With calldata: return storage slot 0 plus transient slot 0. Without: set both to 1,
#: then loop forever.
WRITE_THEN_LOOP = "366012576001600055600160005d5b600e565b60005460005c0160005260206000f3"


def init_code(runtime: str) -> str:
    """Init code that deploys ``runtime`` (hex, under 256 bytes)."""
    return f"60{len(runtime) // 2:02x}80600b6000396000f3" + runtime


def rpc(client: httpx.Client, method: str, *params: Any, timeout: float = 30) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    reply = client.post(
        "/",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )
    assert reply.status_code == 200, reply.text
    doc: dict[str, Any] = reply.json()
    return doc


def loop_call(**extra: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """eth_call params: the looping code put at LOOPER by a state override, huge gas."""
    return {"to": LOOPER, "gas": "0xffffffffffff", **extra}, "latest", {LOOPER: {"code": LOOP_CODE}}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with dev_node(tmp_path_factory.mktemp("rpc-budget")) as (_n, handle):  # default limits
        yield handle


def test_a_looping_call_is_stopped_in_time_while_reads_still_answer(node: Any) -> None:
    outcome: dict[str, Any] = {}

    def looping() -> None:
        with httpx.Client(base_url=node.url) as http:
            started = time.monotonic()
            try:
                outcome["reply"] = rpc(http, "eth_call", *loop_call(), timeout=15)
            except httpx.TimeoutException as exc:
                outcome["reply"] = {"client timeout": str(exc)}
            outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=looping)
    thread.start()
    latencies = []
    with httpx.Client(base_url=node.url) as http:
        while thread.is_alive() and len(latencies) < 200:
            started = time.monotonic()
            assert rpc(http, "eth_getBalance", DEV_ACCOUNT, "latest")["result"].startswith("0x")
            latencies.append(time.monotonic() - started)
        thread.join()
        # The loop got the error about when the 5 s budget ran out, not when its gas did.
        assert outcome["reply"].get("error") == {
            "code": -32000,
            "message": "execution timeout (5s)",
        }, outcome
        assert outcome["seconds"] < 8.0
        assert max(latencies) < 1.0, latencies  # reads were never stuck behind it
        # Nothing keeps running after the error: the process is idle again.
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(1.0)
        assert time.process_time() - cpu < 0.3 * (time.monotonic() - wall)
        # and the server still executes ordinary calls.
        ret = "0x602a60005260206000f3"  # return 42
        reply = rpc(http, "eth_call", {"to": LOOPER}, "latest", {LOOPER: {"code": ret}})
        assert int(reply["result"], 16) == 42


def test_estimate_gas_and_send_transaction_are_bounded_too(node: Any) -> None:
    with httpx.Client(base_url=node.url) as http:
        call, block, overrides = loop_call()
        started = time.monotonic()
        reply = rpc(http, "eth_estimateGas", call, block, overrides, timeout=15)
        assert reply["error"] == {"code": -32000, "message": "execution timeout (5s)"}
        assert time.monotonic() - started < 8.0


def test_the_step_cap_stops_a_loop_and_leaves_the_kept_state_clean(tmp_path: Path) -> None:
    options = ServerOptions(max_steps=20_000, execution_timeout=60.0)
    with dev_node(tmp_path) as (chain, _):
        client = NodeClient(LocalTransport(chain, options))
        deploy = client.call(
            "eth_sendTransaction",
            {"from": DEV_ACCOUNT, "data": "0x" + init_code(WRITE_THEN_LOOP), "gas": "0x100000"},
        )
        contract = client.wait_for_receipt(deploy)["contractAddress"]
        read = {"to": contract, "data": "0x01"}
        assert int(client.call("eth_call", read, "latest"), 16) == 0
        loop = {"to": contract, "gas": "0x2faf080"}
        for _ in range(2):  # on the state kept warm for calls at the head
            reply = client.transport(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [loop, "latest"]}
            )
            assert reply["error"] == {
                "code": -32000,
                "message": "execution step limit exceeded (20000 steps)",
            }
            # The aborted call's storage and transient storage writes were rolled back.
            assert int(client.call("eth_call", read, "latest"), 16) == 0
        reply = client.transport(
            {"jsonrpc": "2.0", "id": 2, "method": "eth_estimateGas", "params": [loop]}
        )
        assert reply["error"]["message"] == "execution step limit exceeded (20000 steps)"
        # eth_sendTransaction without gas estimates it within the budget as well.
        reply = client.transport(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "eth_sendTransaction",
                "params": [{"from": DEV_ACCOUNT, "to": contract}],
            }
        )
        assert reply["error"]["message"] == "execution step limit exceeded (20000 steps)"


def test_traces_are_bounded_by_time_and_by_size(tmp_path: Path) -> None:
    # 64 KiB of memory, then 64 more steps: 65 copies of it with enableMemory.
    expand = "62010000" + "51" + "50"  # PUSH3 0x10000 MLOAD POP
    body = "5b" * 64 + "00"
    runtime = bytes.fromhex(expand + body)
    options = ServerOptions(max_trace_bytes=1024 * 1024, max_steps=100_000)
    with dev_node(tmp_path) as (chain, _):
        client = NodeClient(LocalTransport(chain, options))
        deploy = client.call(
            "eth_sendTransaction",
            {"from": DEV_ACCOUNT, "data": "0x" + init_code(runtime.hex()), "gas": "0x100000"},
        )
        contract = client.wait_for_receipt(deploy)["contractAddress"]
        tx = client.call(
            "eth_sendTransaction", {"from": DEV_ACCOUNT, "to": contract, "gas": "0x100000"}
        )
        client.wait_for_receipt(tx)

        def trace(config: dict[str, Any], tx_hash: str = tx) -> dict[str, Any]:
            request = {"jsonrpc": "2.0", "id": 1, "method": "debug_traceTransaction"}
            reply: dict[str, Any] = client.transport({**request, "params": [tx_hash, config]})
            return reply

        error = trace({"enableMemory": True})["error"]
        assert error["code"] == -32005
        assert "trace larger than 1048576 bytes" in error["message"]
        plain = trace({})["result"]
        assert len(plain["structLogs"]) == 3 + 64 + 1 and not plain["failed"]
        few = trace({"enableMemory": True, "limit": 8})["result"]["structLogs"]
        assert len(few) == 8 and len(few[-1]["memory"]) == 0x10000 // 32 + 1
        # A transaction that loops until its gas runs out: its trace hits the step cap.
        deploy_loop = client.call(
            "eth_sendTransaction",
            {"from": DEV_ACCOUNT, "data": "0x" + init_code(LOOP_CODE[2:])},
        )
        looper = client.wait_for_receipt(deploy_loop)["contractAddress"]
        spin = {"from": DEV_ACCOUNT, "to": looper, "gas": "0x200000"}
        spun = client.call("eth_sendTransaction", spin)
        assert client.wait_for_receipt(spun)["status"] == "0x0"  # out of gas
        assert trace({"limit": 10}, spun)["error"] == {
            "code": -32000,
            "message": "execution step limit exceeded (100000 steps)",
        }


def ws_request(ws: Any, method: str, *params: Any) -> dict[str, Any]:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}))
    reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return reply


def test_filters_are_capped_per_client(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with (
        dev_node(tmp_path) as (_chain, handle),
        httpx.Client(base_url=handle.url, timeout=30) as http,
    ):
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_newBlockFilter"} for i in range(1_000)]
        replies = http.post("/", json=batch).json()
        assert all("result" in r for r in replies)
        refused = rpc(http, "eth_newBlockFilter")["error"]
        assert refused["code"] == -32005 and "too many filters" in refused["message"]
        # A WebSocket connection from the same address counts against the same cap...
        with connect(handle.ws_url) as ws:
            assert ws_request(ws, "eth_newBlockFilter")["error"]["code"] == -32005
        # ...while another address still gets its own.
        with connect(handle.ws_url, source_address=("127.0.0.2", 0)) as ws:
            assert ws_request(ws, "eth_newBlockFilter")["result"].startswith("0x")
        # Uninstalling frees a place.
        assert rpc(http, "eth_uninstallFilter", replies[0]["result"])["result"] is True
        assert rpc(http, "eth_newBlockFilter")["result"].startswith("0x")


def test_a_websocket_client_cannot_fill_the_filter_table_by_reconnecting(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with (
        dev_node(tmp_path, max_filters=20, max_filters_per_client=8) as (_chain, handle),
        httpx.Client(base_url=handle.url, timeout=30) as http,
    ):
        left_behind = []
        for _ in range(4):  # 32 filters in all, 8 per connection
            with connect(handle.ws_url, source_address=("127.0.0.2", 0)) as ws:
                for _ in range(8):
                    reply = ws_request(ws, "eth_newFilter", {})
                    assert reply["result"].startswith("0x"), reply
                left_behind.append(reply["result"])
        # The filters of a closed connection are gone (polled over HTTP: not found)...
        deadline = time.monotonic() + 10
        while True:
            reply = rpc(http, "eth_getFilterChanges", left_behind[-1])
            if "error" in reply or time.monotonic() > deadline:
                break
        assert reply["error"]["message"] == "filter not found"
        assert all("error" in rpc(http, "eth_getFilterChanges", f) for f in left_behind)
        # ...so they did not use up the server's table: another client still installs its own.
        assert rpc(http, "eth_newBlockFilter")["result"].startswith("0x")
        # Two connections open at once from one address share that address's cap.
        with (
            connect(handle.ws_url, source_address=("127.0.0.2", 0)) as first,
            connect(handle.ws_url, source_address=("127.0.0.2", 0)) as second,
        ):
            for _ in range(5):
                assert ws_request(first, "eth_newBlockFilter")["result"].startswith("0x")
            for _ in range(3):
                assert ws_request(second, "eth_newBlockFilter")["result"].startswith("0x")
            refused = ws_request(second, "eth_newBlockFilter")["error"]
            assert refused["code"] == -32005 and "by this client" in refused["message"]


def test_a_websocket_client_cannot_queue_unbounded_requests(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with dev_node(tmp_path, max_ws_pending=2, execution_timeout=1.5) as (_chain, handle):
        call, block, overrides = loop_call()
        with connect(handle.ws_url) as ws:
            for req_id in (1, 2):
                request = {"jsonrpc": "2.0", "id": req_id, "method": "eth_call"}
                ws.send(json.dumps({**request, "params": [call, block, overrides]}))
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_chainId"}))
            # The third is not read until one of the two it waits behind is answered.
            first = json.loads(ws.recv(timeout=10))
            assert first["id"] in (1, 2) and "execution timeout" in first["error"]["message"]
            ids = {json.loads(ws.recv(timeout=10))["id"] for _ in range(2)}
            assert ids == {1, 2, 3} - {first["id"]}


def _raw_post(port: int, headers: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(headers.encode() + body)
        return sock.recv(65536)


def test_an_oversize_body_is_refused_before_it_is_sent(node: Any) -> None:
    # A client that asks first (Expect: 100-continue, as curl does for big bodies) is
    # refused without being invited to send the body.
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _raw_post(node.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    # One that sends a few bytes of a huge body gets 413 at once, and the connection closes
    # instead of the server reading (and discarding) the rest.
    head = head.replace("Expect: 100-continue\r\n", "")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"{" * 1024)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # closed by the server, not left reading


def test_the_validators_json_rpc_has_the_same_budget(tmp_path: Path) -> None:
    """``node run --abci ... --rpc-addr`` serves JSON-RPC from the application process
    with the same server code: its options reach it, and a loop is stopped there too."""
    import asyncio

    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.abci.__main__ import serve_rpc
    from sahara_cli.node.abci.app import SaharaApp
    from sahara_cli.node.abci.generated.tendermint.abci import types_pb2 as abci
    from sahara_cli.node.genesis import dev_genesis, dev_keys
    from sahara_cli.node.state import StateMachine
    from sahara_cli.node.store import BlockStore

    store = BlockStore(tmp_path / "chain")
    app = SaharaApp(StateMachine(store), dev_genesis(validator=Signer(dev_keys(1)[0]).address))
    app.init_chain(abci.RequestInitChain(time={"seconds": 1_700_000_000}, initial_height=1))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    urls: list[str] = []
    ready = threading.Event()

    def announce(_what: str, where: str) -> None:
        urls.append(where)
        ready.set()

    options = ServerOptions(max_steps=5_000)
    comet = "http://127.0.0.1:1"  # eth_call never reaches CometBFT
    serving = threading.Thread(
        target=loop.run_until_complete,
        args=(serve_rpc(app, "127.0.0.1", 0, comet, stop, announce, options),),
    )
    serving.start()
    try:
        assert ready.wait(30)
        with httpx.Client(base_url=urls[0], timeout=20) as http:
            reply = rpc(http, "eth_call", *loop_call())
            assert reply["error"] == {
                "code": -32000,
                "message": "execution step limit exceeded (5000 steps)",
            }
            assert rpc(http, "eth_getBalance", DEV_ACCOUNT, "latest")["result"] != "0x0"
    finally:
        loop.call_soon_threadsafe(stop.set)
        serving.join(30)
        loop.close()
        store.close()


# -- precompiles ---------------------------------------------------------------------------

BLAKE2F = "0x" + "00" * 19 + "09"


def blake2f_input(rounds: int) -> str:
    """EIP-152's input: rounds, state h, message m, offsets t, final flag."""
    return (
        "0x"
        + (rounds.to_bytes(4, "big") + b"\x11" * 64 + b"\x22" * 128 + bytes(16) + b"\x01").hex()
    )


def test_a_precompile_counts_against_the_step_cap(tmp_path: Path) -> None:
    # blake2f with 400,000 rounds: about 3 s of py-evm, refused before it starts.
    call = {"to": BLAKE2F, "data": blake2f_input(400_000)}
    with (
        dev_node(tmp_path, execution_timeout=1.0, max_steps=1_000) as (_chain, handle),
        httpx.Client(base_url=handle.url) as http,
    ):
        for method in ("eth_call", "eth_estimateGas"):
            started = time.monotonic()
            reply = rpc(http, method, call, "latest", timeout=60)
            assert reply.get("error") == {
                "code": -32000,
                "message": "execution step limit exceeded (1000 steps)",
            }, (method, reply)
            assert time.monotonic() - started < 1.5, method
        # Called from a contract (a few dozen opcodes), it is refused just the same.
        started = time.monotonic()
        reply = rpc(http, "eth_call", *_blake2f_caller(400_000), timeout=60)
        assert reply["error"]["message"] == "execution step limit exceeded (1000 steps)"
        assert time.monotonic() - started < 1.5
        # while a small one fits.
        small = rpc(http, "eth_call", *_blake2f_caller(12))["result"]
        assert len(small) == 2 + 128


def _blake2f_caller(rounds: int) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """eth_call params: code at LOOPER that calls blake2f with ``rounds`` and returns its
    output (the precompile runs in a frame of its own, below a contract's)."""
    data = bytes.fromhex(blake2f_input(rounds)[2:])
    code = b""
    for offset in range(0, len(data), 32):  # MSTORE each 32-byte word of the input
        word = data[offset : offset + 32].ljust(32, b"\0")
        code += b"\x7f" + word + b"\x61" + offset.to_bytes(2, "big") + b"\x52"
    # STATICCALL(GAS, 0x09, 0, 213, 224, 64) POP; RETURN(224, 64)
    code += bytes.fromhex("604060e060d5600060095afa50" + "604060e0f3")
    return {"to": LOOPER}, "latest", {LOOPER: {"code": "0x" + code.hex()}}


def test_a_late_precompile_result_is_not_returned(tmp_path: Path) -> None:
    # Within the step cap but past the timeout: the run ends, the result is dropped.
    call = {"to": BLAKE2F, "data": blake2f_input(500_000)}
    with (
        dev_node(tmp_path, execution_timeout=0.2) as (_chain, handle),
        httpx.Client(base_url=handle.url) as http,
    ):
        for method in ("eth_call", "eth_estimateGas"):
            started = time.monotonic()
            reply = rpc(http, method, call, "latest", timeout=120)
            assert reply.get("error") == {
                "code": -32000,
                "message": "execution timeout (0.2s)",
            }, (method, reply)
            assert time.monotonic() - started < 60, method


def test_ordinary_precompile_calls_still_work(node: Any) -> None:
    import hashlib

    from eth_keys import keys

    key = keys.PrivateKey(b"\x01" * 32)
    digest = hashlib.sha256(b"message").digest()
    sig = key.sign_msg_hash(digest)
    ecrecover_input = digest + (sig.v + 27).to_bytes(32, "big")
    ecrecover_input += sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big")
    eip152 = (
        "0000000c48c9bdf267e6096a3ba7ca8485ae67bb2bf894fe72f36e3cf1361d5f3af54fa5d182e6ad7f52"
        "0e511f6c3e2b8c68059b6bbd41fbabd9831f79217e1319cde05b616263"
        + "00" * 125
        + "03"
        + "00" * 15
        + "01"
    )
    cases = {
        "01": (ecrecover_input, bytes(12) + key.public_key.to_canonical_address()),
        "02": (b"message", digest),
        "04": (b"\x01\x02\x03" * 1000, b"\x01\x02\x03" * 1000),
        "09": (bytes.fromhex(eip152), hashlib.blake2b(b"abc").digest()),
    }
    with httpx.Client(base_url=node.url) as http:
        for address, (data, expected) in cases.items():
            call = {"to": "0x" + "00" * 19 + address, "data": "0x" + data.hex()}
            assert rpc(http, "eth_call", call, "latest")["result"] == "0x" + expected.hex()
            assert int(rpc(http, "eth_estimateGas", call, "latest")["result"], 16) > 21_000
