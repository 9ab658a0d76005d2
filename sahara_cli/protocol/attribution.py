"""Attribution: who contributed to an asset, how revenue flows up its parents, and claims.

``add_contributor`` gives a contributor part of the owner's weight (the contract mints
their receipt); ``attribution_tree`` reads an asset's contributors and, up to the
contract's depth, its parents'; ``claim`` pays an account what its assets credited it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from sahara_cli.errors import NothingToClaim, ProtocolInsufficientFunds, UsageError
from sahara_cli.results import Address, Result, Sah, Transaction, Wei
from sahara_cli.units import format_sah

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
    credited_by_asset: list[Credit] = Field(
        description="what each asset credited the account in all, claimed or not"
    )
    claimable_by_asset: list[Credit] = Field(
        default_factory=list,
        description="what each asset credited since the last claim; sums to claimable_wei",
    )
    dry_run: bool
    paid_wei: Wei | None = None
    paid_sah: Sah | None = None
    tx: Transaction | None = None
    warnings: list[str] = Field(
        default_factory=list, description="what a person should know before claiming"
    )


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
        unclaimed = index.unclaimed_credits(address)
    now = proto.claimable(address)
    warnings = []
    by_asset = sum(c["amount"] for c in unclaimed)
    if by_asset != now:  # a block mined between the two reads
        warnings.append(
            f"the assets' credits since the last claim add up to {format_sah(by_asset)} SAH, "
            f"the contract says {format_sah(now)} SAH: run the command again"
        )
    short = claim_gas_shortfall(proto, address, now)
    if short is not None:
        warnings.append(short.message)
    return ClaimResult(
        address=address,
        claimable_wei=now,
        claimed_before_wei=proto.claimed(address),
        credited_by_asset=[
            Credit(asset_id=c["asset"], name=c["name"], amount_wei=c["amount"]) for c in credits
        ],
        claimable_by_asset=[
            Credit(asset_id=c["asset"], name=c["name"], amount_wei=c["amount"]) for c in unclaimed
        ],
        dry_run=True,
        warnings=warnings,
    )


def claim_gas_shortfall(
    proto: Protocol, address: str, claimable_wei: int
) -> ProtocolInsufficientFunds | None:
    """The error to raise when ``address`` cannot pay the gas of its claim (None if it can).

    A claim pays the claimer only once it is mined: its gas comes out of the balance the
    claimer already has, so an ID that was only ever credited (never funded) cannot claim.
    """
    from sahara_cli.errors import NodeRPCError
    from sahara_cli.protocol.sender import GAS_MARGIN

    if claimable_wei == 0:
        return None
    contract = proto.attribution
    request = {
        "from": address,
        "to": contract.address,
        "data": "0x" + contract.encode("claim").hex(),
    }
    try:
        estimate = int(proto.node.call("eth_estimateGas", request), 16)
    except NodeRPCError:  # the claim itself would fail: the send reports why
        return None
    fee = (int(estimate * GAS_MARGIN) + 10_000) * (
        2 * proto.node.base_fee() + proto.node.max_priority_fee()
    )
    held = proto.node.balance(address, "pending")
    if held >= fee:
        return None
    return ProtocolInsufficientFunds(
        f"{address} needs gas to claim its {format_sah(claimable_wei)} SAH: it holds "
        f"{format_sah(held)} SAH and the claim can cost up to {format_sah(fee)} SAH "
        "(the claimed SAH arrive only once the claim is mined)",
        hint=(
            "Send the ID a little SAH first: 'sahara tx send --to ID --value 0.01' from "
            "another ID, or 'sahara node fund ID 1' on a dev chain."
        ),
        details={"address": address, "balance_wei": str(held), "needed_wei": str(fee)},
    )


def preflight_claim(preview: ClaimResult, proto: Protocol | None = None) -> None:
    """Refuse a claim of nothing (the contract would revert and charge gas), and, given
    ``proto``, a claim whose gas the claimer cannot pay (:func:`claim_gas_shortfall`)."""
    if preview.claimable_wei == 0:
        raise NothingToClaim(f"nothing to claim for {preview.address}")
    if proto is not None:
        short = claim_gas_shortfall(proto, preview.address, preview.claimable_wei)
        if short is not None:
            raise short


def claim(
    proto: Protocol, signer: Signer, home_root: Path, preview: ClaimResult | None = None
) -> ClaimResult:
    """Pay ``signer`` all revenue credited to it; :class:`NothingToClaim` when none is.

    ``preview``: the :func:`claimable` already read for the signer, to report with.
    """
    if preview is None or preview.address != signer.address:
        preview = claimable(proto, signer.address, home_root)
    preflight_claim(preview, proto)
    paid, tx = proto.claim(signer)
    return ClaimResult.model_validate(
        preview.model_dump(exclude={"claimable_sah", "claimed_before_sah"})
        | {"dry_run": False, "paid_wei": paid, "tx": tx.transaction(), "warnings": []}
    )
