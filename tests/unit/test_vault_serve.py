"""``vault serve``'s key release against a real dev node (in process), a real vault and
the real aiohttp server on loopback: audience binding, bounded fields, replay state that
survives a restart and is shared by a second server of the home, per-IP and
per-address rates, one chain client, license expiry by the wall clock while the chain
is idle, and a fuzzed server that neither crashes, hangs nor releases a key."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sahara_cli.errors import (
    VaultItemNotFound,
    VaultLicenseExpired,
    VaultNoLicense,
    VaultRateLimited,
    VaultRequestInvalid,
)
from sahara_cli.identity import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault.access import (
    MAX_BODY,
    MCP_READ,
    KeyClient,
    KeyRequest,
    KeyServer,
    ServeLimits,
    check_access,
    server_audiences,
)
from sahara_cli.vault.core import Holder, Vault
from sahara_cli.vault.local import LocalBlockstore
from tests.conftest import TEST_KEY_0
from tests.e2e.nodes import free_port

DAY = 86_400
TEXT = b"Okapis browse at dawn in the Ituri forest; counts are in the appendix.\n"
GENEROUS = ServeLimits(per_ip=10_000, per_address=10_000)


@dataclass
class World:
    node: NodeClient
    proto: Protocol
    chain_id: int
    owner: Signer
    licensee: Signer
    stranger: Signer
    vault_root: Path
    asset: int
    cid: str
    offer_seconds: int  # a long-term offer of a few seconds, for the expiry test

    def vault(self) -> Vault:
        return Vault(self.vault_root, LocalBlockstore(self.vault_root))

    def funded(self) -> Signer:
        signer = Signer(os.urandom(32))
        self.node.call("sahara_dev_setBalance", signer.address, hex(10**20))
        return signer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sahara_cli.node.rpc.testing import dev_node

    tmp = tmp_path_factory.mktemp("vault-serve")
    with dev_node(tmp / "node") as (_, rpc):
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        owner = Signer(bytes.fromhex(TEST_KEY_0[2:]))
        source = tmp / "okapi.md"
        source.write_bytes(TEXT)
        root = tmp / "vault"
        with Vault(root, LocalBlockstore(root)) as vault:
            item, _ = vault.add(source, Holder(owner.address, owner.public_key))
            item = vault.ensure_commitment(item)
            asset, _ = proto.register(
                owner, kind="dataset", cid=item.cid, commitment=item.commitment, name="okapi.md"
            )
            vault.db.update(item.id, asset_id=asset, state="ready")
        world = World(
            node, proto, node.chain_id(), owner, Signer(os.urandom(32)), Signer(os.urandom(32)),
            root, asset, item.cid, 0,
        )  # fmt: skip
        node.call("sahara_dev_setBalance", world.licensee.address, hex(10**20))
        offer, _ = proto.offer(owner, asset, "long-term", price=1, duration=30 * DAY)
        proto.buy(world.licensee, offer)
        world.offer_seconds, _ = proto.offer(owner, asset, "long-term", price=1, duration=3)
        yield world
        node.close()


@contextmanager
def serving(
    world: World,
    limits: ServeLimits = GENEROUS,
    port: int | None = None,
    public_url: str | None = None,
) -> Iterator[tuple[str, KeyServer]]:
    """A KeyServer of the world's vault on 127.0.0.1 (its own event loop thread)."""
    from aiohttp import web

    port = port or free_port()
    vault = world.vault()
    server = KeyServer(
        vault,
        world.owner,
        lambda: world.proto,
        chain_id=world.chain_id,
        audiences=server_audiences(f"127.0.0.1:{port}", public_url),
        limits=limits,
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()
        server.close()
        vault.close()


def key_body(world: World, signer: Signer, audience: str, **change: Any) -> dict[str, Any]:
    request = KeyRequest.new(signer, world.asset, world.cid, world.chain_id, audience=audience)
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    request = KeyRequest(**{**fields, **change})
    return request.signed(signer)


def read_body(world: World, signer: Signer, **change: Any) -> dict[str, Any]:
    """A read request (``mcp serve``'s vault_read), which names no audience."""
    request = KeyRequest.new(signer, world.asset, world.cid, world.chain_id, MCP_READ)
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return KeyRequest(**{**fields, **change}).signed(signer)


def post(url: str, body: Any, *, source: str | None = None) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=30) as http:
        if isinstance(body, bytes):
            return http.post(url + "/v1/keys", content=body)
        return http.post(url + "/v1/keys", json=body)


