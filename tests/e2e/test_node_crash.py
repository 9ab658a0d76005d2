"""kill -9 the node under load, 20 times: nothing it confirmed is ever lost.

Each round sends transfers as fast as the node takes them while reading receipts back;
then the node process is killed with SIGKILL at a random moment and started again on
the same home. After every restart: every receipt seen before the kill is still there,
unchanged, and the head is at least as high as the highest block seen.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from sahara_cli.node.genesis import dev_keys
from tests.e2e.nodes import free_port, rpc, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KILLS = int(os.environ.get("SAHARA_CRASH_KILLS", "20"))
CHAIN_ID = 31313


def start(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env["SAHARA_HOME"] = str(home)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sahara_cli",
                "--no-prompt",
                "node",
                "run",
                "--dev",
                "--rpc-addr",
                f"127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


class Load(threading.Thread):
    """Sends transfers from the ten dev accounts and records every receipt it sees."""

    def __init__(self, url: str, receipts: dict[str, dict[str, Any]], heads: list[int]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.receipts = receipts
        self.heads = heads
        self.stop = threading.Event()
        self.keys = dev_keys()
        self.addresses = [Account.from_key(k).address for k in self.keys]

    def run(self) -> None:
        client = httpx.Client(timeout=5.0)
        try:
            nonces = [
                int(self.call(client, "eth_getTransactionCount", a, "pending"), 16)
                for a in self.addresses
            ]
            sent: list[str] = []
            i = 0
            while not self.stop.is_set():
                k = i % len(self.keys)
                tx = Account.sign_transaction(
                    {
                        "type": 2,
                        "chainId": CHAIN_ID,
                        "nonce": nonces[k],
                        "to": self.addresses[(k + 1) % 10],
                        "value": 1,
                        "gas": 21_000,
                        "maxFeePerGas": 10**10,
                        "maxPriorityFeePerGas": 1,
                    },
                    self.keys[k],
                )
                sent.append(
                    self.call(client, "eth_sendRawTransaction", "0x" + tx.raw_transaction.hex())
                )
                nonces[k] += 1
                i += 1
                if i % 10 == 0:
                    self.heads.append(int(self.call(client, "eth_blockNumber"), 16))
                    for tx_hash in sent[-40:]:
                        receipt = self.call(client, "eth_getTransactionReceipt", tx_hash)
                        if receipt is not None:
                            self.receipts[tx_hash] = receipt
        except (httpx.TransportError, RuntimeError):
            return  # the node was killed under us: that is the point
        finally:
            client.close()

    def call(self, client: httpx.Client, method: str, *params: Any) -> Any:
        reply = client.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
        doc = reply.json()
        if "error" in doc:
            raise RuntimeError(doc["error"])
        return doc["result"]


def receipts_now(url: str, hashes: list[str]) -> list[Any]:
    """Receipts of ``hashes`` in batches of 500 (one round trip each)."""
    out: list[Any] = []
    with httpx.Client(timeout=30.0) as client:
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            batch = [
                {"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt", "params": [h]}
                for i, h in enumerate(chunk)
            ]
            replies = sorted(client.post(url, json=batch).json(), key=lambda r: r["id"])
            out += [r.get("result") for r in replies]
    return out


def test_kill_9_never_loses_a_confirmed_transaction(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log = tmp_path / "node.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receipts: dict[str, dict[str, Any]] = {}
    heads: list[int] = [0]
    rng = random.Random(1234)
    process = start(home, port, log)
    try:
        for round_ in range(KILLS):
            wait_until_ready(url, process, timeout=60)
            # After a restart: everything confirmed before is still there, unchanged.
            height = int(rpc(url, "eth_blockNumber"), 16)
            assert height >= max(heads), (
                f"round {round_}: head went back from {max(heads)} to {height}"
            )
            hashes = list(receipts)
            for tx_hash, after in zip(hashes, receipts_now(url, hashes), strict=True):
                assert after == receipts[tx_hash], (
                    f"round {round_}: receipt of {tx_hash} changed or vanished"
                )
            load = Load(url, receipts, heads)
            load.start()
            time.sleep(rng.uniform(0.3, 1.5))  # a random moment under load
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            load.stop.set()
            load.join(timeout=10)
            process = start(home, port, log)
        wait_until_ready(url, process, timeout=60)
        hashes = list(receipts)
        assert receipts_now(url, hashes) == [receipts[h] for h in hashes]
        assert len(receipts) > KILLS  # the load really ran
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
