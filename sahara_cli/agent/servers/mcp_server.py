"""``sahara mcp serve``: the vault and the protocol as an MCP server.

Agents outside sahara (any MCP client) get four tools:

- ``vault_search``: semantic search over the home's vault index. Hits name their CID and
  asset id; the text of public items comes with them, the text of private items never
  does (it leaves only through ``vault_read``). Private items are listed at all (name,
  CID, score) only to the owner: over stdio the local user who started the server, over
  HTTP a caller whose ``Authorization: Bearer`` header carries an owner key signed by
  the server's ID (:mod:`sahara_cli.agent.servers.mcp_auth`, made by ``sahara mcp key``).
  Anyone else searches the public items only; a bad or stale key is refused.
- ``asset_lookup`` and ``license_check``: the asset registry and the Licensing contract
  of the configured node.
- ``vault_read``: the plaintext of a registered vault item, for a caller who signs a
  read request with its Sahara ID (EIP-191): the fields of the key request ``sahara
  vault get`` sends to ``sahara vault serve``, but signed for the purpose ``mcp-read``
  (:data:`~sahara_cli.vault.access.MCP_READ`), so a key request seen on its way to
  ``vault serve`` cannot be replayed here for the plaintext. The request goes through
  the very checks of :class:`~sahara_cli.vault.access.KeyServer` (signature, chain id,
  freshness, no replay, the asset is this ID's, and the caller owns it, was shared it or
  holds a full-access, long-term or partnership license on chain), so licensed data
  reaches outside agents through the same gate as licensees.

Over stdio nothing but MCP is written to stdout: the SDK points file descriptor 1 at
stderr while it serves, and logs go to stderr.

Over HTTP the server checks every request's ``Host`` header (and ``Origin``, when a
browser sends one) against the address it listens on, the loopback names and the hosts
it was told to allow, so a web page cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

# Imported for real, not for type checking only: the SDK resolves the annotation of
# vault_search's ``context`` to inject the request (and its headers). This module is
# imported only by the commands that serve or list MCP tools.
from mcp.server.mcpserver import Context
from pydantic import Field

from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.errors import SaharaError, UsageError, VaultError

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from sahara_cli.agent.results import McpTools
    from sahara_cli.agent.tools.context import ToolContext
    from sahara_cli.identity.keys import Signer
    from sahara_cli.vault.access import KeyServer

log = logging.getLogger("sahara.agent.mcp")

READ_LIMIT = 16 << 20  # plaintext bytes vault_read returns
INSTRUCTIONS = (
    "Sahara vault and protocol tools. vault_search finds passages and names the asset "
    "each came from (private items only for the owner: over HTTP, send "
    "'Authorization: Bearer' with a key from 'sahara mcp key'); asset_lookup and "
    "license_check read the chain; vault_read returns "
    "an asset's text to a caller whose signed read request (purpose mcp-read) proves a "
    "license."
)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report sahara errors to the MCP caller as one line: ``code: message (hint)``."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SaharaError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            raise ToolError(f"{exc.code}: {exc.message}{hint}") from None

    return wrapper


class SaharaMcp:
    """The tools of ``sahara mcp serve`` over one :class:`ToolContext`."""

    def __init__(
        self, ctx: ToolContext, owner: Signer | None = None, *, local_owner: bool = False
    ) -> None:
        self.ctx = ctx
        self.owner = owner
        #: Every caller is the owner: true over stdio, where the caller is the local user
        #: who started the server with this home's files at hand.
        self.local_owner = local_owner
        self._key_server: KeyServer | None = None

    def is_owner(self, context: Context[Any, Any] | None) -> bool:
        """Whether the caller of this request may see the owner's private items: always
        over stdio, over HTTP with a valid owner key (a bad key raises)."""
        from sahara_cli.agent.servers.mcp_auth import bearer, verify_owner_key

        if self.local_owner:
            return True
        try:
            headers = context.headers if context is not None else None
        except ValueError:  # called outside a request (in process): no credentials
            headers = None
        token = bearer(headers)
        if token is None or not self.ctx.address:
            return False
        verify_owner_key(token, self.ctx.address)
        return True

    # -- the tools -------------------------------------------------------------------

    def vault_search(
        self,
        query: Annotated[str, Field(description="What to look for.", min_length=1)],
        k: Annotated[int, Field(description="How many hits.", ge=1, le=32)] = 4,
        context: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Search the vault's text; each hit names its CID and asset id. Private items are
        listed only to the owner (over HTTP: 'Authorization: Bearer' with a key from
        'sahara mcp key'), and their text is withheld even then: read it with vault_read
        and a signed, licensed request."""
        from sahara_cli.agent.tools.builtin import vault_search

        private = self.is_owner(context)
        return {**vault_search(self.ctx, query, k, private=private), "private": private}

    def asset_lookup(
        self, asset: Annotated[str, Field(description="Asset id (42) or content id (CID).")]
    ) -> dict[str, Any]:
        """Look up an on-chain asset: owner, kind, CID, commitment, name, parents."""
        from sahara_cli.agent.tools.builtin import asset_lookup

        return asset_lookup(self.ctx, asset)

    def license_check(
        self,
        asset: Annotated[int, Field(description="The asset id.", ge=1)],
        address: Annotated[str, Field(description="The 0x address to check.")],
        kind: Annotated[
            str, Field(description="any, api, full, long-term or partnership.")
        ] = "any",
    ) -> dict[str, Any]:
        """Check whether an address owns an asset or holds a license to it."""
        from sahara_cli.agent.tools.builtin import license_check
        from sahara_cli.identity.keys import is_address

        if not is_address(address):
            raise UsageError(f"{address!r} is not a 0x address")
        return license_check(self.ctx, asset, address, kind)

    def vault_read(
        self,
        asset: Annotated[int, Field(description="The asset id.", ge=1)],
        cid: Annotated[str, Field(description="The asset's CID (as registered).")],
        address: Annotated[str, Field(description="The caller's 0x address.")],
        chain: Annotated[int, Field(description="The chain id the request is for.")],
        issued: Annotated[int, Field(description="Unix time the request was signed.")],
        nonce: Annotated[str, Field(description="A fresh random hex string.")],
        signature: Annotated[
            str, Field(description="EIP-191 signature of the read request by address.")
        ],
        purpose: Annotated[
            str, Field(description="What the request was signed for: always mcp-read.")
        ] = "mcp-read",
    ) -> dict[str, Any]:
        """Read a registered vault item's text. The fields are a read request signed with
        the caller's Sahara ID: the text 'sahara vault read request', then the lines
        'purpose: mcp-read', 'asset: A', 'cid: C', 'address: 0x..', 'chain: N', 'issued:
        T', 'nonce: HEX'. A key request for 'sahara vault serve' is refused. It must be
        fresh, and the caller must own the asset, have been shared it, or hold a data
        license."""
        body = {
            "asset": asset,
            "cid": cid,
            "address": address,
            "chain": chain,
            "issued": issued,
            "nonce": nonce,
            "purpose": purpose,
            "signature": signature,
        }
        return self.read(body)

    # -- the gate --------------------------------------------------------------------

    def key_server(self) -> KeyServer:
        from sahara_cli.vault.access import KeyServer

        if self.owner is None:
            raise VaultError(
                "this MCP server runs without an unlocked ID, so it cannot read vault items",
                code="vault.locked",
                hint="Start 'sahara mcp serve' with --password-file or SAHARA_PASSWORD set.",
            )
        if self._key_server is None:
            proto = self.ctx.protocol()
            self._key_server = KeyServer(
                self.ctx.vault(),
                self.owner,
                self.ctx.protocol,
                chain_id=proto.node.chain_id(),
                log=lambda message: log.info("vault_read: %s", message),
            )
        return self._key_server

    def read(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check a read request (purpose ``mcp-read``) with :meth:`KeyServer.check`, the
        key server's own checks, then read the item."""
        from sahara_cli.vault.access import MCP_READ

        with self.ctx.lock:
            server = self.key_server()
            vault = self.ctx.vault()
            item, until = server.check(body, MCP_READ)
            if item.kind != "file":
                raise UsageError(f"asset {item.asset_id} is a directory; vault_read reads files")
            if item.size > READ_LIMIT:
                raise UsageError(
                    f"asset {item.asset_id} has {item.size} bytes; vault_read returns at most "
                    f"{READ_LIMIT}"
                )
            assert self.owner is not None
            key = vault.data_key(item, self.owner.private_key) if item.encrypted else None
            parts: list[bytes] = []
            vault.stream(item, key, parts.append)
        data = b"".join(parts)
        try:
            content, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            content, encoding = base64.b64encode(data).decode("ascii"), "base64"
        return {
            "asset": item.asset_id,
            "cid": item.cid,
            "name": item.name,
            "size": item.size,
            "commitment": item.commitment,
            "access_until": until,
            "encoding": encoding,
            "content": content,
        }

    # -- the server ------------------------------------------------------------------

    def server(self) -> MCPServer:
        """The MCP server of these tools (over stdio, set :attr:`local_owner` first)."""
        from mcp.server import MCPServer

        from sahara_cli import __version__

        server: MCPServer = MCPServer(
            "sahara", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
        )
        for fn in (self.vault_search, self.asset_lookup, self.license_check, self.vault_read):
            server.add_tool(_guard(fn), name=fn.__name__)
        return server


TOOL_NAMES = ("vault_search", "asset_lookup", "license_check", "vault_read")


async def list_tools(server: MCPServer) -> list[dict[str, Any]]:
    """The tools a server offers, as MCP lists them."""
    return [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
        }
        for tool in await server.list_tools()
    ]


