"""The ``net_`` namespace: a solo node has no peers and is always listening."""

from __future__ import annotations

from sahara_cli.node.rpc.context import Context, method


@method(inline=True)
def net_version(ctx: Context) -> str:
    return str(ctx.node.chain_id)


@method(inline=True)
def net_listening(_ctx: Context) -> bool:
    return True


@method(inline=True)
def net_peerCount(_ctx: Context) -> str:
    return "0x0"
