"""``sahara localnet``: four CometBFT validators with their Sahara apps on 127.0.0.1,
driven through the CLI. A transfer sent to one node is seen on another; the chain goes
on with three validators, halts with two, resumes when they come back, and every node
ends on the same app hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, dev_keys
from tests.cometbft import COMETBFT_BIN, cometbft_bin
from tests.e2e.conftest import fees

pytestmark = pytest.mark.e2e

SENDER = Account.from_key(dev_keys(5)[4])
RECIPIENT = Web3.to_checksum_address("0x" + "7c" * 20)


class Home:
    """``sahara --json`` in a home of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
        env |= {"SAHARA_HOME": str(self.root), "SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""}
        return subprocess.run(
            [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.returncode == 0, f"sahara {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout)


def comet(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/{path}", timeout=5) as resp:
        return json.load(resp)["result"]


def height(url: str) -> int:
    return int(comet(url, "status")["sync_info"]["latest_block_height"])


def wait_height(urls: list[str], target: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(height(u) >= target for u in urls):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not every node reached height {target} within {timeout}s")


def app_hashes(urls: list[str], at: int) -> set[str]:
    """The app hash each node's block ``at`` header carries (the state after ``at - 1``)."""
    return {comet(u, f"block?height={at}")["block"]["header"]["app_hash"] for u in urls}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie is gone as far as we care
        try:
            return stat.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def test_localnet_of_four_validators(tmp_path: Path) -> None:
    cometbft_bin()
    home = Home(tmp_path / "home")
    pids: list[int] = []
    try:
        up = home.ok("localnet", "up", "--validators", "4", "--block-time", "0.5s")
        nodes = up["nodes"]
        assert len(nodes) == 4
        assert all(n["running"] and n["height"] >= 2 for n in nodes), nodes
        pids = [p for n in nodes for p in (n["app_pid"], n["cometbft_pid"])]
        assert all(alive(p) for p in pids)
        comets = [n["cometbft_rpc_url"] for n in nodes]
        wait_height(comets, 3)
        common = min(height(u) for u in comets)
        assert len(app_hashes(comets, common)) == 1

        status = home.ok("localnet", "status")
        assert [n["peers"] for n in status["nodes"]] == [3, 3, 3, 3], status

        # A transfer sent to node 0 is in node 3's chain.
        w0 = Web3(Web3.HTTPProvider(nodes[0]["eth_rpc_url"], request_kwargs={"timeout": 15}))
        w3 = Web3(Web3.HTTPProvider(nodes[3]["eth_rpc_url"], request_kwargs={"timeout": 15}))
        assert w0.eth.chain_id == DEFAULT_CHAIN_ID
        tx = {
            "type": 2,
            "chainId": DEFAULT_CHAIN_ID,
            "nonce": w0.eth.get_transaction_count(SENDER.address),
            "to": RECIPIENT,
            "value": 4242,
            "gas": 21_000,
            **fees(w0),
        }
        tx_hash = w0.eth.send_raw_transaction(SENDER.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.1)
        assert receipt["status"] == 1, receipt
        assert w3.eth.get_balance(RECIPIENT) == 4242

        # Three of four validators (3/4 > 2/3 of the power) keep making blocks.
        home.ok("localnet", "stop-node", "3")
        live = comets[:3]
        before = max(height(u) for u in live)
        wait_height(live, before + 3)

        # Two of four do not: the chain halts.
        home.ok("localnet", "stop-node", "2")
        live = comets[:2]
        time.sleep(1.5)
        halted = max(height(u) for u in live)
        time.sleep(3.0)
        assert max(height(u) for u in live) == halted

        # Both come back: blocks again, and every node catches up.
        home.ok("localnet", "start-node", "2")
        home.ok("localnet", "start-node", "3")
        wait_height(comets, halted + 3, timeout=60)
        common = min(height(u) for u in comets)
        assert len(app_hashes(comets, common)) == 1
        status = home.ok("localnet", "status")
        assert all(n["running"] for n in status["nodes"]), status
        pids += [p for n in status["nodes"] for p in (n["app_pid"], n["cometbft_pid"])]
        logs = home.ok("localnet", "logs", "2", "-n", "5")
        assert len(logs["cometbft"]["lines"]) == 5
    finally:
        down = home.run("localnet", "down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
    assert home.ok("localnet", "status")["running"] == 0
    assert home.ok("localnet", "down", "--clean")["removed"] is True
    assert not (home.root / "localnet").exists()
