"""The ``eth_`` namespace: chain reads, calls, transactions, logs, filters, proofs.

Each handler is named like its wire method and takes the :class:`Context` then the
JSON-RPC params, each parsed by the parser its annotation names (see ``params.py``).
"""

from __future__ import annotations

from typing import Any

from sahara_cli.node.rpc import accounts, execute, fees, proof
from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.context import Context, find_header, method
from sahara_cli.node.rpc.errors import InvalidParams
from sahara_cli.node.rpc.fees import Percentiles
from sahara_cli.node.rpc.filters import Filter, query_logs
from sahara_cli.node.rpc.params import (
    LATEST,
    Address,
    BlockId,
    BlockNumberOrTag,
    Bool,
    Call,
    Count,
    Data,
    FilterId,
    Hash,
    LogFilter,
    Overrides,
    StorageKey,
    TypedData,
    Uint64,
    filter_criteria,
)
from sahara_cli.node.rpc.proof import StorageKeys

Json = dict[str, Any]

# -- chain and account state --------------------------------------------------------------


@method(inline=True)
def eth_chainId(ctx: Context) -> str:
    return ctx.shared.chain_id_hex


@method(inline=True)
def eth_blockNumber(ctx: Context) -> str:
    return hex(ctx.shared.head_number())


@method(inline=True)
def eth_syncing(_ctx: Context) -> bool:
    return False


@method(inline=True)
def eth_accounts(ctx: Context) -> list[str]:
    return [fmt.d(a) for a in accounts.dev_accounts(ctx)]


@method()
def eth_getBalance(ctx: Context, address: Address, block: BlockId = LATEST) -> str:
    view = ctx.view()
    return fmt.q(view.state_at(ctx.header(view, block)).get_balance(address))


@method()
def eth_getTransactionCount(ctx: Context, address: Address, block: BlockId = LATEST) -> str:
    if block.tag == "pending":
        return fmt.q(ctx.node.pending_nonce(address))
    view = ctx.view()
    return fmt.q(view.state_at(ctx.header(view, block)).get_nonce(address))


@method()
def eth_getCode(ctx: Context, address: Address, block: BlockId = LATEST) -> str:
    view = ctx.view()
    return fmt.d(view.state_at(ctx.header(view, block)).get_code(address))


@method()
def eth_getStorageAt(
    ctx: Context, address: Address, slot: StorageKey, block: BlockId = LATEST
) -> str:
    view = ctx.view()
    return fmt.word(view.state_at(ctx.header(view, block)).get_storage(address, slot))


@method()
def eth_getProof(
    ctx: Context, address: Address, slots: StorageKeys, block: BlockId = LATEST
) -> Json:
    view = ctx.view()
    return proof.get_proof(view, ctx.header(view, block), address, slots)


# -- execution ---------------------------------------------------------------------------


@method(execution=True)
def eth_call(ctx: Context, call: Call, block: BlockId = LATEST, overrides: Overrides = None) -> str:
    execute.check_call_args(call)
    budget = ctx.budget()
    view = ctx.view()
    warm = ctx.shared.caches.setdefault("warm_states", execute.WarmStates())
    header = ctx.header(view, block)
    gas_cap = ctx.options.gas_cap
    output = execute.call(view, header, call, overrides, gas_cap, warm, budget=budget)
    return fmt.d(output)


@method(execution=True)
def eth_estimateGas(
    ctx: Context, call: Call, block: BlockId = LATEST, overrides: Overrides = None
) -> str:
    execute.check_call_args(call)
    budget = ctx.budget()
    view = ctx.view()
    header = ctx.header(view, block)
    gas_cap = ctx.options.gas_cap
    return fmt.q(execute.estimate_gas(view, header, call, overrides, gas_cap, budget=budget))


# -- fees --------------------------------------------------------------------------------


@method()
def eth_gasPrice(ctx: Context) -> str:
    view = ctx.view()
    return fmt.q(fees.next_base_fee(view.head()) + fees.suggested_tip(ctx.shared, view))


@method()
def eth_maxPriorityFeePerGas(ctx: Context) -> str:
    return fmt.q(fees.suggested_tip(ctx.shared, ctx.view()))


@method()
def eth_feeHistory(
    ctx: Context, count: Count, newest: BlockNumberOrTag, percentiles: Percentiles | None = None
) -> Json:
    view = ctx.view()
    return fees.fee_history(view, count, ctx.header(view, newest), percentiles or [])


# -- transactions ------------------------------------------------------------------------


@method(inline=True)  # cheap, CPU-bound: a worker thread would only add a GIL handoff
def eth_sendRawTransaction(ctx: Context, raw: Data) -> str:
    tx_hash = ctx.node.submit(raw)
    ctx.shared.announce_pending(tx_hash)
    return fmt.d(tx_hash)


@method(signing=True, execution=True)
def eth_sendTransaction(ctx: Context, call: Call) -> str:
    return fmt.d(accounts.send_transaction(ctx, call))


@method(signing=True)
def eth_sign(ctx: Context, address: Address, message: Data) -> str:
    return fmt.d(accounts.sign_message(ctx, address, message))


@method(signing=True)
def eth_signTypedData_v4(ctx: Context, address: Address, document: TypedData) -> str:
    return fmt.d(accounts.sign_typed_data(ctx, address, document))


def _mined_tx(ctx: Context, tx_hash: bytes) -> tuple[Any, Any, int] | None:
    view = ctx.view()
    location = view.tx_location(tx_hash)
    if location is None:
        return None
    header = view.header_by_number(location[0])
    if header is None:
        return None
    return view, header, location[1]


