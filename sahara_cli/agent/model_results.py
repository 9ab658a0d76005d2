"""The typed results of ``sahara model ...``: the models in the store, as JSON.

Light on purpose (pydantic and the result conventions only), so commands can name these
models without loading the model store.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field

from sahara_cli.results import Result, Timestamp

__all__ = ["DefaultModel", "ModelList", "ModelRegistered", "ModelRemoved", "ModelView"]


class ModelView(Result):
    """One model in the store."""

    name: str
    path: str
    runner: str = Field(description="llama (GGUF) or torch (transformers)")
    size: int = Field(description="bytes")
    sha256: str
    cid: str = Field(description="content id of the model file or folder")
    linked: bool = Field(description="kept where it was, not copied into the store")
    source: str | None = Field(description="hf:REPO/FILE@REVISION for a pulled model")
    added_at: Timestamp | None
    asset_id: int | None = Field(description="the asset it is registered as (null: none)")
    facts: dict[str, Any] = Field(description="what the file says of itself (architecture...)")
    default: bool = Field(description="the store's default model")

    @classmethod
    def of(cls, entry: Any, default: str | None, **extra: Any) -> Self:
        """The view of a :class:`~sahara_cli.agent.runners.model_store.ModelEntry`."""
        return cls(
            name=entry.name,
            path=str(entry.path),
            runner=entry.runner,
            size=entry.size,
            sha256=entry.sha256,
            cid=entry.cid,
            linked=entry.linked,
            source=entry.source,
            added_at=entry.added_at or None,
            asset_id=entry.asset_id,
            facts=dict(entry.facts),
            default=entry.name == default,
            **extra,
        )


class ModelRegistered(ModelView):
    """``model register``: the model, now an asset, and its vault item's CID."""

    vault_cid: str = Field(description="the CID registered: the model's vault item")


class ModelList(Result):
    """``model list``."""

    default: str | None = Field(description="name of the default model (null: none)")
    models: list[ModelView]


class ModelRemoved(Result):
    """``model rm``."""

    name: str
    path: str
    files_deleted: bool = Field(description="false for a linked model (its files stay)")


class DefaultModel(Result):
    """``model default``: the default model, if any."""

    default: str | None
    model: ModelView | None
