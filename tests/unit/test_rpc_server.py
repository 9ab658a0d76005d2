"""The JSON-RPC server's protocol, over real HTTP and WebSocket connections to a real node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.node.genesis import Genesis
from sahara_cli.node.producer import Node, NodeConfig
from sahara_cli.node.rpc import serve_in_thread
from sahara_cli.node.rpc.testing import VALIDATOR_KEY, dev_node

DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with dev_node(tmp_path_factory.mktemp("rpc-server")) as (_node, handle):
        yield handle


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def post(client: httpx.Client, payload: Any) -> httpx.Response:
    return client.post(
        "/", content=json.dumps(payload), headers={"Content-Type": "application/json"}
    )


def call(client: httpx.Client, method: str, *params: Any, req_id: Any = 1) -> dict[str, Any]:
    reply = post(client, {"jsonrpc": "2.0", "id": req_id, "method": method, "params": list(params)})
    assert reply.status_code == 200
    doc: dict[str, Any] = reply.json()
    return doc


def error_of(doc: dict[str, Any]) -> tuple[int, str]:
    assert set(doc) == {"jsonrpc", "id", "error"}, doc
    return doc["error"]["code"], doc["error"]["message"]


# -- requests and replies ------------------------------------------------------------------


def test_a_request_gets_its_result_with_the_same_id(client: httpx.Client) -> None:
    for req_id in (1, "abc", 2**70, None):
        doc = call(client, "eth_chainId", req_id=req_id)
        assert doc == {"jsonrpc": "2.0", "id": req_id, "result": "0x7a51"}


def test_replies_are_json_and_keep_alive_serves_many(client: httpx.Client) -> None:
    for _ in range(200):
        reply = post(client, {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"})
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["result"].startswith("0x")


def test_invalid_json_is_a_parse_error_with_a_null_id(client: httpx.Client) -> None:
    for body in ("{", '{"jsonrpc": "2.0", "id": 1, "method": NaN}', "[1,", "\xff", "[" * 100_000):
        reply = client.post("/", content=body, headers={"Content-Type": "application/json"})
        doc = reply.json()
        assert doc["id"] is None
        assert error_of(doc)[0] == -32700


@pytest.mark.parametrize(
    "payload",
    [
        1,
        "eth_chainId",
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"},
        {"id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": True, "method": "eth_chainId"},
    ],
)
def test_invalid_request_objects_get_32600(client: httpx.Client, payload: Any) -> None:
    assert error_of(post(client, payload).json())[0] == -32600


def test_batches_answer_each_request_in_order_and_skip_notifications(client: httpx.Client) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_chainId"},  # notification: no reply
        1,
        {"jsonrpc": "2.0", "id": "x", "method": "nope_nothing"},
        {"jsonrpc": "2.0", "id": 3, "method": "net_version", "params": []},
    ]
    replies = post(client, batch).json()
    assert [r["id"] for r in replies] == [1, None, "x", 3]
    assert replies[0]["result"] == "0x7a51"
    assert replies[1]["error"]["code"] == -32600
    assert replies[2]["error"]["code"] == -32601
    assert replies[3]["result"] == "31313"


def test_notifications_get_no_reply(client: httpx.Client) -> None:
    single = post(client, {"jsonrpc": "2.0", "method": "eth_chainId"})
    assert single.status_code == 200 and single.content == b""
    batch = post(client, [{"jsonrpc": "2.0", "method": "eth_chainId"}] * 3)
    assert batch.status_code == 200 and batch.content == b""
    failing = post(client, {"jsonrpc": "2.0", "method": "no_such_method"})
    assert failing.content == b""


def test_an_empty_batch_is_an_invalid_request(client: httpx.Client) -> None:
    assert error_of(post(client, []).json())[0] == -32600


def test_a_batch_over_the_limit_is_refused_whole(client: httpx.Client) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1_001)]
    code, message = error_of(post(client, batch).json())
    assert code == -32600 and "batch too large" in message
    assert len(post(client, batch[:1_000]).json()) == 1_000


def test_a_body_over_the_limit_gets_413_and_an_error_object(client: httpx.Client) -> None:
    body = (
        '{"jsonrpc":"2.0","id":1,"method":"web3_sha3","params":["0x'
        + "00" * (3 * 1024 * 1024)
        + '"]}'
    )
    reply = client.post("/", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    code, message = error_of(reply.json())
    assert code == -32600 and "too large" in message
    assert call(client, "eth_chainId")["result"] == "0x7a51"


def test_unknown_methods_get_geths_message(client: httpx.Client) -> None:
    doc = call(client, "eth_doesNotExist", 1)
    assert error_of(doc) == (-32601, "the method eth_doesNotExist does not exist/is not available")


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        (
            "eth_getBalance",
            ["0x123"],
            "invalid argument 0: hex string has length 3, want 40 for common.Address",
        ),
        (
            "eth_getBalance",
            ["f39fd6e51aad88f6f4ce6ab8827279cfffb92266"],
            "invalid argument 0: hex string without 0x prefix",
        ),
        (
            "eth_getBalance",
            [DEV_ACCOUNT, "lastest"],
            'invalid argument 1: invalid block tag "lastest"',
        ),
        (
            "eth_getBalance",
            [DEV_ACCOUNT, "0x01"],
            "invalid argument 1: hex number with leading zero digits",
        ),
        (
            "eth_getBalance",
            [DEV_ACCOUNT, "0x" + "f" * 17],
            "invalid argument 1: hex number > 64 bits",
        ),
        ("eth_getBalance", [], "missing value for required argument 0"),
        ("eth_getBalance", [DEV_ACCOUNT, "latest", 1], "too many arguments, want at most 2"),
        ("eth_getBlockByNumber", ["latest", "yes"], "invalid argument 1: expected a boolean"),
        ("eth_getTransactionByHash", ["0x" + "ab" * 31], "want 64 for common.Hash"),
        (
            "eth_call",
            [{"to": DEV_ACCOUNT, "value": "0x1" + "0" * 64}],
            'field "value": hex number > 256 bits',
        ),
        ("eth_call", [{"to": DEV_ACCOUNT, "data": "0x123"}], "hex string of odd length"),
        (
            "eth_call",
            [{"to": DEV_ACCOUNT, "data": "0x12", "input": "0x34"}],
            'both "data" and "input"',
        ),
        ("web3_sha3", ["0xzz"], "invalid argument 0: invalid hex string"),
        ("eth_getLogs", [{"topics": [[1]]}], "invalid argument 0"),
        (
            "eth_getLogs",
            [{"blockHash": "0x" + "00" * 32, "fromBlock": "0x1"}],
            "cannot specify both",
        ),
    ],
)
def test_bad_params_are_32602_with_a_precise_message(
    client: httpx.Client, method: str, params: list[Any], message: str
) -> None:
    code, text = error_of(call(client, method, *params))
    assert code == -32602
    assert text.startswith(message) or message in text, text


def test_params_must_be_an_array(client: httpx.Client) -> None:
    doc = post(
        client, {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": {"a": 1}}
    ).json()
    assert error_of(doc) == (-32602, "non-array args")


def test_execution_errors_are_32000_with_geths_text(client: httpx.Client) -> None:
    code, message = error_of(call(client, "eth_sendRawTransaction", "0x01"))
    assert code == -32000 and message.startswith("invalid transaction")
    code, message = error_of(call(client, "eth_getBalance", DEV_ACCOUNT, "0xffffff"))
    assert (code, message) == (-32000, "header not found")


def test_subscriptions_need_a_websocket(client: httpx.Client) -> None:
    code, message = error_of(call(client, "eth_subscribe", "newHeads"))
    assert (code, message) == (-32601, "notifications not supported")


# -- HTTP rules: methods, content type, host, CORS ----------------------------------------


def test_only_json_posts_are_served(client: httpx.Client) -> None:
    text = client.post(
        "/",
        content='{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 415
    assert client.get("/").status_code == 405
    assert (
        client.put("/", content="{}", headers={"Content-Type": "application/json"}).status_code
        == 405
    )


def test_unknown_host_names_are_refused_against_dns_rebinding(
    client: httpx.Client, server: Any
) -> None:
    payload = '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
    headers = {"Content-Type": "application/json"}
    evil = client.post("/", content=payload, headers={**headers, "Host": "attacker.example"})
    assert evil.status_code == 403
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]:8545"):
        ok = client.post("/", content=payload, headers={**headers, "Host": host})
        assert ok.status_code == 200, host


def test_no_cors_headers_unless_configured(client: httpx.Client) -> None:
    reply = client.post(
        "/", content='{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
        headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
    )  # fmt: skip
    assert "access-control-allow-origin" not in reply.headers
    preflight = client.options(
        "/", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("configured", [("https://app.example",), ("*",)])
def test_cors_for_configured_origins(tmp_path: Path, configured: tuple[str, ...]) -> None:
    with (
        dev_node(tmp_path, cors_origins=configured) as (_node, handle),
        httpx.Client(base_url=handle.url) as http,
    ):
        allowed = http.post(
            "/", content='{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
            headers={"Content-Type": "application/json", "Origin": "https://app.example"},
        )  # fmt: skip
        expected = "*" if configured == ("*",) else "https://app.example"
        assert allowed.headers["access-control-allow-origin"] == expected
        preflight = http.options(
            "/",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        other = http.post(
            "/",
            content="{}",
            headers={"Content-Type": "application/json", "Origin": "https://other.example"},
        )
        assert ("access-control-allow-origin" in other.headers) == (configured == ("*",))


# -- remote interfaces and dev methods ----------------------------------------------------

SIGNING = [
    ("eth_sendTransaction", [{"from": DEV_ACCOUNT, "to": DEV_ACCOUNT, "value": "0x1"}]),
    ("eth_sign", [DEV_ACCOUNT, "0x1234"]),
    ("eth_signTypedData_v4", [DEV_ACCOUNT, {}]),
    ("sahara_dev_mine", []),
    ("sahara_dev_snapshot", []),
    ("evm_mine", []),
    ("anvil_setBalance", [DEV_ACCOUNT, "0x1"]),
]


def test_a_remote_interface_refuses_signing_and_dev_methods(tmp_path: Path) -> None:
    with dev_node(tmp_path, host="0.0.0.0") as (node, handle):
        url = f"http://127.0.0.1:{handle.port}"
        with httpx.Client(base_url=url) as http:
            for method, params in SIGNING:
                code, message = error_of(call(http, method, *params))
                assert (code, message) == (-32000, "method not allowed on a remote interface"), (
                    method
                )
            assert call(http, "eth_blockNumber")["result"] == "0x0"
            assert node.view().head().block_number == 0


def test_remote_signing_can_be_allowed_explicitly(tmp_path: Path) -> None:
    with dev_node(tmp_path, host="0.0.0.0", allow_remote_signing=True) as (_node, handle):
        http = httpx.Client(base_url=f"http://127.0.0.1:{handle.port}")
        assert call(http, "sahara_dev_mine")["result"] == "0x1"
        assert call(http, "eth_sign", DEV_ACCOUNT, "0x1234")["result"].startswith("0x")
        http.close()


def test_a_chain_that_is_not_a_dev_chain_has_no_dev_methods_or_accounts(tmp_path: Path) -> None:
    validator = Signer(VALIDATOR_KEY)
    node = Node(
        NodeConfig(data_dir=tmp_path),
        validator=validator,
        genesis=Genesis(validator=validator.address),
    )
    node.start()
    try:
        with serve_in_thread(node) as handle, httpx.Client(base_url=handle.url) as http:
            assert call(http, "eth_accounts")["result"] == []
            code, message = error_of(call(http, "sahara_dev_mine"))
            assert (code, message) == (
                -32601,
                "the method sahara_dev_mine does not exist/is not available",
            )
            assert error_of(call(http, "evm_snapshot"))[0] == -32601
            code, message = error_of(call(http, "eth_sendTransaction", {"from": DEV_ACCOUNT}))
            assert (code, message) == (-32000, "unknown account")
    finally:
        node.stop()


def test_the_server_binds_loopback_by_default_and_picks_a_free_port(server: Any) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.port > 0


# -- WebSocket on the same port ------------------------------------------------------------


def test_websocket_requests_and_batches_on_the_same_port(server: Any) -> None:
    from websockets.sync.client import connect

    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}))
        assert json.loads(ws.recv(timeout=10)) == {"jsonrpc": "2.0", "id": 1, "result": "0x7a51"}
        ws.send(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "id": 2, "method": "net_version"},
                    {"jsonrpc": "2.0", "method": "x"},
                ]
            )
        )
        assert json.loads(ws.recv(timeout=10)) == [{"jsonrpc": "2.0", "id": 2, "result": "31313"}]
        ws.send("{oops")
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == -32700


def test_websocket_subscription_delivers_new_heads(server: Any, client: httpx.Client) -> None:
    from websockets.sync.client import connect

    with connect(server.ws_url) as ws:
        ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            )
        )
        sub_id = json.loads(ws.recv(timeout=10))["result"]
        mined = call(client, "sahara_dev_mine")["result"]
        note = json.loads(ws.recv(timeout=10))
        assert note["method"] == "eth_subscription"
        assert note["params"]["subscription"] == sub_id
        assert note["params"]["result"]["number"] == mined
        ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_unsubscribe", "params": [sub_id]})
        )
        assert json.loads(ws.recv(timeout=10)) == {"jsonrpc": "2.0", "id": 2, "result": True}


def test_websocket_subscription_to_pending_transactions(server: Any, client: httpx.Client) -> None:
    from websockets.sync.client import connect

    with connect(server.ws_url) as ws:
        for req_id, full in ((1, False), (2, True)):
            request = {"jsonrpc": "2.0", "id": req_id, "method": "eth_subscribe"}
            ws.send(json.dumps({**request, "params": ["newPendingTransactions", full]}))
        subs = [json.loads(ws.recv(timeout=10))["result"] for _ in range(2)]
        tx = {"from": DEV_ACCOUNT, "to": DEV_ACCOUNT, "value": "0x1", "gas": "0x5208"}
        tx_hash = call(client, "eth_sendTransaction", tx)["result"]
        notes = {}
        while len(notes) < 2:
            note = json.loads(ws.recv(timeout=10))["params"]
            notes[note["subscription"]] = note["result"]
        assert notes[subs[0]] == tx_hash
        assert notes[subs[1]]["hash"] == tx_hash and notes[subs[1]]["from"] == DEV_ACCOUNT


def test_idle_filters_expire(tmp_path: Path) -> None:
    import time

    with (
        dev_node(tmp_path, filter_timeout=0.2) as (_node, handle),
        httpx.Client(base_url=handle.url) as http,
    ):
        kept = call(http, "eth_newBlockFilter")["result"]
        dropped = call(http, "eth_newBlockFilter")["result"]
        idle_until = time.monotonic() + 0.5
        while time.monotonic() < idle_until:  # polling keeps one alive; the other times out
            assert call(http, "eth_getFilterChanges", kept)["result"] == []
            time.sleep(0.05)
        reply = call(http, "eth_getFilterChanges", dropped)
        assert error_of(reply) == (-32000, "filter not found")
        assert call(http, "eth_uninstallFilter", kept)["result"] is True


def test_unexpected_errors_are_32603_without_details(caplog: pytest.LogCaptureFixture) -> None:
    from sahara_cli.node.rpc.errors import error_object

    try:
        raise KeyError("secret internals")
    except KeyError as exc:
        error = error_object(exc, method="eth_call")
    assert error == {"code": -32603, "message": "internal error"}
    assert "secret internals" in caplog.text and "eth_call" in caplog.text


def test_rpc_server_runs_on_the_callers_event_loop(tmp_path: Path) -> None:
    import asyncio

    from sahara_cli.node.rpc import RPCServer

    with dev_node(tmp_path) as (node, _thread_server):

        async def scenario() -> tuple[str, int, Any]:
            server = RPCServer(node, max_batch=2)
            host, port = await server.start("127.0.0.1", 0)
            try:
                async with httpx.AsyncClient(base_url=server.url) as http:
                    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(3)]
                    reply = await http.post("/", json=batch)
                    return host, port, reply.json()
            finally:
                await server.stop()

        host, port, reply = asyncio.run(scenario())
    assert host == "127.0.0.1" and port > 0
    assert reply["error"]["code"] == -32600  # its own options: a batch of 3 is over 2


def test_a_port_in_use_fails_the_start_in_the_caller(server: Any) -> None:
    with pytest.raises(OSError):
        serve_in_thread(server.server.node, "127.0.0.1", server.port)


def test_a_batch_stops_running_once_its_replies_are_too_large(tmp_path: Path) -> None:
    with (
        dev_node(tmp_path, max_batch_response=10_000) as (node, handle),
        httpx.Client(base_url=handle.url) as http,
    ):
        batch = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_getBlockByNumber", "params": ["0x0", True]}
            for i in range(20)
        ] + [{"jsonrpc": "2.0", "id": "mine", "method": "sahara_dev_mine"}]
        replies = post(http, batch).json()
        assert [r["id"] for r in replies] == [*range(20), "mine"]
        assert "result" in replies[0]
        assert error_of(replies[-1]) == (-32005, "response too large")
        assert node.view().head().block_number == 0  # the refused request did not run


def test_a_refusal_before_the_body_is_read_closes_the_connection_openly(
    client: httpx.Client, server: Any
) -> None:
    """A request refused before its body is read (a foreign Host, a wrong content type)
    ends its connection: the reply says ``Connection: close``, so a client's next
    request goes on a new connection instead of failing on a reset one."""
    payload = '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}' + " " * 200_000
    headers = {"Content-Type": "application/json"}
    for _ in range(5):
        evil = client.post("/", content=payload, headers={**headers, "Host": "attacker.example"})
        assert evil.status_code == 403
        assert evil.headers.get("connection", "").lower() == "close"
        wrong = client.post("/", content=payload, headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 415
        assert wrong.headers.get("connection", "").lower() == "close"
        ok = client.post("/", content=payload, headers=headers)
        assert ok.status_code == 200 and ok.json()["result"]