@method()
def eth_getTransactionByHash(ctx: Context, tx_hash: Hash) -> Json | None:
    found = _mined_tx(ctx, tx_hash)
    if found is None:
        pending = ctx.node.pending_transaction(tx_hash)
        return fmt.transaction(pending) if pending is not None else None
    view, header, index = found
    return _tx_in_block(view, header, index)


def _tx_in_block(view: Any, header: Any, index: int) -> Json | None:
    txs = view.transactions(header)
    if not 0 <= index < len(txs):
        return None
    return fmt.transaction(
        txs[index],
        block_hash=header.hash,
        number=header.block_number,
        index=index,
        base_fee=getattr(header, "base_fee_per_gas", None),
    )


@method(inline=True)
def eth_getTransactionReceipt(ctx: Context, tx_hash: Hash) -> Json | None:
    found = _mined_tx(ctx, tx_hash)
    if found is None:
        return None
    view, header, index = found
    receipts = ctx.shared.receipts(view, header)
    return fmt.receipt(header, view.transactions(header), receipts, index)


# -- blocks ------------------------------------------------------------------------------


@method()
def eth_getBlockByNumber(ctx: Context, block: BlockNumberOrTag, full: Bool) -> Json | None:
    view = ctx.view()
    header = find_header(view, block)
    return fmt.block(view, header, full) if header is not None else None


@method()
def eth_getBlockByHash(ctx: Context, block_hash: Hash, full: Bool) -> Json | None:
    view = ctx.view()
    header = view.header_by_hash(block_hash)
    return fmt.block(view, header, full) if header is not None else None


@method()
def eth_getBlockTransactionCountByNumber(ctx: Context, block: BlockNumberOrTag) -> str | None:
    view = ctx.view()
    header = find_header(view, block)
    return fmt.q(len(view.transactions(header))) if header is not None else None


@method()
def eth_getBlockTransactionCountByHash(ctx: Context, block_hash: Hash) -> str | None:
    view = ctx.view()
    header = view.header_by_hash(block_hash)
    return fmt.q(len(view.transactions(header))) if header is not None else None


@method()
def eth_getTransactionByBlockNumberAndIndex(
    ctx: Context, block: BlockNumberOrTag, index: Uint64
) -> Json | None:
    view = ctx.view()
    header = find_header(view, block)
    return _tx_in_block(view, header, index) if header is not None else None


@method()
def eth_getTransactionByBlockHashAndIndex(
    ctx: Context, block_hash: Hash, index: Uint64
) -> Json | None:
    view = ctx.view()
    header = view.header_by_hash(block_hash)
    return _tx_in_block(view, header, index) if header is not None else None


@method()
def eth_getUncleCountByBlockNumber(ctx: Context, block: BlockNumberOrTag) -> str | None:
    return "0x0" if find_header(ctx.view(), block) is not None else None


@method()
def eth_getUncleCountByBlockHash(ctx: Context, block_hash: Hash) -> str | None:
    return "0x0" if ctx.view().header_by_hash(block_hash) is not None else None


# -- logs and filters --------------------------------------------------------------------


@method()
def eth_getLogs(ctx: Context, criteria: LogFilter) -> list[Json]:
    return query_logs(ctx.view(), criteria, ctx.options)


@method()
def eth_newFilter(ctx: Context, criteria: LogFilter) -> str:
    head = ctx.shared.head_number()
    filt = Filter("logs", criteria=criteria, next_block=head + 1, client=ctx.client, owner=ctx.conn)
    return ctx.filters.install(filt)


@method(inline=True)
def eth_newBlockFilter(ctx: Context) -> str:
    head = ctx.shared.head_number()
    return ctx.filters.install(
        Filter("blocks", next_block=head + 1, client=ctx.client, owner=ctx.conn)
    )


@method(inline=True)
def eth_newPendingTransactionFilter(ctx: Context) -> str:
    return ctx.filters.install(Filter("pending", client=ctx.client, owner=ctx.conn))


@method()
def eth_getFilterChanges(ctx: Context, filter_id: FilterId) -> list[Any]:
    return ctx.filters.changes(filter_id, ctx.view(), ctx.options)


@method()
def eth_getFilterLogs(ctx: Context, filter_id: FilterId) -> list[Json]:
    criteria = ctx.filters.criteria(filter_id)
    return query_logs(ctx.view(), criteria, ctx.options)


@method(inline=True)
def eth_uninstallFilter(ctx: Context, filter_id: FilterId) -> bool:
    return ctx.filters.uninstall(filter_id)


# -- subscriptions (WebSocket only) ------------------------------------------------------

SUBSCRIPTIONS = ("newHeads", "logs", "newPendingTransactions")


@method(inline=True, ws=True)
def eth_subscribe(ctx: Context, kind: Any, options: Any = None) -> str:
    if kind not in SUBSCRIPTIONS:
        raise InvalidParams(f"invalid argument 0: no {str(kind)[:40]!r} subscription")
    argument: Any = None
    if kind == "logs":
        try:
            argument = filter_criteria(options if options is not None else {})
        except InvalidParams as exc:
            raise InvalidParams(f"invalid argument 1: {exc.message}") from None
    elif kind == "newPendingTransactions":
        argument = bool(options) if isinstance(options, bool) else False
    elif options is not None:
        raise InvalidParams("too many arguments, want at most 1")
    return str(ctx.conn.subscribe(kind, argument))


@method(inline=True, ws=True)
def eth_unsubscribe(ctx: Context, subscription: Any) -> bool:
    if not isinstance(subscription, str):
        raise InvalidParams("invalid argument 0: subscription id must be a string")
    return bool(ctx.conn.unsubscribe(subscription))
