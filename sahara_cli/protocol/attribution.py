"""Attribution: who contributed to an asset, how revenue flows up its parents, and claims.

``add_contributor`` gives a contributor part of the owner's weight (the contract mints
their receipt); ``attribution_tree`` reads an asset's contributors and, up to the
contract's depth, its parents'; ``claim`` pays an account what its assets credited it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from sahara_cli.errors import NothingToClaim, UsageError
from sahara_cli.results import Address, Result, Sah, Transaction, Wei

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol

#: How far up the derived-from graph revenue flows (the Attribution contract's MAX_DEPTH).
MAX_DEPTH = 3


class Contributor(Result):
    account: Address
    weight_bps: int = Field(description="share of the asset's revenue, in basis points")


class ContributorAdded(Result):
    """``attribute add``: the asset's contributors after the new one was added."""

    asset_id: int
    account: Address = Field(description="the contributor added")
    weight_bps: int = Field(description="the weight given, taken from the owner's")
    contributors: list[Contributor]
    tx: Transaction


class AttributionNode(Result):
    """``attribute show``: an asset, its contributors and its parents (a tree)."""

    asset_id: int
    name: str
    kind: str
    owner: Address
    upstream_bps: int = Field(description="part of each payment that flows to the parents")
    contributors: list[Contributor]
    parents: list[AttributionNode]
    parents_beyond_depth: list[int] = Field(
        default_factory=list,
        description="parents past the depth revenue flows to (not expanded)",
    )


class Credit(Result):
    """What one asset credited an account in all."""

    asset_id: int
    name: str
    amount_wei: Wei
    amount_sah: Sah = ""


class ClaimResult(Result):
    """``claim``: what an account can claim, where it came from, and what was paid."""

    address: Address
    claimable_wei: Wei
    claimable_sah: Sah = ""
    claimed_before_wei: Wei
    claimed_before_sah: Sah = ""
    credited_by_asset: list[Credit]
    dry_run: bool
    paid_wei: Wei | None = None
    paid_sah: Sah | None = None
    tx: Transaction | None = None


def contributors(proto: Protocol, asset_id: int) -> list[Contributor]:
    return [
        Contributor(account=c.account, weight_bps=c.weight_bps)
        for c in proto.contributors(asset_id)
    ]


def preflight_add(proto: Protocol, asset_id: int, weight_bps: int) -> None:
    """Refuse a weight the owner does not hold (weights always sum to 10,000 bps)."""
    if weight_bps <= 0:
        raise UsageError("--weight must be more than zero")
    owner = proto.asset(asset_id).owner
    held = {c.account: c.weight_bps for c in proto.contributors(asset_id)}.get(owner, 0)
    if weight_bps > held:
        raise UsageError(
            f"the owner holds {held} bps of asset #{asset_id}; cannot give {weight_bps}",
            hint="Weights always sum to 10000 bps; a contributor's weight comes from the owner's.",
        )


def add_contributor(
    proto: Protocol, signer: Signer, asset_id: int, account: str, weight_bps: int
) -> ContributorAdded:
    """Give ``account`` ``weight_bps`` of the asset's revenue, taken from the owner's."""
    preflight_add(proto, asset_id, weight_bps)
    tx = proto.add_contributor(signer, asset_id, account, weight_bps)
    return ContributorAdded(
        asset_id=asset_id,
        account=account,
        weight_bps=weight_bps,
        contributors=contributors(proto, asset_id),
        tx=tx.transaction(),
    )


def attribution_tree(proto: Protocol, asset_id: int, depth: int = 0) -> AttributionNode:
    """The asset, its contributors and (up to the contract's depth) its parents."""
    asset = proto.asset(asset_id)
    expand = depth < MAX_DEPTH
    return AttributionNode(
        asset_id=asset.id,
        name=asset.name,
        kind=asset.kind,
        owner=asset.owner,
        upstream_bps=proto.upstream_bps(asset.id),
        contributors=contributors(proto, asset.id),
        parents=[attribution_tree(proto, p, depth + 1) for p in asset.parents] if expand else [],
        parents_beyond_depth=[] if expand else list(asset.parents),
    )


def claimable(proto: Protocol, address: str, home_root: Path) -> ClaimResult:
    """What ``address`` can claim now, and what each asset credited it (from the home's
    index of chain events); sends nothing."""
    from sahara_cli.protocol.index import ProtocolIndex

    with ProtocolIndex.for_home(proto, home_root) as index:
        credits = index.credits(address)
    return ClaimResult(
        address=address,
        claimable_wei=proto.claimable(address),
        claimed_before_wei=proto.claimed(address),
        credited_by_asset=[
            Credit(asset_id=c["asset"], name=c["name"], amount_wei=c["amount"]) for c in credits
        ],
        dry_run=True,
    )


def preflight_claim(preview: ClaimResult) -> None:
    """Refuse a claim of nothing (the contract would revert and charge gas)."""
    if preview.claimable_wei == 0:
        raise NothingToClaim(f"nothing to claim for {preview.address}")


def claim(
    proto: Protocol, signer: Signer, home_root: Path, preview: ClaimResult | None = None
) -> ClaimResult:
    """Pay ``signer`` all revenue credited to it; :class:`NothingToClaim` when none is.

    ``preview``: the :func:`claimable` already read for the signer, to report with.
    """
    if preview is None or preview.address != signer.address:
        preview = claimable(proto, signer.address, home_root)
    preflight_claim(preview)
    paid, tx = proto.claim(signer)
    return ClaimResult.model_validate(
        preview.model_dump(exclude={"claimable_sah", "claimed_before_sah"})
        | {"dry_run": False, "paid_wei": paid, "tx": tx.transaction()}
    )
