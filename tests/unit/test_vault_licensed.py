"""Reading the vault as a library: keys opened only for their holder, fetching an asset
from its owner's server under a license, share, and the item operations (rm, export,
import, status)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sahara_cli.errors import VaultExists, VaultNoLicense, VaultWrongKey
from sahara_cli.identity import Signer
from sahara_cli.identity.store import KeyStore
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.client import Protocol
from sahara_cli.vault import crypto
from sahara_cli.vault.core import Holder, Vault
from sahara_cli.vault.items import export_item, import_items, remove_item, status
from sahara_cli.vault.licensed import cat_content, get, open_key
from sahara_cli.vault.local import LocalBlockstore
from sahara_cli.vault.sharing import Recipient, recipient, share
from tests.e2e.nodes import free_port

TEXT = b"Quokkas nap through the afternoon heat; QUOKKA-LICENSED-3 tallies below.\n"


def _never() -> Signer:
    raise AssertionError("the ID was unlocked when no key was needed")


def _no_node() -> Protocol:
    raise AssertionError("the node was asked when nothing on chain was needed")


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    root = tmp_path / "vault"
    with Vault(root, LocalBlockstore(root)) as v:
        yield v


def add_text(vault: Vault, who: Signer, tmp_path: Path, *, public: bool = False) -> str:
    src = tmp_path / "quokka.txt"
    src.write_bytes(TEXT)
    item, _ = vault.add(src, Holder(who.address, who.public_key), public=public)
    return item.cid


def test_get_onto_an_existing_path_is_refused_before_anything_is_unlocked(
    vault: Vault, tmp_path: Path
) -> None:
    who = Signer(os.urandom(32))
    cid = add_text(vault, who, tmp_path)
    existing = tmp_path / "out.txt"
    existing.write_text("keep me")
    with pytest.raises(VaultExists) as caught:
        get(vault, cid, existing, unlock=_never, protocol=_no_node)
    assert caught.value.code == "vault.exists" and existing.read_text() == "keep me"
    got = get(vault, cid, tmp_path / "new.txt", unlock=lambda: who, protocol=_no_node)
    assert got.verified and not got.fetched and (tmp_path / "new.txt").read_bytes() == TEXT
    assert got.path == str((tmp_path / "new.txt").absolute())


def test_a_key_opens_only_for_its_holder(vault: Vault, tmp_path: Path) -> None:
    who, other = Signer(os.urandom(32)), Signer(os.urandom(32))
    item = vault.find(add_text(vault, who, tmp_path))
    with pytest.raises(VaultWrongKey):
        open_key(vault, item, lambda: other)
    assert open_key(vault, item, lambda: who) == vault.data_key(item, who.private_key)
    public = vault.find(add_text(vault, who, tmp_path, public=True))
    assert open_key(vault, public, _never) is None
    shown = cat_content(vault, item.cid, unlock=lambda: who, protocol=_no_node)
    assert shown.encoding == "utf-8" and shown.content == TEXT.decode()
    with pytest.raises(Exception, match="prints at most"):
        cat_content(vault, item.cid, unlock=lambda: who, protocol=_no_node, limit=8)


def test_share_wraps_the_key_to_the_recipient(vault: Vault, tmp_path: Path) -> None:
    who, friend = Signer(os.urandom(32)), Signer(os.urandom(32))
    cid = add_text(vault, who, tmp_path)
    keystore = KeyStore(tmp_path / "keys")
    by_key = recipient(friend.public_key.hex(), keystore)
    assert by_key == Recipient(friend.address, friend.public_key)
    assert recipient(friend.address.lower(), keystore) == Recipient(friend.address)
    shared = share(vault, cid, by_key, unlock=lambda: who)
    assert shared.to == friend.address and shared.wrapped_key
    key = crypto.unwrap_key(bytes.fromhex(shared.wrapped_key), friend.private_key)
    assert key == open_key(vault, vault.find(cid), lambda: who)
    from sahara_cli.vault.results import VaultItem

    assert VaultItem.of(vault.find(cid)).shared_with == [friend.address]  # checksummed


def test_export_import_remove_and_status(vault: Vault, tmp_path: Path) -> None:
    who = Signer(os.urandom(32))
    cid = add_text(vault, who, tmp_path, public=True)
    before = status(vault)
    assert (before.items, before.encrypted_items, before.pins) == (1, 0, 1)
    exported = export_item(vault, cid, tmp_path / "q.car")
    assert exported.root == cid and (tmp_path / "q.car").stat().st_size == exported.bytes
    removed = remove_item(vault, vault.find(cid))
    assert removed.cid == cid and removed.removed_blocks >= 1
    assert status(vault).blocks == 0
    imported = import_items(vault, tmp_path / "q.car", who.address)
    assert [(i.cid, i.origin, i.owner) for i in imported.items] == [(cid, "imported", None)]


@contextmanager
def key_server(
    root: Path, owner: Signer, proto: Protocol, chain_id: int, port: int | None = None
) -> Iterator[str]:
    from aiohttp import web

    from sahara_cli.vault.access import KeyServer, ServeLimits, server_audiences

    port = port or free_port()
    vault = Vault(root, LocalBlockstore(root))
    server = KeyServer(
        vault,
        owner,
        lambda: proto,
        chain_id=chain_id,
        audiences=server_audiences(f"127.0.0.1:{port}"),
        limits=ServeLimits(per_ip=10_000, per_address=10_000),
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()
        server.close()
        vault.close()


def test_get_fetches_a_licensed_asset_from_its_owner(tmp_path: Path) -> None:
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.vault.publish import AddOptions, Registration, add, holder_for

    with dev_node(tmp_path / "node") as (_, rpc):
        node = NodeClient(rpc.url)
        proto = Protocol(node)
        owner, reader = Signer(os.urandom(32)), Signer(os.urandom(32))
        for signer in (owner, reader):
            node.call("sahara_dev_setBalance", signer.address, hex(10**20))
        src = tmp_path / "quokka.txt"
        src.write_bytes(TEXT)
        owned = tmp_path / "owner-vault"
        port = free_port()  # the key server's, named in the registration
        with Vault(owned, LocalBlockstore(owned)) as mine:
            [item] = add(
                mine,
                [src],
                holder_for(owner.address, None, owner),
                AddOptions(embedder=None),
                who=owner,
                proto=proto,
                registration=Registration(server_url=f"http://127.0.0.1:{port}"),
            ).items
        assert item.asset_id is not None
        theirs = tmp_path / "reader-vault"
        with (
            key_server(owned, owner, proto, node.chain_id(), port) as url,
            Vault(theirs, LocalBlockstore(theirs)) as vault,
        ):
            with pytest.raises(VaultNoLicense):
                get(vault, str(item.asset_id), tmp_path / "x", unlock=lambda: reader,
                    protocol=lambda: proto, source=url)  # fmt: skip
            offer, _ = proto.offer(owner, item.asset_id, "full", price=10**15)
            proto.buy(reader, offer)
            got = get(
                vault,
                str(item.asset_id),
                tmp_path / "fetched.txt",
                unlock=lambda: reader,
                protocol=lambda: proto,
                source=url,
                embedder="minilm",
            )
        assert got.fetched and got.origin == "licensed" and got.source == url
        assert proto.asset(item.asset_id).uri == url
        assert got.holder == reader.address and got.owner == owner.address
        assert got.chunks >= 1 and (tmp_path / "fetched.txt").read_bytes() == TEXT
        node.close()


def test_daemon_status_and_stop_without_a_daemon(tmp_path: Path) -> None:
    from sahara_cli.config import VaultSection
    from sahara_cli.vault.backends import daemon_status, stop_daemon

    cfg = VaultSection(ipfs_bin=str(tmp_path / "no-such-ipfs"))
    shown = daemon_status(tmp_path, cfg)
    assert not shown.running and shown.pid is None and shown.api_url is None
    assert shown.repo == str(tmp_path / "vault" / "ipfs")
    assert stop_daemon(tmp_path, cfg).stopped is False
