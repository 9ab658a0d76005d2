"""The ``txpool_`` namespace: what the mempool holds, in geth's shapes."""

from __future__ import annotations

from typing import Any

from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.context import Context, method


@method(inline=True)
def txpool_status(ctx: Context) -> dict[str, str]:
    status = ctx.node.pool_status()
    return {"pending": fmt.q(status["pending"]), "queued": fmt.q(status["queued"])}


@method()
def txpool_content(ctx: Context) -> dict[str, Any]:
    """``{"pending"|"queued": {checksummed sender: {decimal nonce: tx}}}`` like geth."""
    from eth_utils.address import to_checksum_address

    content = ctx.node.pool_content()
    return {
        side: {
            to_checksum_address(sender): {
                str(nonce): fmt.transaction(tx) for nonce, tx in by_nonce.items()
            }
            for sender, by_nonce in content.get(side, {}).items()
        }
        for side in ("pending", "queued")
    }


@method()
def txpool_inspect(ctx: Context) -> dict[str, Any]:
    """geth's one-line summaries: ``"0xto: value wei + gas gas x price wei"``."""
    from eth_utils.address import to_checksum_address

    content = ctx.node.pool_content()
    out: dict[str, Any] = {}
    for side in ("pending", "queued"):
        out[side] = {
            to_checksum_address(sender): {
                str(nonce): (
                    f"{fmt.addr(tx.to) or 'contract creation'}: {tx.value} wei + "
                    f"{tx.gas} gas x {tx.max_fee_per_gas} wei"
                )
                for nonce, tx in by_nonce.items()
            }
            for sender, by_nonce in content.get(side, {}).items()
        }
    return out
