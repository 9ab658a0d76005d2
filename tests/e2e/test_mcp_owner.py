"""`sahara mcp serve --transport http`: who sees private items, which requests it answers.

Anyone who reaches the port may search, but ``vault_search`` lists private items (their
names, CIDs and scores) only to a caller with an owner key from ``sahara mcp key``: the
key of the ID the server runs as, current. Every request must name an allowed Host (the
listening address, a loopback name, or an ``--allow-host``), and a browser's Origin must
be one of them: a page on another site cannot reach the server by DNS rebinding.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from sahara_cli.agent.spec import McpServerSpec
from sahara_cli.agent.tools.mcp_client import McpTools
from tests.e2e.cli_home import CliHome
from tests.e2e.nodes import free_port
from tests.e2e.test_mcp import _http_server
from tests.e2e.test_protocol_cli import PASSWORD

pytestmark = pytest.mark.e2e

SECRET = "okapi-private-survey.md"
PUBLIC = "zebra-public-guide.md"


@pytest.fixture
def owner(tmp_path: Path) -> CliHome:
    work = tmp_path / "work"
    work.mkdir()
    (work / SECRET).write_text("The okapis feed on the forest edge at dawn.\n")
    (work / PUBLIC).write_text("The okapis of the zoo guide feed at dawn too, in public.\n")
    h = CliHome(tmp_path / "owner", work, password=PASSWORD)
    h.ok("init")
    return h


def _serve_argv(port: int, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "sahara_cli", "--no-prompt", "mcp", "serve"]
    return [*argv, "--transport", "http", "--addr", f"127.0.0.1:{port}", *extra]


async def _search(url: str, token: str | None) -> Any:
    """vault_search through the SDK's client, with ``Authorization: Bearer token``."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        return await client.call_tool("vault_search", {"query": "okapis feed at dawn", "k": 8})


def _names(result: Any) -> set[str]:
    assert not result.is_error, result.content
    return {hit["name"] for hit in result.structured_content["hits"]}


def _error(result: Any) -> str:
    assert result.is_error
    return " ".join(block.text for block in result.content if block.type == "text")


def test_private_hits_only_for_the_owner_over_http(owner: CliHome, tmp_path: Path) -> None:
    private = owner.ok("vault", "add", SECRET)["items"][0]
    public = owner.ok("vault", "add", PUBLIC, "--public")["items"][0]
    assert private["encrypted"] and not public["encrypted"]

    port = free_port()
    with _http_server(_serve_argv(port), port, owner.environ()) as url:
        # Anyone: the public item only; the private one is not even named.
        with McpTools([McpServerSpec(name="sahara", transport="http", url=url)]) as mcp:
            found = mcp.call("sahara", "vault_search", {"query": "okapis feed at dawn", "k": 8})
        names = {hit["name"] for hit in found["hits"]}
        cids = {hit["cid"] for hit in found["hits"]}
        assert PUBLIC in names, found
        assert SECRET not in names and private["cid"] not in cids, found
        assert found["private"] is False

        key = owner.ok("mcp", "key", "--ttl", "1h")["owner_key"]
        stranger = CliHome(tmp_path / "stranger", password=PASSWORD)
        stranger.ok("init")
        strangers_key = stranger.ok("mcp", "key")["owner_key"]
        code, error = owner.fails("mcp", "key", "--ttl", "31d")
        assert code == 2 and "30 days" in error["message"]

        # The owner, with a key from 'sahara mcp key': both, the private text still sealed.
        result = anyio.run(_search, url, key)
        assert _names(result) == {SECRET, PUBLIC}
        hits = {h["name"]: h for h in result.structured_content["hits"]}
        assert hits[SECRET]["text"] is None and hits[SECRET]["sealed"] is True
        assert result.structured_content["private"] is True

        # Another ID's key, a forged one, garbage: refused outright.
        payload = json.loads(_b64(key.removeprefix("sahara-mcp-")))
        forged = _key({**payload, "expires": payload["expires"] + 3600})
        for bad, why in (
            (strangers_key, "answers to"),
            (forged, "not signed by"),
            ("sahara-mcp-garbage", "malformed"),
            ("not-a-key", "not a sahara MCP owner key"),
        ):
            text = _error(anyio.run(_search, url, bad))
            assert "agent.auth_failed" in text and why in text, text
            assert SECRET not in text


def test_owner_keys_expire(owner: CliHome) -> None:
    from sahara_cli.agent.servers.mcp_auth import make_owner_key, verify_owner_key
    from sahara_cli.errors import AgentAuthFailed
    from sahara_cli.identity.store import KeyStore

    signer = KeyStore(owner.root / "keystore").unlock("main", PASSWORD)
    key = make_owner_key(signer, 60, now=time.time() - 120)
    with pytest.raises(AgentAuthFailed, match="expired"):
        verify_owner_key(key, signer.address)
    fresh = make_owner_key(signer, 60)
    assert verify_owner_key(fresh, signer.address).address == signer.address


def _b64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(payload: dict[str, Any]) -> str:
    import base64

    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return "sahara-mcp-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- Host and Origin ------------------------------------------------------------------

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "0"},
        },
    }
)


def _post(address: str, port: int, host: str, origin: str | None = None) -> int:
    """The status of an MCP initialize POST to ``address:port`` naming ``host``."""
    conn = http.client.HTTPConnection(address, port, timeout=30)
    try:
        conn.putrequest("POST", "/mcp", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        if origin is not None:
            conn.putheader("Origin", origin)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Accept", "application/json, text/event-stream")
        body = INITIALIZE.encode()
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_http_server_checks_host_and_origin(owner: CliHome) -> None:
    # 127.0.0.2 is loopback too, but not one of the names the SDK protects by itself.
    port = free_port()
    argv = _serve_argv(port)
    argv[argv.index(f"127.0.0.1:{port}")] = f"127.0.0.2:{port}"
    with _http_server(argv, port, owner.environ(), address="127.0.0.2"):
        assert _post("127.0.0.2", port, f"127.0.0.2:{port}") == 200
        assert _post("127.0.0.2", port, f"localhost:{port}") == 200
        # A rebinding page: its name in Host, or its site in Origin.
        assert _post("127.0.0.2", port, f"evil.example:{port}") == 421
        assert _post("127.0.0.2", port, f"127.0.0.2:{port + 1}") == 421
        assert _post("127.0.0.2", port, f"127.0.0.2:{port}", "http://evil.example") == 403
        assert _post("127.0.0.2", port, f"127.0.0.2:{port}", f"http://127.0.0.2:{port}") == 200
        assert _post("127.0.0.2", port, f"sahara.test:{port}") == 421


def test_allow_host_admits_a_named_host(owner: CliHome) -> None:
    port = free_port()
    argv = _serve_argv(port, "--allow-host", "sahara.test")
    with _http_server(argv, port, owner.environ()):
        assert _post("127.0.0.1", port, f"sahara.test:{port}") == 200
        assert _post("127.0.0.1", port, f"127.0.0.1:{port}", f"https://sahara.test:{port}") == 200
        assert _post("127.0.0.1", port, f"evil.example:{port}") == 421
