"""MCP round trips with real servers and clients.

1. A sahara agent's tool box uses the tools of a small MCP server this test writes
   (started over stdio, and served over streamable HTTP): it lists and calls them, a
   tool's error result becomes a clean failed call, and closing leaves no child.
2. The official MCP client (``mcp.ClientSession`` over stdio) starts ``sahara mcp
   serve`` against a home with a registered private vault item on a dev node: it lists
   the tools, finds the item with ``vault_search``, reads the chain with
   ``asset_lookup`` and ``license_check``, and reads the text with ``vault_read`` only
   once the caller's signed read request is backed by a license; a key request meant
   for ``vault serve`` (a wrapped key) is refused there, however it is dressed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from sahara_cli.agent.spec import AgentSpec, McpServerSpec
from sahara_cli.agent.tools.context import ToolContext
from sahara_cli.agent.tools.mcp_client import McpTools
from sahara_cli.agent.tools.registry import build_toolbox
from sahara_cli.errors import McpError
from tests.e2e.cli_home import CliHome
from tests.e2e.nodes import free_port
from tests.e2e.test_protocol_cli import PASSWORD

pytestmark = pytest.mark.e2e

SERVER = '''
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("demo")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"refused: {reason}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
'''


@pytest.fixture
def server_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo_server.py"
    path.write_text(SERVER)
    return path


def _children_running(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (the server's file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_gone(marker: str, deadline: float = 15.0) -> list[int]:
    end = time.monotonic() + deadline
    while (left := _children_running(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def _ctx(tmp_path: Path) -> ToolContext:
    from sahara_cli.config import VaultSection

    return ToolContext(tmp_path / "home", rpc_url="", vault_config=VaultSection(), address="")


def test_agent_uses_tools_of_a_stdio_mcp_server(tmp_path: Path, server_file: Path) -> None:
    spec = AgentSpec(
        name="helper",
        tools={"builtin": ["calculator"]},
        mcp=[McpServerSpec(name="demo", command=[sys.executable, str(server_file)])],
    )
    with _ctx(tmp_path) as ctx:
        box = build_toolbox(spec, ctx)
        try:
            assert _children_running(str(server_file)), "the stdio server was not started"
            assert sorted(box.tools) == ["calculator", "demo.add", "demo.fail", "demo.shout"]
            assert box.tools["demo.add"].source == "mcp:demo"
            assert "- demo.add(a: integer, b: integer): Add two integers." in box.describe()

            added = box.call("demo.add", '{"a": 2, "b": 40}')
            assert added.ok, added.error
            assert added.output in (42, {"result": 42})
            shouted = box.call("demo.shout", {"text": "quiet"})
            assert shouted.ok and "QUIET" in str(shouted.output)

            failed = box.call("demo.fail", {"reason": "no way"})
            assert not failed.ok
            assert failed.error is not None and failed.error.startswith("ToolFailed: ")
            assert "MCP server 'demo'" in failed.error and "refused: no way" in failed.error

            bad = box.call("demo.add", {"a": "two", "b": 1})
            assert not bad.ok and bad.error is not None
            assert bad.error.startswith("ToolArgumentsInvalid: ")
            # The session survives both failures.
            assert box.call("demo.add", {"a": 1, "b": 1}).ok
        finally:
            box.close()
    assert _wait_gone(str(server_file)) == [], "closing the agent left the MCP server running"


def test_mcp_server_over_streamable_http(tmp_path: Path, server_file: Path) -> None:
    port = free_port()
    argv = [sys.executable, str(server_file), "http", str(port)]
    with (
        _http_server(argv, port) as url,
        McpTools([McpServerSpec(name="web", transport="http", url=url, tools=["add"])]) as mcp,
    ):
        tools = {tool.name: tool for tool in mcp.tools()}
        assert list(tools) == ["web.add"]  # filtered by the spec's tool list
        assert tools["web.add"].func(a=20, b=22) in (42, {"result": 42})
        with pytest.raises(McpError, match=r"MCP server 'web': fail: .*refused: x"):
            mcp.call("web", "fail", {"reason": "x"})


def test_a_stdio_server_starts_when_stderr_is_not_a_real_file(
    tmp_path: Path, server_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mcp package binds its stderr default when first imported; imported under a
    captured stderr (a CliRunner, a notebook), that stream has no file descriptor and every
    later stdio server failed to start with 'UnsupportedOperation: fileno'."""
    import io

    from mcp.client import stdio

    monkeypatch.setattr(stdio.stdio_client.__wrapped__, "__defaults__", (io.StringIO(),))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    spec = McpServerSpec(name="demo", command=[sys.executable, str(server_file)])
    with McpTools([spec]) as mcp:
        assert "demo.add" in {tool.name for tool in mcp.tools()}


