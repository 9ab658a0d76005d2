"""Tie vault items to on-chain assets by content id, only where the chain says they are
the item owner's.

A content id is public as soon as it is published (a public file's CID is anyone's to
compute, and every registration is in the mempool before it is mined), so anyone can
register it first. The registry keeps one asset per content id; a vault that took
"an asset exists with my CID" for "my asset" would record a stranger's asset as its
own. :func:`own_asset_for` is the one check: the asset under the CID, if its owner is
the item's, else :class:`~sahara_cli.errors.VaultCidTaken` naming the other owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sahara_cli.errors import VaultCidTaken

if TYPE_CHECKING:
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault


def own_asset_for(proto: Protocol, cid: str, owner: str) -> int | None:
    """The asset registered under ``cid`` when ``owner`` owns it; None when there is
    none. Raises VaultCidTaken when another address registered it."""
    asset_id = proto.asset_by_cid(cid)
    if asset_id is None:
        return None
    asset = proto.asset(asset_id)
    if asset.owner.lower() != owner.lower():
        raise VaultCidTaken(
            f"content id {cid} is registered on chain as asset #{asset_id} by "
            f"{asset.owner}, not by you ({owner}); the item stays unregistered",
            hint="Someone else registered this content id first (anyone can compute a "
            "public file's CID, and a registration can be seen before it is mined). A "
            "private item added again gets a new ciphertext and CID.",
            details={"asset_id": asset_id, "owner": asset.owner, "cid": cid},
        )
    return asset_id


def reconcile(vault: Vault, proto: Protocol) -> list[VaultCidTaken]:
    """Finish registrations a killed command left half done, by the item's CID.

    An item whose CID another address registered is not tied to that asset: it goes
    back to unregistered, and the refusal is returned for the caller to report.
    """
    refused: list[VaultCidTaken] = []
    for item in vault.db.in_state("registering"):
        try:
            asset_id = own_asset_for(proto, item.cid, item.owner or item.holder)
        except VaultCidTaken as exc:
            vault.db.update(item.id, asset_id=None, state="ready")
            refused.append(exc)
            continue
        vault.db.update(item.id, asset_id=asset_id, state="ready")
    return refused