# -- audience -----------------------------------------------------------------------------


def test_a_key_request_is_taken_only_by_the_server_it_was_signed_for(world: World) -> None:
    with serving(world) as (url, _server):
        client = KeyClient(url)
        try:
            answer = client.ask_key(world.licensee, world.asset, world.cid, world.chain_id)
            assert answer["wrapped_key"] and answer["access_until"] > time.time()
            # The same server under its loopback name is the same audience.
            port = url.rsplit(":", 1)[1]
            alias = key_body(world, world.licensee, f"http://localhost:{port}/")
            assert "wrapped_key" in client.request_key(alias)

            elsewhere = key_body(world, world.licensee, "http://10.1.2.3:8547")
            with pytest.raises(VaultRequestInvalid, match=r"signed for http://10\.1\.2\.3:8547"):
                client.request_key(elsewhere)
            # Captured and relabelled for this server: the signature no longer matches.
            relabelled = {**elsewhere, "audience": client.audience}
            with pytest.raises(VaultRequestInvalid, match="not signed by"):
                client.request_key(relabelled)
            # A request that names no audience (as clients before this one sent) is refused.
            bare = read_body(world, world.licensee, purpose="key-release")
            assert "audience" not in bare
            with pytest.raises(VaultRequestInvalid, match="no audience"):
                client.request_key(bare)
        finally:
            client.close()


# -- bounds -------------------------------------------------------------------------------


def test_nonces_and_bodies_are_bounded(world: World) -> None:
    with serving(world) as (url, server):
        for nonce in ("ab" * 5_000, "ab" * 4, "zz" * 16, "ab\nissued: 1" + "0" * 16):
            with pytest.raises(VaultRequestInvalid, match="nonce"):
                server.check(read_body(world, world.licensee, nonce=nonce), MCP_READ)
        item, until = server.check(read_body(world, world.licensee), MCP_READ)
        assert item.cid == world.cid and until > 0

        huge = key_body(world, world.licensee, url, nonce="ab" * 32)
        huge["padding"] = "x" * MAX_BODY
        answer = post(url, huge)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "vault.request_invalid"


# -- replay -------------------------------------------------------------------------------


def test_a_request_is_not_replayed_after_a_restart_or_on_a_second_server(world: World) -> None:
    port = free_port()
    read = read_body(world, world.licensee)
    with serving(world, port=port) as (_url, server):
        server.check(read, MCP_READ)
    with (
        serving(world, port=port) as (_url, server),  # restarted on the same home
        pytest.raises(VaultRequestInvalid, match="replayed"),
    ):
        server.check(read, MCP_READ)

    with serving(world, port=port) as (url, _server):
        key = key_body(world, world.licensee, url)
        assert post(url, key).status_code == 200
    with serving(world, port=port) as (url, server):
        again = post(url, key)
        assert again.status_code == 403 and "replayed" in again.json()["error"]["message"]

        # Two servers of one home at once share the nonces too.
        with serving(world) as (url2, second):
            fresh = read_body(world, world.licensee)
            server.check(fresh, MCP_READ)
            with pytest.raises(VaultRequestInvalid, match="replayed"):
                second.check(fresh, MCP_READ)
            key = key_body(world, world.licensee, url2)
            assert post(url2, key).status_code == 200
            assert "replayed" in post(url2, key).json()["error"]["message"]


# -- rates --------------------------------------------------------------------------------


def test_rates_are_limited_per_address_and_per_remote_ip(world: World) -> None:
    limits = ServeLimits(per_ip=10_000, per_address=0.1)  # bursts of 1, then one in 10 s
    with serving(world, limits) as (url, _server):
        answers = [post(url, key_body(world, world.licensee, url)) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 429]
        limited = answers[1]
        assert limited.json()["error"]["code"] == "vault.rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another address is not held back by the first one's rate.
        other = post(url, key_body(world, world.stranger, url))
        assert other.json()["error"]["code"] == "vault.no_license"
        # The client turns the answer into its own error class.
        client = KeyClient(url)
        try:
            with pytest.raises(VaultRateLimited):
                client.ask_key(world.licensee, world.asset, world.cid, world.chain_id)
        finally:
            client.close()

    limits = ServeLimits(per_ip=0.1, per_address=10_000)
    with serving(world, limits) as (url, _server):
        flood = [post(url, key_body(world, world.stranger, url), source="127.0.0.2")]
        flood += [post(url, b"{}", source="127.0.0.2") for _ in range(2)]
        assert flood[0].json()["error"]["code"] == "vault.no_license"
        assert flood[-1].status_code == 429
        assert flood[-1].json()["error"]["code"] == "vault.rate_limited"
        # A caller on another address is still served.
        assert post(url, key_body(world, world.licensee, url)).status_code == 200


