"""JSON-RPC throughput, latency and memory of a node, against Hardhat's node in the same run.

    python benchmarks/node_rpc.py [--target sahara|hardhat|none|URL] [--target-cmd CMD]
                                  [--peer hardhat|none] [--quick] [--rss-txs N[,N...]]
                                  [--json-out FILE]

The same workload runs on each node in turn (the peer, then the target; never both at
once), each started fresh on a free loopback port and stopped afterwards:

  transfers    2,000 EIP-1559 transfers from eight dev accounts, signed before timing,
               sent with eth_sendRawTransaction one after another over one keep-alive
               HTTP connection; confirmed tx/s = count / (first send -> last receipt)
  writes       1,000 Counter.increment() calls (a storage write and an event each),
               measured the same way
  blockNumber  latency of 2,000 sequential eth_blockNumber calls (p50, p99)
  eth_call     latency of 2,000 sequential eth_call of Counter.double(x) (p50, p99)
  rss          resident memory (VmRSS of the node's process tree) after start-up and
               after N more transfers, for each N of --rss-txs (10,000 and 100,000);
               also RssAnon, the heap without file pages (a memory-mapped database's
               pages count in VmRSS but are page cache the kernel reclaims)

Every phase checks its outcome outside the timed part (nonces advanced by the count
sent, the counter holds the number of increments), so a node that drops transactions
cannot look fast. ``--quick`` runs small counts (200 / 100 / 200 calls, RSS after 1,000).

Targets: ``sahara`` runs ``sahara node run --dev --rpc-addr 127.0.0.1:PORT``;
``hardhat`` a second Hardhat node (to check the harness: ratios near 1); a URL, or
``--target-url URL``, a node that is already running (pass ``--target-pid`` for its
memory); ``--target-cmd "CMD"`` any command, ``{port}`` in it replaced by the port;
``none`` only the peer. Nodes must fund the ten accounts of the mnemonic "test test
... junk" (Hardhat and anvil do). Hardhat runs on automine with its per-request console
log turned off. Needs ``source scripts/_setup.sh`` (Node.js 22 and Hardhat for the peer).

Prints a table, then one JSON document with every figure and the target/peer ratios
(throughput ratio > 1 and latency or memory ratio < 1 mean the target is better).
Exit status 1 when a node does not start or a phase fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
import httpx
import rlp
from eth_account import Account
from eth_utils import keccak, to_bytes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the node launchers are shared with the end-to-end tests

from _common import finish, machine, ratio_table, say  # noqa: E402

from tests.e2e.nodes import (  # noqa: E402
    NodeStartError,
    RunningNode,
    rss_bytes,
    start_command,
    start_hardhat,
    start_sahara,
)

MNEMONIC = "test test test test test test test test test test test junk"
DEPLOYER = 0
SENDERS = range(1, 9)  # eight accounts take turns, so no one nonce chain stands alone
GWEI = 10**9
# Fixed fees, far above any base fee a dev chain reaches: a signed transaction does not
# depend on the node's state beyond the nonce, so one signature serves every node.
MAX_FEE = 100 * GWEI
TIP = GWEI
TRANSFER_GAS = 21_000
WRITE_GAS = 100_000
FULL = {"transfers": 2_000, "writes": 1_000, "calls": 2_000, "rss_txs": "10000,100000"}
QUICK = {"transfers": 200, "writes": 100, "calls": 200, "rss_txs": "1000"}
WARMUP_CALLS = 50
POLL_PAUSE_S = 0.002


class BenchError(RuntimeError):
    pass


# --- signing -------------------------------------------------------------------------


class Signer:
    """EIP-1559 signatures straight from coincurve (eth-account takes ~1.4 ms each, too
    slow for 100,000); checked against eth-account once at start-up."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = [coincurve.PrivateKey(key) for key in keys]
        self.addresses = [Account.from_key(key).address for key in keys]

    def sign(
        self, chain_id: int, index: int, nonce: int, to: str, data: bytes, gas: int
    ) -> tuple[str, str]:
        """Raw type-2 transaction and its hash, both 0x-hex. A transfer (no calldata)
        carries 1 wei; a contract call none."""
        value = 1 if not data else 0
        fields = [chain_id, nonce, TIP, MAX_FEE, gas, to_bytes(hexstr=to), value, data, []]
        digest = keccak(b"\x02" + rlp.encode(fields))
        signature = self.keys[index].sign_recoverable(digest, hasher=None)
        r, s, y_parity = signature[:32], signature[32:64], signature[64]
        raw = b"\x02" + rlp.encode([*fields, y_parity, r.lstrip(b"\0"), s.lstrip(b"\0")])
        return "0x" + raw.hex(), "0x" + keccak(raw).hex()

    def self_check(self) -> None:
        to = self.addresses[0]
        raw, tx_hash = self.sign(31337, 1, 7, to, b"", TRANSFER_GAS)
        reference = Account.from_key(self.keys[1].secret).sign_transaction(
            {
                "type": 2,
                "chainId": 31337,
                "nonce": 7,
                "to": to,
                "value": 1,
                "gas": TRANSFER_GAS,
                "maxFeePerGas": MAX_FEE,
                "maxPriorityFeePerGas": TIP,
            }
        )
        assert raw == "0x" + reference.raw_transaction.hex(), "fast signer disagrees"
        assert tx_hash == "0x" + reference.hash.hex()


