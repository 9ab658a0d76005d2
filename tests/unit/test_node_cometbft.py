"""The one CometBFT RPC client: requests as CometBFT takes them, failures translated once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sahara_cli.errors import CometBFTError, CometBFTUnreachable, UnreachableError, UsageError
from sahara_cli.node.cometbft import CometRPC, http_url

SEEN: list[dict[str, Any]] = []


class FakeComet(BaseHTTPRequestHandler):
    """Answers like CometBFT: results, error objects (with HTTP 500), or junk."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append(request)
        method = request["method"]
        status, doc = 200, {"jsonrpc": "2.0", "id": request["id"]}
        if method == "status":
            doc["result"] = {"sync_info": {"latest_block_height": "42"}}
        elif method == "broadcast_tx_sync":
            status = 500
            doc["error"] = {
                "code": -32603,
                "message": "Internal error",
                "data": "tx already exists in cache",
            }
        elif method == "html":
            status = 502
            body = b"<html>bad gateway</html>"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        elif method == "nothing":
            doc["surprise"] = True
        else:
            doc["result"] = {"echo": request["params"]}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def comet() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeComet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_as_people_write_them() -> None:
    assert http_url("tcp://127.0.0.1:26657") == "http://127.0.0.1:26657"
    assert http_url("127.0.0.1:26657") == "http://127.0.0.1:26657"
    assert http_url("https://rpc.example/") == "https://rpc.example"
    with pytest.raises(UsageError):
        http_url("ftp://127.0.0.1:26657")


def test_results_and_params(comet: str) -> None:
    rpc = CometRPC("tcp://" + comet)
    assert rpc.latest_height() == 42
    assert rpc.call("block", height="7") == {"echo": {"height": "7"}}
    assert SEEN[-1]["method"] == "block" and SEEN[-1]["jsonrpc"] == "2.0"


def test_an_error_answer_keeps_cometbft_words(comet: str) -> None:
    with pytest.raises(CometBFTError) as caught:
        CometRPC(comet).call("broadcast_tx_sync", tx="AA==")
    assert not isinstance(caught.value, CometBFTUnreachable)
    assert caught.value.message == "tx already exists in cache"
    assert caught.value.code == "node.cometbft"


def test_not_a_cometbft_rpc(comet: str) -> None:
    with pytest.raises(CometBFTError, match="HTTP 502"):
        CometRPC(comet).call("html")
    with pytest.raises(CometBFTUnreachable, match="did not answer as a CometBFT RPC"):
        CometRPC(comet).call("nothing")


def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(CometBFTUnreachable) as caught:
        CometRPC("http://127.0.0.1:9", timeout=2.0).status()
    assert isinstance(caught.value, UnreachableError)
    assert caught.value.code == "node.cometbft_unreachable"
    assert "http://127.0.0.1:9 is unreachable" in caught.value.message
