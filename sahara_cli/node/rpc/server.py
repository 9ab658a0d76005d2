"""The node's Ethereum JSON-RPC server: HTTP POST and WebSocket on one port (aiohttp).

Safe by default: it binds 127.0.0.1; on any other address the methods that sign with
the dev keys or change a dev chain are refused unless ``allow_remote_signing``; CORS
headers go only to configured origins; POST bodies must be ``application/json`` (so a
web page cannot send one without a CORS preflight); and the Host header must name
localhost, an IP address or a configured virtual host (against DNS rebinding).

:class:`RPCServer` runs on the caller's event loop; :func:`serve_in_thread` runs one on
its own loop in a background thread for synchronous callers (the CLI, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sahara_cli.node.rpc.context import Context, ServerOptions, Shared
from sahara_cli.node.rpc.dispatch import Dispatcher, dumps, method_table
from sahara_cli.node.rpc.errors import INVALID_REQUEST, error_reply
from sahara_cli.node.rpc.filters import FilterManager
from sahara_cli.node.rpc.pubsub import Connection, Hub

if TYPE_CHECKING:
    from sahara_cli.node.abc import NodeAPI
    from sahara_cli.node.state import BlockResult

log = logging.getLogger("sahara.rpc")

JSON = "application/json"
WS_CONCURRENCY = 16  # requests of one WebSocket connection served at once
WS_HEARTBEAT = 30.0  # ping idle clients; drop the ones that stopped answering
WS_CLOSE_TIMEOUT = 2.0
SWEEP_SECONDS = 30.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8545
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class RPCServer:
    """JSON-RPC over HTTP and WebSocket for one :class:`~sahara_cli.node.abc.NodeAPI`."""

    def __init__(self, node: NodeAPI, options: ServerOptions | None = None, **opts: Any) -> None:
        self.node = node
        self.options = replace(options or ServerOptions(), **opts)
        self.host = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._execution_executor: ThreadPoolExecutor | None = None
        self._unsubscribe: Any = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    async def start(self, host: str = "127.0.0.1", port: int = 8545) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: a free one); returns the address bound."""
        opts = self.options
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(opts.workers, thread_name_prefix="sahara-rpc")
        self._execution_executor = ThreadPoolExecutor(
            opts.execution_workers, thread_name_prefix="sahara-rpc-evm"
        )
        self.shared = Shared(
            node=self.node,
            options=opts,
            filters=FilterManager(
                opts.filter_timeout, opts.max_filters, opts.max_filters_per_client
            ),
            remote=not is_loopback(host),
        )
        self.hub = Hub(self.shared)
        self.shared.on_pending = self._pending_threadsafe
        self.dispatcher = Dispatcher(
            method_table(),
            self._executor,
            remote=self.shared.remote,
            allow_remote_signing=opts.allow_remote_signing,
            dev=self.node.dev,
            max_batch=opts.max_batch,
            max_batch_response=opts.max_batch_response,
            execution_executor=self._execution_executor,
        )
        app = web.Application(client_max_size=opts.max_body)
        app.router.add_route("*", "/", self._handle, expect_handler=self._expect)
        # lingering_time=0: after a reply that did not read the body (413, 415, 403) the
        # connection closes; aiohttp would otherwise read and discard it for 10 s.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        bound = self._runner.addresses[0]
        self.host, self.port = str(bound[0]), int(bound[1])
        self._unsubscribe = self.node.subscribe(self._block_threadsafe)
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("JSON-RPC on %s (remote interface: %s)", self.url, self.shared.remote)
        return self.host, self.port

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._runner is not None:
            await self.hub.close_all()
            await self._runner.cleanup()
            self._runner = None
        for executor in (self._executor, self._execution_executor):
            if executor is not None:  # running executions end within their budget
                executor.shutdown(wait=True, cancel_futures=True)
        self._executor = self._execution_executor = None

    # -- events from other threads -----------------------------------------------------

    def _block_threadsafe(self, result: BlockResult) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self.hub.on_block, result.header)

    def _pending_threadsafe(self, tx_hash: bytes) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.hub.on_pending, tx_hash)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.shared.filters.expire()

    # -- HTTP --------------------------------------------------------------------------

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self.options.cors_origins
        return "*" in allowed or origin in allowed

    def _host_allowed(self, request: web.Request) -> bool:
        host = request.headers.get("Host")
        if not host:
            return True
        name = _host_name(host).lower()
        vhosts = self.options.vhosts
        if "*" in vhosts or name in vhosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _cors(self, origin: str | None) -> dict[str, str]:
        if origin is None or not self._origin_allowed(origin):
            return {}
        allow = "*" if "*" in self.options.cors_origins else origin
        return {"Access-Control-Allow-Origin": allow, "Vary": "Origin"}

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body = dumps(error_reply(None, INVALID_REQUEST, message))
        return web.Response(status=status, text=body, content_type=JSON, headers=headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        if request.body_exists and response.status >= 400:
            # Refused, its body maybe unread: the server closes the connection rather
            # than read the rest (lingering_time=0), so say so, or the client would
            # send its next request on a connection that is going away.
            response.force_close()
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self._host_allowed(request):
            return self._error(403, "invalid host specified")
        origin = request.headers.get("Origin")
        cors = self._cors(origin)
        if request.method == "POST":
            return await self._post(request, cors)
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            if origin is not None and not self._origin_allowed(origin):
                return self._error(403, f"origin {origin[:100]} is not allowed")
            return await self._websocket(request)
        if request.method == "OPTIONS":
            if not cors:
                return web.Response(status=403)
            requested = request.headers.get("Access-Control-Request-Headers", "Content-Type")
            cors.update(
                {
                    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
                    "Access-Control-Allow-Headers": requested,
                    "Access-Control-Max-Age": "600",
                }
            )
            return web.Response(status=204, headers=cors)
        return self._error(405, "method not allowed: send JSON-RPC with POST", {"Allow": "POST"})

    def _too_large(self, cors: dict[str, str]) -> web.Response:
        """413 and ``Connection: close``: the server reads none of the rest of the body."""
        limit = self.options.max_body
        response = self._error(413, f"request body too large: limit {limit} bytes", cors)
        response.force_close()
        return response

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse a body declared too large before it is sent."""
        length = request.content_length
        if request.method == "POST" and length is not None and length > self.options.max_body:
            return self._too_large(self._cors(request.headers.get("Origin")))
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="unknown Expect header")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def _post(self, request: web.Request, cors: dict[str, str]) -> web.Response:
        if request.content_type != JSON:
            return self._error(
                415, "invalid content type, only application/json is supported", cors
            )
        length = request.content_length
        if length is not None and length > self.options.max_body:
            return self._too_large(cors)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(cors)
        ctx = Context(self.shared, client=request.remote or "")
        reply = await self.dispatcher.handle_payload(body, ctx)
        return web.Response(body=(reply or "").encode(), content_type=JSON, headers=cors)

    # -- WebSocket ---------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            max_msg_size=self.options.max_body, heartbeat=WS_HEARTBEAT, timeout=WS_CLOSE_TIMEOUT
        )
        await ws.prepare(request)
        opts = self.options
        conn = Connection(ws, opts.max_ws_queue, opts.max_ws_queue_bytes)
        # Filters count against the address, as over HTTP: a client that reconnects gets
        # no fresh allowance. They go with the connection (subscriptions too).
        ctx = Context(self.shared, conn, client=request.remote or "")
        self.hub.connections.add(conn)
        writer = asyncio.create_task(conn.writer())
        limit = asyncio.Semaphore(WS_CONCURRENCY)
        tasks: set[asyncio.Task[None]] = set()

        async def serve(data: str | bytes) -> None:
            async with limit:
                reply = await self.dispatcher.handle_payload(data, ctx)
            if reply is not None:
                conn.reply(reply)

        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    task = asyncio.create_task(serve(msg.data))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    while len(tasks) >= opts.max_ws_pending:  # read no more until some end
                        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                elif msg.type == WSMsgType.ERROR:
                    break
                if conn.closed:
                    break
        finally:
            self.hub.connections.discard(conn)
            conn.close()
            self.shared.filters.uninstall_owned(conn)
            for task in tasks:
                task.cancel()
            await writer
            if not ws.closed:
                await ws.close()
        return ws


class ServerHandle:
    """A server running in a background thread; :meth:`stop` ends it."""

    def __init__(
        self, server: RPCServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.server = server
        self.loop = loop
        self.thread = thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, timeout: float = 30.0) -> None:
        if not self.thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        try:
            future.result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    node: NodeAPI, host: str = "127.0.0.1", port: int = 0, **opts: Any
) -> ServerHandle:
    """Start an :class:`RPCServer` on its own event loop in a daemon thread."""
    server = RPCServer(node, **opts)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="sahara-rpc-loop", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]
    return ServerHandle(server, loop, thread)