def dev_keys() -> list[bytes]:
    Account.enable_unaudited_hdwallet_features()
    return [
        bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(10)
    ]


# --- JSON-RPC over one connection ----------------------------------------------------


class Rpc:
    """Sequential JSON-RPC over one keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=60.0)
        self.next_id = 0

    def body(self, method: str, params: list[Any]) -> bytes:
        self.next_id += 1
        doc = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        return json.dumps(doc).encode()

    def post(self, body: bytes) -> Any:
        reply = self.client.post(
            self.url, content=body, headers={"content-type": "application/json"}
        )
        doc = reply.json()
        if "error" in doc:
            raise BenchError(f"{json.loads(body)['method']}: {doc['error']}")
        return doc["result"]

    def call(self, method: str, *params: Any) -> Any:
        return self.post(self.body(method, list(params)))

    def close(self) -> None:
        self.client.close()


def wait_for(rpc: Rpc, tx_hashes: list[str], timeout: float) -> None:
    """Until each hash has a receipt. Polls the given hashes only: callers pass each
    sender's last transaction, whose receipt implies all earlier ones (nonce order)."""
    deadline = time.monotonic() + timeout
    pending = list(tx_hashes)
    while pending:
        pending = [h for h in pending if rpc.call("eth_getTransactionReceipt", h) is None]
        if pending and time.monotonic() > deadline:
            raise BenchError(f"{len(pending)} transactions unconfirmed after {timeout:.0f} s")
        if pending:
            time.sleep(POLL_PAUSE_S)


@dataclass
class Batch:
    bodies: list[bytes]
    last_per_sender: list[str]
    expected_nonces: dict[str, int] = field(default_factory=dict)


def prepare(
    rpc: Rpc,
    signer: Signer,
    chain_id: int,
    count: int,
    target: Callable[[int], tuple[str, bytes, int]],
) -> Batch:
    """Sign ``count`` transactions round-robin over SENDERS; ``target(i)`` gives the
    recipient, calldata and gas of the i-th."""
    nonces = {
        i: int(rpc.call("eth_getTransactionCount", signer.addresses[i], "pending"), 16)
        for i in SENDERS
    }
    bodies, last = [], {}
    for n in range(count):
        sender = SENDERS[n % len(SENDERS)]
        to, data, gas = target(n)
        raw, tx_hash = signer.sign(chain_id, sender, nonces[sender], to, data, gas)
        nonces[sender] += 1
        last[sender] = tx_hash
        bodies.append(rpc.body("eth_sendRawTransaction", [raw]))
    expected = {signer.addresses[i]: nonces[i] for i in SENDERS}
    return Batch(bodies, list(last.values()), expected)


def send_and_confirm(rpc: Rpc, batch: Batch) -> float:
    """Seconds from the first send to the last receipt; then checks every nonce."""
    start = time.perf_counter()
    for body in batch.bodies:
        rpc.post(body)
    wait_for(rpc, batch.last_per_sender, timeout=max(120.0, len(batch.bodies) / 20))
    elapsed = time.perf_counter() - start
    for address, nonce in batch.expected_nonces.items():
        mined = int(rpc.call("eth_getTransactionCount", address, "latest"), 16)
        if mined != nonce:
            raise BenchError(f"{address}: nonce {mined} after the run, expected {nonce}")
    return elapsed


