"""JSON-RPC over plain HTTP with the standard library's client, and over httpx otherwise."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sahara_cli.errors import NodeError, NodeUnreachable
from sahara_cli.node.client import HTTPTransport, NodeClient, _peer_closed


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: "json" answers the request's id, "text" a non-JSON 200, "error" an HTTP 503.
    mode = "json"
    #: "say so": close with a Connection: close header; "silently": close without one.
    close_after_reply: str | bool = False
    connections: set[int] = set()  # noqa: RUF012  # shared by every request of a test

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        request = json.loads(self.rfile.read(length))
        self.connections.add(self.client_address[1])
        status, body = 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"})
        if self.mode == "text":
            body = "not json"
        elif self.mode == "error":
            status, body = 503, "node is syncing"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if self.close_after_reply == "say so":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        if self.close_after_reply:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    _Handler.mode, _Handler.close_after_reply, _Handler.connections = "json", False, set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


def test_plain_http_keeps_one_connection_without_httpx(server: Any) -> None:
    transport = HTTPTransport(url(server))
    assert transport._client is None  # the standard library's client
    client = NodeClient(transport)
    assert [client.chain_id() for _ in range(3)] == [1, 1, 1]
    assert len(_Handler.connections) == 1
    client.close()


@pytest.mark.parametrize("how", ["say so", "silently"])
def test_a_connection_the_node_closed_is_opened_again(server: Any, how: str) -> None:
    _Handler.close_after_reply = how
    transport = HTTPTransport(url(server))
    client = NodeClient(transport)
    for _ in range(3):
        assert client.chain_id() == 1
        conn = transport._http._local.conn if transport._http else None
        deadline = time.monotonic() + 10
        while conn is not None and conn.sock is not None and time.monotonic() < deadline:
            if _peer_closed(conn.sock):  # an idle connection the node has closed since
                break
            time.sleep(0.01)
    assert len(_Handler.connections) == 3


def test_bad_answers_are_node_errors(server: Any) -> None:
    client = NodeClient(url(server))
    _Handler.mode = "text"
    with pytest.raises(NodeError, match="did not answer with JSON"):
        client.chain_id()
    _Handler.mode = "error"
    with pytest.raises(NodeError, match="answered HTTP 503: node is syncing"):
        client.chain_id()


def test_no_node_is_unreachable_with_the_same_message_as_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = []
    for proxy in ("", "http://127.0.0.1:9"):  # a proxy setting sends the call through httpx
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "*")
        transport = HTTPTransport("http://127.0.0.1:9/", timeout=2)
        assert (transport._client is None) == (proxy == "")
        with pytest.raises(NodeUnreachable) as caught:
            NodeClient(transport).chain_id()
        messages.append(str(caught.value.message))
    assert messages == ["no node answers at http://127.0.0.1:9/ (ConnectError)"] * 2
