"""Log queries and the state of polled filters (eth_newFilter and friends).

Filters are polled: a filter remembers the next block it has not reported, and each
``eth_getFilterChanges`` reads the committed chain from there to the head. Pending
transaction filters collect the hashes the RPC server announces. A filter nobody polled
for ``timeout`` seconds is dropped (geth: 5 minutes). At most ``max_filters`` are
installed at once, and ``max_per_client`` by one client (the address the requests come
from, over HTTP and WebSocket alike); past either the install is refused with -32005.
The filters installed over a WebSocket connection are uninstalled when it closes, so a
client that reconnects gets no new allowance and leaves nothing behind.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.context import block_number
from sahara_cli.node.rpc.errors import ExecutionError, LimitExceeded
from sahara_cli.node.rpc.params import BlockRef, FilterCriteria

if TYPE_CHECKING:
    from eth.abc import BlockHeaderAPI

    from sahara_cli.node.rpc.context import ServerOptions
    from sahara_cli.node.state import ChainView

MAX_PENDING_PER_FILTER = 4_096


def new_id() -> str:
    """A random subscription / filter id, like geth's (0x and 32 hex digits)."""
    return "0x" + secrets.token_hex(16)


def bloom_may_match(bloom: int, criteria: FilterCriteria) -> bool:
    """False when the header's bloom proves no log in the block can match."""
    from eth_bloom.bloom import BloomFilter

    if not criteria.addresses and not any(criteria.topics):
        return True
    filt = BloomFilter(bloom)
    if criteria.addresses and not any(a in filt for a in criteria.addresses):
        return False
    return all(options is None or any(t in filt for t in options) for options in criteria.topics)


def log_matches(entry: Any, criteria: FilterCriteria) -> bool:
    if criteria.addresses and bytes(entry.address) not in criteria.addresses:
        return False
    topics = entry.topics
    if len(criteria.topics) > len(topics):
        return False
    for wanted, topic in zip(criteria.topics, topics, strict=False):
        if wanted is not None and topic.to_bytes(32, "big") not in wanted:
            return False
    return True


def logs_in_block(
    view: ChainView, header: BlockHeaderAPI, criteria: FilterCriteria, *, use_bloom: bool = True
) -> list[dict[str, Any]]:
    if use_bloom and not bloom_may_match(header.bloom, criteria):
        return []
    receipts = view.receipts(header)
    if not any(r.logs for r in receipts):
        return []
    txs = view.transactions(header)
    out: list[dict[str, Any]] = []
    log_index = 0
    for tx_index, (tx, receipt) in enumerate(zip(txs, receipts, strict=True)):
        for entry in receipt.logs:
            if log_matches(entry, criteria):
                out.append(
                    fmt.log(
                        entry,
                        block_hash=header.hash,
                        number=header.block_number,
                        timestamp=header.timestamp,
                        tx_hash=tx.hash,
                        tx_index=tx_index,
                        log_index=log_index,
                    )
                )
            log_index += 1
    return out


def query_logs(
    view: ChainView,
    criteria: FilterCriteria,
    options: ServerOptions,
) -> list[dict[str, Any]]:
    """eth_getLogs: the logs matching ``criteria``."""
    if criteria.block_hash is not None:
        header = view.header_by_hash(criteria.block_hash)
        if header is None:
            raise ExecutionError("unknown block")
        return logs_in_block(view, header, criteria)
    head = int(view.head().block_number)
    first = block_number(view, criteria.from_block)
    last = min(block_number(view, criteria.to_block), head)
    explicit = criteria.from_block.number, criteria.to_block.number
    if explicit[0] is not None and explicit[1] is not None and explicit[0] > explicit[1]:
        raise ExecutionError("invalid block range params")
    if first > last:
        return []
    if last - first + 1 > options.max_log_range:
        raise LimitExceeded(f"query exceeds max block range {options.max_log_range}")
    out: list[dict[str, Any]] = []
    for number in range(first, last + 1):
        header = view.header_by_number(number)
        if header is None:
            break
        out.extend(logs_in_block(view, header, criteria))
        if len(out) > options.max_log_results:
            raise LimitExceeded(f"query returned more than {options.max_log_results} results")
    return out


