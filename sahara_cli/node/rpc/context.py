"""What every handler receives: the node, the server's options and shared state.

Handlers are plain functions ``handler(ctx, *params)`` in one module per namespace,
named like the wire method and marked with :func:`method`. ``ctx`` is a
:class:`Context`: shared by every HTTP request, one per WebSocket connection (its
``conn`` is then that connection, for subscriptions).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sahara_cli.node.rpc.budget import Budget
from sahara_cli.node.rpc.errors import ExecutionError
from sahara_cli.node.rpc.params import BlockRef

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI, ReceiptAPI

    from sahara_cli.node.abc import NodeAPI
    from sahara_cli.node.rpc.filters import FilterManager
    from sahara_cli.node.state import ChainView

F = TypeVar("F", bound=Callable[..., Any])

MiB = 1024 * 1024
#: Blocks whose decoded receipts stay cached (clients poll for receipts of recent blocks).
RECEIPT_CACHE_BLOCKS = 16


@dataclass
class ServerOptions:
    """Limits and safety switches of one RPC server."""

    max_body: int = 5 * MiB
    max_batch: int = 1_000
    #: Once a batch's replies add up to this many bytes, its remaining requests are not
    #: run and get "response too large" (geth: 25 MB).
    max_batch_response: int = 25 * MiB
    #: Origins that get CORS headers; ``"*"`` for any. None by default.
    cors_origins: tuple[str, ...] = ()
    #: Host names accepted in the Host header (IP literals always are); ``"*"`` for any.
    vhosts: tuple[str, ...] = ("localhost",)
    #: Serve eth_sendTransaction, eth_sign*, and sahara_dev_* on a non-loopback address.
    allow_remote_signing: bool = False
    max_log_range: int = 10_000
    max_log_results: int = 10_000
    filter_timeout: float = 300.0
    #: Threads that run the state-reading handlers off the event loop.
    workers: int = 4
    #: Threads of their own for the handlers that run the EVM (eth_call,
    #: eth_estimateGas, debug_traceTransaction, eth_sendTransaction's estimate), so
    #: slow executions never hold up eth_getBalance and the other reads.
    execution_workers: int = 4
    #: Gas cap of eth_call and eth_estimateGas (geth's --rpc.gascap).
    gas_cap: int = 50_000_000
    #: Wall-clock seconds one EVM-running request may take (geth's --rpc.evmtimeout).
    execution_timeout: float = 5.0
    #: Opcodes one EVM-running request may execute, every frame and run included.
    max_steps: int = 10_000_000
    #: Bytes of struct logs one debug_traceTransaction may collect (JSON, approximately).
    max_trace_bytes: int = 64 * MiB
    #: Filters installed at once, in all and by one client (the address requests come
    #: from, HTTP and WebSocket alike; a WebSocket connection's go when it closes).
    max_filters: int = 10_000
    max_filters_per_client: int = 1_000
    #: Messages queued to one WebSocket client that does not read them before it is cut
    #: off, and their bytes.
    max_ws_queue: int = 10_000
    max_ws_queue_bytes: int = 64 * MiB
    #: Requests of one WebSocket connection received and not yet answered; past it the
    #: server reads no more from that connection until some are.
    max_ws_pending: int = 256

    @classmethod
    def of_config(cls, node: Any) -> ServerOptions:
        """The limits the ``node.rpc_*`` config keys set (``node`` is the config's
        ``[node]`` section), the other options at their defaults."""
        return cls(
            execution_timeout=node.rpc_execution_timeout,
            max_steps=node.rpc_max_steps,
            max_trace_bytes=node.rpc_max_trace_bytes,
        )


@dataclass(frozen=True)
class MethodFlags:
    inline: bool = False  # cheap: runs on the event loop thread
    execution: bool = False  # runs the EVM: on the execution workers, within a budget
    signing: bool = False  # uses the dev keys: refused on a remote interface
    dev: bool = False  # dev chains only, and refused on a remote interface
    needs_conn: bool = False  # WebSocket only (subscriptions)


def method(
    *,
    inline: bool = False,
    signing: bool = False,
    dev: bool = False,
    ws: bool = False,
    execution: bool = False,
) -> Callable[[F], F]:
    """Mark a function as the handler of the JSON-RPC method of the same name."""
    flags = MethodFlags(
        inline=inline, signing=signing or dev, dev=dev, needs_conn=ws, execution=execution
    )

    def mark(fn: F) -> F:
        fn.__rpc__ = flags  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass
class Shared:
    """State of one server, shared by every connection."""

    node: NodeAPI
    options: ServerOptions
    filters: FilterManager
    remote: bool = False
    #: Called with a transaction hash when a transaction entered the pool through RPC.
    on_pending: Callable[[bytes], None] = lambda _h: None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    caches: dict[str, Any] = field(default_factory=dict)
    _head: tuple[bytes, int] = (b"", -1)
    _view: Any = None
    _receipts: OrderedDict[bytes, tuple[ReceiptAPI, ...]] = field(default_factory=OrderedDict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)
    chain_id_hex: str = ""

    def __post_init__(self) -> None:
        self.chain_id_hex = hex(self.node.chain_id)

    def view(self) -> ChainView:
        """One read-only view of the committed chain, shared by every request.

        A view reads LMDB afresh on every lookup (the head included), so it never goes
        stale; calls and traces write only into their own throwaway state journals.
        Sharing it saves building a py-evm chain object per request.
        """
        if self._view is None:
            self._view = self.node.view()
        view: ChainView = self._view
        return view

    def receipts(self, view: ChainView, header: BlockHeaderAPI) -> tuple[ReceiptAPI, ...]:
        """A block's receipts, decoded once for the last few blocks asked about."""
        key = bytes(header.hash)
        with self._cache_lock:
            found = self._receipts.get(key)
            if found is not None:
                self._receipts.move_to_end(key)
                return found
        receipts = view.receipts(header)
        with self._cache_lock:
            self._receipts[key] = receipts
            while len(self._receipts) > RECEIPT_CACHE_BLOCKS:
                self._receipts.popitem(last=False)
        return receipts

    def announce_pending(self, tx_hash: bytes) -> None:
        """A transaction entered the pool through this server: tell filters and subscribers."""
        self.filters.add_pending(tx_hash)
        self.on_pending(tx_hash)

    def head_number(self) -> int:
        """The committed head's number: one LMDB read while the head is unchanged."""
        view = self.view()
        head_hash = view.head_hash()
        cached_hash, number = self._head
        if head_hash != cached_hash:
            number = view.number_of(head_hash)
            self._head = (head_hash, number)
        return number


