"""``sahara light`` against a 2-validator localnet: headers verified by CometBFT's light
client (node 1 as the witness of node 0), balances and storage verified with
eth_getProof against the state root a verified header carries; a node that forges an
eth_getProof answer, or a wrong trust root, is refused with one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from sahara_cli.errors import ExitCode
from sahara_cli.node.genesis import dev_keys
from tests.cometbft import COMETBFT_BIN, cometbft_bin
from tests.e2e.conftest import deploy, load_artifact, send_signed
from tests.e2e.nodes import RunningLocalnet, start_localnet
from tests.schemas import check

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENDER = Account.from_key(dev_keys(3)[2])
FRESH = Web3.to_checksum_address("0x" + "5e" * 20)


@pytest.fixture(scope="module")
def net() -> Iterator[RunningLocalnet]:
    node = start_localnet(2, block_time=0.3, cometbft_bin=cometbft_bin())
    with node:
        yield node


def comet_urls(net: RunningLocalnet) -> list[str]:
    status = net.net.status()
    return [n.cometbft_rpc_url for n in status.nodes]


def light(
    tmp_path: Path, net: RunningLocalnet, *args: str, rpc: str | None = None, json_mode: bool = True
) -> subprocess.CompletedProcess[str]:
    primary, witness = comet_urls(net)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env |= {"SAHARA_HOME": str(tmp_path / "home"), "SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""}
    flags = ["--rpc", rpc or net.url, "--comet-rpc", primary, "--witness", witness]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sahara_cli",
            *(["--json"] if json_mode else []),
            "--no-prompt",
            "light",
            *args,
            *flags,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    check(result.args, document)
    return document


def error(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return doc


def test_a_balance_is_verified_against_a_verified_header(
    tmp_path: Path, net: RunningLocalnet
) -> None:
    w3 = Web3(Web3.HTTPProvider(net.url, request_kwargs={"timeout": 15}))
    receipt = send_signed(w3, SENDER, {"to": FRESH, "value": 31_337, "gas": 21_000})
    number = receipt["blockNumber"]

    doc = ok(light(tmp_path, net, "balance", FRESH, "--block", str(number)))
    assert doc["verified"] is True
    assert doc["balance_wei"] == "31337" and doc["balance_sah"] == "0.000000000000031337"
    assert doc["nonce"] == 0
    assert doc["block"] == number
    # The header that carries block N's state root is CometBFT's header N + 1.
    assert doc["header"]["height"] == number + 1
    assert doc["state_root"] == w3.eth.get_block(number)["stateRoot"].to_0x_hex()
    assert doc["trusted"]["height"] == 1
    assert doc["header"]["hash"].startswith("0x") and doc["header"]["produced_at"].endswith("Z")

    # The newest verified block, for an account the genesis funded.
    latest = ok(light(tmp_path, net, "balance", SENDER.address))
    assert latest["block"] >= number
    assert int(latest["balance_wei"]) == w3.eth.get_balance(SENDER.address, latest["block"])

    # People get the amount and what it was verified against.
    human = light(tmp_path, net, "balance", FRESH, "--block", str(number), json_mode=False)
    assert human.returncode == 0, human.stderr
    assert "SAH" in human.stdout and f"block {number}" in human.stdout
    assert "verified" in human.stdout


def test_storage_is_verified_and_headers_are_followed(tmp_path: Path, net: RunningLocalnet) -> None:
    w3 = Web3(Web3.HTTPProvider(net.url, request_kwargs={"timeout": 15}))
    counter = deploy(w3, SENDER, load_artifact("Counter"))
    receipt = send_signed(
        w3,
        SENDER,
        counter.functions.set(0x2A).build_transaction(
            {"from": SENDER.address, "nonce": w3.eth.get_transaction_count(SENDER.address)}
        ),
    )
    doc = ok(
        light(
            tmp_path, net, "storage", counter.address, "0", "--block", str(receipt["blockNumber"])
        )
    )
    assert doc["storage"] == {"0x0": "0x2a"}
    assert doc["nonce"] == 1  # a contract starts at nonce 1

    head = ok(light(tmp_path, net, "head"))
    assert head["height"] > receipt["blockNumber"]
    assert head["state_root_of_block"] == head["height"] - 1
    assert head["trusted"]["height"] == 1 and head["verified"] is True

    followed = light(tmp_path, net, "follow", "--count", "3", "--interval", "0.2")
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert all(line["verified"] is True and "produced_at" in line for line in lines)
    heights = [line["height"] for line in lines]
    assert len(heights) == 3 and heights == sorted(set(heights))
    assert heights == list(range(heights[0], heights[0] + 3))


class Forger:
    """An HTTP proxy in front of a node's JSON-RPC that rewrites eth_getProof answers."""

    def __init__(self, upstream: str, forge: Callable[[dict[str, Any]], None]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(
                    upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=15) as resp:
                    doc = json.load(resp)
                if json.loads(body).get("method") == "eth_getProof" and "result" in doc:
                    forge(doc["result"])
                    outer.forged += 1
                out = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.forged = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Forger:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def richer(result: dict[str, Any]) -> None:
    result["balance"] = hex(int(result["balance"], 16) + 10**24)


def tampered_leaf(result: dict[str, Any]) -> None:
    """The balance and the proof's last node (the account leaf) both rewritten: the
    node's hash no longer matches its parent's reference."""
    richer(result)
    last = result["accountProof"][-1]
    result["accountProof"][-1] = last[:-8] + ("00000000" if last[-8:] != "00000000" else "11111111")


@pytest.mark.parametrize("forge", [richer, tampered_leaf], ids=["balance", "proof"])
def test_a_forged_proof_is_refused(
    tmp_path: Path, net: RunningLocalnet, forge: Callable[[dict[str, Any]], None]
) -> None:
    with Forger(net.url, forge) as forger:
        result = light(tmp_path, net, "balance", SENDER.address, rpc=forger.url)
        assert forger.forged == 1
        assert result.returncode == ExitCode.INVALID_DATA, result.stderr
        assert result.stdout == ""
        err = error(result)
        assert err["code"] == "light.proof_invalid"
        assert "verified state" in err["message"]

        human = light(tmp_path, net, "balance", SENDER.address, rpc=forger.url, json_mode=False)
    assert human.returncode == ExitCode.INVALID_DATA
    lines = human.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "verified state" in lines[0]
    assert "Traceback" not in human.stderr


def test_a_wrong_trust_root_is_refused(tmp_path: Path, net: RunningLocalnet) -> None:
    result = light(
        tmp_path, net, "balance", SENDER.address, "--trust-height", "1", "--trust-hash", "ab" * 32
    )
    assert result.returncode == ExitCode.INVALID_DATA, result.stderr
    err = error(result)
    assert err["code"] == "light.header_rejected"
    assert "AB" * 8 in err["message"]
