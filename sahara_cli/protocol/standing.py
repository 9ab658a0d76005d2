"""What the chain knows of an address: its receipts and reputation (``sahara id show``)."""

from __future__ import annotations

from collections.abc import Callable

from sahara_cli.errors import SaharaError
from sahara_cli.identity.results import ChainReceipt, ChainStanding


def chain_standing(rpc_url: str, address: str, *, timeout: float = 2.0) -> ChainStanding | None:
    """The receipts and reputation of ``address`` on the node at ``rpc_url``.

    None when no node answers there, or the chain has no protocol contracts: a caller
    shows an ID either way.
    """
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    client = NodeClient(rpc_url, timeout=timeout)
    try:
        proto = Protocol(client)
        proto.ensure_deployed()
        receipts = [
            ChainReceipt(
                receipt_id=r.id,
                asset_id=r.asset,
                holder=r.holder,
                role=r.role,
                share_bps=r.share_bps,
                minted_at=r.minted,
            )
            for r in proto.receipts_of(address)
        ]
        return ChainStanding(
            rpc_url=rpc_url, reputation=proto.reputation(address), receipts=receipts
        )
    except SaharaError:
        return None
    finally:
        client.close()


def standing_reader(rpc_url: str, *, timeout: float = 2.0) -> Callable[[str], ChainStanding | None]:
    """A reader for :func:`sahara_cli.identity.manage.show_identity` that asks ``rpc_url``."""
    return lambda address: chain_standing(rpc_url, address, timeout=timeout)
