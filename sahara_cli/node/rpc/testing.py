"""A dev node with its RPC server, for tests and examples (no mocks: the real thing).

with dev_node(tmp_path) as (node, server):
    Web3(Web3.HTTPProvider(server.url)).eth.block_number
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sahara_cli.node.producer import Node
    from sahara_cli.node.rpc.server import ServerHandle

#: The validator key of test nodes (not one of the funded dev accounts).
VALIDATOR_KEY = bytes.fromhex("5a" * 32)


@contextmanager
def dev_node(
    data_dir: Path, *, block_time: float = 0.0, host: str = "127.0.0.1", **opts: Any
) -> Iterator[tuple[Node, ServerHandle]]:
    """Start a dev chain in ``data_dir`` and serve it on ``host`` (a free port)."""
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.genesis import dev_genesis
    from sahara_cli.node.producer import Node, NodeConfig
    from sahara_cli.node.rpc.server import serve_in_thread

    validator = Signer(VALIDATOR_KEY)
    node = Node(
        NodeConfig(data_dir=data_dir, block_time=block_time, dev=True),
        validator=validator,
        genesis=dev_genesis(validator=validator.address),
    )
    node.start()
    try:
        handle = serve_in_thread(node, host, 0, **opts)
        try:
            yield node, handle
        finally:
            handle.stop()
    finally:
        node.stop()
