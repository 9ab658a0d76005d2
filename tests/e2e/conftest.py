"""End-to-end fixtures: a real node process, the ten dev accounts, web3.py on top.

``SAHARA_E2E_NODE`` picks the node: ``sahara`` (``sahara node run --dev``, the default),
``hardhat`` (the reference), or ``localnet`` (validator 0 of a ``sahara localnet`` of
``SAHARA_E2E_VALIDATORS`` CometBFT validators, 1 by default). Each pytest session, and
so each xdist worker, starts its own node on its own free port.
Tests share that node, so each one reads balances and nonces before it acts and uses
fresh contracts: their order does not matter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from tests.e2e.nodes import DEV_METHODS, KINDS, DevMethods, NodeStartError, start_node

DEFAULT_NODE = "sahara"
MNEMONIC = "test test test test test test test test test test test junk"
ACCOUNT_COUNT = 10
CONTRACTS = Path(__file__).resolve().parent / "contracts"

# Read at import, before the root conftest's autouse fixture clears SAHARA_* for each test.
NODE_KIND = os.environ.get("SAHARA_E2E_NODE", DEFAULT_NODE)
VALIDATORS = os.environ.get("SAHARA_E2E_VALIDATORS", "1")
JS_ENV = {
    name: os.environ[name]
    for name in ("SAHARA_NODE_MODULES", "SAHARA_NODE22")
    if os.environ.get(name)
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test (so `scripts/test --fast` skips it), even
    one whose module forgets its ``pytestmark``."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def node_kind() -> str:
    if NODE_KIND not in KINDS:
        pytest.fail(f"SAHARA_E2E_NODE={NODE_KIND!r}: choose one of {', '.join(KINDS)}")
    return NODE_KIND


@pytest.fixture(scope="session")
def js_env() -> dict[str, str]:
    """SAHARA_NODE_MODULES and SAHARA_NODE22 as scripts/_setup.sh exported them."""
    return dict(JS_ENV)


@pytest.fixture(scope="session")
def rpc_url(node_kind: str, js_env: dict[str, str]) -> Iterator[str]:
    """HTTP JSON-RPC URL of a node started for this session (one per xdist worker)."""
    options: dict[str, Any] = {}
    if node_kind == "hardhat":
        options = {
            "node_modules": js_env.get("SAHARA_NODE_MODULES"),
            "node22": js_env.get("SAHARA_NODE22"),
        }
    elif node_kind == "localnet":
        from tests.cometbft import cometbft_bin

        if not VALIDATORS.isdigit() or not 1 <= int(VALIDATORS) <= 32:
            pytest.fail(f"SAHARA_E2E_VALIDATORS={VALIDATORS!r}: a number from 1 to 32")
        options = {"validators": int(VALIDATORS), "cometbft_bin": cometbft_bin()}
    try:
        node = start_node(node_kind, **options)
    except NodeStartError as exc:
        pytest.fail(f"could not start the {node_kind} node: {exc}", pytrace=False)
    with node:
        yield node.url


@pytest.fixture(scope="session")
def dev_methods(node_kind: str) -> DevMethods:
    return DEV_METHODS[node_kind]


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """The ten dev accounts of the test mnemonic (m/44'/60'/0'/0/i), funded at genesis."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        for index in range(ACCOUNT_COUNT)
    ]


@pytest.fixture(scope="session")
def w3(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="session")
def chain_id(w3: Web3) -> int:
    return w3.eth.chain_id


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: str


def load_artifact(name: str) -> Artifact:
    doc = json.loads((CONTRACTS / f"{name}.json").read_text())
    return Artifact(doc["abi"], doc["bytecode"])


@pytest.fixture(scope="session")
def counter_artifact() -> Artifact:
    return load_artifact("Counter")


def fees(w3: Web3, tip: int = 10**9) -> dict[str, int]:
    """EIP-1559 fee fields that get a transaction into the next block."""
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}


def send_signed(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    """Sign ``tx`` locally (filling nonce, chain id, fees and type 2 when missing), send it
    with eth_sendRawTransaction and return its receipt."""
    tx = dict(tx)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    tx.setdefault("chainId", w3.eth.chain_id)
    if "gasPrice" not in tx:
        tx.setdefault("type", 2)
        for key, value in fees(w3).items():
            tx.setdefault(key, value)
    tx.setdefault("value", 0)
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert tx_hash == signed.hash
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def deploy(w3: Web3, account: LocalAccount, artifact: Artifact) -> Contract:
    receipt = send_signed(w3, account, {"to": None, "data": artifact.bytecode, "gas": 1_000_000})
    assert receipt["status"] == 1, receipt
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


@pytest.fixture
def counter(w3: Web3, accounts: list[LocalAccount], counter_artifact: Artifact) -> Contract:
    """A freshly deployed Counter (count == 0), deployed by account 9."""
    return deploy(w3, accounts[9], counter_artifact)