def test_mcp_servers_that_cannot_be_used_fail_clearly(tmp_path: Path, server_file: Path) -> None:
    with pytest.raises(McpError, match=r"MCP server 'ghost' could not be started .*not found"):
        McpTools([McpServerSpec(name="ghost", command=[str(tmp_path / "no-such-server")])])
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(McpError, match="MCP server 'crash'"):
        McpTools([McpServerSpec(name="crash", command=[sys.executable, str(crash)])])
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(McpError, match="MCP server 'away' could not be started or reached"):
        McpTools([McpServerSpec(name="away", transport="http", url=url)], start_timeout=20)
    with pytest.raises(McpError, match="offers no tool delete; it offers: add, fail, shout"):
        McpTools(
            [
                McpServerSpec(
                    name="demo", command=[sys.executable, str(server_file)], tools=["delete"]
                )
            ]
        )
    assert _wait_gone(str(server_file)) == []


@contextmanager
def _http_server(
    argv: list[str], port: int, env: dict[str, str] | None = None, address: str = "127.0.0.1"
) -> Iterator[str]:
    """Run an MCP server over streamable HTTP on ``address:port``; yields its endpoint
    URL and stops the server when the block ends."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_port(address, port, process)
        yield f"http://{address}:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait_port(
    address: str, port: int, process: subprocess.Popen[str], deadline: float = 30.0
) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")  # type: ignore[union-attr]
        with socket.socket() as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {address}:{port} after {deadline} s")


# -- sahara mcp serve through the official client -------------------------------------

MARKER = "OKAPI-MOONWALK-4417"
NOTES = f"""# Survey notes

