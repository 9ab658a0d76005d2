"""Gas of one metered, recorded answer: one inference SAP transaction against the peer,
the two transactions served calls used before it (``Licensing.meterWith``, then
``Provenance.record``).

    python benchmarks/served_call_gas.py [--calls N]

On an in-process dev node: an agent (parent: a model; 20% upstream share), a document
it retrieved, each with two contributors, and a caller's API license. From one chain
snapshot the peer flow runs N calls; the chain is reverted and the SAP flow runs N
calls, so both start from the same state. Gas is deterministic; the ratio is the SAP's
over the peer's. Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sahara_cli.identity.keys import Signer  # noqa: E402
from sahara_cli.node.client import NodeClient  # noqa: E402
from sahara_cli.node.genesis import dev_keys  # noqa: E402
from sahara_cli.node.rpc.testing import dev_node  # noqa: E402
from sahara_cli.protocol.client import Contribution, Protocol  # noqa: E402

PRICE = 10**15


def measure(proto: Protocol, calls: int) -> list[dict[str, int]]:
    owner, caller, helper = (Signer(k) for k in dev_keys()[:3])

    def two() -> list[Contribution]:
        return [Contribution(owner.address, 7_000), Contribution(helper.address, 3_000)]

    model, _ = proto.register(
        owner, kind="model", cid="bafy-m", commitment=b"\1" * 32, name="m", contributors=two()
    )
    doc, _ = proto.register(
        helper, kind="dataset", cid="bafy-d", commitment=b"\2" * 32, name="d", contributors=two()
    )
    agent, _ = proto.register(
        owner,
        kind="agent",
        cid="bafy-a",
        commitment=b"\3" * 32,
        name="a",
        parents=[model],
        contributors=two(),
        upstream_bps=2_000,
    )
    offer, _ = proto.offer(owner, agent, "api", price=PRICE)
    lic, _ = proto.buy(caller, offer, calls)
    snapshot = proto.node.call("sahara_dev_snapshot")
    peer = []
    for i in range(calls):
        metered = proto.meter_with(owner, lic, 1, [doc])
        _, recorded = proto.provenance.record_inference(
            owner, agent, bytes([i + 1]) * 32, [doc], lic
        )
        peer.append((metered.gas_used, recorded.gas_used))
    proto.node.call("sahara_dev_revert", snapshot)
    rows = []
    for i in range(calls):
        _, tx = proto.record_inference(
            owner,
            agent,
            bytes([i + 1]) * 32,
            [doc],
            lic,
            input_hash=b"\5" * 32,
            output_hash=b"\6" * 32,
            calls=1,
        )
        meter, record = peer[i]
        rows.append(
            {
                "call": i + 1,
                "peer_meter_with": meter,
                "peer_provenance_record": record,
                "peer_two_txs": meter + record,
                "sap_one_tx": tx.gas_used,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="answers per flow (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, dev_node(Path(tmp)) as (_, server):
        rows = measure(Protocol(NodeClient(server.url)), args.calls)
    head = ("call", "meterWith", "Provenance.record", "two txs (peer)", "SAP one tx", "ratio")
    print(f"{head[0]:>4} {head[1]:>10} {head[2]:>18} {head[3]:>15} {head[4]:>11} {head[5]:>6}")
    for r in rows:
        print(
            f"{r['call']:>4} {r['peer_meter_with']:>10,} {r['peer_provenance_record']:>18,} "
            f"{r['peer_two_txs']:>15,} {r['sap_one_tx']:>11,} "
            f"{r['sap_one_tx'] / r['peer_two_txs']:>6.3f}"
        )
    print(json.dumps({"benchmark": "served_call_gas", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