@dataclass
class Filter:
    kind: str  # "logs", "blocks" or "pending"
    criteria: FilterCriteria | None = None
    next_block: int = 0
    pending: deque[bytes] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_PER_FILTER))
    last_poll: float = field(default_factory=time.monotonic)
    client: str = ""  # who installed it (Context.client), for the per-client cap
    owner: object = None  # the WebSocket connection it goes with, if any


class FilterManager:
    """Installed filters, shared by every connection; safe to use from any thread."""

    def __init__(
        self, timeout: float = 300.0, max_filters: int = 10_000, max_per_client: int = 1_000
    ) -> None:
        self.timeout = timeout
        self.max_filters = max_filters
        self.max_per_client = max_per_client
        self._lock = threading.Lock()
        self._filters: dict[str, Filter] = {}
        self._per_client: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._filters)

    def install(self, filt: Filter) -> str:
        """Keep ``filt`` under a new id; LimitExceeded past the server's or client's cap."""
        filter_id = new_id()
        with self._lock:
            self._expire()
            if len(self._filters) >= self.max_filters:
                raise LimitExceeded(
                    f"too many filters installed (max {self.max_filters}): uninstall some, "
                    "or let idle ones expire"
                )
            if self._per_client[filt.client] >= self.max_per_client:
                raise LimitExceeded(
                    f"too many filters installed by this client (max {self.max_per_client}): "
                    "uninstall some with eth_uninstallFilter"
                )
            self._filters[filter_id] = filt
            self._per_client[filt.client] += 1
        return filter_id

    def _drop(self, filter_id: str) -> bool:
        filt = self._filters.pop(filter_id, None)
        if filt is None:
            return False
        self._per_client[filt.client] -= 1
        if self._per_client[filt.client] <= 0:
            del self._per_client[filt.client]
        return True

    def uninstall(self, filter_id: str) -> bool:
        with self._lock:
            return self._drop(filter_id)

    def uninstall_owned(self, owner: object) -> int:
        """Uninstall the filters installed over the connection ``owner``; how many."""
        with self._lock:
            owned = [k for k, f in self._filters.items() if f.owner is owner]
            for key in owned:
                self._drop(key)
        return len(owned)

    def add_pending(self, tx_hash: bytes) -> None:
        with self._lock:
            for filt in self._filters.values():
                if filt.kind == "pending":
                    filt.pending.append(tx_hash)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.timeout
        for key in [k for k, f in self._filters.items() if f.last_poll < cutoff]:
            self._drop(key)

    def expire(self) -> None:
        with self._lock:
            self._expire()

    def _take(self, filter_id: str) -> Filter:
        self._expire()
        filt = self._filters.get(filter_id)
        if filt is None:
            raise ExecutionError("filter not found")
        filt.last_poll = time.monotonic()
        return filt

    def criteria(self, filter_id: str) -> FilterCriteria:
        with self._lock:
            filt = self._take(filter_id)
        if filt.criteria is None:
            raise ExecutionError("filter not found")
        return filt.criteria

    def changes(self, filter_id: str, view: ChainView, options: ServerOptions) -> list[Any]:
        """What ``filter_id`` has not reported yet; advances it."""
        head = int(view.head().block_number)
        with self._lock:
            filt = self._take(filter_id)
            if filt.kind == "pending":
                hashes = [fmt.d(h) for h in filt.pending]
                filt.pending.clear()
                return hashes
            first = min(filt.next_block, head + 1)  # a dev chain may have reverted
            filt.next_block = head + 1
        if filt.kind == "blocks":
            headers = (view.header_by_number(n) for n in range(first, head + 1))
            return [fmt.d(h.hash) for h in headers if h is not None]
        assert filt.criteria is not None
        if first > head:
            return []
        crit = filt.criteria
        if crit.from_block.number is not None:
            first = max(first, crit.from_block.number)
        if crit.to_block.number is not None and crit.to_block.number < first:
            return []
        window = FilterCriteria(
            from_block=BlockRef(number=first),
            to_block=crit.to_block,
            addresses=crit.addresses,
            topics=crit.topics,
        )
        return query_logs(view, window, options)