# --- the phases ----------------------------------------------------------------------


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1e3, 3), "p99_ms": round(cuts[98] * 1e3, 3)}


def latency(rpc: Rpc, bodies: list[bytes]) -> dict[str, float]:
    for body in bodies[:WARMUP_CALLS]:
        rpc.post(body)
    samples = []
    for body in bodies:
        start = time.perf_counter()
        rpc.post(body)
        samples.append(time.perf_counter() - start)
    return percentiles_ms(samples)


def deploy_counter(rpc: Rpc, keys: list[bytes], chain_id: int) -> str:
    artifact = json.loads((ROOT / "tests/e2e/contracts/Counter.json").read_text())
    deployer = Account.from_key(keys[DEPLOYER])
    nonce = int(rpc.call("eth_getTransactionCount", deployer.address, "pending"), 16)
    signed = deployer.sign_transaction(
        {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "to": None,
            "value": 0,
            "data": artifact["bytecode"],
            "gas": 1_000_000,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": TIP,
        }
    )
    tx_hash = rpc.call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    wait_for(rpc, [tx_hash], timeout=60)
    receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
    if int(receipt["status"], 16) != 1:
        raise BenchError("deploying Counter failed")
    address: str = receipt["contractAddress"]
    return address


def run_workload(
    url: str, pid: int | None, signer: Signer, keys: list[bytes], counts: dict[str, Any]
) -> dict[str, Any]:
    rpc = Rpc(url)
    try:
        chain_id = int(rpc.call("eth_chainId"), 16)
        result: dict[str, Any] = {
            "client": rpc.call("web3_clientVersion"),
            "chain_id": chain_id,
            "rss_start_mib": mib(rss_bytes(pid)) if pid else None,
        }
        counter = deploy_counter(rpc, keys, chain_id)
        recipients = ["0x" + keccak(b"recipient%d" % i)[:20].hex() for i in range(100)]

        def transfer(n: int) -> tuple[str, bytes, int]:
            return recipients[n % len(recipients)], b"", TRANSFER_GAS

        increment = keccak(text="increment()")[:4]

        def write(_n: int) -> tuple[str, bytes, int]:
            return counter, increment, WRITE_GAS

        batch = prepare(rpc, signer, chain_id, counts["transfers"], transfer)
        seconds = send_and_confirm(rpc, batch)
        result["transfers_per_s"] = round(counts["transfers"] / seconds, 1)

        batch = prepare(rpc, signer, chain_id, counts["writes"], write)
        seconds = send_and_confirm(rpc, batch)
        result["writes_per_s"] = round(counts["writes"] / seconds, 1)
        count_call = {"to": counter, "data": "0x" + keccak(text="count()")[:4].hex()}
        if int(rpc.call("eth_call", count_call, "latest"), 16) != counts["writes"]:
            raise BenchError("Counter.count() is not the number of increments sent")

        block_number = [rpc.body("eth_blockNumber", []) for _ in range(counts["calls"])]
        result["eth_blockNumber"] = latency(rpc, block_number)
        double = keccak(text="double(uint256)")[:4]
        calls = [
            rpc.body(
                "eth_call",
                [{"to": counter, "data": "0x" + (double + n.to_bytes(32, "big")).hex()}, "latest"],
            )
            for n in range(counts["calls"])
        ]
        result["eth_call"] = latency(rpc, calls)

        result["rss_mib"] = {}
        result["rss_anon_mib"] = {}
        sent = 0
        for checkpoint in counts["rss_txs"]:
            batch = prepare(rpc, signer, chain_id, checkpoint - sent, transfer)
            send_and_confirm(rpc, batch)
            sent = checkpoint
            result["rss_mib"][str(checkpoint)] = mib(rss_bytes(pid)) if pid else None
            anon = mib(rss_bytes(pid, "RssAnon")) if pid else None
            result["rss_anon_mib"][str(checkpoint)] = anon
        return result
    finally:
        rpc.close()


def mib(size: int) -> float:
    return round(size / 2**20, 1)


# --- nodes and reporting -------------------------------------------------------------


@dataclass
class NodeSpec:
    label: str
    start: Callable[[], RunningNode] | None = None
    url: str | None = None
    pid: int | None = None


