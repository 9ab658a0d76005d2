"""WebSocket connections and their subscriptions (eth_subscribe).

Every connection has one outgoing queue drained by one writer task, so replies and
notifications never interleave inside a frame, and a client too slow to read is cut off
(once ``max_queue`` messages or ``max_bytes`` bytes wait) instead of growing the queue
forever. New blocks come from the node's producer thread;
the server hands them to the event loop, and :class:`Hub` fans them out.

A subscription starts delivering once the reply to its ``eth_subscribe`` is queued, so a
client never sees a notification for an id it has not been told yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_cli.node.rpc import format as fmt
from sahara_cli.node.rpc.dispatch import dumps
from sahara_cli.node.rpc.filters import logs_in_block, new_id

if TYPE_CHECKING:
    from aiohttp import web
    from eth.abc import BlockHeaderAPI

    from sahara_cli.node.rpc.context import Shared

log = logging.getLogger("sahara.rpc")

MAX_SUBSCRIPTIONS = 1_000


@dataclass
class Subscription:
    kind: str
    argument: Any
    active: bool = False


class Connection:
    def __init__(
        self, ws: web.WebSocketResponse, max_queue: int, max_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=max_queue)
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.subs: dict[str, Subscription] = {}
        self.closed = False

    def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            if self.queued_bytes + len(text) > self.max_bytes:
                raise asyncio.QueueFull
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("closing a WebSocket client that does not keep up with its messages")
            self.close()
            return
        self.queued_bytes += len(text)

    def reply(self, text: str) -> None:
        """Queue a reply, then let the subscriptions it announces start delivering."""
        self.send(text)
        for sub_id, sub in self.subs.items():
            if not sub.active and sub_id in text:
                sub.active = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.subs.clear()
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queued_bytes = 0
            self.queue.put_nowait(None)

    def subscribe(self, kind: str, argument: Any) -> str:
        from sahara_cli.node.rpc.errors import LimitExceeded

        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise LimitExceeded(
                f"too many subscriptions on one connection (max {MAX_SUBSCRIPTIONS})"
            )
        sub_id = new_id()
        self.subs[sub_id] = Subscription(kind, argument)
        return sub_id

    def unsubscribe(self, sub_id: str) -> bool:
        return self.subs.pop(sub_id, None) is not None

    def notify(self, sub_id: str, result: Any) -> None:
        message = {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": sub_id, "result": result},
        }
        self.send(dumps(message))

    async def writer(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None:
                break
            self.queued_bytes -= len(text)
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self.close()
                break


class Hub:
    """The open WebSocket connections; runs on the event loop thread only."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.connections: set[Connection] = set()

    def _subscribers(self, kind: str) -> list[tuple[Connection, str, Subscription]]:
        return [
            (conn, sub_id, sub)
            for conn in self.connections
            for sub_id, sub in list(conn.subs.items())
            if sub.kind == kind and sub.active
        ]

    def on_block(self, header: BlockHeaderAPI) -> None:
        heads = self._subscribers("newHeads")
        if heads:
            payload = fmt.header(header)
            for conn, sub_id, _ in heads:
                conn.notify(sub_id, payload)
        log_subs = self._subscribers("logs")
        if log_subs and header.gas_used:
            view = self.shared.view()
            for conn, sub_id, sub in log_subs:
                for entry in logs_in_block(view, header, sub.argument):
                    conn.notify(sub_id, entry)

    def on_pending(self, tx_hash: bytes) -> None:
        subs = self._subscribers("newPendingTransactions")
        if not subs:
            return
        tx = None
        for conn, sub_id, sub in subs:
            if sub.argument:  # full transactions
                tx = tx or self.shared.node.pending_transaction(tx_hash)
                if tx is not None:
                    conn.notify(sub_id, fmt.transaction(tx))
            else:
                conn.notify(sub_id, fmt.d(tx_hash))

    async def close_all(self) -> None:
        connections = list(self.connections)
        for conn in connections:
            conn.close()
        await asyncio.gather(*(c.ws.close() for c in connections), return_exceptions=True)