def tool_listing(tools: SaharaMcp) -> McpTools:
    """The tools ``tools`` offers over MCP, with their input schemas (``sahara mcp tools``);
    closes the tool context."""
    import anyio

    from sahara_cli.agent.results import McpTool, McpTools

    try:
        found = anyio.run(list_tools, tools.server())
    finally:
        tools.ctx.close()
    return McpTools(
        tools=[
            McpTool(
                name=t["name"],
                description=str(t["description"] or ""),
                input_schema=t["input_schema"],
            )
            for t in found
        ]
    )


def serve_stdio(server: MCPServer) -> None:
    import anyio

    anyio.run(server.run_stdio_async)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _host_entries(name: str, port: int) -> list[str]:
    """``name`` as Host header values: with ``port`` unless it names one (and bare too
    on port 80, where clients leave the port out); IPv6 addresses in brackets."""
    import re

    if name.count(":") >= 2 and not name.startswith("["):
        name = f"[{name}]"
    if re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+):\d+", name):
        return [name]
    return [f"{name}:{port}", *([name] if port == 80 else [])]


def transport_security(host: str, port: int, allowed_hosts: Sequence[str] = ()) -> Any:
    """The ``Host``/``Origin`` check of the HTTP server (DNS-rebinding protection):
    requests must name the listening address, a loopback name, or an allowed host, each
    with this port (a name given with a port is taken as it is); a browser's ``Origin``
    must be one of those over http or https. The SDK turns it on by itself only for
    127.0.0.1, localhost and ::1; this turns it on for every address."""
    from mcp.server.transport_security import TransportSecuritySettings

    names: list[str] = []
    for name in (*LOOPBACK_NAMES, host, *allowed_hosts):
        for entry in _host_entries(name.strip(), port):
            if entry not in names:
                names.append(entry)
    origins = [f"{scheme}://{name}" for name in names for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=names, allowed_origins=origins
    )


async def serve_http(
    server: MCPServer,
    host: str,
    port: int,
    *,
    allowed_hosts: Sequence[str] = (),
    on_ready: Callable[[], None] | None = None,
    rate_per_ip: float | None = DEFAULT_RATE_PER_IP,
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until cancelled or signalled,
    checking each request's Host and Origin (:func:`transport_security`) and taking at
    most ``rate_per_ip`` requests a second from one address (None: no limit)."""
    import uvicorn

    from sahara_cli.agent.servers.limits import limited

    app = server.streamable_http_app(
        host=host, transport_security=transport_security(host, port, allowed_hosts)
    )
    config = uvicorn.Config(
        limited(app, rate_per_ip), host=host, port=port, log_level="warning", lifespan="on"
    )
    web = uvicorn.Server(config)
    if on_ready is not None:
        import asyncio

        async def announce() -> None:
            while not web.started and not web.should_exit:
                await asyncio.sleep(0.02)
            if web.started:
                on_ready()

        waiter = asyncio.ensure_future(announce())
        try:
            await web.serve()
        finally:
            waiter.cancel()
    else:
        await web.serve()
