"""sahara mcp: serve the vault and the protocol to agents outside sahara over MCP."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption
from sahara_cli.commands._serve import check_port
from sahara_cli.commands._state import PASSWORD_ENV, AppState, state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from sahara_cli.agent.servers.mcp_server import SaharaMcp

app = typer.Typer(
    help="Model Context Protocol: vault search, asset and license lookups for any agent.",
    no_args_is_help=True,
)

DEFAULT_ADDR = "127.0.0.1:8765"

Scopes = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="Only search vault items whose name matches this glob (repeatable).",
        show_default=False,
    ),
]


def _parse_addr(addr: str) -> tuple[str, int]:
    host, _, port_text = addr.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--addr {addr!r} is not HOST:PORT", hint="For example 127.0.0.1:8765.")
    return host.strip("[]"), int(port_text)


def _mcp(
    st: AppState,
    signer_name: str | None,
    password_file: Path | None,
    scopes: list[str] | None,
) -> SaharaMcp:
    """The tools over this home; the ID is unlocked when a password is at hand."""
    from sahara_cli.agent.servers.mcp_server import SaharaMcp
    from sahara_cli.agent.tools.context import ToolContext

    home = st.home.require()
    cfg = st.config().config
    info = st.keystore().resolve(signer_name)
    owner = None
    if password_file is not None or os.environ.get(PASSWORD_ENV):
        owner, info, _ = st.unlock(signer_name, password_file)
    ctx = ToolContext(
        home_root=home.root,
        rpc_url=cfg.node.rpc_url,
        vault_config=cfg.vault,
        address=info.address,
        scopes=list(scopes or []),
        policy="any",
        open_private=False,
        node_timeout=cfg.node.timeout,
    )
    return SaharaMcp(ctx, owner)


@app.command("serve")
@returns("sahara_cli.agent.results:McpServeStopped")
def serve(
    transport: Annotated[
        str, typer.Option("--transport", help="stdio (for a client that starts it) or http.")
    ] = "stdio",
    addr: Annotated[
        str,
        typer.Option("--addr", help="HOST:PORT to listen on with --transport http."),
    ] = DEFAULT_ADDR,
    scopes: Scopes = None,
    allow_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="With --transport http, also accept requests whose Host header names "
            "this host (NAME or NAME:PORT; repeatable). The listening address and the "
            "loopback names are always accepted, any other Host is refused.",
            show_default=False,
        ),
    ] = None,
    rate_per_ip: Annotated[
        float,
        typer.Option(
            "--rate-per-ip",
            help="With --transport http, requests a second one address may make, in "
            "bursts of twice that (more: HTTP 429); 0 for no limit.",
            min=0,
        ),
    ] = DEFAULT_RATE_PER_IP,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Serve vault_search, asset_lookup, license_check and vault_read as MCP tools.

    Over HTTP, vault_search lists private items only to a caller with an owner key
    ('sahara mcp key'); over stdio the local user who started it is the owner."""
    import asyncio
    import signal

    from sahara_cli.agent.results import McpServeStopped
    from sahara_cli.agent.servers.mcp_server import serve_http, serve_stdio

    st = state()
    if transport not in ("stdio", "http"):
        raise UsageError(f"--transport {transport!r} is not stdio or http")
    host, port = _parse_addr(addr)
    if transport == "http":
        check_port(host, port)
    tools = _mcp(st, signer_name, password_file, scopes)
    tools.local_owner = transport == "stdio"
    reads = "with vault_read" if tools.owner is not None else "vault_read needs an unlocked ID"
    try:
        if transport == "stdio":
            # stdout is the MCP wire from here on: notes go to stderr, no result document.
            sys.stderr.write(f"sahara MCP server on stdio ({reads})\n")
            sys.stderr.flush()
            serve_stdio(tools.server())
            return

        url = f"http://{host}:{port}/mcp"

        def ready() -> None:
            st.output.note(f"Serving MCP at {url} ({reads})  (Ctrl-C stops)")
            if st.output.json_mode:
                sys.stderr.write(f'{{"listening": "{url}"}}\n')
                sys.stderr.flush()

        async def main() -> None:
            serving = serve_http(
                tools.server(),
                host,
                port,
                allowed_hosts=allow_hosts or [],
                on_ready=ready,
                rate_per_ip=rate_per_ip or None,
            )
            task = asyncio.ensure_future(serving)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task

        try:
            asyncio.run(main())
        except SystemExit:  # uvicorn exits when it cannot bind after all
            from sahara_cli.errors import AgentPortInUse

            raise AgentPortInUse(f"cannot listen on {host}:{port}") from None
    finally:
        tools.ctx.close()
    st.output.result(McpServeStopped(stopped=True, url=url), lambda c: c.print("Stopped."))


@app.command("key")
@returns("sahara_cli.agent.results:McpOwnerKey")
def key(
    ttl: Annotated[
        str,
        typer.Option("--ttl", help="How long the key stays valid (3600, 12h, 1d; 30d at most)."),
    ] = "1d",
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Make an owner key: 'Authorization: Bearer KEY' shows your private items in
    vault_search of 'sahara mcp serve --transport http' running as this ID."""
    from sahara_cli.agent.servers.mcp_auth import check_ttl, owner_key
    from sahara_cli.commands._protocol import parse_duration

    st = state()
    seconds = check_ttl(parse_duration(ttl))
    signer, info, _ = st.unlock(signer_name, password_file)
    made = owner_key(signer, info.name, seconds)

    def render(console: Console) -> None:
        console.print(made.owner_key, markup=False, highlight=False, soft_wrap=True)
        st.output.note(
            f"Owner key of '{info.name}' ({info.address}), valid {ttl}: send it as "
            "'Authorization: Bearer KEY' to 'sahara mcp serve --transport http'."
        )

    st.output.result(made, render)


@app.command("tools")
@returns("sahara_cli.agent.results:McpTools")
def list_tools(
    scopes: Scopes = None,
    signer_name: IdOption = None,
) -> None:
    """List the tools 'sahara mcp serve' offers, with their input schemas."""
    from sahara_cli.agent.servers.mcp_server import tool_listing

    st = state()
    found = tool_listing(_mcp(st, signer_name, None, scopes))

    def render(console: Console) -> None:
        for tool in found.tools:
            params = ", ".join((tool.input_schema.get("properties") or {}).keys())
            console.print(f"[bold]{tool.name}[/]({params})")
            console.print(f"  {' '.join(tool.description.split())}", highlight=False)

    st.output.result(found, render)
