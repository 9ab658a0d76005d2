"""The AssetRegistry contract: register assets, read them, change their metadata and meter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sahara_cli.errors import AssetNotFound
from sahara_cli.identity.keys import keccak256
from sahara_cli.protocol.clients.base import ContractClient
from sahara_cli.protocol.values import ASSET_KINDS, Asset, Contribution, TxResult, asset_kind, hex32

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class AssetRegistryClient(ContractClient):
    """Assets (datasets, models, agents, compute) with their owners, content ids and lineage."""

    CONTRACT = "AssetRegistry"

    def register(
        self,
        signer: Signer,
        *,
        kind: str | int,
        cid: str,
        commitment: bytes | str,
        name: str,
        uri: str = "",
        parents: Sequence[int] = (),
        contributors: Sequence[Contribution] = (),
        upstream_bps: int = 0,
    ) -> tuple[int, TxResult]:
        """Register an asset owned by ``signer``; returns its id."""
        entries = [(c.account, c.weight_bps) for c in contributors]
        tx = self.write(
            signer,
            "register",
            asset_kind(kind),
            cid,
            hex32(commitment),
            name,
            uri,
            list(parents),
            entries,
            upstream_bps,
        )
        return int(tx.event("Registered").args["asset"]), tx

    def asset(self, asset_id: int) -> Asset:
        """One asset as the chain keeps it (:class:`AssetNotFound` when there is none)."""
        try:
            raw = self.read("getAsset", asset_id)
        except AssetNotFound as exc:
            raise AssetNotFound(f"no asset {asset_id} on this chain", details=exc.details) from None
        return Asset(
            id=asset_id,
            owner=raw["owner"],
            kind=ASSET_KINDS[raw["kind"]],
            cid=raw["cid"],
            commitment="0x" + raw["commitment"].hex(),
            name=raw["name"],
            uri=raw["uri"],
            meter=raw["meter"],
            created=raw["created"],
            parents=list(raw["parents"]),
        )

    def asset_count(self) -> int:
        return int(self.read("count"))

    def asset_by_cid(self, cid: str) -> int | None:
        """The id of the asset registered with content id ``cid``, or None."""
        found = int(self.read("cidAsset", keccak256(cid.encode())))
        return found or None

    def set_metadata(self, signer: Signer, asset_id: int, uri: str) -> TxResult:
        return self.write(signer, "setMetadata", asset_id, uri)

    def set_meter(self, signer: Signer, asset_id: int, meter: str) -> TxResult:
        return self.write(signer, "setMeter", asset_id, meter)
