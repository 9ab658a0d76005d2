"""``sahara node run --abci tcp://...``: the node as the application of a real CometBFT
validator, started from the CLI; web3.py sees its blocks and its transfers. An ABCI
address already taken is one clear error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from sahara_cli.errors import ExitCode
from sahara_cli.node.genesis import dev_keys
from tests.cometbft import CometNode, cometbft_bin, free_port, running_node
from tests.e2e.conftest import send_signed

pytestmark = pytest.mark.e2e

SENDER = Account.from_key(dev_keys(4)[3])
RECIPIENT = Web3.to_checksum_address("0x" + "4d" * 20)


def sahara(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sahara_cli", "--home", str(home), "--json", *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}


def test_node_run_abci_is_a_cometbft_application(tmp_path: Path) -> None:
    cometbft_bin()
    home = tmp_path / "home"
    abci_port, rpc_port, comet_port = free_port(), free_port(), free_port()
    comet = CometNode(tmp_path / "cometbft")
    comet.init()
    comet.configure(f"tcp://127.0.0.1:{abci_port}", rpc_port=comet_port)
    argv = sahara(
        home,
        "node",
        "run",
        "--abci",
        f"tcp://127.0.0.1:{abci_port}",
        "--dev",
        "--rpc-addr",
        f"127.0.0.1:{rpc_port}",
        "--comet-rpc",
        f"http://127.0.0.1:{comet_port}",
    )
    log = (tmp_path / "app.log").open("wb")
    app = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env())
    try:
        assert app.stdout is not None
        text = ""  # one JSON document once the ABCI server listens
        while not text.endswith("}\n"):
            line = app.stdout.readline().decode()
            assert line, (tmp_path / "app.log").read_text()
            text += line
        info = json.loads(text)
        assert info["abci"] == f"tcp://127.0.0.1:{abci_port}"
        assert Path(info["data_dir"]) == home / "node" / "abci"
        with running_node(comet):
            comet.wait_height(2, timeout=60)
            w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{rpc_port}"))
            assert w3.eth.block_number >= 1
            receipt = send_signed(w3, SENDER, {"to": RECIPIENT, "value": 77, "gas": 21_000})
            assert receipt["status"] == 1
            assert w3.eth.get_balance(RECIPIENT) == 77
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
        status = app.wait(timeout=30)
        log.close()
    assert status == 0, (tmp_path / "app.log").read_text()
    assert (home / "node" / "abci" / "chain").is_dir()


def test_an_abci_address_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = subprocess.run(
            sahara(
                tmp_path / "home",
                "node",
                "run",
                "--abci",
                f"tcp://127.0.0.1:{port}",
                "--dev",
                "--rpc-addr",
                f"127.0.0.1:{free_port()}",
            ),
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == ExitCode.ERROR, done.stderr
    assert done.stdout == ""
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "node.error"
    assert f"tcp://127.0.0.1:{port}" in error["message"]
    assert "Traceback" not in done.stderr
