"""The vault's publish flow as a library: add and index, register (with the front-running
guard), register a file as an asset, and the asset workflows, against a dev node."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sahara_cli.errors import UsageError, VaultCidTaken
from sahara_cli.identity import Signer
from sahara_cli.node.client import NodeClient
from sahara_cli.protocol.assets import list_assets, register_cid, show_asset, update_asset
from sahara_cli.protocol.client import Contribution, Protocol
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore
from sahara_cli.vault.publish import (
    AddOptions,
    Registration,
    add,
    holder_for,
    register_asset,
    register_item,
)
from sahara_cli.vault.registration import reconcile
from sahara_cli.vault.results import AddResult, AssetRegistered
from sahara_cli.vault.search import search_vault

TEXT = "Okapis browse at dawn in the Ituri forest; the OKAPI-PUBLISH-7 counts follow.\n"
SERVER = "http://127.0.0.1:8547"


@dataclass
class Recorder:
    """A reporter that remembers what it was told."""

    events: list[tuple[str, object]] = field(default_factory=list)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        self.events.append(("progress", (description, total)))
        yield lambda n: self.events.append(("bytes", n))

    @contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        self.events.append(("status", message))
        yield lambda _msg: None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeClient]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("publish-node")) as (_, rpc):
        client = NodeClient(rpc.url)
        yield client
        client.close()


@pytest.fixture
def proto(node: NodeClient) -> Protocol:
    return Protocol(node)


def funded(node: NodeClient) -> Signer:
    signer = Signer(os.urandom(32))
    node.call("sahara_dev_setBalance", signer.address, hex(10**20))
    return signer


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    root = tmp_path / "vault"
    with Vault(root, LocalBlockstore(root)) as v:
        yield v


def notes(tmp_path: Path, text: str = TEXT) -> Path:
    path = tmp_path / "okapi.md"
    path.write_text(text + os.urandom(4).hex() + "\n")
    return path


def test_add_indexes_and_reports_through_the_reporter(vault: Vault, tmp_path: Path) -> None:
    who = Signer(os.urandom(32))
    src = notes(tmp_path)
    report = Recorder()
    result = add(vault, [src], holder_for(who.address, None, who), AddOptions(), report=report)
    assert isinstance(result, AddResult) and result.backend == "local"
    [item] = result.items
    assert item.new and item.encrypted and item.chunks >= 1 and item.asset_id is None
    assert item.holder == who.address and item.path == str(src)
    assert ("progress", ("Adding", src.stat().st_size)) in report.events
    assert sum(n for kind, n in report.events if kind == "bytes") == src.stat().st_size  # type: ignore[misc]
    assert ("status", "Indexing okapi.md") in report.events
    # The index holds the text sealed: only the holder's key opens it.
    sealed = search_vault(vault.root, "okapis at dawn", 1)
    assert sealed.hits[0].sealed and sealed.hits[0].text is None
    opened = search_vault(vault.root, "okapis at dawn", 1, unlock=lambda: who)
    assert "OKAPI-PUBLISH-7" in (opened.hits[0].text or "")
    again = add(vault, [src], holder_for(who.address, None, who), AddOptions(embedder=None))
    assert not again.items[0].new and again.items[0].cid == item.cid


def test_an_add_that_cannot_work_fails_before_writing(vault: Vault, tmp_path: Path) -> None:
    who = Signer(os.urandom(32))
    holder = holder_for(who.address, None, who)
    with pytest.raises(UsageError, match="does not exist"):
        add(vault, [tmp_path / "missing.txt"], holder, AddOptions())
    with pytest.raises(UsageError, match="plain-commitment"):
        add(vault, [notes(tmp_path)], holder, AddOptions(public=True, plain_commitment=True))
    with pytest.raises(UsageError, match="no public key"):
        holder_for(who.address, None)
    assert vault.items() == []


def test_add_with_registration_registers_each_item_as_ours(
    vault: Vault, tmp_path: Path, node: NodeClient, proto: Protocol
) -> None:
    owner, dana = funded(node), Signer(os.urandom(32))
    registration = Registration(
        kind="dataset",
        contributors=[Contribution(owner.address, 7000), Contribution(dana.address, 3000)],
        server_url=SERVER,
    )
    result = add(
        vault,
        [notes(tmp_path)],
        holder_for(owner.address, None, owner),
        AddOptions(),
        who=owner,
        proto=proto,
        registration=registration,
    )
    [item] = result.items
    assert item.asset_id is not None and item.state == "ready"
    asset = proto.asset(item.asset_id)
    assert asset.owner == owner.address and asset.cid == item.cid and asset.uri == SERVER
    assert asset.commitment == item.commitment
    # The index entries now name the asset.
    assert search_vault(vault.root, "okapis at dawn", 1).hits[0].asset_id == item.asset_id
    shown = show_asset(proto, item.asset_id)
    assert [(c.account, c.weight_bps) for c in shown.contributors] == [
        (owner.address, 7000),
        (dana.address, 3000),
    ]
    assert shown.created_at.tzinfo is not None


def test_a_cid_another_address_registered_first_is_refused(
    vault: Vault, tmp_path: Path, node: NodeClient, proto: Protocol
) -> None:
    owner, stranger = funded(node), funded(node)
    options = AddOptions(public=True, embedder=None)
    [added] = add(vault, [notes(tmp_path)], holder_for(owner.address, None, owner), options).items
    taken, _ = proto.register(
        stranger, kind="dataset", cid=added.cid, commitment=b"\1" * 32, name="mine now"
    )
    item = vault.find(added.cid)
    with pytest.raises(VaultCidTaken) as caught:
        register_item(vault, proto, owner, item, Registration())
    assert caught.value.details == {"asset_id": taken, "owner": stranger.address, "cid": added.cid}
    after = vault.find(added.cid)
    assert after.asset_id is None and after.state == "ready"
    # A registration a crash left 'registering' is not tied to the stranger's asset either.
    vault.db.update(after.id, state="registering")
    assert [r.code for r in reconcile(vault, proto)] == ["vault.cid_taken"]
    assert vault.find(added.cid).state == "ready"


def test_a_private_item_is_not_registered_without_its_key_server(
    vault: Vault, tmp_path: Path, node: NodeClient, proto: Protocol
) -> None:
    """Registered with no URI, a private asset would sell licenses nobody can use."""
    owner = funded(node)
    options = AddOptions(embedder=None)
    [added] = add(vault, [notes(tmp_path)], holder_for(owner.address, None, owner), options).items
    item = vault.find(added.cid)
    with pytest.raises(UsageError, match="key server"):
        register_item(vault, proto, owner, item, Registration())
    assert proto.asset_by_cid(added.cid) is None and vault.find(added.cid).state == "ready"


def test_register_asset_puts_a_file_in_the_vault_then_on_chain(
    vault: Vault, tmp_path: Path, node: NodeClient, proto: Protocol
) -> None:
    owner = funded(node)
    src = notes(tmp_path)
    registration = Registration(kind="dataset", server_url=SERVER)
    result = register_asset(
        proto, owner, source=str(src), name="okapi notes", registration=registration, vault=vault
    )
    assert isinstance(result, AssetRegistered) and result.vault_item is not None
    assert result.cid == result.vault_item.cid and result.vault_item.asset_id == result.asset_id
    assert result.name == "okapi notes" and result.uri == SERVER and result.owner == owner.address
    receipt = node.call("eth_getTransactionReceipt", result.tx.hash)
    assert int(receipt["blockNumber"], 16) == result.tx.block and result.tx.status == "success"
    assert result.tx.fee_wei > 0 and result.tx.fee_sah
    with pytest.raises(UsageError, match="needs the vault"):
        register_asset(proto, owner, source=str(src), name="x", registration=registration)
    with pytest.raises(UsageError, match=f"already registered as asset #{result.asset_id}"):
        register_asset(
            proto,
            owner,
            source=str(src),
            name="okapi notes",
            registration=registration,
            vault=vault,
        )


def test_register_a_cid_update_and_list(node: NodeClient, proto: Protocol, tmp_path: Path) -> None:
    owner, meter = funded(node), Signer(os.urandom(32))
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxq" + os.urandom(2).hex()[:3]
    done = register_cid(proto, owner, kind="model", cid=cid, commitment=b"\2" * 32, name="m")
    assert done.asset_id and done.kind == "model" and done.revenue_wei == 0
    assert done.revenue_sah == "0"
    with pytest.raises(UsageError, match="needs at least one --parent"):
        register_cid(proto, owner, kind="model", cid=cid + "x", commitment=b"", name="n",
                     upstream_bps=100)  # fmt: skip
    updated = update_asset(proto, owner, done.asset_id, uri="ipfs://meta", meter=meter.address)
    assert updated.uri == "ipfs://meta" and updated.meter == meter.address
    assert len(updated.txs) == 2 and updated.txs[0].hash != updated.txs[1].hash
    with pytest.raises(UsageError, match="nothing to change"):
        update_asset(proto, owner, done.asset_id)
    listed = list_assets(proto, tmp_path / "home", owner=owner.address)
    assert [a.asset_id for a in listed.assets] == [done.asset_id]
    assert listed.model_dump(mode="json")["assets"][0]["created_at"].endswith("Z")