class Context:
    """A handler's view of the server: shared state plus its connection, if any.

    ``client`` names who is asking, for per-client limits: the address the request came
    from, over HTTP or WebSocket.
    """

    __slots__ = ("client", "conn", "shared")

    def __init__(self, shared: Shared, conn: Any = None, client: str = "") -> None:
        self.shared = shared
        self.conn = conn
        self.client = client

    @property
    def node(self) -> NodeAPI:
        return self.shared.node

    @property
    def options(self) -> ServerOptions:
        return self.shared.options

    @property
    def filters(self) -> FilterManager:
        return self.shared.filters

    def view(self) -> ChainView:
        return self.shared.view()

    def budget(self) -> Budget:
        """A fresh execution budget: the server's timeout and step cap, from now."""
        return Budget(self.options.execution_timeout, self.options.max_steps)

    def header(self, view: ChainView, ref: BlockRef) -> BlockHeaderAPI:
        """The header ``ref`` names, or geth's -32000 "header not found"."""
        header = find_header(view, ref)
        if header is None:
            if ref.hash is not None:
                raise ExecutionError("header for hash not found")
            raise ExecutionError("header not found")
        return header


def block_number(view: ChainView, ref: BlockRef) -> int:
    """The number a tag or number stands for (tags resolve to the head: instant finality)."""
    if ref.number is not None:
        return ref.number
    if ref.tag == "earliest":
        return 0
    return int(view.head().block_number)


def find_header(view: ChainView, ref: BlockRef) -> BlockHeaderAPI | None:
    if ref.hash is not None:
        # header_by_hash returns canonical headers only; a block reverted away on a dev
        # chain is gone, so requireCanonical needs nothing more.
        return view.header_by_hash(ref.hash)
    if ref.number is None and ref.tag != "earliest":
        return view.head()
    return view.header_by_number(block_number(view, ref))
