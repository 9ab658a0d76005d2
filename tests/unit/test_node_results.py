"""The node's library operations give typed results that keep the conventions: status,
logs, reset, dev accounts, the runtime record of a serving node, and a localnet's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sahara_cli.errors import ConfirmationRequired, NodeRunning, NodeUnreachable
from sahara_cli.identity.keys import Signer
from sahara_cli.node.genesis import DEV_MNEMONIC, dev_accounts, dev_keys
from sahara_cli.node.localnet import Localnet
from sahara_cli.node.process import NodePaths, node_log, node_status, reset_chain
from sahara_cli.node.results import LightHeader, NodeRun, NodeServing, TrustedHeader, hex_hash
from sahara_cli.node.rpc.testing import VALIDATOR_KEY, dev_node


def test_status_of_a_live_node(tmp_path: Path) -> None:
    paths = NodePaths.of_home(tmp_path / "home")
    with dev_node(tmp_path / "chain") as (_, server):
        status = node_status(server.url, 5.0, paths)
        assert status.local_pid is None  # not this home's background node
        paths.root.mkdir(parents=True)
        paths.runtime_file.write_text(json.dumps({"pid": os.getpid(), "rpc_url": server.url}))
        mine = node_status(server.url, 5.0, paths)
    assert mine.local_pid == os.getpid()
    assert status.chain_id == 31313 and status.rpc_url == server.url
    assert status.validator == Signer(VALIDATOR_KEY).address
    assert status.head.number == 0 and status.head.hash.startswith("0x")
    assert status.dev is True and status.mempool.pending == 0
    doc = status.model_dump(mode="json")
    assert doc["head"]["produced_at"].endswith("Z") and isinstance(doc["uptime_s"], int)
    assert "clientVersion" not in doc and doc["client_version"].startswith("sahara")


def test_status_of_no_node_is_unreachable() -> None:
    with pytest.raises(NodeUnreachable):
        node_status("http://127.0.0.1:9", 1.0)


def test_logs_and_reset(tmp_path: Path) -> None:
    paths = NodePaths.of_home(tmp_path)
    assert node_log(paths, 5).lines == []
    paths.root.mkdir()
    paths.log_file.write_text("".join(f"line {i}\n" for i in range(10)))
    assert node_log(paths, 3).lines == ["line 7", "line 8", "line 9"]

    assert reset_chain(paths).deleted is False
    (paths.chain / "data").mkdir(parents=True)

    def refuse(question: str) -> None:
        assert str(paths.chain) in question
        raise ConfirmationRequired("no")

    with pytest.raises(ConfirmationRequired):
        reset_chain(paths, refuse)
    assert paths.chain.exists(), "a refused reset keeps the chain"
    paths.pid_file.write_text(f"{os.getpid()}\n")
    with pytest.raises(NodeRunning):
        reset_chain(paths)
    paths.pid_file.unlink()
    done = reset_chain(paths)
    assert done.deleted is True and not paths.chain.exists()


def test_dev_accounts_are_anvils() -> None:
    accounts = dev_accounts()
    assert accounts.mnemonic == DEV_MNEMONIC and len(accounts.accounts) == 10
    first = accounts.accounts[0]
    assert first.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert first.private_key == "0x" + dev_keys()[0].hex()


def test_a_serving_node_from_its_runtime_record() -> None:
    runtime = {
        "pid": 42,
        "rpc_url": "http://127.0.0.1:8545",
        "chain_id": 31313,
        "validator": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "dev": True,
        "block_time": 0.5,
        "height": 7,
        "started": 1_700_000_000.25,
    }
    info = NodeServing.from_runtime(runtime, validator_source="dev account 0")
    doc = NodeRun(info).model_dump(mode="json")
    assert doc["validator"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert doc["started_at"] == "2023-11-14T22:13:20.250Z"
    assert doc["block_time_s"] == 0.5 and doc["log"] is None


def test_cometbft_hashes_follow_the_convention() -> None:
    assert hex_hash("AB" * 32) == "0x" + "ab" * 32
    assert hex_hash(b"") is None and hex_hash("") is None
    trusted = TrustedHeader(height=1, hash=hex_hash("CD" * 32), source="--trust-hash")
    assert trusted.hash == "0x" + "cd" * 32
    header = LightHeader(
        height=5,
        hash=hex_hash("EF" * 32),
        app_hash=None,
        state_root_of_block=4,
        produced_at="2026-12-07T16:13:48.123456789Z",
        cometbft_chain_id="sahara-localnet",
        validators_hash=hex_hash("01" * 32),
    )
    assert header.model_dump(mode="json")["produced_at"] == "2026-12-07T16:13:48.123Z"


def test_a_localnet_that_is_not_there(tmp_path: Path) -> None:
    down = Localnet(tmp_path / "localnet").down(clean=True)
    assert down.existed is False and down.stopped == [] and down.removed is False
    assert down.model_dump(mode="json")["root"] == str(tmp_path / "localnet")
