"""Register a model of the store as an on-chain asset: ``sahara model register``.

The model goes into the vault first (encrypted unless public, a folder as one item),
then is registered as an asset of kind 'model', and the store records the asset id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sahara_cli.errors import UsageError
from sahara_cli.vault.reporting import SILENT, Reporter

if TYPE_CHECKING:
    from sahara_cli.agent.model_results import ModelRegistered
    from sahara_cli.agent.runners.model_store import ModelStore
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.publish import Registration

__all__ = ["register_model"]


def check_unregistered(store: ModelStore, name: str) -> None:
    """Refuse a model that is an asset already (before anything is unlocked or sent)."""
    entry = store.get(name)
    if entry.asset_id is not None:
        raise UsageError(
            f"model '{entry.name}' is already registered as asset #{entry.asset_id}",
            hint=f"See it with 'sahara asset show {entry.asset_id}'.",
        )


def register_model(
    store: ModelStore,
    name: str,
    vault: Vault,
    proto: Protocol,
    who: Signer,
    registration: Registration,
    *,
    asset_name: str | None = None,
    public: bool = False,
    embedder: str | None = "onnx",
    report: Reporter = SILENT,
) -> ModelRegistered:
    """Add the model ``name`` to the vault, register it (kind 'model') and record it."""
    from dataclasses import replace

    from sahara_cli.agent.model_results import ModelRegistered
    from sahara_cli.vault.publish import publish_path

    check_unregistered(store, name)
    entry = store.get(name)
    item = publish_path(
        vault,
        proto,
        who,
        entry.path,
        replace(registration, kind="model"),
        public=public,
        name=asset_name or entry.name,
        # A folder's files are not indexed one by one: a model is weights, not text.
        embedder=None if entry.path.is_dir() else embedder,
        report=report,
    )
    if item.asset_id is None:
        raise UsageError(f"model '{entry.name}' could not be registered")
    entry = store.set_asset(entry.name, item.asset_id)
    return ModelRegistered.of(entry, store.default, vault_cid=item.cid)
