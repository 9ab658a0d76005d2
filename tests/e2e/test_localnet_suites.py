"""The web3.py and ethers.js suites of the node, against a validator of a 4-validator
``sahara localnet`` (``SAHARA_E2E_NODE=localnet``), in a pytest of their own: what a dapp
does against the solo node works the same against a validator under CometBFT. Only the
test that needs a dev method (``evm_setAutomine`` / ``evm_mine``) is skipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cometbft import COMETBFT_BIN, cometbft_bin
from tests.e2e.conftest import JS_ENV, NODE_KIND

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SUITES = ["tests/e2e/test_web3_suite.py", "tests/e2e/test_ethers_suite.py"]


def test_node_suites_pass_against_a_localnet_validator(tmp_path: Path) -> None:
    if NODE_KIND == "localnet":
        pytest.skip("this session runs the suites against a localnet already")
    cometbft_bin()
    if "SAHARA_NODE_MODULES" not in JS_ENV:
        pytest.fail("SAHARA_NODE_MODULES is not set: source scripts/_setup.sh (ethers)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env |= JS_ENV | {
        "SAHARA_COMETBFT_BIN": COMETBFT_BIN or "",
        "SAHARA_E2E_NODE": "localnet",
        "SAHARA_E2E_VALIDATORS": "4",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    summary = out.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed)", summary)}
    assert counts.get("failed", 0) == 0, summary
    assert counts["passed"] >= 21, summary
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == counts.get("skipped", 0) == 1, out[-2000:]
    assert "evm_setAutomine" in skips[0] and "evm_mine" in skips[0], skips
