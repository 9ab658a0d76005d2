"""Assets on chain: list, show, register by content id and update, with their typed results.

The workflows behind ``sahara asset list|show|register|update`` for a content id that is
already stored somewhere; registering a file goes through the vault first
(:func:`sahara_cli.vault.publish.register_file`). Every function returns a typed result
(the models below), which the CLI renders and ``--json`` prints.

This module is light: it imports the protocol client only inside its functions, so the
models can be named by commands without loading web3-sized modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from sahara_cli.results import Address, Result, Sah, Timestamp, Transaction, Wei

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Asset, Contribution, Protocol

__all__ = [
    "AssetList",
    "AssetRegistration",
    "AssetSummary",
    "AssetUpdated",
    "AssetView",
    "Contributor",
    "asset_summary",
    "asset_view",
    "list_assets",
    "register_cid",
    "show_asset",
    "update_asset",
]


class Contributor(Result):
    """An account and its weight in an asset's revenue."""

    account: Address
    weight_bps: int = Field(description="basis points of the revenue (10000 = 100%)")


class AssetSummary(Result):
    """An asset as the registry holds it."""

    asset_id: int
    owner: Address
    kind: str = Field(description="dataset, model, agent or compute")
    cid: str = Field(description="content id of the asset's data")
    commitment: str = Field(description="plaintext commitment (0x-hex, 32 bytes)")
    name: str
    uri: str = Field(description="metadata URI (for a vault item: its owner's key server)")
    meter: Address | None = Field(description="address allowed to record API calls")
    created_at: Timestamp
    parents: list[int] = Field(description="asset ids this one derives from")


class AssetView(AssetSummary):
    """An asset with its contributors, upstream share and revenue (``asset show``)."""

    upstream_bps: int = Field(description="share of revenue paid on to the parents")
    contributors: list[Contributor]
    revenue_wei: Wei = Field(description="revenue the asset has received")
    revenue_sah: Sah = ""


class AssetList(Result):
    """Registered assets, oldest first (``asset list``)."""

    owner: Address | None = Field(description="only assets of this owner (null: all)")
    kind: str | None = Field(description="only assets of this kind (null: all)")
    assets: list[AssetSummary]


class AssetRegistration(AssetView):
    """An asset just registered by content id, and the transaction that did it."""

    tx: Transaction


class AssetUpdated(AssetSummary):
    """An asset after ``asset update``, with the transactions sent (one per change)."""

    txs: list[Transaction]


_ZERO = "0x" + "0" * 40


def _summary_fields(asset: Asset) -> dict[str, Any]:
    return {
        "asset_id": asset.id,
        "owner": asset.owner,
        "kind": asset.kind,
        "cid": asset.cid,
        "commitment": asset.commitment,
        "name": asset.name,
        "uri": asset.uri,
        "meter": None if not asset.meter or asset.meter.lower() == _ZERO else asset.meter,
        "created_at": asset.created,
        "parents": list(asset.parents),
    }


def asset_summary(asset: Asset) -> AssetSummary:
    return AssetSummary(**_summary_fields(asset))


def _view_fields(proto: Protocol, asset: Asset) -> dict[str, Any]:
    return {
        **_summary_fields(asset),
        "upstream_bps": proto.upstream_bps(asset.id),
        "contributors": [
            Contributor(account=c.account, weight_bps=c.weight_bps)
            for c in proto.contributors(asset.id)
        ],
        "revenue_wei": proto.received(asset.id),
    }


def asset_view(proto: Protocol, asset: Asset) -> AssetView:
    """An asset with what ``asset show`` adds: contributors, upstream share, revenue."""
    return AssetView(**_view_fields(proto, asset))


def show_asset(proto: Protocol, asset_id: int) -> AssetView:
    """``asset show``: the asset (``protocol.asset_not_found`` when there is none)."""
    return asset_view(proto, proto.asset(asset_id))


def list_assets(
    proto: Protocol, home_root: Path, *, owner: str | None = None, kind: str | None = None
) -> AssetList:
    """``asset list``: registered assets from the home's event index, oldest first."""
    from sahara_cli.protocol.index import ProtocolIndex

    assets = ProtocolIndex.for_home(proto, home_root).assets(owner=owner, kind=kind)
    return AssetList(owner=owner, kind=kind, assets=[asset_summary(a) for a in assets])


def check_parents(proto: Protocol, parents: list[int], upstream_bps: int) -> None:
    """Every parent exists, and an upstream share has a parent to go to."""
    from sahara_cli.errors import UsageError

    for parent in parents:
        proto.asset(parent)  # an unknown parent: a clear error before signing
    if upstream_bps and not parents:
        raise UsageError("--upstream-share needs at least one --parent")


def register_cid(
    proto: Protocol,
    who: Signer,
    *,
    kind: str,
    cid: str,
    commitment: bytes,
    name: str,
    uri: str = "",
    parents: list[int] | None = None,
    contributors: list[Contribution] | None = None,
    upstream_bps: int = 0,
) -> AssetRegistration:
    """Register a content id stored elsewhere as an asset owned by ``who``."""
    check_parents(proto, parents or [], upstream_bps)
    asset_id, tx = proto.register(
        who,
        kind=kind,
        cid=cid,
        commitment=commitment,
        name=name,
        uri=uri,
        parents=parents or [],
        contributors=contributors or [],
        upstream_bps=upstream_bps,
    )
    return AssetRegistration(**_view_fields(proto, proto.asset(asset_id)), tx=tx.transaction())


def update_asset(
    proto: Protocol,
    who: Signer,
    asset_id: int,
    *,
    uri: str | None = None,
    meter: str | None = None,
) -> AssetUpdated:
    """Change an asset's metadata URI and/or its API meter (the owner signs each)."""
    from sahara_cli.errors import UsageError

    if uri is None and meter is None:
        raise UsageError("nothing to change: give --uri and/or --meter")
    txs = []
    if uri is not None:
        txs.append(proto.set_metadata(who, asset_id, uri).transaction())
    if meter is not None:
        txs.append(proto.set_meter(who, asset_id, meter).transaction())
    return AssetUpdated(**_summary_fields(proto.asset(asset_id)), txs=txs)