def test_the_chain_is_read_through_one_client(world: World) -> None:
    made: list[Protocol] = []

    def factory() -> Protocol:
        made.append(Protocol(world.node))
        return made[-1]

    vault = world.vault()
    server = KeyServer(vault, world.owner, factory, chain_id=world.chain_id)
    try:
        for _ in range(4):
            server.check(read_body(world, world.licensee), MCP_READ)
        assert len(made) == 1
    finally:
        server.close()
        vault.close()


class SlowChain(Protocol):
    """The real protocol client, whose asset lookups wait for a gate."""

    def __init__(self, node: NodeClient) -> None:
        super().__init__(node)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def asset(self, asset_id: int) -> Any:
        self.entered.set()
        assert self.gate.wait(60)
        return super().asset(asset_id)


def test_a_slow_chain_read_holds_up_no_other_request(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chain = SlowChain(world.node)
    vault = world.vault()
    server = KeyServer(vault, world.owner, lambda: chain, chain_id=world.chain_id)
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(server.check, read_body(world, world.licensee), MCP_READ)
        assert chain.entered.wait(30)  # the first request now waits on the chain
        unknown = read_body(world, world.licensee, asset=world.asset + 1000)
        second = pool.submit(server.check, unknown, MCP_READ)
        with pytest.raises(VaultItemNotFound):  # answered from the catalogue meanwhile
            second.result(timeout=15)
        chain.gate.set()
        item, _until = first.result(timeout=30)
        assert item.cid == world.cid
    finally:
        chain.gate.set()
        pool.shutdown()
        server.close()
        vault.close()


# -- expiry -------------------------------------------------------------------------------


def test_a_license_that_expires_while_the_chain_is_idle_is_refused(world: World) -> None:
    holder = world.funded()
    world.proto.buy(holder, world.offer_seconds)
    until = world.proto.access_until(world.asset, holder.address, "long-term")
    assert until > 0
    idle_at = world.node.block_number()
    deadline = time.monotonic() + 30
    while time.time() <= until + 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # the license runs out on the wall clock; no block is mined
    assert world.node.block_number() == idle_at  # the chain made no block meanwhile
    last_block = int(world.node.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert last_block < until < time.time()

    with pytest.raises(VaultLicenseExpired):
        check_access(world.proto, world.asset, holder.address, world.owner.address)
    with serving(world) as (url, server):
        with pytest.raises(VaultLicenseExpired):  # vault_read's gate
            server.check(read_body(world, holder), MCP_READ)
        refused = post(url, key_body(world, holder, url))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "vault.license_expired"
        assert "wrapped_key" not in refused.text
    with pytest.raises(VaultNoLicense):
        check_access(world.proto, world.asset, world.stranger.address, world.owner.address)


# -- fuzzing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(world: World) -> Iterator[tuple[str, dict[str, Any]]]:
    """A server to fuzz, and one legitimate key request it has answered already."""
    with serving(world) as (url, _server):
        spent = key_body(world, world.licensee, url)
        assert post(url, spent).status_code == 200
        yield url, spent


FIELDS = ("asset", "cid", "address", "chain", "issued", "nonce", "purpose", "audience")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
WEIRD = (
    JSON
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.text(min_size=MAX_BODY // 2, max_size=MAX_BODY * 2)
    | st.sampled_from(["", "\n", "0x", "ab" * 33, "ab\nasset: 1", "\u0000", "\u00e9\U0001d530"])
)


def _shaped(data: st.DataObject, spent: dict[str, Any], world: World, url: str) -> Any:
    kind = data.draw(st.sampled_from(["bytes", "deep", "json", "field", "replay", "stranger"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=MAX_BODY * 2))
    if kind == "deep":  # nesting deep enough to exhaust a recursive parser
        return data.draw(st.sampled_from([b"[", b'{"a":'])) * data.draw(
            st.integers(min_value=1, max_value=MAX_BODY // 5)
        )
    if kind == "json":
        return json.dumps(data.draw(JSON)).encode()
    if kind == "field":
        body = dict(spent)
        body[data.draw(st.sampled_from((*FIELDS, "signature")))] = data.draw(WEIRD)
        return body
    if kind == "replay":  # the spent request, as it was or with extra or missing fields
        body = dict(spent)
        if data.draw(st.booleans()):
            body[data.draw(st.text(max_size=8))] = data.draw(JSON)
        if data.draw(st.booleans()):
            body.pop("purpose", None)
        return body
    change = {"nonce": data.draw(st.text("0123456789abcdef", min_size=16, max_size=64))}
    if data.draw(st.booleans()):
        change["issued"] = data.draw(st.integers(min_value=0, max_value=2**40 - 1))
    return key_body(world, world.stranger, url, **change)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_never_crash_hang_or_release_a_key(
    world: World, fuzzed: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    url, spent = fuzzed
    body = _shaped(data, spent, world, url)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    with httpx.Client(timeout=10) as http:  # a hang fails as a timeout
        answer = http.post(url + "/v1/keys", content=body)
        assert answer.status_code in (400, 403, 404, 413), answer.text
        error = answer.json()["error"]
        assert error["code"].startswith("vault.") and error["message"]
        assert "wrapped_key" not in answer.text
        assert http.get(url + "/v1/info").status_code == 200


# -- Host and Origin ----------------------------------------------------------------------


def test_a_foreign_host_or_web_origin_is_refused(world: World) -> None:
    """A browser page of another site, or a DNS name rebound to loopback, reaches the
    server with a Host or Origin that is not the server's own: refused before anything
    else (a key request signed for this server included)."""
    with serving(world) as (url, _server):
        port = url.rsplit(":", 1)[1]
        good = key_body(world, world.licensee, url)
        with httpx.Client(timeout=30) as http:
            for headers in (
                {"Host": f"rebound.example:{port}"},
                {"Origin": "http://evil.example"},
                {"Origin": "null"},
            ):
                refused = http.post(url + "/v1/keys", json=good, headers=headers)
                assert refused.status_code == 403, headers
                assert refused.json()["error"]["code"] == "vault.request_invalid"
                assert "wrapped_key" not in refused.text
                info = http.get(url + "/v1/info", headers=headers)
                assert info.status_code == 403, headers
            # Its own names still work, with or without its own Origin.
            assert http.get(url + "/v1/info", headers={"Host": f"localhost:{port}"}).is_success
            answer = http.post(url + "/v1/keys", json=good, headers={"Origin": url})
            assert answer.status_code == 200, answer.text
            assert answer.json()["wrapped_key"]


def test_a_server_behind_a_tls_proxy_answers_to_its_public_name(world: World) -> None:
    """With vault.public_url = https://NAME, a proxy that ends TLS passes Host: NAME
    (no port) over plain HTTP: that is the server's own name, not a foreign one."""
    with (
        serving(world, public_url="https://vault.example.org") as (url, _server),
        httpx.Client(timeout=30) as http,
    ):
        for host in ("vault.example.org", "vault.example.org:443", "VAULT.example.org"):
            answer = http.get(url + "/v1/info", headers={"Host": host})
            assert answer.status_code == 200, (host, answer.text)
        for host in ("vault.example.org:80", "vault.example.org:8547", "other.example"):
            refused = http.get(url + "/v1/info", headers={"Host": host})
            assert refused.status_code == 403, host
        body = key_body(world, world.licensee, "https://vault.example.org")
        answer = http.post(
            url + "/v1/keys",
            json=body,
            headers={"Host": "vault.example.org", "Origin": "https://vault.example.org"},
        )
        assert answer.status_code == 200, answer.text


def test_ipv6_callers_share_a_rate_per_64() -> None:
    from sahara_cli.vault.access import rate_key

    assert rate_key("2001:db8:1:2::1") == rate_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("203.0.113.7") == "203.0.113.7" == rate_key("::ffff:203.0.113.7")
    assert rate_key("") == ""
