"""``sahara localnet``: four CometBFT validators with their Sahara apps on 127.0.0.1,
driven through the CLI, under continuous load: web3.py threads send signed transfers to
the live validators the whole time. A transfer sent to one node is seen on another; the
chain goes on with three validators, halts with two, resumes when they come back; every
node ends on the same app hash, and every transaction that got a receipt is on every
node, in the same block."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from sahara_cli.node.genesis import DEFAULT_CHAIN_ID, dev_keys
from tests.cometbft import COMETBFT_BIN, cometbft_bin
from tests.e2e.cli_home import CliHome
from tests.e2e.conftest import fees

pytestmark = pytest.mark.e2e

SENDER = Account.from_key(dev_keys(5)[4])
RECIPIENT = Web3.to_checksum_address("0x" + "7c" * 20)
#: The senders of the background load: dev accounts 6 to 8 (the tests above use 4).
LOAD_SENDERS = [Account.from_key(key) for key in dev_keys(9)[6:9]]
LOAD_RECIPIENT = Web3.to_checksum_address("0x" + "7d" * 20)


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


@dataclass
class Receipted:
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    phase: str


@dataclass
class Load:
    """Signed transfers from :data:`LOAD_SENDERS`, one thread each, to whichever
    validators are live. A sender keeps one transaction in flight: it sends it to a live
    node (again to another one when no receipt comes, as a wallet would), waits for its
    receipt, records it, then signs the next nonce. So a node stopped with the
    transaction in its mempool never leaves a nonce gap behind."""

    urls: list[str]
    live: set[int] = field(default_factory=set)
    phase: str = "start"
    receipted: list[Receipted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.live = set(range(len(self.urls)))
        for i, account in enumerate(LOAD_SENDERS):
            thread = threading.Thread(target=self._run, args=(i, account), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads)

    def set_live(self, live: set[int], phase: str) -> None:
        with self.lock:
            self.live, self.phase = set(live), phase

    def count(self, phase: str) -> int:
        with self.lock:
            return sum(1 for r in self.receipted if r.phase == phase)

    def wait_count(self, phase: str, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(phase) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {self.count(phase)} receipts in phase {phase!r} after {timeout}s; "
                    f"load errors: {self.errors[-5:]}"
                )
            time.sleep(0.1)

    def _web3(self, i: int) -> Web3:
        return Web3(Web3.HTTPProvider(self.urls[i], request_kwargs={"timeout": 5}))

    def _pick(self, turn: int) -> int | None:
        with self.lock:
            live = sorted(self.live)
        return live[turn % len(live)] if live else None

    def _run(self, index: int, account: Any) -> None:
        nonce: int | None = None
        turns = itertools.count(index)
        while not self.stop.is_set():
            node = self._pick(next(turns))
            if node is None:
                self.stop.wait(0.2)
                continue
            w3 = self._web3(node)
            try:
                if nonce is None:
                    nonce = w3.eth.get_transaction_count(account.address, "latest")
                tx = {
                    "type": 2,
                    "chainId": DEFAULT_CHAIN_ID,
                    "nonce": nonce,
                    "to": LOAD_RECIPIENT,
                    "value": 1 + index,
                    "gas": 21_000,
                    "maxFeePerGas": 100 * 10**9,
                    "maxPriorityFeePerGas": 10**9,
                }
                signed = account.sign_transaction(tx)  # deterministic: the same bytes again
                try:
                    w3.eth.send_raw_transaction(signed.raw_transaction)
                except Exception as exc:  # already known, or mined meanwhile: look for it
                    if "already known" not in str(exc) and "nonce too low" not in str(exc):
                        raise
                receipt = self._receipt(w3, signed.hash, timeout=8.0)
            except Exception as exc:  # a node that stops under our feet; try another
                with self.lock:
                    self.errors.append(f"node {node}: {type(exc).__name__}: {exc}"[:300])
                self.stop.wait(0.2)
                continue
            if receipt is None:
                continue  # the chain halted, or the node lost it: send it again
            assert receipt["status"] == 1, receipt
            with self.lock:
                self.receipted.append(
                    Receipted(
                        bytes(signed.hash),
                        receipt["blockNumber"],
                        bytes(receipt["blockHash"]),
                        self.phase,
                    )
                )
            nonce += 1

    def _receipt(self, w3: Web3, tx_hash: bytes, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                return w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                self.stop.wait(0.1)
        return None


def assert_everywhere(urls: list[str], receipted: list[Receipted]) -> None:
    """Every receipted transaction is on every node, in the same block, successful."""
    for url in urls:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 15}))
        for r in receipted:
            receipt = w3.eth.get_transaction_receipt(HexBytes(r.tx_hash))
            assert receipt["status"] == 1, (url, receipt)
            assert (receipt["blockNumber"], bytes(receipt["blockHash"])) == (
                r.block_number,
                r.block_hash,
            ), (url, r)
            assert w3.eth.get_transaction(HexBytes(r.tx_hash))["blockHash"] == r.block_hash


def check_saps(url_in: str, url_out: str) -> None:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    signer = Signer(dev_keys(5)[4])
    into, out = Protocol(NodeClient(url_in)), Protocol(NodeClient(url_out))
    dataset, _ = into.register(
        signer, kind="dataset", cid="bafy-localnet-data", commitment=b"\1" * 32, name="d"
    )
    job, _ = into.training.submit(
        signer,
        kind="train",
        base=0,
        inputs=[dataset],
        weights_bps=[],
        hparams=b"\2" * 32,
        cid="bafy-localnet-model",
        commitment=b"\3" * 32,
        name="tuned",
        metrics='{"loss": 0.5}',
        upstream_bps=2_000,
        bond_wei=into.training.parameters()[0],
    )
    record, _ = into.inference.record(signer, dataset, b"\4" * 32, output_hash=b"\5" * 32)
    deadline = time.monotonic() + 30
    while out.training.job_count() < job or out.inference.record_count() < record:
        assert time.monotonic() < deadline, "node 3 never saw the SAP writes of node 0"
        time.sleep(0.1)
    got = out.training.get_job(job)
    assert (got.status, got.inputs, got.cid) == ("pending", [dataset], "bafy-localnet-model")
    assert out.inference.get_record(record).output_hash == "0x" + "05" * 32


def test_a_dispute_game_runs_the_same_on_every_validator(tmp_path: Path) -> None:
    """A claim with one wrong operation, challenged through node 0 and bisected to that
    operation, whose one-step check every validator re-executes: node 3 reads the same
    resolution, and every node ends on the same app hash."""
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol
    from tests.unit.dispute_players import Run, play, tiny_sgd

    cometbft_bin()
    home = CliHome(tmp_path / "home", env={"SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""})
    try:
        nodes = home.ok("localnet", "up", "--validators", "4", "--block-time", "0.5s")["nodes"]
        comets = [n["cometbft_rpc_url"] for n in nodes]
        wait_height(comets, 3)
        into = Protocol(NodeClient(nodes[0]["eth_rpc_url"]))
        out = Protocol(NodeClient(nodes[3]["eth_rpc_url"]))
        claimer, challenger = (Signer(k) for k in dev_keys(3)[1:])
        honest = Run(tiny_sgd(steps=2, layers=(2, 1), rows=2))
        wrong = Run(honest.first, corrupt=3)
        assert honest.program.length == 8 and wrong.roots[-1] != honest.roots[-1]
        bond = into.disputes.parameters()[0]
        claim, _ = into.disputes.claim(
            claimer, kind="inference", subject=0, bond_wei=bond, **wrong.claim_args()
        )
        dispute, _ = into.disputes.challenge(challenger, claim, bond)
        played = play(
            into.disputes,
            dispute,
            claimer=claimer,
            claimed=wrong,
            challenger=challenger,
            believed=honest,
        )
        assert played.rounds == 3
        deadline = time.monotonic() + 30
        while out.disputes.dispute_count() < dispute or (
            out.disputes.get_dispute(dispute).turn != "resolved"
        ):
            assert time.monotonic() < deadline, "node 3 never saw the dispute resolved"
            time.sleep(0.1)
        seen = out.disputes.get_dispute(dispute)
        assert (seen.lo, seen.hi, seen.rounds) == (3, 4, 3)
        assert seen.winner.lower() == challenger.address.lower()
        assert out.disputes.get_claim(claim).status == "rejected"
        assert [m.name for m in out.disputes.moves(dispute)][-1] == "Resolved"
        wait_height(comets, max(height(u) for u in comets) + 2)
        common = min(height(u) for u in comets)
        assert len(app_hashes(comets, common)) == 1
    finally:
        down = home.run("localnet", "down")
    assert down.returncode == 0, down.stderr


def test_localnet_of_four_validators(tmp_path: Path) -> None:
    cometbft_bin()
    home = CliHome(tmp_path / "home", env={"SAHARA_COMETBFT_BIN": COMETBFT_BIN or ""})
    pids: list[int] = []
    load: Load | None = None
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

        # The SAPs run in every validator's EVM: a training job and an answer recorded
        # through node 0 are read back from node 3, and the app hashes still agree.
        check_saps(nodes[0]["eth_rpc_url"], nodes[3]["eth_rpc_url"])
        wait_height(comets, max(height(u) for u in comets) + 2)
        common = min(height(u) for u in comets)
        assert len(app_hashes(comets, common)) == 1

        # From here on, transfers flow to the live validators the whole time.
        load = Load([n["eth_rpc_url"] for n in nodes])
        load.start()
        load.wait_count("start", 3)

        # Three of four validators (3/4 > 2/3 of the power) keep making blocks.
        load.set_live({0, 1, 2}, "three")
        home.ok("localnet", "stop-node", "3")
        live = comets[:3]
        before = max(height(u) for u in live)
        wait_height(live, before + 3)
        load.wait_count("three", 3)

        # Two of four do not: the chain halts.
        load.set_live({0, 1}, "halted")
        home.ok("localnet", "stop-node", "2")
        live = comets[:2]
        time.sleep(1.5)
        halted = max(height(u) for u in live)
        time.sleep(3.0)
        assert max(height(u) for u in live) == halted

        # Both come back: blocks again, and every node catches up.
        load.set_live({0, 1}, "restarting")
        home.ok("localnet", "start-node", "2")
        home.ok("localnet", "start-node", "3")
        load.set_live({0, 1, 2, 3}, "resumed")
        wait_height(comets, halted + 3, timeout=60)
        load.wait_count("resumed", 3)
        load.finish()
        # Every node past the last block a receipt named, then the same app hash...
        last = max(r.block_number for r in load.receipted)
        wait_height(comets, last + 2, timeout=60)
        common = min(height(u) for u in comets)
        assert len(app_hashes(comets, common)) == 1
        # ...and every transaction that got a receipt, on every node, in the same block.
        assert_everywhere([n["eth_rpc_url"] for n in nodes], load.receipted)
        phases = {p: load.count(p) for p in ("start", "three", "halted", "restarting", "resumed")}
        print(f"load: {len(load.receipted)} receipted transfers on 4 nodes, by phase {phases}")
        # Nothing was mined while two validators were down: receipts of that phase, if
        # any, are of blocks made before the halt.
        assert all(r.block_number <= halted for r in load.receipted if r.phase == "halted")
        status = home.ok("localnet", "status")
        assert all(n["running"] for n in status["nodes"]), status
        pids += [p for n in status["nodes"] for p in (n["app_pid"], n["cometbft_pid"])]
        logs = home.ok("localnet", "logs", "2", "-n", "5")
        assert len(logs["cometbft"]["lines"]) == 5
    finally:
        if load is not None:
            load.stop.set()
        down = home.run("localnet", "down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
    assert home.ok("localnet", "status")["running"] == 0
    assert home.ok("localnet", "down", "--clean")["removed"] is True
    assert not (home.root / "localnet").exists()