The {MARKER} okapis feed on the forest edge at dawn and rest in the shade at noon.
"""


@pytest.fixture
def node_url(tmp_path: Path) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path / "node") as (_, server):
        yield server.url


@pytest.fixture
def owner(tmp_path: Path, node_url: str) -> CliHome:
    from sahara_cli.node.client import NodeClient

    work = tmp_path / "work"
    work.mkdir()
    (work / "okapi.md").write_text(NOTES)
    h = CliHome(tmp_path / "owner", work, password=PASSWORD)
    h.env["SAHARA_NODE_RPC_URL"] = node_url
    h.ok("init")
    address = h.ok("id", "show", "--no-chain")["address"]
    NodeClient(node_url).call("sahara_dev_setBalance", address, hex(10**20))
    return h


def _serve_params(owner: CliHome) -> Any:
    from mcp import StdioServerParameters

    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env |= {
        "SAHARA_HOME": str(owner.root),
        "SAHARA_PASSWORD": PASSWORD,
        "SAHARA_IDENTITY_SCRYPT_N": "1024",
        **owner.env,
    }
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "sahara_cli", "--no-prompt", "mcp", "serve"],
        env=env,
    )


def _result(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def _error_text(result: Any) -> str:
    assert result.is_error
    return " ".join(block.text for block in result.content if block.type == "text")


def test_official_client_uses_sahara_mcp_serve(owner: CliHome, node_url: str) -> None:
    from mcp import ClientSession, stdio_client

    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.access import MCP_READ, KeyRequest

    added = owner.ok("vault", "add", "okapi.md", "--register")["items"][0]
    asset, cid = added["asset_id"], added["cid"]
    assert asset and added["encrypted"] and added["chunks"] >= 1
    owner_address = owner.ok("id", "show", "--no-chain")["address"]
    offer = owner.ok(
        "license", "offer", str(asset), "--type", "long-term", "--price", "1", "--duration", "30d"
    )["offer_id"]

    node = NodeClient(node_url)
    licensee = Signer(os.urandom(32))
    node.call("sahara_dev_setBalance", licensee.address, hex(10**20))
    chain_id = node.chain_id()

    async def session() -> None:
        async with (
            # errlog named: the package's default is the stderr of its first import,
            # which in a test run may be an earlier test's captured stream.
            stdio_client(_serve_params(owner), errlog=sys.__stderr__) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            listed = await client.list_tools()
            names = {tool.name for tool in listed.tools}
            assert names == {"vault_search", "asset_lookup", "license_check", "vault_read"}

            found = _result(await client.call_tool("vault_search", {"query": "okapi at dawn"}))
            hits = found["hits"]
            assert hits and hits[0]["asset_id"] == asset and hits[0]["cid"] == cid
            assert hits[0]["text"] is None and hits[0]["sealed"]  # private text stays sealed

            looked = _result(await client.call_tool("asset_lookup", {"asset": cid}))
            assert looked["id"] == asset and looked["owner"] == owner_address
            assert looked["in_vault"] is True

            args = {"asset": asset, "address": licensee.address}
            checked = _result(await client.call_tool("license_check", args))
            assert checked["has_access"] is False and checked["is_owner"] is False

            request = KeyRequest.new(licensee, asset, cid, chain_id, MCP_READ).signed(licensee)
            refused = await client.call_tool("vault_read", request)
            assert "vault.no_license" in _error_text(refused)

            proto = Protocol(node)
            proto.buy(licensee, offer)
            checked = _result(await client.call_tool("license_check", args))
            assert checked["has_access"] is True and checked["access_until"]["long-term"] > 0

            # A key request, as 'sahara vault get' sends to 'vault serve' (seen on the
            # wire, say), is no read request: refused as it is, without its purpose, or
            # relabelled, since the text it signed names the key release.
            key_request = KeyRequest.new(
                licensee, asset, cid, chain_id, audience="http://127.0.0.1:8547"
            ).signed(licensee)
            assert key_request["purpose"] == "key-release"
            relabelled = {**key_request, "purpose": MCP_READ}
            unlabelled = {k: v for k, v in key_request.items() if k != "purpose"}
            for replay in (key_request, relabelled, unlabelled):
                refused_text = _error_text(await client.call_tool("vault_read", replay))
                assert "vault.request_invalid" in refused_text, refused_text
                assert "mcp-read" in refused_text
                assert NOTES not in refused_text

            request = KeyRequest.new(licensee, asset, cid, chain_id, MCP_READ).signed(licensee)
            text = _result(await client.call_tool("vault_read", request))
            assert text["content"] == NOTES and text["encoding"] == "utf-8"
            assert text["access_until"] > 0
            replayed = await client.call_tool("vault_read", request)
            assert "replayed" in _error_text(replayed)

            forged = {**request, "address": owner_address}
            assert "vault.request_invalid" in _error_text(
                await client.call_tool("vault_read", forged)
            )
            missing = await client.call_tool("asset_lookup", {"asset": "9999"})
            assert "not_found" in _error_text(missing)

    anyio.run(session)


def test_mcp_serve_refuses_a_bad_address(owner: CliHome) -> None:
    code, error = owner.fails("mcp", "serve", "--transport", "http", "--addr", "no-port")
    assert code == 2 and "HOST:PORT" in error["message"]
    listed = owner.ok("mcp", "tools")["tools"]
    assert [tool["name"] for tool in listed] == [
        "vault_search",
        "asset_lookup",
        "license_check",
        "vault_read",
    ]


def test_sahara_mcp_serve_over_streamable_http(owner: CliHome) -> None:
    """`sahara mcp serve --transport http`, reached as any agent would reach it: the
    SDK's streamable-HTTP client lists its tools and searches the vault's public items
    (private ones only with an owner key: tests/e2e/test_mcp_owner.py)."""
    added = owner.ok("vault", "add", "okapi.md", "--public")["items"][0]
    port = free_port()
    argv = [sys.executable, "-m", "sahara_cli", "--no-prompt", "mcp", "serve"]
    argv += ["--transport", "http", "--addr", f"127.0.0.1:{port}"]
    with (
        _http_server(argv, port, owner.environ()) as url,
        McpTools([McpServerSpec(name="sahara", transport="http", url=url)]) as mcp,
    ):
        names = sorted(tool.name for tool in mcp.tools())
        assert names == [
            "sahara.asset_lookup",
            "sahara.license_check",
            "sahara.vault_read",
            "sahara.vault_search",
        ]
        found = mcp.call("sahara", "vault_search", {"query": "okapi at dawn"})
        hits = found["hits"]
        assert hits and hits[0]["cid"] == added["cid"]
        assert MARKER in hits[0]["text"]  # a public item's text comes with its hit
