"""sahara doctor: one line per check, a fix hint, JSON for scripts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.conftest import Invoke


def checks(cli: Invoke) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli("--json", "doctor")
    doc = result.json()
    return result.exit_code, {c["name"]: c for c in doc["checks"]}


def test_fresh_machine_without_home(cli: Invoke) -> None:
    code, by_name = checks(cli)
    assert code == 0  # warnings only
    assert by_name["python"]["status"] == "ok"
    assert by_name["package"]["status"] == "ok"
    assert by_name["dependencies"]["status"] == "ok"
    assert by_name["home"]["status"] == "warn"
    assert "sahara init" in by_name["home"]["hint"]


def test_initialised_home_is_healthy_but_node_is_down(cli: Invoke, initialised: Path) -> None:
    code, by_name = checks(cli)
    assert code == 0
    assert by_name["keystore"]["status"] == "ok"
    assert by_name["default ID"]["status"] == "ok"
    assert by_name["node"]["status"] == "warn"
    assert "not reachable" in by_name["node"]["detail"]


def test_loose_key_permissions_fail_with_a_chmod_hint(cli: Invoke, initialised: Path) -> None:
    key = initialised / "keystore" / "main.json"
    key.chmod(0o644)
    code, by_name = checks(cli)
    assert code == 1
    assert by_name["keystore"]["status"] == "fail"
    assert f"chmod 600 {key}" in by_name["keystore"]["hint"]


def test_broken_config_fails(cli: Invoke, initialised: Path) -> None:
    (initialised / "config.toml").write_text("nope nope")
    code, by_name = checks(cli)
    assert code == 1
    assert by_name["config"]["status"] == "fail"
    human = cli("doctor")
    assert "fail" in human.stdout and "config" in human.stdout


class _RPC(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        result = {"web3_clientVersion": "test-node/1.0", "eth_chainId": "0x7a69"}[request["method"]]
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rpc_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _RPC)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_reachable_node(
    cli: Invoke, initialised: Path, rpc_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", rpc_server)
    _, by_name = checks(cli)
    assert by_name["node"]["status"] == "ok"
    assert "test-node/1.0" in by_name["node"]["detail"] and "31337" in by_name["node"]["detail"]


def test_models_and_llama_cpp_are_checked(cli: Invoke, initialised: Path) -> None:
    _, by_name = checks(cli)
    assert by_name["llama.cpp"]["status"] == "ok"
    assert by_name["llama.cpp"]["detail"].startswith("llama-cpp-python 0.3")
    assert by_name["models"]["status"] == "skip"
    assert "sahara model demo" in by_name["models"]["hint"]
    assert cli("--json", "model", "demo").exit_code == 0
    code, by_name = checks(cli)
    assert code == 0
    assert by_name["models"] == {
        "name": "models",
        "status": "ok",
        "detail": "1 model(s), default tiny-demo",
        "hint": None,
    }
    (initialised / "models" / "models.json").write_text("{broken")
    code, by_name = checks(cli)
    assert code == 1 and by_name["models"]["status"] == "fail"
