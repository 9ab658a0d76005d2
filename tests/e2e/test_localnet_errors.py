"""``sahara localnet`` on bad input: no cometbft binary, a port taken by another
program, an application process that crashes (at run time and at start-up). Each is one
clear error with its own code, nothing is left running, and ``down`` stops every
process the localnet started whatever state it is in."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sahara_cli.errors import ExitCode
from tests.cometbft import COMETBFT_BIN, cometbft_bin
from tests.e2e.cli_home import CliHome
from tests.e2e.test_localnet import alive, height, wait_height

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def error(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    doc: dict[str, str] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return doc


def test_a_missing_cometbft_binary_is_one_clear_error(tmp_path: Path) -> None:
    home = CliHome(tmp_path / "home", env={"SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""})
    missing = str(tmp_path / "no-such-cometbft")
    result = home.run("localnet", "up", "--validators", "1", "--cometbft-bin", missing)
    assert result.returncode == ExitCode.NOT_FOUND, result.stderr
    err = error(result)
    assert err["code"] == "localnet.cometbft_missing"
    assert missing in err["message"] and err["hint"]
    assert not (home.root / "localnet" / "localnet.json").exists()


def wait_dead(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]


def test_port_in_use_and_crashed_apps_leave_nothing_behind(tmp_path: Path) -> None:
    cometbft_bin()
    home = CliHome(tmp_path / "home", env={"SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""})
    started: list[int] = []
    try:
        up = home.ok("localnet", "up", "--validators", "1", "--block-time", "0.3s")
        (node,) = up["nodes"]
        started += [node["app_pid"], node["cometbft_pid"]]
        comet = node["cometbft_rpc_url"]

        # A port of the node taken by another program: start-node names it and starts
        # nothing.
        home.ok("localnet", "stop-node", "0")
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", node["ports"]["eth_rpc"]))
            squatter.listen()
            result = home.run("localnet", "start-node", "0")
            assert result.returncode == ExitCode.CONFLICT, result.stderr
            err = error(result)
            assert err["code"] == "localnet.port_in_use"
            assert str(node["ports"]["eth_rpc"]) in err["message"]
            assert "eth_rpc" in err["message"]
            status = home.ok("localnet", "status")
            assert status["running"] == 0
            assert status["nodes"][0]["app_pid"] is None
        # Freed: the node comes back on its ports, and blocks continue.
        back = home.ok("localnet", "start-node", "0")
        started += [back["app_pid"], back["cometbft_pid"]]
        wait_height([comet], height(comet) + 2)

        # The app crashes (SIGKILL): status shows it, start-node restarts it, and the
        # chain goes on from where it was.
        before = height(comet)
        os.kill(back["app_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while home.ok("localnet", "status")["nodes"][0]["app_running"]:
            assert time.monotonic() < deadline, "status still shows the killed app running"
            time.sleep(0.1)
        status = home.ok("localnet", "status")
        assert status["running"] == 0 and status["nodes"][0]["app_pid"] is None
        again = home.ok("localnet", "start-node", "0")
        started += [again["app_pid"], again["cometbft_pid"]]
        wait_height([comet], before + 2, timeout=60)

        # An app that cannot start (its chain database is not one): start-node says so
        # with the app's last log lines, and leaves nothing running.
        home.ok("localnet", "stop-node", "0")
        chain = Path(up["nodes"][0]["home"]) / "app" / "chain"
        for item in chain.iterdir():
            item.write_bytes(b"not a database" * 100)
        result = home.run("localnet", "start-node", "0")
        assert result.returncode == ExitCode.ERROR, result.stderr
        err = error(result)
        assert err["code"] == "localnet.start_failed"
        assert "node 0" in err["message"]
        assert home.ok("localnet", "status")["running"] == 0
    finally:
        down = home.run("localnet", "down")
    assert down.returncode == 0, down.stderr
    wait_dead([p for p in started if p])
    assert home.ok("localnet", "down", "--clean")["removed"] is True


def test_down_then_up_resumes_the_same_chain(tmp_path: Path) -> None:
    cometbft_bin()
    home = CliHome(tmp_path / "home", env={"SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""})
    try:
        first = home.ok("localnet", "up", "--validators", "2", "--block-time", "300ms")
        assert first["resumed"] is False
        comets = [n["cometbft_rpc_url"] for n in first["nodes"]]
        wait_height(comets, 4)
        genesis = [block_one(u) for u in comets]
        assert len(set(genesis)) == 1
        reached = min(height(u) for u in comets)  # a new chain would be back at 2
        down = home.ok("localnet", "down")
        assert down["stopped"] and not down["removed"]

        again = home.ok("localnet", "up")
        assert again["resumed"] is True
        assert (again["validators"], again["block_time_s"]) == (2, 0.3)
        assert [n["ports"] for n in again["nodes"]] == [n["ports"] for n in first["nodes"]]
        assert all(n["height"] >= reached for n in again["nodes"]), (reached, again)
        assert [block_one(u) for u in comets] == genesis  # the same chain, not a new one
        wait_height(comets, max(height(u) for u in comets) + 1)  # and it goes on

        # Other settings than the stopped localnet's: refused, nothing started.
        home.ok("localnet", "down")
        other = home.run("localnet", "up", "--validators", "3")
        assert other.returncode == ExitCode.CONFLICT, other.stderr
        assert error(other)["code"] == "localnet.exists"
        assert "--reset" in error(other)["hint"]
        assert home.ok("localnet", "status")["running"] == 0

        fresh = home.ok("localnet", "up", "--reset", "--validators", "1")
        assert fresh["resumed"] is False and fresh["validators"] == 1
        assert block_one(fresh["nodes"][0]["cometbft_rpc_url"]) not in genesis
    finally:
        home.run("localnet", "down")


def block_one(comet_url: str) -> str:
    """The hash of block 1: it names the chain (its genesis and validators)."""
    import urllib.request

    with urllib.request.urlopen(f"{comet_url}/block?height=1", timeout=10) as reply:
        doc = json.loads(reply.read())
    return str(doc["result"]["block_id"]["hash"])
