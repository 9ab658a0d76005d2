"""The ``web3_`` namespace."""

from __future__ import annotations

import platform

from sahara_cli import __version__
from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.context import Context, method
from sahara_cli.node.rpc.params import Data

CLIENT_VERSION = f"sahara/{__version__}/python"
CLIENT_DETAIL = f"python{platform.python_version()}"


@method(inline=True)
def web3_clientVersion(_ctx: Context) -> str:
    return CLIENT_VERSION


@method(inline=True)
def web3_sha3(_ctx: Context, data: Data) -> str:
    from eth_hash.auto import keccak

    return fmt.d(keccak(data))
