"""The Receipts contract: non-transferable tokens of ownership and contribution."""

from __future__ import annotations

from sahara_cli.errors import ReceiptNotFound
from sahara_cli.identity.keys import to_checksum_address
from sahara_cli.protocol.clients.base import ContractClient, address_topic
from sahara_cli.protocol.values import ZERO_ADDRESS, Receipt

#: Receipt roles by the contract's number.
ROLES = {1: "owner", 2: "contributor"}


class ReceiptsClient(ContractClient):
    """Receipts minted to an asset's owner and contributors, and the reputation they add up to."""

    CONTRACT = "Receipts"

    def receipt(self, token_id: int) -> Receipt:
        raw = self.read("receipts", token_id)
        if raw["holder"] == to_checksum_address(ZERO_ADDRESS):
            raise ReceiptNotFound(f"no receipt {token_id}")
        return Receipt(
            id=token_id,
            holder=raw["holder"],
            asset=raw["asset"],
            role=ROLES.get(raw["role"], str(raw["role"])),
            share_bps=raw["share_bps"],
            minted=raw["minted"],
        )

    def receipts_of(self, holder: str) -> list[Receipt]:
        """Every receipt minted to ``holder`` (from the Transfer events)."""
        self.ensure_deployed()
        events = self.logs("Transfer", None, address_topic(holder))
        ids = sorted({int(e.args["token_id"]) for e in events})
        return [self.receipt(i) for i in ids]

    def reputation(self, account: str) -> int:
        return int(self.read("reputation", account))
