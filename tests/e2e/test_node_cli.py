"""The node commands as a person runs them: start, status, balance, send, stop, reset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nodes import free_port
from tests.schemas import check

pytestmark = pytest.mark.e2e

PASSWORD = "node test password"
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def sahara(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    base |= {
        "SAHARA_HOME": str(home),
        "SAHARA_PASSWORD": PASSWORD,
        "SAHARA_IDENTITY_SCRYPT_N": "1024",
    }
    return subprocess.run(
        [sys.executable, "-m", "sahara_cli", "--no-prompt", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    if not result.stdout.strip().startswith("{"):
        return result.stdout
    document = json.loads(result.stdout)
    check(result.args, document)
    return document


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ok(sahara(home, "init"))
    return home


def test_background_node_life_cycle(home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"SAHARA_NODE_RPC_URL": url}
    started = ok(
        sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    )
    try:
        me = ok(sahara(home, "--json", "id", "show"))["address"]
        assert started["validator"] == me and started["dev"] is True and started["rpc_url"] == url
        again = sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
        assert again.returncode == 7 and json.loads(again.stderr)["error"]["code"] == "node.running"
        status = ok(sahara(home, "--json", "node", "status", env=env))
        assert status["validator"] == me and status["local_pid"] == started["pid"]
        assert status["chain_id"] == started["chain_id"] == 31313 and status["uptime_s"] >= 0
        assert status["head"]["produced_at"].endswith("Z") and status["client_version"]
        assert status["mempool"] == {"pending": 0, "queued": 0}
        assert started["started_at"].endswith("Z") and started["log"].endswith("node.log")
        assert ok(sahara(home, "--json", "balance", env=env))["balance_sah"] == "10000"
        sent = ok(sahara(home, "--json", "tx", "send", "--to", BOB, "--value", "1.5", env=env))
        assert sent["tx"]["status"] == "success" and sent["value_sah"] == "1.5"
        shown = ok(sahara(home, "--json", "tx", "show", sent["hash"], env=env))
        assert shown["status"] == "success" and shown["value_wei"] == str(15 * 10**17)
        assert ok(sahara(home, "--json", "balance", BOB, env=env))["balance_sah"] == "10001.5"
        logs = ok(sahara(home, "--json", "node", "logs"))
        assert logs["path"].endswith("node.log")
        refused = sahara(home, "--json", "node", "reset", "--yes")
        assert refused.returncode == 7  # the node is running
    finally:
        stopped = ok(sahara(home, "--json", "node", "stop"))
    assert stopped["stopped"] is True and stopped["pid"] == started["pid"]
    assert ok(sahara(home, "--json", "node", "stop"))["stopped"] is False
    down = sahara(home, "--json", "node", "status", env=env)
    assert down.returncode == 5 and "sahara node start" in json.loads(down.stderr)["error"]["hint"]
    # Restarting keeps the chain: the transfer is still there.
    ok(sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}"))
    try:
        assert (
            ok(sahara(home, "--json", "tx", "show", sent["hash"], env=env))["status"] == "success"
        )
    finally:
        ok(sahara(home, "node", "stop"))
    assert ok(sahara(home, "--json", "node", "reset", "--yes"))["deleted"] is True


def test_port_in_use_is_a_clear_error(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    assert result.returncode == 7  # CONFLICT
    error = json.loads(result.stderr)["error"]
    assert "Traceback" not in result.stderr
    assert error["code"] == "node.port_unavailable"
    assert f"127.0.0.1:{port}" in error["message"]
    assert sahara(home, "node", "stop").returncode == 0  # nothing left running


def test_wrong_validator_password(home: Path) -> None:
    result = sahara(
        home,
        "--json",
        "node",
        "start",
        "--dev",
        "--rpc-addr",
        f"127.0.0.1:{free_port()}",
        env={"SAHARA_PASSWORD": "wrong"},
    )
    assert result.returncode == 4
    assert json.loads(result.stderr)["error"]["code"] == "identity.wrong_password"


def test_dev_node_without_any_id(tmp_path: Path) -> None:
    home = tmp_path / "bare"
    port = free_port()
    started = ok(
        sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    )
    try:
        assert started["validator"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # dev account 0
        accounts = ok(sahara(home, "--json", "node", "accounts"))["accounts"]
        assert accounts[1]["address"] == BOB
    finally:
        ok(sahara(home, "node", "stop"))


def test_the_rpc_execution_limits_come_from_the_config(tmp_path: Path) -> None:
    import httpx

    home = tmp_path / "limits"
    port = free_port()
    env = {"SAHARA_NODE_RPC_MAX_STEPS": "5000", "SAHARA_NODE_RPC_EXECUTION_TIMEOUT": "30"}
    ok(sahara(home, "--json", "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}", env=env))
    try:
        looper = "0x" + "10" * 20
        call = {"to": looper, "gas": "0xffffffffffff"}
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [call, "latest", {looper: {"code": "0x5b600056"}}],
        }
        reply = httpx.post(f"http://127.0.0.1:{port}", json=request, timeout=20).json()
        assert reply["error"] == {
            "code": -32000,
            "message": "execution step limit exceeded (5000 steps)",
        }
    finally:
        ok(sahara(home, "node", "stop"))


def test_block_time_takes_the_duration_syntax_of_localnet(home: Path) -> None:
    port = free_port()
    started = ok(
        sahara(
            home,
            "--json",
            "node",
            "start",
            "--dev",
            "--block-time",
            "500ms",
            "--rpc-addr",
            f"127.0.0.1:{port}",
        )
    )
    try:
        assert started["block_time_s"] == 0.5
        assert (
            ok(
                sahara(
                    home,
                    "--json",
                    "node",
                    "status",
                    env={"SAHARA_NODE_RPC_URL": f"http://127.0.0.1:{port}"},
                )
            )["block_time_s"]
            == 0.5
        )
    finally:
        ok(sahara(home, "node", "stop"))
    bad = sahara(home, "--json", "node", "start", "--dev", "--block-time", "soon")
    assert bad.returncode == 2
    assert "1s, 500ms" in json.loads(bad.stderr)["error"]["message"]
