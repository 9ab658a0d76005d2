"""eth_call on a kept (warm) state: results never leak from one call into the next."""

from __future__ import annotations

import json
from pathlib import Path

from eth_utils import keccak

from sahara_cli.node.client import NodeClient
from sahara_cli.node.rpc.local import LocalTransport
from sahara_cli.node.rpc.testing import dev_node

ARTIFACT = json.loads(
    (Path(__file__).parents[1] / "e2e" / "contracts" / "Counter.json").read_text()
)


def selector(signature: str, *args: int) -> str:
    return "0x" + (keccak(text=signature)[:4] + b"".join(a.to_bytes(32, "big") for a in args)).hex()


def test_calls_on_a_warm_state_leave_no_trace(tmp_path: Path) -> None:
    with dev_node(tmp_path) as (node, _):
        client = NodeClient(LocalTransport(node))
        sender = client.call("eth_accounts")[0]
        deploy = client.call(
            "eth_sendTransaction",
            {"from": sender, "data": ARTIFACT["bytecode"], "gas": hex(2_000_000)},
        )
        counter = client.wait_for_receipt(deploy)["contractAddress"]
        read = {"to": counter, "data": selector("count()")}
        assert int(client.call("eth_call", read, "latest"), 16) == 0
        # A state-changing call runs, and is rolled back: the next call sees the chain.
        client.call(
            "eth_call",
            {"from": sender, "to": counter, "data": selector("set(uint256)", 5)},
            "latest",
        )
        assert int(client.call("eth_call", read, "latest"), 16) == 0
        # Same call twice: same answer (the warm state and a fresh one agree).
        double = {"to": counter, "data": selector("double(uint256)", 21)}
        assert client.call("eth_call", double, "latest") == client.call(
            "eth_call", double, "latest"
        )
        assert int(client.call("eth_call", double, "latest"), 16) == 42
        # After a real write, calls at "latest" see the new block's state.
        tx = client.call(
            "eth_sendTransaction",
            {"from": sender, "to": counter, "data": selector("set(uint256)", 9)},
        )
        client.wait_for_receipt(tx)
        assert int(client.call("eth_call", read, "latest"), 16) == 9
        assert int(client.call("eth_call", read, "0x1"), 16) == 0  # an older block still answers
        # With a state override, the warm state is not used and not changed.
        slot0 = {counter: {"stateDiff": {"0x" + "00" * 32: "0x" + "00" * 31 + "07"}}}
        assert int(client.call("eth_call", read, "latest", slot0), 16) == 7
        assert int(client.call("eth_call", read, "latest"), 16) == 9