def target_spec(args: argparse.Namespace) -> NodeSpec | None:
    if args.target_cmd:
        return NodeSpec("command", start=lambda: start_command(args.target_cmd, kind="target"))
    target = args.target_url or args.target
    if target == "none":
        return None
    if target == "sahara":
        return NodeSpec("sahara", start=start_sahara)
    if target == "hardhat":
        return NodeSpec("hardhat", start=lambda: start_hardhat(quiet=True))
    if target.startswith(("http://", "https://")):
        return NodeSpec(target, url=target, pid=args.target_pid)
    raise SystemExit(f"error: --target {target!r}: sahara, hardhat, none or an http(s) URL")


def measure(spec: NodeSpec, signer: Signer, keys: list[bytes], counts: dict[str, Any]) -> Any:
    say(f"{spec.label}: starting")
    if spec.start is None:
        assert spec.url is not None
        return run_workload(spec.url, spec.pid, signer, keys, counts)
    node = spec.start()
    with node:
        say(f"{spec.label}: {node.url} (pid {node.pid}); running the workload")
        return run_workload(node.url, node.pid, signer, keys, counts)


ROWS = [
    ("confirmed transfers/s", ("transfers_per_s",), "higher"),
    ("contract writes/s", ("writes_per_s",), "higher"),
    ("eth_blockNumber p50 ms", ("eth_blockNumber", "p50_ms"), "lower"),
    ("eth_blockNumber p99 ms", ("eth_blockNumber", "p99_ms"), "lower"),
    ("eth_call p50 ms", ("eth_call", "p50_ms"), "lower"),
    ("eth_call p99 ms", ("eth_call", "p99_ms"), "lower"),
    ("RSS at start MiB", ("rss_start_mib",), "lower"),
]


def rows(counts: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
    extra = [(f"RSS after {n:,} txs MiB", ("rss_mib", str(n)), "lower") for n in counts["rss_txs"]]
    extra += [
        (f"anon RSS after {n:,} txs MiB", ("rss_anon_mib", str(n)), "lower")
        for n in counts["rss_txs"]
    ]
    return ROWS + extra


def report(
    peer: dict[str, Any] | None, target: dict[str, Any] | None, counts: dict[str, Any]
) -> dict[str, Any]:
    """Print the table; return the target/peer ratio of each figure."""
    names = [(result or {}).get("node", "-")[:11] for result in (peer, target)]
    return ratio_table(peer, target, rows(counts), names, width=28)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="sahara", help="sahara, hardhat, none or a URL")
    parser.add_argument("--target-url", help="a running node to measure (same as --target URL)")
    parser.add_argument("--target-cmd", help='command that starts the target; "{port}" in it')
    parser.add_argument("--target-pid", type=int, help="pid of a --target-url node, for RSS")
    parser.add_argument("--peer", default="hardhat", choices=["hardhat", "none"])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--transfers", type=int)
    parser.add_argument("--writes", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--rss-txs", help="transfers after which to read RSS, e.g. 10000,100000")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts: dict[str, Any] = dict(QUICK if args.quick else FULL)
    for name in ("transfers", "writes", "calls", "rss_txs"):
        if getattr(args, name) is not None:
            counts[name] = getattr(args, name)
    counts["rss_txs"] = sorted({int(n) for n in str(counts["rss_txs"]).split(",") if n})
    if min(counts["transfers"], counts["writes"], counts["calls"]) < 2:
        raise SystemExit("error: --transfers, --writes and --calls must be at least 2")

    keys = dev_keys()
    signer = Signer(keys)
    signer.self_check()
    spec = target_spec(args)
    results: dict[str, dict[str, Any] | None] = {"peer": None, "target": None}
    error = None
    try:
        # The target first: when it cannot start, that is known in seconds.
        if spec is not None:
            results["target"] = {"node": spec.label, **measure(spec, signer, keys, counts)}
        if args.peer == "hardhat":
            peer_spec = NodeSpec("hardhat (peer)", start=lambda: start_hardhat(quiet=True))
            results["peer"] = {"node": "hardhat", **measure(peer_spec, signer, keys, counts)}
    except (NodeStartError, BenchError, httpx.HTTPError) as exc:
        error = str(exc)
    ratios = report(results["peer"], results["target"], counts) if any(results.values()) else {}
    doc = {
        "benchmark": "node_rpc",
        "counts": counts,
        "machine": machine(),
        **results,
        "ratios_target_over_peer": ratios,
        "error": error,
    }
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
