"""In-process JSON-RPC: the same method table and error mapping, without a socket.

``NodeClient(LocalTransport(node))`` lets the library and tests talk to a node running
in this process exactly as they would over HTTP (same validation, same JSON shapes).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sahara_cli.node.rpc.context import Context, ServerOptions, Shared
from sahara_cli.node.rpc.dispatch import Dispatcher, method_table
from sahara_cli.node.rpc.filters import FilterManager

if TYPE_CHECKING:
    from sahara_cli.node.abc import NodeAPI


class LocalTransport:
    """Calls a :class:`NodeAPI` through the RPC dispatcher on a private event loop."""

    def __init__(self, node: NodeAPI, options: ServerOptions | None = None) -> None:
        opts = options or ServerOptions()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sahara-rpc-local")
        shared = Shared(
            node=node,
            options=opts,
            filters=FilterManager(
                opts.filter_timeout, opts.max_filters, opts.max_filters_per_client
            ),
        )
        self._ctx = Context(shared)
        self._dispatcher = Dispatcher(
            method_table(),
            self._executor,
            remote=False,
            allow_remote_signing=True,
            dev=node.dev,
            max_batch=opts.max_batch,
        )
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            reply = self._loop.run_until_complete(
                self._dispatcher.handle_request(request, self._ctx)
            )
        return reply or {}

    def close(self) -> None:
        self._loop.close()
        self._executor.shutdown(wait=False)
