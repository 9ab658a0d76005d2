"""The Provenance contract: digests of answers, with the assets and license they used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sahara_cli.errors import RecordNotFound
from sahara_cli.protocol.clients.base import ContractClient
from sahara_cli.protocol.values import ProvenanceRecord, TxResult, hex32, sources_arg

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class ProvenanceClient(ContractClient):
    """Provenance records of inference answers."""

    CONTRACT = "Provenance"

    def record_inference(
        self,
        signer: Signer,
        asset_id: int,
        digest: bytes | str,
        sources: Sequence[int] = (),
        license_id: int = 0,
    ) -> tuple[int, TxResult]:
        """Record an answer's provenance digest for ``asset_id``; returns the record id."""
        tx = self.write(signer, "record", asset_id, hex32(digest), sources_arg(sources), license_id)
        return int(tx.event("Recorded").args["id"]), tx

    def get_record(self, record_id: int) -> ProvenanceRecord:
        try:
            raw = self.read("getRecord", record_id)
        except RecordNotFound as exc:
            raise RecordNotFound(
                f"no provenance record {record_id} on this chain", details=exc.details
            ) from None
        return ProvenanceRecord(
            id=record_id,
            recorder=raw["recorder"],
            asset=raw["asset"],
            digest="0x" + raw["digest"].hex(),
            license=raw["license"],
            time=raw["time"],
        )

    def record_count(self) -> int:
        return int(self.read("recordCount"))
