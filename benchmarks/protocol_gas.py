"""Gas and latency of each protocol operation, on sahara and on a peer node.

    python benchmarks/protocol_gas.py [--peer hardhat|none]

Runs the life of an asset through the typed client (``sahara_cli.protocol.client``):
register a dataset with a contributor, offer and buy a long-term license, register a
derived model with a 20% upstream share, offer and buy API calls, meter 10 calls, add a
contributor, claim. On the peer (Hardhat), the same runtime bytecode is placed at the
same addresses with ``hardhat_setCode``, so both nodes run identical contracts: gas must
match exactly (an EVM equivalence check), and the time ratio compares the nodes.
Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the node launchers are shared with the end-to-end tests

from sahara_cli.identity.keys import Signer  # noqa: E402
from sahara_cli.node.client import NodeClient  # noqa: E402
from sahara_cli.node.genesis import dev_keys  # noqa: E402
from sahara_cli.protocol import artifacts  # noqa: E402
from sahara_cli.protocol.client import Contribution, Protocol, TxResult  # noqa: E402
from tests.e2e.nodes import RunningNode, start_hardhat, start_sahara  # noqa: E402

SAH = 10**18


def life_cycle(proto: Protocol) -> list[tuple[str, TxResult, float]]:
    owner, buyer, caller, helper = (Signer(k) for k in dev_keys()[:4])
    steps: list[tuple[str, TxResult, float]] = []

    def step(name: str, run: Any) -> Any:
        started = time.perf_counter()
        out = run()
        tx = out[1] if isinstance(out, tuple) else out
        steps.append((name, tx, time.perf_counter() - started))
        return out[0] if isinstance(out, tuple) else None

    contributors = [Contribution(owner.address, 7000), Contribution(helper.address, 3000)]
    dataset = step(
        "register dataset (2 contributors)",
        lambda: proto.register(
            owner,
            kind="dataset",
            cid="bafkreidataset" + "a" * 40,
            commitment=b"\1" * 32,
            name="product reviews",
            contributors=contributors,
        ),
    )
    offer = step(
        "offer long-term license",
        lambda: proto.offer(owner, dataset, "long-term", price=SAH, duration=30 * 86400),
    )
    step("buy long-term license", lambda: proto.buy(buyer, offer))
    model = step(
        "register model (1 parent, 20% upstream)",
        lambda: proto.register(
            owner,
            kind="model",
            cid="bafkreimodel" + "b" * 40,
            commitment=b"\2" * 32,
            name="review classifier",
            parents=[dataset],
            upstream_bps=2000,
        ),
    )
    api = step("offer API license", lambda: proto.offer(owner, model, "api", price=SAH // 100))
    lic = step("buy 20 API calls", lambda: proto.buy(caller, api, 20))
    step("meter 10 calls (revenue split up 2 levels)", lambda: proto.meter(owner, lic, 10))
    step("reprice offer", lambda: proto.reprice(owner, api, SAH // 50))
    step("add contributor", lambda: proto.add_contributor(owner, model, buyer.address, 1000))
    step("pay 1 SAH into the model", lambda: proto.pay(caller, model, SAH))
    step("refund unused API calls", lambda: proto.refund(caller, lic))
    step("claim", lambda: proto.claim(owner))
    return steps


def prepare_peer(client: NodeClient) -> None:
    for name, address in artifacts.addresses().items():
        code = artifacts.artifact(name)["bytecode_runtime"]
        client.call("hardhat_setCode", address, code)


def measure(node: RunningNode, peer: bool) -> list[dict[str, Any]]:
    client = NodeClient(node.url, timeout=30)
    if peer:
        prepare_peer(client)
    proto = Protocol(client)
    return [
        {"operation": name, "gas": tx.gas_used, "ms": round(seconds * 1000, 1)}
        for name, tx, seconds in life_cycle(proto)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=("hardhat", "none"), default="hardhat")
    args = parser.parse_args(argv)
    with start_sahara() as node:
        ours = measure(node, peer=False)
    theirs: list[dict[str, Any]] | None = None
    if args.peer == "hardhat":
        with start_hardhat(quiet=True) as node:
            theirs = measure(node, peer=True)
    print(
        f"{'operation':44} {'gas':>9} {'sahara ms':>10} {'peer gas':>9} {'peer ms':>8} {'ratio':>6}"
    )
    for i, row in enumerate(ours):
        other = theirs[i] if theirs else None
        ratio = f"{other['ms'] / row['ms']:.2f}" if other and row["ms"] else "-"
        print(
            f"{row['operation']:44} {row['gas']:>9,} {row['ms']:>10} "
            f"{other['gas'] if other else '-':>9} {other['ms'] if other else '-':>8} {ratio:>6}"
        )
    same = theirs is None or all(a["gas"] == b["gas"] for a, b in zip(ours, theirs, strict=True))
    print(
        json.dumps(
            {"sahara": ours, "peer": args.peer, "peer_results": theirs, "gas_identical": same}
        )
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
