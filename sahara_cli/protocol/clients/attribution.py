"""The Attribution contract: contributors of an asset, revenue paid in, credits, claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sahara_cli.protocol.clients.base import ContractClient
from sahara_cli.protocol.values import Contribution, TxResult, sources_arg

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class AttributionClient(ContractClient):
    """Who shares an asset's revenue, and what each account may claim."""

    CONTRACT = "Attribution"

    def contributors_of(self, asset_id: int) -> list[Contribution]:
        """The contributors of ``asset_id`` (an unknown asset has none)."""
        raw = self.read("contributorsOf", asset_id)
        return [Contribution(c["account"], c["weight_bps"]) for c in raw]

    def upstream_bps(self, asset_id: int) -> int:
        return int(self.read("upstreamOf", asset_id))

    def parent_weights(self, asset_id: int) -> list[int]:
        """How the upstream share splits among the parents, in bps (empty: equally)."""
        return [int(w) for w in self.read("parentWeightsOf", asset_id)]

    def received(self, asset_id: int) -> int:
        return int(self.read("received", asset_id))

    def claimable(self, account: str) -> int:
        return int(self.read("claimable", account))

    def claimed(self, account: str) -> int:
        return int(self.read("claimed", account))

    def add_contributor(
        self, signer: Signer, asset_id: int, account: str, weight_bps: int
    ) -> TxResult:
        return self.write(signer, "addContributor", asset_id, account, weight_bps)

    def pay(self, signer: Signer, asset_id: int, amount: int) -> TxResult:
        return self.write(signer, "pay", asset_id, value=amount)

    def pay_with(
        self, signer: Signer, asset_id: int, amount: int, sources: Sequence[int]
    ) -> TxResult:
        """Pay into an asset naming the source assets the revenue was earned with."""
        return self.write(signer, "payWith", asset_id, sources_arg(sources), value=amount)

    def claim(self, signer: Signer) -> tuple[int, TxResult]:
        """Claim everything credited to ``signer``; returns the amount in wei."""
        tx = self.write(signer, "claim")
        return int(tx.event("Claimed").args["amount"]), tx
