"""Registering a model of the store as an asset (the library under 'sahara model register')."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sahara_cli.agent.model_publish import register_model
from sahara_cli.agent.model_results import ModelRegistered, ModelView
from sahara_cli.agent.runners.model_store import ModelStore
from sahara_cli.errors import UsageError
from sahara_cli.identity import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore
from sahara_cli.vault.publish import Registration
from tests.agent_models import stored_model

SERVER = "http://127.0.0.1:8547"  # where the key server would be


def test_register_model_adds_registers_and_records(tmp_path: Path) -> None:
    from sahara_cli.node.rpc.testing import dev_node

    name = stored_model(tmp_path)
    store = ModelStore(tmp_path / "home")
    root = tmp_path / "vault"
    with dev_node(tmp_path / "node") as (_, rpc), Vault(root, LocalBlockstore(root)) as vault:
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        who = Signer(os.urandom(32))
        node.call("sahara_dev_setBalance", who.address, hex(10**20))
        done = register_model(
            store,
            name,
            vault,
            proto,
            who,
            Registration(server_url=SERVER),
            asset_name="tiny on chain",
        )
        assert isinstance(done, ModelRegistered) and done.asset_id is not None
        asset = proto.asset(done.asset_id)
        assert (asset.kind, asset.name, asset.cid) == ("model", "tiny on chain", done.vault_cid)
        assert asset.owner == who.address
        assert vault.find(done.vault_cid).asset_id == done.asset_id
        assert store.get(name).asset_id == done.asset_id
        with pytest.raises(UsageError, match="already registered"):
            register_model(store, name, vault, proto, who, Registration(server_url=SERVER))
        node.close()
    view = ModelView.of(store.get(name), store.default)
    assert view.model_dump(mode="json")["added_at"].endswith("Z")
