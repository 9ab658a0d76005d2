"""Tools of MCP servers, called synchronously by the agent.

:class:`McpTools` connects to every server of an agent spec's ``[[mcp]]`` list with the
``mcp`` SDK's :class:`mcp.Client`: a stdio server is started as a child process (the
SDK's stdio client, with the spec's command, env and cwd; the child gets the SDK's
small default environment plus ``env``, so secrets such as ``SAHARA_PASSWORD`` are not
passed on), an ``http`` server is reached with the SDK's streamable-HTTP client.

The SDK is async; the agent is not. One event loop runs in a background thread for the
agent's lifetime and holds every session open; a tool call is a coroutine submitted to
that loop and waited for. :meth:`McpTools.close` ends the sessions in the task that
opened them, so the SDK shuts each stdio server down (stdin closed, then SIGTERM, then
SIGKILL of its process group) and no child process outlives the agent.

Tools are named ``<server>.<tool>`` always, even when the name alone would be unique:
a name then says where a call goes, does not change when another server is added, and
cannot shadow a built-in tool. A server that cannot be started or reached, a tool that
answers with an error result, or a call that times out raise
:class:`~sahara_cli.errors.McpError` naming the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.tools.registry import Tool
from sahara_cli.errors import McpError

if TYPE_CHECKING:
    import anyio
    from mcp import Client

    from sahara_cli.agent.spec import McpServerSpec

log = logging.getLogger("sahara.agent.mcp")

START_TIMEOUT = 30.0  # seconds for a server to start and list its tools
CALL_TIMEOUT = 120.0  # seconds for one tool call
CLOSE_TIMEOUT = 10.0  # seconds for one session to shut down
MAX_PAGES = 100  # of a tool listing


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: BaseException) -> str:
    leaf = _leaf(exc)
    text = str(leaf).strip().splitlines()
    first = text[0] if text else ""
    name = type(leaf).__name__
    if isinstance(leaf, FileNotFoundError):
        return f"command not found: {leaf.filename or first}"
    return f"{name}: {first}" if first else name


@dataclass
class _Connection:
    spec: McpServerSpec
    client: Client | None = None
    stop: asyncio.Event | None = None
    scope: anyio.CancelScope | None = None
    done: concurrent.futures.Future[None] | None = None
    tools: list[Any] = field(default_factory=list)


class McpTools:
    """Sessions with the MCP servers of one agent, and their tools as :class:`Tool`."""

    def __init__(
        self,
        servers: Sequence[McpServerSpec],
        *,
        start_timeout: float = START_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._connections: dict[str, _Connection] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sahara-mcp", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            for spec in servers:
                if spec.name in self._connections:
                    raise McpError(f"two MCP servers are named {spec.name!r}")
                self._connect(spec)
        except BaseException:
            self.close()
            raise

    # -- connecting ------------------------------------------------------------------

    def _target(self, spec: McpServerSpec) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        if spec.transport == "http":
            return spec.url
        params = StdioServerParameters(
            command=spec.command[0],
            args=list(spec.command[1:]),
            env=dict(spec.env) or None,
            cwd=spec.cwd,
        )
        # The server's stderr goes to ours, chosen now: the mcp package's default is the
        # sys.stderr of the moment it was imported, which may be gone or not a real file.
        return stdio_client(params, errlog=_child_stderr())

    def _connect(self, spec: McpServerSpec) -> None:
        conn = _Connection(spec)
        self._connections[spec.name] = conn
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        conn.done = asyncio.run_coroutine_threadsafe(self._hold(conn, ready), self._loop)
        try:
            ready.result(timeout=self.start_timeout)
        except TimeoutError:
            self._cancel(conn)
            raise McpError(
                f"MCP server {spec.name!r} did not start and list its tools within "
                f"{self.start_timeout:g} s",
                hint=_hint(spec),
            ) from None
        wanted = list(spec.tools)
        offered = {tool.name for tool in conn.tools}
        missing = [name for name in wanted if name not in offered]
        if missing:
            raise McpError(
                f"MCP server {spec.name!r} offers no tool {', '.join(missing)}; it offers: "
                f"{', '.join(sorted(offered)) or '(none)'}"
            )
        if wanted:
            conn.tools = [tool for tool in conn.tools if tool.name in wanted]

    async def _hold(self, conn: _Connection, ready: concurrent.futures.Future[None]) -> None:
        """Open the session, list the tools, then keep it open until told to stop."""
        import anyio
        from mcp import Client

        spec = conn.spec
        conn.stop = asyncio.Event()
        try:
            with anyio.CancelScope() as scope:
                conn.scope = scope
                async with Client(
                    self._target(spec), read_timeout_seconds=self.call_timeout
                ) as client:
                    tools: list[Any] = []
                    cursor: str | None = None
                    for _ in range(MAX_PAGES):
                        listed = await client.list_tools(cursor=cursor)
                        tools.extend(listed.tools)
                        cursor = listed.next_cursor
                        if not cursor:
                            break
                    conn.tools = tools
                    conn.client = client
                    ready.set_result(None)
                    await conn.stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(
                    McpError(
                        f"MCP server {spec.name!r} could not be started or reached: {_reason(exc)}",
                        hint=_hint(spec),
                    )
                )
            else:
                log.warning("MCP server %s: session ended: %s", spec.name, _reason(exc))
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            conn.client = None
            if not ready.done():
                ready.set_exception(
                    McpError(f"MCP server {spec.name!r} closed before it was ready")
                )

    def _cancel(self, conn: _Connection) -> None:
        scope = conn.scope
        if scope is not None:
            self._loop.call_soon_threadsafe(scope.cancel)
        if conn.done is not None:
            try:
                conn.done.result(timeout=CLOSE_TIMEOUT)
            except Exception as exc:
                log.debug("MCP server %s: %s", conn.spec.name, exc)

    # -- tools -----------------------------------------------------------------------

    def tools(self) -> list[Tool]:
        """Every tool of every server, as ``<server>.<tool>``."""
        out = []
        for name, conn in self._connections.items():
            for tool in conn.tools:
                schema = dict(tool.input_schema or {"type": "object"})
                schema.setdefault("type", "object")
                schema.setdefault("properties", {})
                out.append(
                    Tool(
                        name=f"{name}.{tool.name}",
                        description=(tool.description or tool.name).strip(),
                        parameters=schema,
                        func=_Caller(self, name, tool.name),
                        source=f"mcp:{name}",
                    )
                )
        return out

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Call one tool; returns its structured result, else its text (JSON decoded
        when it is JSON). Raises :class:`McpError`."""
        conn = self._connections.get(server)
        if conn is None or self._closed:
            raise McpError(f"no open MCP server {server!r}")
        client = conn.client
        if client is None:
            raise McpError(f"MCP server {server!r} is no longer connected", hint=_hint(conn.spec))
        future = asyncio.run_coroutine_threadsafe(client.call_tool(tool, arguments), self._loop)
        try:
            result = future.result(timeout=self.call_timeout + 5)
        except TimeoutError:
            future.cancel()
            raise McpError(
                f"MCP server {server!r}: {tool} did not answer within {self.call_timeout:g} s"
            ) from None
        except Exception as exc:
            raise McpError(f"MCP server {server!r}: {tool} failed: {_reason(exc)}") from exc
        texts = [
            str(getattr(block, "text", "")) for block in result.content if block.type == "text"
        ]
        if result.is_error:
            message = " ".join(" ".join(texts).split()) or "the tool reported an error"
            raise McpError(f"MCP server {server!r}: {tool}: {message}")
        if result.structured_content is not None:
            return result.structured_content
        text = "\n".join(texts)
        try:
            return json.loads(text)
        except ValueError:
            return text

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """End every session (stopping stdio servers) and the loop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for conn in self._connections.values():
            if conn.stop is not None:
                self._loop.call_soon_threadsafe(conn.stop.set)
        for conn in self._connections.values():
            if conn.done is None:
                continue
            try:
                conn.done.result(timeout=CLOSE_TIMEOUT)
            except TimeoutError:
                self._cancel(conn)
            except Exception as exc:
                log.debug("MCP server %s: %s", conn.spec.name, exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> McpTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Caller:
    """The function of one MCP tool (a class, so it shows what it calls in reprs)."""

    def __init__(self, owner: McpTools, server: str, tool: str) -> None:
        self.owner = owner
        self.server = server
        self.tool = tool

    def __call__(self, **arguments: Any) -> Any:
        return self.owner.call(self.server, self.tool, arguments)

    def __repr__(self) -> str:
        return f"<MCP tool {self.tool} of {self.server}>"


def _hint(spec: McpServerSpec) -> str:
    if spec.transport == "http":
        return f"Check that the server answers at {spec.url}."
    return f"Check that '{' '.join(spec.command)}' runs an MCP server on stdio."


def _child_stderr() -> Any:
    """A stream a child process can write its stderr to: ours if it is a real file (not a
    captured or in-memory one), else the process's original stderr, else the null device."""
    import io
    import os
    import sys
    from pathlib import Path

    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            continue
    return Path(os.devnull).open("w")  # lives as long as the process
