"""The ``sahara_`` namespace (node status) and the dev-chain methods.

``sahara_dev_*`` exist on dev chains only and are refused on a remote interface. The
anvil and hardhat names many test suites call (``evm_mine``, ``evm_snapshot``,
``evm_revert``, ``evm_increaseTime``, ``evm_setAutomine``, ``anvil_setBalance``,
``hardhat_setBalance``, ``anvil_mine``, ``hardhat_mine``) map onto them, with those
tools' argument and result shapes.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from sahara_cli.node.abc import DevNodeAPI
from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.context import Context, method
from sahara_cli.node.rpc.errors import ExecutionError, InvalidParams
from sahara_cli.node.rpc.params import Address, Bool, Count, Quantity, _digits
from sahara_cli.node.rpc.web3 import CLIENT_VERSION

MAX_MINE = 10_000


@method()
def sahara_nodeInfo(ctx: Context) -> dict[str, Any]:
    node = ctx.node
    head = ctx.view().head()
    stats = node.stats
    return {
        "clientVersion": CLIENT_VERSION,
        "chainId": fmt.q(node.chain_id),
        "head": {
            "number": fmt.q(head.block_number),
            "hash": fmt.d(head.hash),
            "timestamp": fmt.q(head.timestamp),
        },
        "validator": node.validator_address,
        "dev": node.dev,
        "blockTime": node.block_time,
        "mempool": node.pool_status(),
        "txPerSecond": round(stats.tx_per_second(), 3),
        "blocksProduced": stats.blocks,
        "txsProduced": stats.txs,
        "uptime": round(time.time() - stats.started, 3),
    }


# -- dev chains ----------------------------------------------------------------------------


def loose_int(value: Any) -> int:
    """A non-negative number as JSON integer or 0x-hex (leading zeros allowed), as anvil takes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**256:
            raise InvalidParams("number out of range")
        return value
    digits = _digits(value)
    if not digits or len(digits) > 64:
        raise InvalidParams("expected a number")
    return int(digits, 16)


Loose = Annotated[int, loose_int]


def _dev(ctx: Context) -> DevNodeAPI:
    """The node as a :class:`DevNodeAPI` (the dispatcher serves these methods on dev
    chains only; a node that takes no dev orders refuses them here)."""
    node = ctx.node
    if not isinstance(node, DevNodeAPI):
        raise ExecutionError("this node does not take development orders")
    return node


def _mine(ctx: Context, count: int, timestamp: int | None) -> int:
    if not 1 <= count <= MAX_MINE:
        raise InvalidParams(f"can mine 1 to {MAX_MINE} blocks at a time")
    results = _dev(ctx).mine(count, timestamp)
    return int(results[-1].header.block_number)


@method(dev=True)
def sahara_dev_mine(ctx: Context, count: Count = 1, timestamp: Count | None = None) -> str:
    """Mine ``count`` blocks now (the first at ``timestamp``); the last block's number."""
    return fmt.q(_mine(ctx, count, timestamp))


def _set_automine(ctx: Context, enabled: bool) -> None:
    _dev(ctx).automine = enabled


@method(dev=True)
def sahara_dev_setAutomine(ctx: Context, enabled: Bool) -> bool:
    """With block time 0: mine on every transaction (true) or only on sahara_dev_mine."""
    _set_automine(ctx, enabled)
    return True


@method(dev=True)
def sahara_dev_snapshot(ctx: Context) -> str:
    return fmt.q(_dev(ctx).snapshot())


@method(dev=True)
def sahara_dev_revert(ctx: Context, snapshot: Quantity) -> bool:
    return _dev(ctx).revert(snapshot)


@method(dev=True)
def sahara_dev_setBalance(ctx: Context, address: Address, balance: Quantity) -> bool:
    _dev(ctx).set_balance(address, balance)
    return True


MAX_TIME_JUMP = 2**32  # about 136 years: block timestamps stay far inside 64 bits


def _increase_time(ctx: Context, seconds: int) -> int:
    if seconds > MAX_TIME_JUMP or _dev(ctx).time_offset + seconds > MAX_TIME_JUMP:
        raise InvalidParams(f"can move the clock by at most {MAX_TIME_JUMP} seconds in all")
    return _dev(ctx).increase_time(seconds)


@method(dev=True)
def sahara_dev_increaseTime(ctx: Context, seconds: Count) -> str:
    """Move the chain's clock forward; the total offset in seconds."""
    return fmt.q(_increase_time(ctx, seconds))


# -- anvil / hardhat names -----------------------------------------------------------------


def _mine_options(value: Any) -> tuple[int, int | None]:
    """evm_mine's argument: a timestamp, or anvil's ``{"timestamp", "blocks"}``."""
    if value is None:
        return 1, None
    if isinstance(value, dict):
        blocks = loose_int(value["blocks"]) if value.get("blocks") is not None else 1
        ts = loose_int(value["timestamp"]) if value.get("timestamp") is not None else None
        return blocks, ts
    return 1, loose_int(value)


MineOptions = Annotated[tuple[int, int | None], _mine_options]


@method(dev=True)
def evm_mine(ctx: Context, options: MineOptions = (1, None)) -> str:
    _mine(ctx, *options)
    return "0x0"


@method(dev=True)
def anvil_mine(ctx: Context, blocks: Loose = 1, _interval: Loose | None = None) -> None:
    _mine(ctx, blocks, None)


@method(dev=True)
def hardhat_mine(ctx: Context, blocks: Loose = 1, _interval: Loose | None = None) -> bool:
    _mine(ctx, blocks, None)
    return True


@method(dev=True)
def evm_setAutomine(ctx: Context, enabled: Bool) -> bool:
    _set_automine(ctx, enabled)
    return True


@method(dev=True)
def evm_snapshot(ctx: Context) -> str:
    return fmt.q(_dev(ctx).snapshot())


@method(dev=True)
def evm_revert(ctx: Context, snapshot: Loose) -> bool:
    return _dev(ctx).revert(snapshot)


@method(dev=True)
def evm_increaseTime(ctx: Context, seconds: Loose) -> int:
    return _increase_time(ctx, seconds)


@method(dev=True)
def anvil_setBalance(ctx: Context, address: Address, balance: Loose) -> None:
    _dev(ctx).set_balance(address, balance)


@method(dev=True)
def hardhat_setBalance(ctx: Context, address: Address, balance: Loose) -> bool:
    _dev(ctx).set_balance(address, balance)
    return True
