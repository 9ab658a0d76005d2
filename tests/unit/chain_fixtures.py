"""A dev chain for library tests: one node a module, each test inside a snapshot.

``chain`` is a :class:`Chain` with the protocol client, three funded signers (``owner``,
``buyer``, ``partner``), an unfunded one (``poor``), and an asset the owner registered
(the owner is also its meter). Everything a test does is rolled back after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_cli.identity.keys import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol

SAH = 10**18
DAY = 86_400


@dataclass
class Chain:
    proto: Protocol
    owner: Signer
    buyer: Signer
    partner: Signer
    poor: Signer
    asset: int
    home: Path

    @property
    def client(self) -> NodeClient:
        return self.proto.node

    def advance(self, seconds: int) -> None:
        self.client.call("sahara_dev_increaseTime", seconds)
        self.client.call("sahara_dev_mine")


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("chain")) as (_, server):
        yield server.url


@pytest.fixture
def chain(node_url: str, tmp_path: Path) -> Iterator[Chain]:
    from sahara_cli.node.genesis import dev_keys

    client = NodeClient(node_url)
    snapshot = client.call("sahara_dev_snapshot")
    owner, buyer, partner = (Signer(k) for k in dev_keys(3))
    proto = Protocol(client)
    asset, _ = proto.register(
        owner, kind="dataset", cid=f"bafy-lib-{tmp_path.name}", commitment=b"\1" * 32, name="rain"
    )
    try:
        yield Chain(proto, owner, buyer, partner, Signer(os.urandom(32)), asset, tmp_path)
    finally:
        client.call("sahara_dev_revert", snapshot)
