"""Confirmed tx/s and time to finality of a ``sahara localnet``: 4 validators against 1.

    python benchmarks/localnet.py [--validators 4] [--block-time 0.5] [--quick]
                                  [--transfers N] [--finality N] [--json-out FILE]

The same workload runs on each localnet in turn (the peer, 1 validator, then the
target, N validators; never both at once), each created fresh on loopback ports under
a scratch folder and taken down afterwards. Both use the same block time
(``timeout_commit``, ``--block-time``) and send everything to validator 0's JSON-RPC:

  transfers  1,000 EIP-1559 transfers from eight dev accounts, signed before timing,
             sent with eth_sendRawTransaction one after another over one keep-alive
             HTTP connection (each goes through CheckTx and CometBFT's mempool);
             confirmed tx/s = count / (first send -> last receipt)
  finality   100 transfers one at a time: seconds from eth_sendRawTransaction to its
             receipt on the node it was sent to (p50, p95). Under CometBFT a committed
             block is final, so the receipt is finality, not one confirmation of many.
  blocks     the block interval while idle: heights over 5 s of CometBFT's status

Every phase checks its outcome outside the timed part (nonces advanced by the count
sent), so a network that drops transactions cannot look fast. ``--quick`` runs small
counts (200 transfers, 20 finality samples).

Prints a table, then one JSON document with every figure and the target/peer ratios
(a throughput ratio > 1 and a latency ratio < 1 mean more validators cost nothing).
Needs ``source scripts/_setup.sh`` (it builds CometBFT and exports SAHARA_COMETBFT_BIN).
Exit status 1 when a localnet does not start or a phase fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the node launchers are shared with the end-to-end tests
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import finish, machine, ratio_table, say  # noqa: E402
from node_rpc import (  # noqa: E402
    SENDERS,
    TRANSFER_GAS,
    BenchError,
    Rpc,
    Signer,
    dev_keys,
    prepare,
    send_and_confirm,
    wait_for,
)

from tests.e2e.nodes import NodeStartError, RunningLocalnet, start_localnet  # noqa: E402

FULL = {"transfers": 1_000, "finality": 100}
QUICK = {"transfers": 200, "finality": 20}
RECIPIENT = "0x" + "be" * 20
IDLE_S = 5.0
ROWS = [
    ("confirmed tx/s", ("transfers", "tx_per_s"), "higher"),
    ("finality p50 ms", ("finality", "p50_ms"), "lower"),
    ("finality p95 ms", ("finality", "p95_ms"), "lower"),
    ("block interval ms", ("blocks", "interval_ms"), "lower"),
]


def comet_height(url: str) -> int:
    reply = httpx.get(f"{url}/status", timeout=10.0)
    return int(reply.json()["result"]["sync_info"]["latest_block_height"])


def block_interval(net: RunningLocalnet) -> float:
    """Mean seconds per block over IDLE_S seconds without transactions."""
    url = net.net.status().nodes[0].cometbft_rpc_url
    start_height, start = comet_height(url), time.perf_counter()
    time.sleep(IDLE_S)
    blocks = comet_height(url) - start_height
    return (time.perf_counter() - start) / max(1, blocks)


def finality(rpc: Rpc, signer: Signer, chain_id: int, count: int) -> dict[str, float]:
    """Send one transfer, wait for its receipt, repeat; percentiles of the waits."""
    sender = SENDERS[0]
    nonce = int(rpc.call("eth_getTransactionCount", signer.addresses[sender], "pending"), 16)
    samples = []
    for n in range(count):
        raw, tx_hash = signer.sign(chain_id, sender, nonce + n, RECIPIENT, b"", TRANSFER_GAS)
        start = time.perf_counter()
        rpc.call("eth_sendRawTransaction", raw)
        wait_for(rpc, [tx_hash], timeout=60.0)
        samples.append(time.perf_counter() - start)
    mined = int(rpc.call("eth_getTransactionCount", signer.addresses[sender], "latest"), 16)
    if mined != nonce + count:
        raise BenchError(f"nonce {mined} after the finality phase, expected {nonce + count}")
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1e3, 1),
        "p95_ms": round(cuts[94] * 1e3, 1),
        "mean_ms": round(statistics.fmean(samples) * 1e3, 1),
        "count": count,
    }


def measure(
    validators: int, block_time: float, signer: Signer, counts: dict[str, int], binary: str | None
) -> dict[str, Any]:
    say(f"starting a localnet of {validators} (blocks every {block_time:g} s)")
    with start_localnet(validators, block_time=block_time, cometbft_bin=binary) as net:
        rpc = Rpc(net.url)
        try:
            chain_id = int(rpc.call("eth_chainId"), 16)
            say(f"{validators}: block interval while idle")
            interval = block_interval(net)
            say(f"{validators}: {counts['transfers']} transfers")
            batch = prepare(
                rpc,
                signer,
                chain_id,
                counts["transfers"],
                lambda _n: (RECIPIENT, b"", TRANSFER_GAS),
            )
            elapsed = send_and_confirm(rpc, batch)
            say(f"{validators}: {counts['finality']} transfers one at a time")
            final = finality(rpc, signer, chain_id, counts["finality"])
            height = int(rpc.call("eth_blockNumber"), 16)
        finally:
            rpc.close()
    return {
        "validators": validators,
        "block_time_s": block_time,
        "blocks": {"interval_ms": round(interval * 1e3, 1)},
        "transfers": {
            "count": counts["transfers"],
            "seconds": round(elapsed, 3),
            "tx_per_s": round(counts["transfers"] / elapsed, 2),
        },
        "finality": final,
        "height_at_end": height,
    }


def report(peer: dict[str, Any] | None, target: dict[str, Any] | None) -> dict[str, Any]:
    """Print the table; return the target/peer ratio of each figure."""
    names = [f"{(r or {}).get('validators', '-')} val." for r in (peer, target)]
    return ratio_table(peer, target, ROWS, names, width=24)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--validators", type=int, default=4, help="validators of the target")
    parser.add_argument("--block-time", type=float, default=0.5, help="seconds (both nets)")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--transfers", type=int)
    parser.add_argument("--finality", type=int, help="transfers sent one at a time")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = dict(QUICK if args.quick else FULL)
    for name in ("transfers", "finality"):
        if getattr(args, name) is not None:
            counts[name] = getattr(args, name)
    if min(counts.values()) < 2:
        raise SystemExit("error: --transfers and --finality must be at least 2")
    if not 1 <= args.validators <= 32 or not args.block_time > 0:
        raise SystemExit("error: --validators 1 to 32 and a positive --block-time")

    signer = Signer(dev_keys())
    signer.self_check()
    binary = os.environ.get("SAHARA_COMETBFT_BIN")
    results: dict[str, dict[str, Any] | None] = {"peer": None, "target": None}
    error = None
    try:
        results["peer"] = measure(1, args.block_time, signer, counts, binary)
        results["target"] = measure(args.validators, args.block_time, signer, counts, binary)
    except (NodeStartError, BenchError, httpx.HTTPError) as exc:
        error = str(exc)
    ratios = report(results["peer"], results["target"]) if any(results.values()) else {}
    doc = {
        "benchmark": "localnet",
        "counts": counts,
        "block_time_s": args.block_time,
        "machine": machine(),
        **results,
        "ratios_target_over_peer": ratios,
        "error": error,
    }
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
