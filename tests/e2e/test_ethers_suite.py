"""ethers.js v6, the most used JavaScript client, against the same node as web3.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

pytestmark = pytest.mark.e2e

SUITE = Path(__file__).resolve().parent / "js" / "ethers_suite.mjs"
EXPECTED_CHECKS = [
    "chainId",
    "transfer",
    "deploy",
    "call",
    "send and event",
    "getLogs",
    "revert reason",
]


def test_ethers_suite_passes(
    rpc_url: str, accounts: list[LocalAccount], js_env: dict[str, str], chain_id: int
) -> None:
    if "SAHARA_NODE_MODULES" not in js_env:
        pytest.fail(
            "SAHARA_NODE_MODULES is not set: run through scripts/test or source "
            "scripts/_setup.sh (it installs ethers with npm)"
        )
    # ethers runs on Node 20 too; the Node 22 that Hardhat needs is used when present.
    node = js_env.get("SAHARA_NODE22") or shutil.which("node")
    assert node, "no Node.js binary: SAHARA_NODE22 is unset and node is not on PATH"
    done = subprocess.run(
        [node, str(SUITE)],
        env={
            **os.environ,
            **js_env,
            "RPC_URL": rpc_url,
            "PRIVATE_KEY": "0x" + bytes(accounts[7].key).hex(),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    summary = json.loads(lines[-1])
    assert summary["ok"] is True
    assert summary["checks"] == EXPECTED_CHECKS
    assert int(summary["chainId"]) == chain_id
    assert summary["ethers"] == "6.17.0"
