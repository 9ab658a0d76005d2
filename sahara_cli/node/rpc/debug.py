"""The ``debug_`` namespace: transaction traces with geth's struct-log tracer."""

from __future__ import annotations

from typing import Any

from sahara_cli.node.rpc.context import Context, method
from sahara_cli.node.rpc.params import Hash
from sahara_cli.node.rpc.tracer import TraceConfig, TraceOptions, trace_transaction


@method(execution=True)
def debug_traceTransaction(
    ctx: Context, tx_hash: Hash, config: TraceOptions = TraceConfig()
) -> dict[str, Any]:
    """geth's default (struct-log) tracer: one entry per executed opcode."""
    budget = ctx.budget()
    max_bytes = ctx.options.max_trace_bytes
    return trace_transaction(ctx.view(), tx_hash, config, budget=budget, max_bytes=max_bytes)
